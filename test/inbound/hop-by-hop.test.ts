/**
 * Hop-by-hop headers between the caller and the app, as Envoy's inbound connection manager
 * treats them (ConnectionManagerUtility::mutateRequestHeaders / mutateResponseHeaders), through
 * every server entry point — mesh.createServer, mesh.handler(), mesh.express(), mesh.fastify() —
 * over real sockets with node:http as the caller:
 *
 * - the app's request has no `connection`, `keep-alive`, `proxy-connection` or `upgrade`, and its
 *   `te` is `trailers` alone;
 * - the app's `connection: close`, `keep-alive`, `proxy-connection`, `upgrade` and
 *   `transfer-encoding` never reach the caller, whose connection stays open for its next request
 *   (node:http frames the answer itself);
 * - telemetry (`meshlet:inbound:end`: the request's headers, the response's, `requestBytes`) sees
 *   what is left: a request sent with hop-by-hop headers counts the same bytes as one without.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Agent, createServer, type IncomingHttpHeaders, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, type Mesh } from '../../src/index.ts';
import type { InboundEndMessage } from '../../src/core/observe.ts';
import { listen } from '../helpers/frameworks.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const REQUEST_HOP = ['connection', 'keep-alive', 'proxy-connection', 'upgrade'];

interface Seen {
  headers: IncomingHttpHeaders;
  raw: string[];
  /** `req.headersDistinct`'s names (node:http builds it from rawHeaders when first read), or what reading it threw. */
  distinct?: string[] | string;
}

function distinctOf(req: IncomingMessage): string[] | string {
  try {
    return Object.keys(req.headersDistinct).sort();
  } catch (err) {
    return String(err);
  }
}

/** The app: answers what it saw, with every hop-by-hop header an app could set (with setHeader and in writeHead). */
function app(seen: Seen[]) {
  return (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ headers: { ...req.headers }, raw: [...req.rawHeaders], distinct: distinctOf(req) });
    req.resume();
    req.on('end', () => {
      res.setHeader('Connection', 'close');
      res.setHeader('Keep-Alive', 'timeout=99');
      res.writeHead(200, { 'Proxy-Connection': 'close', Upgrade: 'h2c', 'Transfer-Encoding': 'chunked', 'x-app': 'kept', 'content-type': 'text/plain' });
      res.write('hello ');
      res.end('world');
    });
  };
}

type Start = (mesh: Mesh, seen: Seen[]) => Promise<{ port: number; close(): Promise<void> }>;

const entries: [string, Start][] = [
  [
    'mesh.createServer',
    async (mesh, seen) => {
      const server = mesh.createServer(app(seen));
      return { port: await listen(server), close: () => new Promise((r) => server.close(() => r())) };
    },
  ],
  [
    'mesh.handler()',
    async (mesh, seen) => {
      const server = createServer(mesh.handler(app(seen)));
      return { port: await listen(server), close: () => new Promise((r) => server.close(() => r())) };
    },
  ],
  [
    'mesh.express()',
    async (mesh, seen) => {
      const a = express();
      a.use(mesh.express());
      a.use(app(seen));
      const server = createServer(a);
      return { port: await listen(server), close: () => new Promise((r) => server.close(() => r())) };
    },
  ],
  [
    'mesh.fastify()',
    async (mesh, seen) => {
      const f = Fastify({ ...mesh.fastifyOptions() });
      await f.register(mesh.fastify() as never);
      f.get('/*', (req, reply) => {
        seen.push({ headers: { ...req.headers }, raw: [...req.raw.rawHeaders], distinct: distinctOf(req.raw) });
        // Fastify passes its reply's headers to writeHead (no transfer-encoding: it sets content-length).
        reply.header('connection', 'close').header('keep-alive', 'timeout=99').header('proxy-connection', 'close').header('upgrade', 'h2c').header('x-app', 'kept').type('text/plain');
        return 'hello world';
      });
      await f.listen({ port: 0, host: '127.0.0.1' });
      return { port: (f.server.address() as AddressInfo).port, close: () => f.close() };
    },
  ],
];

function get(agent: Agent, port: number, headers: Record<string, string>): Promise<{ headers: IncomingHttpHeaders; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/hop', agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ headers: res.headers, body, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const ISSUER = 'testing@secure.istio.io';

/**
 * The policies a request passes through: none (the app's own header object is the phases'), an
 * AuthorizationPolicy (the phases read a view of the headers, which they leave as they are), a
 * RequestAuthentication whose verified token is removed (the app's headers are rebuilt from the
 * view) — the hop-by-hop headers leave the app's `req.headers` at different points in each.
 */
async function policies(): Promise<[string, unknown[], Record<string, string>][]> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] });
  const token = await new SignJWT({ iss: ISSUER, sub: 'alice' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuedAt().setExpirationTime('1h').sign(privateKey);
  const meta = { name: 'p', namespace: 'foo' };
  return [
    ['no policy', [], {}],
    ['an AuthorizationPolicy', [{ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta, spec: { action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/hop'] } }] }] } }], {}],
    ['a RequestAuthentication (token removed)', [{ apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: meta, spec: { jwtRules: [{ issuer: ISSUER, jwks }] } }], { authorization: `Bearer ${token}` }],
  ];
}

describe('hop-by-hop headers on the server side', async () => {
  for (const [policy, config, sent] of await policies())
  for (const [name, start] of entries) {
    it(`${name}, ${policy}: the app sees none of the caller's, the caller none of the app's; telemetry neither`, async () => {
      const mesh = await createMesh({ service: 'reviews', namespace: 'foo', logger: quiet, config: config as never });
      const seen: Seen[] = [];
      const ends: InboundEndMessage[] = [];
      const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
      subscribe('meshlet:inbound:end', onEnd);
      const server = await start(mesh, seen);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        // The agent sends `connection: keep-alive` on both.
        const a = await get(agent, server.port, { ...sent, 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive', upgrade: 'h2c', te: 'trailers, deflate;q=0.5', 'x-caller': 'kept' });
        const b = await get(agent, server.port, { ...sent, te: 'trailers', 'x-caller': 'kept' });
        for (const r of [a, b]) {
          assert.equal(r.body, 'hello world');
          assert.equal(r.headers['x-app'], 'kept');
          assert.equal(r.headers['proxy-connection'], undefined);
          assert.equal(r.headers.upgrade, undefined);
          assert.notEqual(r.headers['keep-alive'], 'timeout=99', "the app's keep-alive reached the caller");
          assert.notEqual(r.headers.connection, 'close', "the app's connection: close reached the caller");
        }
        // The app's connection: close closed nothing of the caller's: its second request went on the same connection.
        assert.equal(b.reused, true);
        assert.equal(seen.length, 2);
        for (const s of seen) {
          for (const h of REQUEST_HOP) {
            assert.equal(s.headers[h], undefined, `the app saw ${h}: ${String(s.headers[h])}`);
            assert.ok(!s.raw.some((n, i) => i % 2 === 0 && n.toLowerCase() === h), `the app's rawHeaders have ${h}`);
          }
          assert.equal(s.headers.te, 'trailers');
          assert.equal(s.headers['x-caller'], 'kept');
          assert.equal(s.headers.authorization, undefined, 'a verified token is removed (forwardOriginalToken unset)');
          // A generated x-request-id reaches the app in both forms, whichever way its headers were given.
          assert.match(String(s.headers['x-request-id']), /^[0-9a-f-]{36}$/);
          assert.ok(s.raw.includes(String(s.headers['x-request-id'])));
          // node:http's headersDistinct, read from the changed rawHeaders: the same names (it threw a TypeError, or missed the mesh's).
          assert.deepEqual(s.distinct, Object.keys(s.headers).sort(), 'req.headersDistinct');
        }
        assert.equal(ends.length, 2);
        const [ea, eb] = ends as [InboundEndMessage, InboundEndMessage];
        for (const e of ends) {
          for (const h of REQUEST_HOP) assert.equal(e.headers[h], undefined, `telemetry saw the request's ${h}`);
          const rh = e.responseHeaders ?? {};
          for (const h of [...REQUEST_HOP, 'transfer-encoding']) assert.equal(rh[h], undefined, `telemetry saw the response's ${h}: ${String(rh[h])}`);
        }
        // Both requests reached the app as the same head: the same bytes.
        assert.equal(ea.requestBytes, eb.requestBytes);
      } finally {
        unsubscribe('meshlet:inbound:end', onEnd);
        agent.destroy();
        await server.close();
        await mesh.close();
      }
    });
  }

  // What code ahead of the mesh (a logger reading req.headers when the answer is done) sees of a request the mesh denies itself.
  const denied: [string, (mesh: Mesh, seen: IncomingHttpHeaders[]) => Promise<{ port: number; close(): Promise<void> }>][] = [
    [
      'mesh.handler()',
      async (mesh, seen) => {
        const handler = mesh.handler(() => assert.fail('a denied request reached the app'));
        const server = createServer((req, res) => {
          res.on('finish', () => seen.push({ ...req.headers }));
          handler(req, res);
        });
        return { port: await listen(server), close: () => new Promise((r) => server.close(() => r())) };
      },
    ],
    [
      'mesh.express()',
      async (mesh, seen) => {
        const a = express();
        a.use((req, res, next) => {
          res.on('finish', () => seen.push({ ...req.headers }));
          next();
        });
        a.use(mesh.express());
        a.use(() => assert.fail('a denied request reached the app'));
        const server = createServer(a);
        return { port: await listen(server), close: () => new Promise((r) => server.close(() => r())) };
      },
    ],
    [
      'mesh.fastify()',
      async (mesh, seen) => {
        const f = Fastify({ ...mesh.fastifyOptions() });
        f.addHook('onResponse', async (req) => {
          seen.push({ ...req.raw.headers });
        });
        await f.register(mesh.fastify() as never);
        f.get('/*', () => assert.fail('a denied request reached the app'));
        await f.listen({ port: 0, host: '127.0.0.1' });
        return { port: (f.server.address() as AddressInfo).port, close: () => f.close() };
      },
    ],
  ];
  for (const [name, start] of denied) {
    it(`${name}: a request the mesh denies loses its hop-by-hop headers too (code ahead of the mesh reads them after the answer)`, async () => {
      const deny = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'd', namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/hop'] } }] }] } };
      const mesh = await createMesh({ service: 'reviews', namespace: 'foo', logger: quiet, config: [deny] as never });
      const seen: IncomingHttpHeaders[] = [];
      const server = await start(mesh, seen);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const r = await get(agent, server.port, { 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive', te: 'trailers, deflate', 'x-caller': 'kept' });
        assert.equal(r.body, 'RBAC: access denied');
        assert.equal(seen.length, 1);
        const h = seen[0] as IncomingHttpHeaders;
        for (const n of REQUEST_HOP) assert.equal(h[n], undefined, `the denied request's req.headers kept ${n}: ${String(h[n])}`);
        assert.equal(h.te, 'trailers');
        assert.equal(h['x-caller'], 'kept');
      } finally {
        agent.destroy();
        await server.close();
        await mesh.close();
      }
    });
  }

  it('an upgrade request keeps its connection, upgrade and te (Envoy forwards them) and loses its keep-alive and proxy-connection: to the request listener and to an upgrade listener', async () => {
    const mesh = await createMesh({ service: 'reviews', logger: quiet, config: [] });
    const seen: Seen[] = [];
    const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push({ headers: { ...req.headers }, raw: [...req.rawHeaders] });
      res.end('no');
    });
    const port = await listen(server);
    const send = (path: string) =>
      new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, headers: { connection: 'Upgrade', upgrade: 'websocket', te: 'gzip', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive', 'x-app': 'kept' } });
        req.on('response', (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('upgrade', (_res, socket) => {
          socket.destroy();
          resolve();
        });
        req.on('error', reject);
        req.end();
      });
    try {
      // No 'upgrade' listener: node:http hands the request to the app, which answers it as an ordinary request.
      await send('/plain');
      // An 'upgrade' listener (what ws's WebSocketServer({ server }) adds): it gets the request and answers 101 on the socket.
      server.on('upgrade', (req: IncomingMessage, socket: import('node:stream').Duplex) => {
        seen.push({ headers: { ...req.headers }, raw: [...req.rawHeaders] });
        socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      });
      await send('/ws');
      assert.equal(seen.length, 2);
      for (const s of seen) {
        assert.equal(s.headers.upgrade, 'websocket');
        assert.equal(s.headers.connection, 'Upgrade');
        assert.equal(s.headers.te, 'gzip');
        assert.equal(s.headers['x-app'], 'kept');
        for (const k of ['keep-alive', 'proxy-connection']) {
          assert.equal(s.headers[k], undefined, k);
          assert.ok(!s.raw.some((n) => n.toLowerCase() === k), `${k} in rawHeaders`);
        }
      }
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await mesh.close();
    }
  });
});
