/**
 * WebSocket upgrades on the servers the mesh makes: node:http hands an upgrade request to the
 * server's 'upgrade' listeners (what `ws`'s `WebSocketServer({ server })` and `@fastify/websocket`
 * use), never to the request listener, so the mesh judges it there — as Envoy runs jwt_authn and
 * RBAC on an upgrade like on any request. Istio's JWT task's policies (examples/server/mesh) and
 * its demo token; a raw socket as the client. The same for a request node:http hands to the app's
 * 'checkContinue' listener (`Expect: 100-continue`) instead of the request listener, and for
 * 'request' listeners a library puts in place of the app's (engine.io's long-polling).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { createMesh, type Mesh } from '../../src/index.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const DEMO = readFileSync(`${ROOT}test/fixtures/istio/jwt/demo.jwt`, 'utf8').trim();

/** Writes `request` on a fresh connection; resolves with everything the server wrote before it closed. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      out += d;
    });
    s.on('error', reject);
    s.on('close', () => resolve(out));
    s.write(request);
  });
}

/** Sends an upgrade request on a fresh connection; resolves with everything the server wrote before it closed. */
function upgrade(port: number, path: string, headers: Record<string, string> = {}): Promise<string> {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: httpbin\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`);
}

/** An 'upgrade' listener as a WebSocket library has one: answers 101 and says what it saw, then closes. */
function onUpgrade(seen: string[]) {
  return (req: IncomingMessage, socket: Duplex) => {
    seen.push(req.url ?? '');
    const body = JSON.stringify({ url: req.url, principal: req.meshlet?.requestPrincipal, authorization: req.headers.authorization, sub: req.headers['x-jwt-sub'] });
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n${body}`);
  };
}

function bodyOf(response: string): string {
  return response.slice(response.indexOf('\r\n\r\n') + 4);
}

const servers: { name: string; start(mesh: Mesh, seen: string[]): Promise<{ port: number; close(): Promise<void> }> }[] = [
  {
    name: 'mesh.createServer',
    async start(mesh, seen) {
      const server: Server = mesh.createServer((_req, res) => res.end('http'));
      server.on('upgrade', onUpgrade(seen));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
    },
  },
  {
    name: "Fastify's serverFactory (mesh.fastifyOptions())",
    async start(mesh, seen) {
      const app = Fastify({ ...mesh.fastifyOptions() });
      await app.register(mesh.fastify() as never);
      app.get('/*', async () => 'http');
      app.server.on('upgrade', onUpgrade(seen));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
    },
  },
  {
    name: 'an Express app\'s own server (app.listen()) with mesh.protect(server)',
    async start(mesh, seen) {
      const app = express();
      app.use(mesh.express());
      app.get('/{*rest}', (_req, res) => res.send('http'));
      const server = await new Promise<Server>((r) => {
        const s = app.listen(0, '127.0.0.1', () => r(s));
      });
      assert.equal(mesh.protect(server), server);
      server.on('upgrade', onUpgrade(seen));
      return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
    },
  },
  {
    name: "Fastify's own server (no serverFactory) with mesh.protect(fastify.server)",
    async start(mesh, seen) {
      const app = Fastify();
      await app.register(mesh.fastify() as never);
      app.get('/*', async () => 'http');
      mesh.protect(app.server);
      app.server.on('upgrade', onUpgrade(seen));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
    },
  },
];

for (const kind of servers) {
  describe(`WebSocket upgrades on ${kind.name}`, () => {
    let mesh: Mesh;
    let server: { port: number; close(): Promise<void> };
    const seen: string[] = [];
    before(async () => {
      mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${ROOT}examples/server/mesh` });
      server = await kind.start(mesh, seen);
    });
    after(async () => {
      await server.close();
      await mesh.close();
    });

    it('no token: 403 RBAC: access denied, and the upgrade listener never runs', async () => {
      seen.length = 0;
      const r = await upgrade(server.port, '/headers');
      assert.match(r, /^HTTP\/1\.1 403 Forbidden\r\n/);
      assert.match(r, /\r\nconnection: close\r\n/i);
      assert.equal(bodyOf(r), 'RBAC: access denied');
      assert.deepEqual(seen, []);
    });

    it('a malformed token: 401 with WWW-Authenticate, and the upgrade listener never runs', async () => {
      seen.length = 0;
      const r = await upgrade(server.port, '/headers', { authorization: 'Bearer bad' });
      assert.match(r, /^HTTP\/1\.1 401 Unauthorized\r\n/);
      assert.match(r, /\r\nwww-authenticate: Bearer realm="http:\/\/httpbin\/headers", error="invalid_token"\r\n/i);
      assert.deepEqual(seen, []);
    });

    it('/ip/../admin is judged as /admin: 403 even with a token', async () => {
      seen.length = 0;
      const r = await upgrade(server.port, '/ip/../admin', { authorization: `Bearer ${DEMO}` });
      assert.match(r, /^HTTP\/1\.1 403 /);
      assert.deepEqual(seen, []);
    });

    it('a token in access_token (how a browser sends one): admitted, the token taken out of the URL, req.meshlet and the claim header set', async () => {
      seen.length = 0;
      const r = await upgrade(server.port, `/headers?access_token=${DEMO}&room=1`);
      assert.match(r, /^HTTP\/1\.1 101 /);
      assert.deepEqual(JSON.parse(bodyOf(r)), { url: '/headers?room=1', principal: 'testing@secure.istio.io/testing@secure.istio.io', sub: 'testing@secure.istio.io' });
    });

    it('an open path upgrades without a token', async () => {
      const r = await upgrade(server.port, '/ip');
      assert.match(r, /^HTTP\/1\.1 101 /);
      assert.equal(JSON.parse(bodyOf(r)).url, '/ip');
    });
  });
}

describe("Expect: 100-continue with the app's own 'checkContinue' listener (mesh.createServer)", () => {
  let mesh: Mesh;
  let server: Server;
  let port = 0;
  const handled: string[] = [];
  before(async () => {
    mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${ROOT}examples/server/mesh` });
    const app = (req: IncomingMessage, res: ServerResponse) => {
      handled.push(req.url ?? '');
      res.end(`served ${req.meshlet?.requestPrincipal}`);
    };
    server = mesh.createServer(app);
    // As node:http's docs have it: decide on the 100 Continue, then hand the request to the app.
    server.on('checkContinue', (req, res) => {
      res.writeContinue();
      app(req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await mesh.close();
  });

  /** A POST with Expect: 100-continue whose body is sent only after a 100 Continue; resolves with what came back. */
  function expectContinue(path: string, headers: Record<string, string> = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      let out = '';
      let sent = false;
      s.setEncoding('latin1');
      s.on('data', (d: string) => {
        out += d;
        if (out.startsWith('HTTP/1.1 100 ') && !sent) {
          sent = true;
          s.write('hello');
        }
      });
      s.on('error', reject);
      s.on('close', () => resolve(out));
      const extra = Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      s.write(`POST ${path} HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\nContent-Length: 5\r\nExpect: 100-continue\r\n${extra}\r\n`);
    });
  }

  it('a refused request gets its 403 instead of a 100 Continue, and the listener never runs', async () => {
    handled.length = 0;
    const r = await expectContinue('/headers');
    assert.match(r, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.equal(bodyOf(r), 'RBAC: access denied');
    assert.deepEqual(handled, []);
  });

  it('an admitted request reaches the listener judged: 100 Continue, then the app with req.meshlet', async () => {
    handled.length = 0;
    const r = await expectContinue('/headers', { authorization: `Bearer ${DEMO}` });
    assert.match(r, /^HTTP\/1\.1 100 Continue\r\n/);
    assert.match(r, /served testing@secure\.istio\.io\/testing@secure\.istio\.io$/);
    assert.deepEqual(handled, ['/headers']);
  });
});

describe('mesh.close() with an upgraded (WebSocket) connection open', () => {
  it('ends it after closeTimeoutMs, as it ends every connection left, instead of waiting for it forever', async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${ROOT}examples/server/mesh`, closeTimeoutMs: 50 });
    const server = mesh.createServer((_req, res) => res.end('http'));
    // A WebSocket server keeps the connection open until someone closes it.
    server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    client.on('error', () => undefined);
    const upgraded = new Promise<void>((r) => client.once('data', () => r()));
    client.write('GET /ip HTTP/1.1\r\nHost: httpbin\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    await upgraded;
    await mesh.close();
    await closed;
    assert.equal(server.listening, false);
  });
});

describe("'request' listeners a library puts in place of the app's on mesh.createServer", () => {
  it("engine.io's way (behind socket.io: take the listeners off, serve its long-polling, call them for the rest): every request is judged first", async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${ROOT}examples/server/mesh` });
    const server = mesh.createServer((req, res) => res.end(`app ${req.url}`));
    const served: string[] = [];
    // As engine.io's attach() does it.
    const listeners = server.listeners('request');
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.startsWith('/socket.io/')) {
        served.push(req.url);
        res.end(`polling ${req.meshlet?.requestPrincipal ?? 'anonymous'}`);
      } else for (const l of listeners) (l as (q: IncomingMessage, s: ServerResponse) => void).call(server, req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const anonymous = await fetch(`${base}/socket.io/?EIO=4&transport=polling`);
      assert.deepEqual([anonymous.status, await anonymous.text()], [403, 'RBAC: access denied']);
      assert.deepEqual(served, []);
      const signed = await fetch(`${base}/socket.io/?EIO=4&transport=polling`, { headers: { authorization: `Bearer ${DEMO}` } });
      assert.deepEqual([signed.status, await signed.text()], [200, 'polling testing@secure.istio.io/testing@secure.istio.io']);
      const app = await fetch(`${base}/ip`);
      assert.deepEqual([app.status, await app.text()], [200, 'app /ip']);
    } finally {
      await new Promise((r) => server.close(r));
      await mesh.close();
    }
  });
});

describe("'request' listeners a library puts in place of Fastify's on its serverFactory server (mesh.fastifyOptions())", () => {
  it('once the handler is taken off, the server judges every request itself: the library’s paths and Fastify’s routes alike', async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${ROOT}examples/server/mesh` });
    const app = Fastify({ ...mesh.fastifyOptions() });
    await app.register(mesh.fastify() as never);
    app.get('/*', async (req) => `fastify ${(req as unknown as { meshlet?: { requestPrincipal?: string } }).meshlet?.requestPrincipal ?? 'anonymous'}`);
    await app.ready();
    const server = app.server;
    const listeners = server.listeners('request');
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.startsWith('/socket.io/')) res.end(`polling ${req.meshlet?.requestPrincipal ?? 'anonymous'}`);
      else for (const l of listeners) (l as (q: IncomingMessage, s: ServerResponse) => void).call(server, req, res);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const path of ['/socket.io/?EIO=4&transport=polling', '/headers']) {
        const r = await fetch(`${base}${path}`);
        assert.deepEqual([path, r.status, await r.text()], [path, 403, 'RBAC: access denied']);
      }
      const signed = await fetch(`${base}/socket.io/?EIO=4`, { headers: { authorization: `Bearer ${DEMO}` } });
      assert.equal(await signed.text(), 'polling testing@secure.istio.io/testing@secure.istio.io');
      const route = await fetch(`${base}/headers`, { headers: { authorization: `Bearer ${DEMO}` } });
      assert.equal(await route.text(), 'fastify testing@secure.istio.io/testing@secure.istio.io');
    } finally {
      await app.close();
      await mesh.close();
    }
  });
});

describe('mesh.protect(server) on a server the app made', () => {
  const ownServer = async (app: express.Express): Promise<{ server: Server; base: string }> => {
    const server = await new Promise<Server>((r) => {
      const s = app.listen(0, '127.0.0.1', () => r(s));
    });
    return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  };

  it('judges what a library serves in front of the app (engine.io’s long-polling) and 100-continue uploads, each once', async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${ROOT}examples/server/mesh`, logger: { warn: () => {} } });
    let judgedByMiddleware = 0;
    const app = express();
    app.use(mesh.express());
    app.use((req, _res, next) => {
      judgedByMiddleware += req.meshlet === undefined ? 0 : 1;
      next();
    });
    app.all('/{*rest}', (req, res) => res.send(`app ${req.url} ${req.meshlet?.requestPrincipal ?? 'anonymous'}`));
    const { server, base } = await ownServer(app);
    mesh.protect(server);
    // A second call changes nothing (each request is still judged once).
    mesh.protect(server);
    const listeners = server.listeners('request');
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.startsWith('/socket.io/')) res.end(`polling ${req.meshlet?.requestPrincipal ?? 'anonymous'}`);
      else for (const l of listeners) (l as (q: IncomingMessage, s: ServerResponse) => void).call(server, req, res);
    });
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      res.writeContinue();
      server.emit('request', req, res);
    });
    try {
      const polling = await fetch(`${base}/socket.io/?EIO=4&transport=polling`);
      assert.deepEqual([polling.status, await polling.text()], [403, 'RBAC: access denied']);
      const signed = await fetch(`${base}/socket.io/?EIO=4`, { headers: { authorization: `Bearer ${DEMO}` } });
      assert.equal(await signed.text(), 'polling testing@secure.istio.io/testing@secure.istio.io');
      const route = await fetch(`${base}/ip/../headers`, { headers: { authorization: `Bearer ${DEMO}` } });
      assert.deepEqual([route.status, await route.text()], [200, 'app /headers testing@secure.istio.io/testing@secure.istio.io']);
      assert.equal(judgedByMiddleware, 1);
      // An upload with Expect: 100-continue (on a raw socket: fetch does not send one) gets its 403 instead of a 100 Continue.
      const raw = await rawExchange((server.address() as AddressInfo).port, 'POST /headers HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
      assert.match(raw, /^HTTP\/1\.1 403 Forbidden\r\n/);
      assert.equal(bodyOf(raw), 'RBAC: access denied');
    } finally {
      await new Promise((r) => server.close(r));
      await mesh.close();
    }
  });

  it('without it, the first request through mesh.express() on a server with an upgrade listener says so once, with the fix', async () => {
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: `${ROOT}examples/server/mesh`, logger: { warn: (m: unknown) => warnings.push(String(m)) } });
    const app = express();
    app.use(mesh.express());
    app.get('/{*rest}', (_req, res) => res.send('ok'));
    const { server, base } = await ownServer(app);
    server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => socket.destroy());
    const protectedApp = express();
    protectedApp.use(mesh.express());
    protectedApp.get('/{*rest}', (_req, res) => res.send('ok'));
    const other = await ownServer(protectedApp);
    mesh.protect(other.server);
    other.server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => socket.destroy());
    try {
      const before = warnings.length;
      for (let i = 0; i < 3; i++) await (await fetch(`${base}/ip`)).text();
      await (await fetch(`${other.base}/ip`)).text();
      const said = warnings.slice(before).filter((w) => w.includes("'upgrade'"));
      assert.equal(said.length, 1);
      assert.match(said[0] ?? '', /reach your app unjudged.*mesh\.protect\(server\)/);
    } finally {
      await new Promise((r) => server.close(r));
      await new Promise((r) => other.server.close(r));
      await mesh.close();
    }
  });

  it('refuses what is not a server, naming the call', async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: `${ROOT}examples/server/mesh`, logger: { warn: () => {} } });
    try {
      assert.throws(() => mesh.protect({}), /mesh\.protect\(server\): a node:http, https or http2 server is required/);
    } finally {
      await mesh.close();
    }
  });
});
