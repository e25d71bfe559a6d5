/**
 * `includeRequestBodyInCheck` (MeshConfig `envoyExtAuthzHttp`), through every framework's real
 * entry point and a real HTTP authorizer on 127.0.0.1, as Envoy's ext_authz `with_request_body`
 * does it: the check carries the request's body (its `content-length` the body's size, and
 * `x-envoy-auth-partial-body` among the headers the provider includes); the authorizer can deny
 * on it; the app still reads the whole body; a body over `maxRequestBytes` is refused with 413
 * before the authorizer is asked, or — with `allowPartialMessage` — checked on its first
 * `maxRequestBytes`; a request with no body is checked without one.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { createMesh, type Mesh } from '../../src/index.ts';
import { frameworks, raw, type Seen } from '../helpers/frameworks.ts';

interface Check {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** An HTTP authorizer: records each check; denies (403) a body that says "deny", allows the rest. */
async function authorizer(): Promise<{ server: Server; port: number; checks: Check[] }> {
  const checks: Check[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      checks.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (body.includes('deny')) {
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('denied by body');
        return;
      }
      res.writeHead(200);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, checks };
}

const policy = {
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'ext', namespace: 'foo' },
  spec: { action: 'CUSTOM', provider: { name: 'body-authz' }, rules: [{ to: [{ operation: { paths: ['/ext/*'] } }] }] },
};

describe('includeRequestBodyInCheck: the external authorizer gets the body, the app still reads it', () => {
  let ext: Awaited<ReturnType<typeof authorizer>>;
  before(async () => {
    ext = await authorizer();
  });
  after(() => new Promise<void>((r) => ext.server.close(() => r())));

  async function meshWith(body: { maxRequestBytes: number; allowPartialMessage?: boolean; packAsBytes?: boolean }): Promise<Mesh> {
    return createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [policy] as never,
      extensionProviders: [{ name: 'body-authz', envoyExtAuthzHttp: { service: '127.0.0.1', port: ext.port, includeRequestHeadersInCheck: ['x-envoy-auth-partial-body', 'content-type'], includeRequestBodyInCheck: body } }],
      logger: { warn: () => undefined },
    });
  }

  it('Express with a body parser mounted before mesh.express(): the body is gone by the time the mesh judges, so the check has none (and nothing waits for it)', async () => {
    const mesh = await meshWith({ maxRequestBytes: 64 });
    const app = express();
    app.use(express.json());
    app.use(mesh.express());
    app.all('/{*rest}', (req, res) => res.json({ body: req.body }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const before = ext.checks.length;
      const r = await raw((server.address() as AddressInfo).port, '/ext/a', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
      assert.equal(r.statusCode, 200, r.text);
      assert.deepEqual(JSON.parse(r.text), { body: { a: 1 } });
      const c = ext.checks.slice(before);
      assert.equal(c.length, 1);
      assert.equal(c[0]?.body.length, 0);
      assert.equal(c[0]?.headers['x-envoy-auth-partial-body'], undefined);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });

  for (const fw of frameworks) {
    describe(fw.name, () => {
      let whole: Mesh;
      let partial: Mesh;
      let s1: { port: number; close(): Promise<void> };
      let s2: { port: number; close(): Promise<void> };
      before(async () => {
        whole = await meshWith({ maxRequestBytes: 64 });
        partial = await meshWith({ maxRequestBytes: 1024, allowPartialMessage: true });
        s1 = await fw.start(whole);
        s2 = await fw.start(partial);
      });
      after(async () => {
        await s1.close();
        await s2.close();
        await whole.close();
        await partial.close();
      });

      const post = (port: number, text: string) => raw(port, '/ext/a', { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });

      it('the check carries the body (its size as content-length, x-envoy-auth-partial-body: false); the app reads the same body', async () => {
        const text = JSON.stringify({ item: 'book', n: 1, note: 'héllo' });
        const before = ext.checks.length;
        const r = await post(s1.port, text);
        assert.equal(r.statusCode, 200, r.text);
        assert.deepEqual((JSON.parse(r.text) as Seen).body, JSON.parse(text));
        const c = ext.checks.slice(before);
        assert.equal(c.length, 1);
        assert.equal(c[0]?.method, 'POST');
        assert.equal(c[0]?.url, '/ext/a');
        assert.equal(c[0]?.body.toString('utf8'), text);
        assert.equal(c[0]?.headers['content-length'], String(Buffer.byteLength(text)));
        assert.equal(c[0]?.headers['x-envoy-auth-partial-body'], 'false');
      });

      it('the authorizer denies on what the body says (its status and body reach the caller; the app never runs)', async () => {
        const r = await post(s1.port, JSON.stringify({ action: 'deny' }));
        assert.deepEqual([r.statusCode, r.text], [403, 'denied by body']);
      });

      it('a body over maxRequestBytes without allowPartialMessage: 413 Payload Too Large, the authorizer not asked', async () => {
        const before = ext.checks.length;
        const r = await post(s1.port, JSON.stringify({ pad: 'x'.repeat(100) }));
        assert.deepEqual([r.statusCode, r.text], [413, 'Payload Too Large']);
        assert.equal(ext.checks.length, before);
      });

      it('with allowPartialMessage: the check has the first maxRequestBytes (partial: true), the app the whole body (50 KB)', async () => {
        const text = JSON.stringify({ pad: 'y'.repeat(50_000) });
        const before = ext.checks.length;
        const r = await post(s2.port, text);
        assert.equal(r.statusCode, 200, r.text.slice(0, 200));
        assert.equal(((JSON.parse(r.text) as Seen).body as { pad: string }).pad.length, 50_000);
        const c = ext.checks.slice(before);
        assert.equal(c.length, 1);
        assert.equal(c[0]?.body.toString('latin1'), text.slice(0, 1024));
        assert.equal(c[0]?.headers['x-envoy-auth-partial-body'], 'true');
      });

      it('a request with no body is checked without one (content-length 0, no partial-body header)', async () => {
        const before = ext.checks.length;
        const r = await raw(s1.port, '/ext/b');
        assert.equal(r.statusCode, 200, r.text);
        const c = ext.checks.slice(before);
        assert.equal(c.length, 1);
        assert.equal(c[0]?.body.length, 0);
        assert.equal(c[0]?.headers['x-envoy-auth-partial-body'], undefined);
      });

      it('a path no CUSTOM rule matches is not held for its body', async () => {
        const before = ext.checks.length;
        const r = await post(s1.port, JSON.stringify({ pad: 'z'.repeat(500) }));
        assert.equal(r.statusCode, 413);
        const other = await raw(s1.port, '/other', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pad: 'z'.repeat(500) }) });
        assert.equal(other.statusCode, 200, other.text);
        assert.equal(ext.checks.length, before);
      });
    });
  }
});
