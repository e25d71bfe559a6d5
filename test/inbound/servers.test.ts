/**
 * The server side through each framework's real entry point — node:http (`mesh.createServer`),
 * Express 5 and Express 4 (`app.use(mesh.express())`), Fastify 5 (`fastify.register(mesh.fastify())`
 * with `mesh.fastifyOptions()`) — driven by one shared table: the same requests, the same answers.
 * Each app echoes what it saw: the path it routed on, `req.meshlet`, and its MeshContext.
 */
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as h2connect, createServer as createHttp2Server } from 'node:http2';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { frameworks, listen, raw, type Seen } from '../helpers/frameworks.ts';

const rows: { name: string; method?: string; path: string; headers?: Record<string, string>; body?: unknown; status: number; path_?: string; deadlineIn?: number; text?: RegExp }[] = [
  { name: 'a plain request reaches the app with req.meshlet', path: '/a/b', status: 200, path_: '/a/b' },
  { name: '/public/../admin reaches the app as /admin', path: '/public/../admin', status: 200, path_: '/admin' },
  { name: '/%2e%2e/admin reaches the app as /admin', path: '/%2e%2e/admin', status: 200, path_: '/admin' },
  { name: '/./admin reaches the app as /admin', path: '/./admin', status: 200, path_: '/admin' },
  { name: 'a path Envoy refuses (an encoded NUL) is answered 400', path: '/xyz/.%00../abc', status: 400, text: /^Bad Request$/ },
  { name: 'x-envoy-expected-rq-timeout-ms becomes the MeshContext deadline', path: '/t', headers: { 'x-envoy-expected-rq-timeout-ms': '30000' }, status: 200, path_: '/t', deadlineIn: 30 },
  // Envoy reads 0 as no timeout (router.cc setTimeoutHeaders never sends it: "Envoy treats 0 as infinite timeout"; trySetGlobalTimeout).
  { name: 'x-envoy-expected-rq-timeout-ms: 0 is no deadline (Envoy: no timeout), not one already passed', path: '/t', headers: { 'x-envoy-expected-rq-timeout-ms': '0' }, status: 200, path_: '/t' },
  { name: 'x-envoy-expected-rq-timeout-ms: 0 next to grpc-timeout: the grpc-timeout is the deadline', path: '/t', headers: { 'x-envoy-expected-rq-timeout-ms': '0', 'grpc-timeout': '20S' }, status: 200, path_: '/t', deadlineIn: 20 },
  { name: 'a JSON body: the context is still there after the body was parsed', method: 'POST', path: '/post', headers: { 'content-type': 'application/json', 'x-envoy-expected-rq-timeout-ms': '60000' }, body: { a: 1 }, status: 200, path_: '/post', deadlineIn: 60 },
];

for (const fw of frameworks) {
  describe(fw.name, () => {
    let mesh: Mesh;
    let server: { port: number; close(): Promise<void> };
    before(async () => {
      mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [] });
      server = await fw.start(mesh);
    });
    after(async () => {
      await server.close();
      await mesh.close();
    });
    for (const row of rows) {
      it(row.name, async () => {
        const r = await raw(server.port, row.path, { method: row.method, headers: row.headers, body: row.body === undefined ? undefined : JSON.stringify(row.body) });
        const text = r.text;
        assert.equal(r.statusCode, row.status, text);
        if (row.text !== undefined) {
          assert.match(text, row.text);
          return;
        }
        const s = JSON.parse(text) as Seen;
        assert.equal(s.path, row.path_);
        assert.notEqual(s.meshlet, null, 'req.meshlet is set');
        assert.equal(s.deadlineIn, row.deadlineIn ?? null);
        if (row.body !== undefined) assert.deepEqual(s.body, row.body);
      });
    }
  });
}

describe('Fastify without mesh.fastifyOptions()', () => {
  it('refuses a path that is not normal (400) instead of serving it on a path other than the one judged', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [] });
    const app = Fastify();
    await app.register(mesh.fastify() as never);
    app.get('/*', async (req) => ({ path: req.url }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    try {
      assert.equal((await raw(port, '/a/b')).statusCode, 200);
      // A real socket and a raw path: fastify's inject() (and a URL string) would normalize it first.
      const bad = await raw(port, '/public/../admin');
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.text, 'Bad Request');
    } finally {
      await app.close();
      await mesh.close();
    }
  });
});

describe('mesh.createServer', () => {
  it('requires a listener', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [] });
    try {
      assert.throws(() => mesh.createServer(undefined as never), /a request listener is required/);
    } finally {
      await mesh.close();
    }
  });

  it("events other than a request's reach their listeners with the arguments they were emitted with, however many (none, a symbol's, an app's own with five)", async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [] });
    try {
      const server = mesh.createServer((_req, res) => res.end());
      const seen: unknown[][] = [];
      const kEvent = Symbol('app.event');
      server.on('app:none', (...args: unknown[]) => seen.push(args));
      server.on('app:one', (...args: unknown[]) => seen.push(args));
      server.on('app:five', (...args: unknown[]) => seen.push(args));
      const emitter = server as EventEmitter;
      emitter.on(kEvent, (...args: unknown[]) => seen.push(args));
      assert.equal(server.emit('app:none'), true);
      server.emit('app:one', undefined);
      server.emit('app:five', 1, 2, 3, 4, 5);
      emitter.emit(kEvent, 'a', 'b');
      assert.equal(server.emit('app:nobody', 1), false, 'no listener: false, as EventEmitter answers');
      assert.deepEqual(seen, [[], [undefined], [1, 2, 3, 4, 5], ['a', 'b']]);
    } finally {
      await mesh.close();
    }
  });

  it('mesh.close() stops accepting and lets a request in flight finish', async () => {
    // A close that waited for closeTimeoutMs (a minute) instead of the request would time the test out.
    const mesh = await createMesh({ service: 'httpbin', config: [], closeTimeoutMs: 60_000 });
    let release: (() => void) | undefined;
    const server = mesh.createServer((_req, res) => {
      release = () => res.end('done');
    });
    const port = await listen(server);
    const inFlight = request(`http://127.0.0.1:${port}/slow`);
    while (release === undefined) await new Promise((r) => setTimeout(r, 5));
    const closing = mesh.close();
    await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(request(`http://127.0.0.1:${port}/new`, { reset: true }), /ECONNREFUSED|other side closed|SocketError/);
    (release as () => void)();
    const r = await inFlight;
    assert.equal(await r.body.text(), 'done');
    await closing;
    assert.equal(server.listening, false);
  });
});

describe("mesh.handler() on an HTTP/2 server of the app's own (node:http2's compatibility API)", () => {
  it('an admitted request whose headers the phases changed (a token consumed, a claim copied) reaches the app; before, rewriting them threw (getters only) and the request was never answered', async () => {
    const root = new URL('../../', import.meta.url).pathname;
    const token = readFileSync(`${root}test/fixtures/istio/jwt/demo.jwt`, 'utf8').trim();
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${root}examples/server/mesh` });
    const server = createHttp2Server(
      mesh.handler((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ url: req.url, principal: req.meshlet?.requestPrincipal, sub: req.headers['x-jwt-sub'], authorization: req.headers.authorization ?? null, raw: req.rawHeaders.includes('x-jwt-sub') }));
      }) as never, // node:http's listener type; node:http2's compatibility request and response are its look-alikes
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const session = h2connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const s = session.request({ ':path': path, ...headers });
        let status = 0;
        let text = '';
        s.on('response', (h) => {
          status = Number(h[':status']);
        });
        s.setEncoding('utf8');
        s.on('data', (c: string) => {
          text += c;
        });
        s.on('error', reject);
        s.on('end', () => resolve({ status, text }));
      });
    try {
      assert.deepEqual(await get('/headers'), { status: 403, text: 'RBAC: access denied' });
      const want = { principal: 'testing@secure.istio.io/testing@secure.istio.io', sub: 'testing@secure.istio.io', authorization: null, raw: true };
      const byHeader = await get('/headers', { authorization: `Bearer ${token}` });
      assert.equal(byHeader.status, 200, byHeader.text);
      assert.deepEqual(JSON.parse(byHeader.text), { url: '/headers', ...want });
      const byQuery = await get(`/headers?access_token=${token}&q=1`);
      assert.deepEqual(JSON.parse(byQuery.text), { url: '/headers?q=1', ...want });
    } finally {
      session.close();
      await new Promise((r) => server.close(r));
      await mesh.close();
    }
  });
  it("a caller's Istio metadata-exchange headers (a sidecar's, a mesh client's) are taken off and the app answers; before, taking them off rawHeaders threw (a getter only) out of the server's request event (the request was never answered)", { timeout: 10_000 }, async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: [], logger: { warn: () => undefined } });
    const server = createHttp2Server(
      mesh.handler((req, res) => {
        res.end(JSON.stringify({ headers: req.headers, raw: req.rawHeaders }));
      }) as never,
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const session = h2connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const got = await new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
        const s = session.request({ ':path': '/', 'x-envoy-peer-metadata-id': 'sidecar~10.0.0.9~productpage-v1-1.default~default.svc.cluster.local', 'x-envoy-peer-metadata': 'ChoKCkNMVVNURVJfSUQSDBoKS3ViZXJuZXRlcw==', 'x-caller': 'kept' });
        let head: Record<string, unknown> = {};
        let text = '';
        s.on('response', (h) => (head = h));
        s.setEncoding('utf8');
        s.on('data', (c: string) => (text += c));
        s.on('error', reject);
        s.on('end', () => resolve({ status: Number(head[':status']), headers: head, text }));
      });
      assert.equal(got.status, 200, got.text);
      const seen = JSON.parse(got.text) as { headers: Record<string, string>; raw: string[] };
      assert.equal(seen.headers['x-caller'], 'kept');
      assert.equal(seen.headers['x-envoy-peer-metadata'], undefined);
      assert.equal(seen.headers['x-envoy-peer-metadata-id'], undefined);
      assert.ok(!seen.raw.includes('x-envoy-peer-metadata') && !seen.raw.includes('x-envoy-peer-metadata-id'), 'rawHeaders keep none');
      // This workload's own, as a sidecar answers the exchange.
      assert.match(String(got.headers['x-envoy-peer-metadata-id']), /^sidecar~/);
    } finally {
      session.close();
      await new Promise((r) => server.close(r));
      await mesh.close();
    }
  });
});

describe('a refusal before the request body is in (HTTP/1.1)', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: answered with Connection: close and the connection closed, as Envoy does, instead of reading the rest of the upload`, async () => {
      const root = new URL('../../', import.meta.url).pathname;
      const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${root}examples/server/mesh` });
      const server = await fw.start(mesh);
      try {
        // 16 bytes of a declared megabyte: the server must not wait for the rest.
        const got = await new Promise<string>((resolve, reject) => {
          const s = netConnect(server.port, '127.0.0.1');
          let out = '';
          s.setEncoding('latin1');
          s.on('data', (c: string) => {
            out += c;
          });
          s.on('error', reject);
          s.on('close', () => resolve(out));
          s.write(`POST /headers HTTP/1.1\r\nHost: httpbin\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(16)}`);
        });
        assert.match(got, /^HTTP\/1\.1 403 Forbidden\r\n/);
        assert.match(got, /\r\nconnection: close\r\n/i);
        assert.ok(got.endsWith('RBAC: access denied'), got);
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }
});
