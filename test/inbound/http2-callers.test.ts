/**
 * HTTP/2 callers of `mesh.createServer`, as Envoy's inbound listener takes them (codec AUTO: the
 * HTTP/2 preface decides, over plaintext or mTLS) and hands them to an app that speaks HTTP/1.1:
 * node's http2 client and curl `--http2-prior-knowledge` as independent clients, meshlet's own
 * client with an `HTTP2` service port or `h2UpgradePolicy: UPGRADE` (over mTLS it speaks HTTP/2
 * whatever ALPN settled on, as an Istio sidecar does), with the server-side policies applied.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type ClientHttp2Session, connect as h2connect, type IncomingHttpHeaders } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import type { InboundEndMessage } from '../../src/core/observe.ts';
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { createMesh, type Mesh } from '../../src/index.ts';
import { initDevCa } from '../../src/security/pki/dev-ca.ts';
import { listen, raw } from '../helpers/frameworks.ts';
import { until } from '../helpers/until.ts';

/** What the app answers: what it saw, as JSON. */
function echo(req: IncomingMessage, res: ServerResponse): void {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => (body += c));
  req.on('end', () => {
    const m = (req as { meshlet?: { peer?: { principal?: string }; authz?: { decision?: string } } }).meshlet;
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-app', 'yes');
    res.end(JSON.stringify({ version: req.httpVersion, method: req.method, url: req.url, host: req.headers.host, cookie: req.headers.cookie ?? null, body, remote: req.socket.remoteAddress, peer: m?.peer?.principal ?? null, meshlet: m !== undefined, xfcc: req.headers['x-forwarded-client-cert'] ?? null }));
  });
}

/** One HTTP/2 request on a session: status, headers and body. */
function h2get(session: ClientHttp2Session, headers: Record<string, string | string[]>, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let text = '';
    let head: IncomingHttpHeaders = {};
    req.setEncoding('utf8');
    req.on('response', (h) => (head = h));
    req.on('data', (c: string) => (text += c));
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, text }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

const denyAdmin = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-admin', namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } };

describe('HTTP/2 (h2c) callers of a plaintext mesh server', () => {
  let mesh: Mesh;
  let server: ReturnType<Mesh['createServer']>;
  let port: number;
  let dir: string;
  let bigFile: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshlet-h2-'));
    bigFile = join(dir, 'upload.bin');
    writeFileSync(bigFile, Buffer.alloc(5_000_000));
    mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, identity: 'none', config: [denyAdmin] });
    server = mesh.createServer(echo);
    port = await listen(server);
  });
  after(async () => {
    await mesh.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("node's http2 client: GET and POST reach the app as HTTP/1.1 requests (Host from :authority, cookies joined, the body whole), the answer comes back over HTTP/2", async () => {
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const get = await h2get(session, { ':method': 'GET', ':path': '/a/b?x=1', cookie: ['a=1', 'b=2'] });
      assert.equal(get.status, 200, get.text);
      assert.equal(get.headers['x-app'], 'yes');
      assert.deepEqual(JSON.parse(get.text), { version: '1.1', method: 'GET', url: '/a/b?x=1', host: `127.0.0.1:${port}`, cookie: 'a=1; b=2', body: '', remote: '127.0.0.1', peer: null, meshlet: true, xfcc: null });
      // Two streams of one connection at once, one with a body.
      const [post, again] = await Promise.all([h2get(session, { ':method': 'POST', ':path': '/p', 'content-type': 'text/plain' }, 'x'.repeat(100_000)), h2get(session, { ':method': 'GET', ':path': '/c' })]);
      assert.equal(JSON.parse(post.text).body.length, 100_000);
      assert.equal(JSON.parse(again.text).url, '/c');
    } finally {
      session.close();
    }
  });

  it("telemetry sees the caller's protocol (HTTP/2, as Envoy's downstream) and counts the bytes of the answer", async () => {
    const ends: InboundEndMessage[] = [];
    const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
    subscribe('meshlet:inbound:end', onEnd);
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const r = await h2get(session, { ':method': 'POST', ':path': '/observed' }, 'abc');
      assert.equal(r.status, 200);
      await until(() => ends.some((m) => m.workload === mesh.identity), 'inbound:end of the HTTP/2 request');
      const e = ends.find((m) => m.workload === mesh.identity);
      assert.equal(e?.protocol, 'http2');
      assert.equal(e?.status, 200);
      // The app's answer as it wrote it: at least the JSON body, plus its head.
      assert.ok((e?.responseBytes ?? 0) > Buffer.byteLength(r.text), String(e?.responseBytes));
      assert.ok((e?.requestBytes ?? 0) >= 3, String(e?.requestBytes));
    } finally {
      unsubscribe('meshlet:inbound:end', onEnd);
      session.close();
    }
  });

  it('the server-side policies judge HTTP/2 callers: a DENY policy answers 403, on the normalized path too', async () => {
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      for (const path of ['/admin', '/public/../admin', '/%2e%2e/admin']) {
        const r = await h2get(session, { ':method': 'GET', ':path': path });
        assert.deepEqual([path, r.status, r.text], [path, 403, 'RBAC: access denied']);
      }
      assert.equal((await h2get(session, { ':method': 'GET', ':path': '/public/../ok' })).status, 200);
      // Not a path (`OPTIONS *`): Envoy's 404 (absolute_path_rejected), no body; the connection serves on.
      assert.deepEqual(Object.values(await h2get(session, { ':method': 'OPTIONS', ':path': '*' })).filter((v) => typeof v !== 'object'), [404, '']);
      assert.equal((await h2get(session, { ':method': 'GET', ':path': '/ok' })).status, 200);
    } finally {
      session.close();
    }
  });

  it('a refusal answered before the upload is whole: the 403 comes whole, the stream then ends cleanly (no CANCEL reset, which clients fail)', async () => {
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const s = session.request({ ':method': 'POST', ':path': '/admin', 'content-length': '1000000' });
      let status = 0;
      let text = '';
      s.on('response', (h) => {
        status = Number(h[':status']);
      });
      s.setEncoding('utf8');
      s.on('data', (c: string) => {
        text += c;
      });
      s.on('error', () => undefined);
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.end(Buffer.alloc(1_000_000));
      await closed;
      assert.deepEqual([status, text, s.rstCode], [403, 'RBAC: access denied', 0]);
      // curl (which fails a stream reset with any other code) gets the 403 and exits 0.
      const curl = await new Promise<{ code: number; out: string }>((resolve) =>
        execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--http2-prior-knowledge', '-m', '10', '--data-binary', `@${bigFile}`, `http://127.0.0.1:${port}/admin`], (err, stdout) =>
          resolve({ code: err === null ? 0 : Number(err.code), out: stdout }),
        ),
      );
      assert.deepEqual(curl, { code: 0, out: '403' });
    } finally {
      session.close();
    }
  });

  it('curl --http2-prior-knowledge (an independent client) and an HTTP/1.1 client on the same port', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile('curl', ['-s', '-i', '--http2-prior-knowledge', '-m', '10', `http://127.0.0.1:${port}/from-curl`], (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    assert.match(out, /^HTTP\/2 200/);
    assert.match(out, /"url":"\/from-curl"/);
    const h1 = await raw(port, '/from-h1');
    assert.equal(h1.statusCode, 200);
    assert.equal(JSON.parse(h1.text).version, '1.1');
  });

  it('Fastify on mesh.fastifyOptions(): an HTTP/2 caller reaches its routes (after its onRequest hook judged the request)', async () => {
    const m = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, identity: 'none', config: [denyAdmin] });
    const app = Fastify({ ...m.fastifyOptions() });
    await app.register(m.fastify() as never);
    app.get('/*', async (req) => ({ url: req.url, version: req.raw.httpVersion, meshlet: (req as unknown as { meshlet?: unknown }).meshlet !== undefined }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const session = h2connect(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
    try {
      const ok = await h2get(session, { ':method': 'GET', ':path': '/x/y' });
      assert.deepEqual([ok.status, JSON.parse(ok.text)], [200, { url: '/x/y', version: '1.1', meshlet: true }]);
      assert.equal((await h2get(session, { ':method': 'GET', ':path': '/admin' })).status, 403);
    } finally {
      session.close();
      await app.close();
      await m.close();
    }
  });

  it('a stream the caller resets mid-request: the app sees its request end, the server goes on serving', async () => {
    let aborted!: () => void;
    const appSawClose = new Promise<void>((r) => (aborted = r));
    let arrived!: () => void;
    const inApp = new Promise<void>((r) => (arrived = r));
    const m = await createMesh({ service: 'slow', namespace: 'foo', identity: 'none', config: [] });
    const s = m.createServer((req, res) => {
      if (req.url === '/hang') {
        req.socket.once('close', aborted);
        arrived();
      } else res.end('ok');
    });
    const p = await listen(s);
    const session = h2connect(`http://127.0.0.1:${p}`);
    try {
      const req = session.request({ ':method': 'GET', ':path': '/hang' });
      req.on('error', () => undefined);
      await inApp;
      req.close();
      await appSawClose;
      assert.equal((await h2get(session, { ':method': 'GET', ':path': '/next' })).text, 'ok');
    } finally {
      session.close();
      await m.close();
    }
  });

  it('mesh.close(): a request in flight on an HTTP/2 connection finishes, the connection is told to go away', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const inApp = new Promise<void>((r) => (started = r));
    const m = await createMesh({ service: 'drain', namespace: 'foo', identity: 'none', config: [] });
    const s = m.createServer((_req, res) => {
      started();
      void gate.then(() => res.end('finished'));
    });
    const p = await listen(s);
    const session = h2connect(`http://127.0.0.1:${p}`);
    const goaway = new Promise<void>((r) => session.once('goaway', () => r()));
    const inFlight = h2get(session, { ':method': 'GET', ':path': '/long' });
    await inApp;
    const closed = m.close();
    await goaway;
    release();
    assert.equal((await inFlight).text, 'finished');
    await closed;
    session.close();
  });
});

describe('meshlet client → meshlet server over HTTP/2 (HTTP2 port, h2UpgradePolicy UPGRADE)', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshlet-h2-'));
    await initDevCa(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases = [
    { name: 'plaintext, port protocol HTTP2', mtls: false, protocol: 'HTTP2', upgrade: false },
    { name: 'plaintext, HTTP port with h2UpgradePolicy UPGRADE', mtls: false, protocol: 'HTTP', upgrade: true },
    { name: 'auto-mTLS, port protocol HTTP2 (the peer identity reaches the app)', mtls: true, protocol: 'HTTP2', upgrade: false },
    { name: 'auto-mTLS, HTTP port with h2UpgradePolicy UPGRADE', mtls: true, protocol: 'HTTP', upgrade: true },
  ];
  for (const c of cases) {
    it(`${c.name}: 200 from the app, which saw HTTP/1.1`, async () => {
      const identity = c.mtls ? { devCa: dir } : 'none';
      const server = await createMesh({ service: 'api', namespace: 'foo', serviceAccount: 'api', labels: { app: 'api' }, identity, config: [], logger: { warn: () => {} } });
      const s = server.createServer(echo);
      const port = await listen(s);
      const host = 'api.foo.svc.cluster.local';
      const config: object[] = [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'api', namespace: 'foo' },
          spec: { hosts: [host], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: port, name: 'web', protocol: c.protocol }], endpoints: [{ address: '127.0.0.1', serviceAccount: 'api', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
        },
      ];
      if (c.upgrade) config.push({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'api', namespace: 'foo' }, spec: { host, trafficPolicy: { connectionPool: { http: { h2UpgradePolicy: 'UPGRADE' } } } } });
      const client = await createMesh({ service: 'web', namespace: 'foo', serviceAccount: 'web', labels: { app: 'web' }, identity, config, logger: { warn: () => {} } });
      try {
        const r = await client.fetch(`http://${host}:${port}/hello`, { method: 'POST', body: 'payload' });
        const text = await r.text();
        assert.equal(r.status, 200, text);
        const seen = JSON.parse(text);
        assert.deepEqual([seen.version, seen.url, seen.body, seen.peer], ['1.1', '/hello', 'payload', c.mtls ? 'spiffe://cluster.local/ns/foo/sa/web' : null]);
        // Over mTLS the app is told who called (x-forwarded-client-cert), through the HTTP/2 bridge too.
        if (c.mtls) assert.match(String(seen.xfcc), /^By=spiffe:\/\/cluster\.local\/ns\/foo\/sa\/api;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/foo\/sa\/web$/);
        else assert.equal(seen.xfcc, null);
      } finally {
        await client.close();
        await server.close();
      }
    });
  }

  it('under STRICT a plaintext HTTP/2 connection is refused before any stream is served', async () => {
    const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'foo' }, spec: { mtls: { mode: 'STRICT' } } };
    const server = await createMesh({ service: 'api', namespace: 'foo', serviceAccount: 'api', identity: { devCa: dir }, config: [strict], logger: { warn: () => {}, debug: () => {} } });
    const s = server.createServer(echo);
    const port = await listen(s);
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    try {
      const outcome = await new Promise<string>((resolve) => {
        const req = session.request({ ':method': 'GET', ':path': '/' });
        req.on('response', () => resolve('answered'));
        req.on('error', () => resolve('refused'));
        req.on('close', () => resolve('refused'));
        req.end();
      });
      assert.equal(outcome, 'refused');
    } finally {
      session.destroy();
      await server.close();
    }
  });
});
