/**
 * A security reviewer's attacks on the server side, through each framework's real entry point
 * over real sockets (raw request bytes: nothing normalizes the target before the server sees it).
 * One table per concern, run against node:http (mesh.createServer and mesh.handler), Express 5
 * and 4, and Fastify 5 (with mesh.fastifyOptions(), and with Fastify's looser routing options).
 * The invariant: a route a policy denies is never reached, and a token the mesh consumed is
 * nowhere the app can read it.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import Koa from 'koa';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createMesh, type Mesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';

const ISSUER = 'testing@secure.istio.io';

/** Sends raw bytes on one connection, reads until the server closes it (or `waitMs`). */
function rawHttp(port: number, bytes: string, waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    const t = setTimeout(() => s.destroy(), waitMs);
    s.setEncoding('latin1');
    s.on('data', (d: string) => (out += d));
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    s.on('error', () => {});
    s.write(bytes);
  });
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits the responses of one connection (Content-Length bodies, as every app here answers). */
function answers(text: string): Answer[] {
  const out: Answer[] = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const [line, ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    out.push({ status: Number((line as string).split(' ')[1]), headers, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

async function one(port: number, target: string, headers: string[] = [], method = 'GET', version = '1.1', noHost = false): Promise<Answer> {
  const text = await rawHttp(port, `${method} ${target} HTTP/${version}\r\n${noHost || headers.some((h) => /^host:/i.test(h)) ? '' : 'Host: svc\r\n'}${headers.map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n`);
  const a = answers(text)[0];
  assert.ok(a !== undefined, `no answer to ${method} ${target}: ${JSON.stringify(text)}`);
  return a;
}

/** What an app reached: the admin routes answer ADMIN; everything else echoes what it saw. */
interface Echo {
  url: string;
  originalUrl?: string;
  rawUrl?: string;
  query?: unknown;
  host?: string;
  rawHeaders: string[];
  principal: string | null;
}

function echo(req: IncomingMessage & { meshlet?: { requestPrincipal?: string } }, extra: Partial<Echo> = {}): string {
  const e: Echo = { url: req.url ?? '', host: req.headers.host, rawHeaders: req.rawHeaders, principal: req.meshlet?.requestPrincipal ?? null, ...extra };
  return JSON.stringify(e);
}

interface App {
  name: string;
  start(mesh: Mesh): Promise<{ port: number; close(): Promise<void> }>;
}

const isAdmin = (path: string) => /^\/admin(\/[^/]+)?$/.test(path);

function nodeListener(req: IncomingMessage, res: ServerResponse): void {
  // A hand-written router over the WHATWG URL parser, as many node:http apps route.
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const body = isAdmin(path) ? 'ADMIN' : echo(req);
  res.writeHead(200, { 'content-length': Buffer.byteLength(body, 'latin1') });
  res.end(body, 'latin1');
}

const apps: App[] = [
  {
    name: 'node:http (mesh.createServer)',
    async start(mesh) {
      const s = mesh.createServer(nodeListener);
      return { port: await listen(s), close: () => new Promise((r) => s.close(() => r())) };
    },
  },
  {
    name: 'node:http (mesh.handler)',
    async start(mesh) {
      const s = createServer(mesh.handler(nodeListener));
      return { port: await listen(s), close: () => new Promise((r) => s.close(() => r())) };
    },
  },
  ...([
    ['Express 5', express],
    ['Express 4', express4],
  ] as const).map(([name, make]) => ({
    name,
    async start(mesh: Mesh) {
      const app = (make as typeof express)();
      app.use(mesh.express());
      app.all('/admin', (_q, s) => void s.send('ADMIN'));
      app.all('/admin/:x', (_q, s) => void s.send('ADMIN'));
      app.use((q: express.Request, s: express.Response) => void s.type('text').send(echo(q, { originalUrl: q.originalUrl, query: q.query })));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
    },
  })),
  ...([
    ['Fastify 5', {}],
    ['Fastify 5 (ignoreTrailingSlash, ignoreDuplicateSlashes)', { routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true } }],
  ] as const).map(([name, opts]) => ({
    name,
    async start(mesh: Mesh) {
      const app = Fastify({ ...mesh.fastifyOptions(), ...opts });
      await app.register(mesh.fastify() as never);
      app.all('/admin', async () => 'ADMIN');
      app.all('/admin/:x', async () => 'ADMIN');
      app.all('/*', async (q) => echo(q.raw, { url: q.url, originalUrl: q.originalUrl, rawUrl: q.raw.url, query: q.query, host: q.headers.host as string }));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
    },
  })),
  {
    name: "Koa 3 (mesh.createServer(app.callback())), routing on ctx.path",
    async start(mesh) {
      const app = new Koa();
      app.use((ctx) => {
        ctx.type = 'text/plain';
        ctx.body = isAdmin(ctx.path) ? 'ADMIN' : echo(ctx.req, { url: ctx.url, query: ctx.query, host: ctx.get('host') });
      });
      const s = mesh.createServer(app.callback());
      return { port: await listen(s), close: () => new Promise((r) => s.close(() => r())) };
    },
  },
  {
    name: "Hono 4 (mesh.createServer(getRequestListener(app.fetch))), Hono's router",
    async start(mesh) {
      const app = new Hono<{ Bindings: { incoming: IncomingMessage } }>();
      app.all('/admin', (c) => c.text('ADMIN'));
      app.all('/admin/:x', (c) => c.text('ADMIN'));
      app.all('*', (c) => c.text(echo(c.env.incoming, { url: c.req.path + (c.req.url.includes('?') ? c.req.url.slice(c.req.url.indexOf('?')) : ''), host: c.req.header('host') })));
      const s = mesh.createServer(getRequestListener(app.fetch));
      return { port: await listen(s), close: () => new Promise((r) => s.close(() => r())) };
    },
  },
];

const policy = (name: string, spec: object) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'foo' }, spec });

/** DENY /admin and /admin/*, DENY requests for the host internal.example.com. */
const denyConfig = [
  policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }] }] }),
  policy('deny-internal', { action: 'DENY', rules: [{ to: [{ operation: { hosts: ['internal.example.com'] } }] }] }),
];

interface PathRow {
  name: string;
  target: string;
  headers?: string[];
  /** The status every framework answers; unset: any, as long as the admin route is not reached. */
  status?: number;
  /** The host the app saw. */
  host?: string;
  /** The request's HTTP version. @defaultValue '1.1' */
  version?: '1.0';
  /** Send no Host header (HTTP/1.0 allows it). */
  noHost?: boolean;
}

const pathRows: PathRow[] = [
  { name: 'the route itself', target: '/admin', status: 403 },
  { name: 'dot segments', target: '/public/../admin', status: 403 },
  { name: 'encoded dot segments', target: '/public/%2e%2E/admin', status: 403 },
  { name: 'backslashes', target: '/public\\..\\admin', status: 403 },
  { name: 'an escaped unreserved character (find-my-way decodes it)', target: '/%61dmin', status: 403 },
  { name: 'escaped letters after a dot segment', target: '/public/%2e%2e/%61%64%6D%69%6E/x', status: 403 },
  { name: 'a nested escape that would decode twice', target: '/%%361dmin' },
  { name: 'an encoded slash', target: '/public%2f..%2fadmin' },
  { name: 'an encoded backslash', target: '/public/%5c../admin' },
  { name: 'a trailing slash', target: '/admin/', status: 403 },
  { name: 'a double slash (Fastify ignoreDuplicateSlashes)', target: '//admin' },
  { name: 'a double slash inside', target: '/admin//x', status: 403 },
  { name: 'a ;parameter', target: '/admin;x=1' },
  { name: 'a fragment', target: '/admin#x', status: 403 },
  // Istio's sidecar strips the fragment before normalizing (pkg/bootstrap/config.go): /public/a is served, the admin route never is.
  { name: 'a fragment hiding dot segments (dropped, as Istio does)', target: '/public/a#/../../admin', status: 200 },
  { name: 'a fragment after the denied path', target: '/admin#/../public', status: 403 },
  { name: 'a query hiding dot segments', target: '/public/a?/../../admin' },
  { name: 'a trailing dot', target: '/admin.' },
  { name: 'absolute-form target', target: 'http://svc/admin', status: 403 },
  { name: 'absolute-form target with dot segments', target: 'http://svc/public/../admin', status: 403 },
  { name: 'absolute-form authority is the host judged (Envoy)', target: 'http://internal.example.com/x', headers: ['Host: svc'], status: 403 },
  { name: 'absolute-form: the app sees the host that was judged', target: 'http://svc/x', headers: ['Host: internal.example.com'], status: 200, host: 'svc' },
  { name: 'hosts match ignoring case', target: '/x', headers: ['Host: INTERNAL.example.com'], status: 403 },
  { name: 'duplicate Host headers, the denied one first', target: '/x', headers: ['Host: internal.example.com', 'Host: svc'] },
  // Envoy's connection manager serves only origin-form paths: 404, absolute_path_rejected (the app saw `/*` before).
  { name: 'asterisk-form target (Envoy: 404 absolute_path_rejected)', target: '*', status: 404 },
  { name: 'a target that is not a path', target: 'admin' },
  // HTTP/1.0 is served and judged like HTTP/1.1 (docs/server.md; Envoy answers 426 on a declared HTTP port).
  { name: 'HTTP/1.0', target: '/admin', version: '1.0', status: 403 },
  { name: 'HTTP/1.0 with dot segments', target: '/public/../admin', version: '1.0', status: 403 },
  { name: 'HTTP/1.0 without a Host header', target: '/admin', version: '1.0', noHost: true, status: 403 },
  { name: 'HTTP/1.0 for an allowed path', target: '/x', version: '1.0', status: 200 },
  { name: 'an encoded ? (a path character, not the query)', target: '/admin%3Fx=1' },
  { name: 'an encoded #', target: '/admin%23x' },
  { name: 'overlong UTF-8 for /', target: '/%c0%afadmin' },
  { name: 'an encoded trailing dot', target: '/admin%2e' },
  { name: 'a double-encoded letter', target: '/%2561dmin' },
  { name: 'a ;parameter segment before the rest', target: '/admin;/x' },
  { name: 'absolute-form with an upper-case scheme', target: 'HTTP://svc/admin' },
  { name: 'absolute-form with userinfo', target: 'http://user@svc/admin' },
  { name: 'absolute-form with an encoded dot segment', target: 'http://svc/%2e%2e/admin', status: 403 },
  { name: 'a very long path', target: `/${'a/'.repeat(3000)}${'../'.repeat(3000)}admin`, status: 403 },
];

describe('path and host tricks never reach a denied route', () => {
  for (const app of apps) {
    describe(app.name, () => {
      let mesh: Mesh;
      let server: { port: number; close(): Promise<void> };
      before(async () => {
        mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: denyConfig, logger: { warn: () => {} } });
        server = await app.start(mesh);
      });
      after(async () => {
        await server.close();
        await mesh.close();
      });
      for (const row of pathRows) {
        it(`${row.name}: ${row.target.length > 60 ? `${row.target.slice(0, 60)}…` : row.target}`, async () => {
          const a = await one(server.port, row.target, row.headers, 'GET', row.version, row.noHost);
          assert.notEqual(a.body, 'ADMIN', `the admin route was reached (${a.status})`);
          if (row.status !== undefined) assert.equal(a.status, row.status, a.body);
          if (row.host !== undefined) assert.equal((JSON.parse(a.body) as Echo).host, row.host);
          if (a.status === 200) {
            const e = JSON.parse(a.body) as Echo;
            // Whatever the app got, it is a path the mesh judged: normal, never the admin route.
            assert.ok(!isAdmin(e.url.split('?')[0] as string), e.url);
          }
        });
      }
    });
  }
});

describe('Express: mesh.express() mounted under a path judges the whole path', () => {
  for (const [name, make] of [
    ['Express 5', express],
    ['Express 4', express4],
  ] as const) {
    it(`${name}: app.use('/api', mesh.express()) with a DENY on /api/admin`, async () => {
      const mesh = await createMesh({
        service: 'httpbin',
        namespace: 'foo',
        labels: { app: 'httpbin' },
        config: [policy('deny-api-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/api/admin'] } }] }] })],
        logger: { warn: () => {} },
      });
      const app = (make as typeof express)();
      app.use('/api', mesh.express());
      app.get('/api/admin', (_q, s) => void s.send('ADMIN'));
      app.use((q: express.Request, s: express.Response) => void s.type('text').send(echo(q, { originalUrl: q.originalUrl })));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const port = (server.address() as AddressInfo).port;
      try {
        assert.equal((await one(port, '/api/admin')).status, 403);
        // Judged as the whole path normalizes: /api/admin.
        assert.equal((await one(port, '/api/x/../admin')).status, 403);
        // Express routed on /api/admin/../other before the mesh saw it, and cannot route it again:
        // refused rather than served on a path other than the one judged.
        const dots = await one(port, '/api/admin/../other');
        assert.equal(dots.status, 400, dots.body);
        const ok = await one(port, '/api/other');
        assert.equal(ok.status, 200);
        assert.equal((JSON.parse(ok.body) as Echo).url, '/api/other');
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
        await mesh.close();
      }
    });
  }
});

describe('tokens, claims and connections', () => {
  let jwks: string;
  let token: string;
  let other: string;
  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    token = await new SignJWT({ iss: ISSUER, sub: 'alice', exp }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
    other = await new SignJWT({ iss: ISSUER, sub: 'mallory', exp }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
  });
  const config = () => [
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'RequestAuthentication',
      metadata: { name: 'jwt', namespace: 'foo' },
      spec: { jwtRules: [{ issuer: ISSUER, jwks, outputClaimToHeaders: [{ header: 'x-jwt-sub', claim: 'sub' }] }] },
    },
    ...denyConfig,
    policy('allow', { action: 'ALLOW', rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }, { to: [{ operation: { methods: ['GET'], paths: ['/public/*'] } }] }] }),
  ];

  for (const app of apps) {
    describe(app.name, () => {
      let mesh: Mesh;
      let server: { port: number; close(): Promise<void> };
      before(async () => {
        mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: config(), logger: { warn: () => {} } });
        server = await app.start(mesh);
      });
      after(async () => {
        await server.close();
        await mesh.close();
      });
      const rows: { name: string; target: string; headers: () => string[]; method?: string; status: number; principal?: string | null }[] = [
        { name: 'the token in the header and in the query: nowhere the app can read it', target: '/x?a=1&access_token=TOKEN', headers: () => [`Authorization: Bearer ${token}`], status: 200, principal: `${ISSUER}/alice` },
        { name: 'the token in the query only (and encoded parameter name)', target: '/x?%61ccess_token=TOKEN&b[c]=1', headers: () => [], status: 200, principal: `${ISSUER}/alice` },
        { name: 'Authorization and authorization with different tokens: 401', target: '/x', headers: () => [`Authorization: Bearer ${token}`, `authorization: Bearer ${other}`], status: 401 },
        { name: 'header and query with different tokens: no principal, denied by the ALLOW policy', target: `/x?access_token=${'OTHER'}`, headers: () => [`Authorization: Bearer ${token}`], status: 403 },
        { name: 'a spoofed claim header in any case never reaches the app', target: '/x', headers: () => [`Authorization: Bearer ${token}`, 'X-JWT-SUB: root', 'x-jwt-sub: root'], status: 200, principal: `${ISSUER}/alice` },
        { name: 'HEAD is not GET for an ALLOW rule', target: '/public/a', method: 'HEAD', headers: () => [], status: 403 },
        { name: 'a CORS preflight skips JWT but not authorization', target: '/private', method: 'OPTIONS', headers: () => ['Origin: http://evil', 'Access-Control-Request-Method: GET'], status: 403 },
        { name: 'a gRPC caller gets the denial as a gRPC status', target: '/private', method: 'POST', headers: () => ['Content-Type: application/grpc', 'Content-Length: 0'], status: 200 },
      ];
      for (const row of rows) {
        it(row.name, async () => {
          const target = row.target.replace('TOKEN', token).replace('OTHER', other);
          const a = await one(server.port, target, row.headers(), row.method);
          assert.equal(a.status, row.status, a.body);
          if (row.name.startsWith('a gRPC')) {
            assert.equal(a.headers['grpc-status'], '7');
            return;
          }
          if (row.status !== 200) return;
          // The response is the app's echo: the token is nowhere in what it saw (url, originalUrl, raw url, query, rawHeaders).
          assert.ok(!a.body.includes(token.split('.')[2] as string), a.body);
          const e = JSON.parse(a.body) as Echo & { query?: Record<string, unknown> };
          assert.equal(e.principal, row.principal);
          const sub = e.rawHeaders.filter((_, i, r) => i % 2 === 1 && (r[i - 1] as string).toLowerCase() === 'x-jwt-sub');
          assert.deepEqual(sub, ['alice']);
          if (e.query !== undefined && row.target.includes('b[c]')) assert.notDeepEqual(e.query, {});
        });
      }

      it('pipelined on one connection: each request judged on its own, nothing carried over', async () => {
        const req = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: svc\r\n${extra}\r\n`;
        const text = await rawHttp(server.port, req('/public/a', `Authorization: Bearer ${token}\r\n`) + req('/private') + req('/admin', `Authorization: Bearer ${token}\r\n`) + req('/private', 'Connection: close\r\n'));
        const got = answers(text);
        assert.deepEqual(
          got.map((a) => a.status),
          [200, 403, 403, 403],
          text,
        );
        assert.equal((JSON.parse((got[0] as Answer).body) as Echo).principal, `${ISSUER}/alice`);
      });
    });
  }
});

describe('Express: mesh.express() mounted at exactly the path a policy names', () => {
  for (const [name, make] of [
    ['Express 5', express],
    ['Express 4', express4],
  ] as const) {
    it(`${name}: app.use('/admin', mesh.express(), router) with a DENY on /admin refuses /admin itself (Express hands the middleware '/')`, async () => {
      const mesh = await createMesh({
        service: 'httpbin',
        namespace: 'foo',
        labels: { app: 'httpbin' },
        config: [policy('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] })],
        logger: { warn: () => {} },
      });
      const app = (make as typeof express)();
      const router = (make as typeof express).Router();
      router.get('/', (_q, s) => void s.send('ADMIN'));
      router.get('/x', (q: express.Request, s: express.Response) => void s.type('text').send(echo(q, { originalUrl: q.originalUrl })));
      app.use('/admin', mesh.express(), router);
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const port = (server.address() as AddressInfo).port;
      try {
        for (const target of ['/admin', '/admin?x=1', 'http://svc/admin']) {
          const a = await one(port, target);
          assert.deepEqual([target, a.status, a.body], [target, 403, 'RBAC: access denied']);
        }
        const other = await one(port, '/admin/x');
        assert.equal(other.status, 200);
        assert.equal((JSON.parse(other.body) as Echo).originalUrl, '/admin/x');
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
        await mesh.close();
      }
    });
  }
});

describe('Express: an absolute-form target reaches routers mounted under a path', () => {
  for (const [name, make] of [
    ['Express 5', express],
    ['Express 4', express4],
  ] as const) {
    it(`${name}: GET http://svc/api/echo?x=1 is routed to the router at /api, judged as /api/echo`, async () => {
      const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: denyConfig, logger: { warn: () => {} } });
      const app = (make as typeof express)();
      app.use(mesh.express());
      const router = (make as typeof express).Router();
      router.get('/echo', (q: express.Request, s: express.Response) => void s.type('text').send(echo(q, { originalUrl: q.originalUrl, query: q.query })));
      app.use('/api', router);
      app.get('/admin', (_q, s) => void s.send('ADMIN'));
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      const port = (server.address() as AddressInfo).port;
      try {
        const a = await one(port, 'http://svc/api/echo?x=1');
        assert.equal(a.status, 200, a.body);
        const e = JSON.parse(a.body) as Echo;
        // Inside the router, req.url keeps the scheme and authority, as Express has it without the mesh.
        assert.deepEqual([e.url, e.originalUrl, e.query, e.host], ['http://svc/echo?x=1', '/api/echo?x=1', { x: '1' }, 'svc']);
        assert.equal((await one(port, 'http://svc/public/../admin')).status, 403);
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
        await mesh.close();
      }
    });
  }
});

describe("HTTP/2 servers of the app's own: :authority is the host judged, as Envoy takes it", () => {
  // Envoy's HTTP/2 codec discards a `host` field sent with `:authority` (codec_impl.cc
  // ServerConnectionImpl::onHeader, http2_discard_host_header); an HTTP/2 request usually has no
  // `host` at all. Fastify's http2 server judged '' (a DENY on a host never matched), and a
  // `host` beside `:authority` was judged in its place while the app read `:authority`.
  let mesh: Mesh;
  before(async () => {
    mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: denyConfig, logger: { warn: () => {} } });
  });
  after(() => mesh.close());

  async function h2(port: number, headers: Record<string, string>): Promise<{ status: number; body: string }> {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    try {
      return await new Promise((resolve, reject) => {
        const r = c.request({ ':method': 'GET', ':path': '/x', ...headers });
        let body = '';
        let status = 0;
        r.on('response', (h) => (status = Number(h[':status'])));
        r.setEncoding('utf8');
        r.on('data', (d: string) => (body += d));
        r.on('end', () => resolve({ status, body }));
        r.on('error', reject);
      });
    } finally {
      c.close();
    }
  }

  const servers: { name: string; start(): Promise<{ port: number; close(): Promise<void> }> }[] = [
    {
      name: 'http2.createServer(mesh.handler(…)), the app reading req.authority',
      async start() {
        const listener = mesh.handler((q, r) => r.end(`${(q as unknown as http2.Http2ServerRequest).authority} ${q.headers.host}`));
        const s = http2.createServer(listener as unknown as (q: http2.Http2ServerRequest, r: http2.Http2ServerResponse) => void);
        return { port: await listen(s as never), close: () => new Promise((r) => s.close(() => r())) };
      },
    },
    {
      name: 'Fastify 5 { http2: true }, the app reading request.host',
      async start() {
        const app = Fastify({ http2: true });
        await app.register(mesh.fastify() as never);
        // find-my-way routes on host || :authority before the plugin's hook runs.
        app.get('/x', { constraints: { host: 'internal.example.com' } }, async () => 'INTERNAL route');
        app.get('/x', async (q) => `${q.host} ${q.headers.host}`);
        await app.listen({ port: 0, host: '127.0.0.1' });
        return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
      },
    },
  ];
  for (const s of servers) {
    it(s.name, async () => {
      const { port, close } = await s.start();
      try {
        assert.equal((await h2(port, { ':authority': 'internal.example.com' })).status, 403);
        assert.equal((await h2(port, { ':authority': 'INTERNAL.example.com' })).status, 403);
        assert.equal((await h2(port, { ':authority': 'internal.example.com', host: 'svc' })).status, 400);
        // A host naming another host than :authority: refused (RFC 9113 §8.3.1, malformed), as a
        // router that ran first (Fastify's, on host) would have routed on the host not judged.
        const other = await h2(port, { ':authority': 'svc', host: 'internal.example.com' });
        assert.equal(other.status, 400, other.body);
        assert.equal(other.body, 'Bad Request');
        // Letter case only: the same host; the app reads :authority.
        const ok = await h2(port, { ':authority': 'svc', host: 'SVC' });
        assert.equal(ok.status, 200, ok.body);
        assert.equal(ok.body, 'svc svc');
        // The same host with a default port or a trailing dot is refused too: a hosts rule tells
        // them apart, and Fastify's router read host before the mesh judged :authority.
        for (const [authority, host] of [['svc:80', 'svc'], ['svc', 'svc:80'], ['svc.', 'svc'], ['svc:8080', 'svc'], ['internal.example.com.', 'internal.example.com'], ['internal.example.com:80', 'internal.example.com'], ['internal.example.com:', 'internal.example.com']]) {
          assert.equal((await h2(port, { ':authority': authority as string, host: host as string })).status, 400, `${authority} / ${host}`);
        }
      } finally {
        await close();
      }
    });
  }
});

describe("HTTP/2 servers of the app's own: a consumed access_token is gone from the :path in rawHeaders too", () => {
  // Node's HTTP/2 compatibility request keeps `:path` among its rawHeaders: the mesh rewrote
  // req.url (and so headers[':path']) but the raw line still carried the token.
  let mesh: Mesh;
  let token: string;
  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
    token = await new SignJWT({ iss: ISSUER, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
    const ra = { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'foo' }, spec: { jwtRules: [{ issuer: ISSUER, jwks }] } };
    mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [ra], logger: { warn: () => {} } });
  });
  after(() => mesh.close());

  const seen = (q: IncomingMessage) => JSON.stringify({ url: q.url, raw: q.rawHeaders, headers: q.headers, principal: (q as { meshlet?: { requestPrincipal?: string } }).meshlet?.requestPrincipal });
  const servers: { name: string; start(): Promise<{ port: number; close(): Promise<void> }> }[] = [
    {
      name: 'http2.createServer(mesh.handler(…))',
      async start() {
        const listener = mesh.handler((q, r) => r.end(seen(q)));
        const s = http2.createServer(listener as unknown as (q: http2.Http2ServerRequest, r: http2.Http2ServerResponse) => void);
        return { port: await listen(s as never), close: () => new Promise((r) => s.close(() => r())) };
      },
    },
    {
      name: 'Fastify 5 { http2: true }',
      async start() {
        const app = Fastify({ http2: true });
        await app.register(mesh.fastify() as never);
        app.get('/x', async (q) => seen(q.raw as never));
        await app.listen({ port: 0, host: '127.0.0.1' });
        return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
      },
    },
  ];
  for (const s of servers) {
    it(s.name, async () => {
      const { port, close } = await s.start();
      const c = http2.connect(`http://127.0.0.1:${port}`);
      try {
        const body = await new Promise<string>((resolve, reject) => {
          const r = c.request({ ':method': 'GET', ':path': `/x?access_token=${token}&a=1` });
          let b = '';
          r.setEncoding('utf8');
          r.on('data', (d: string) => (b += d));
          r.on('end', () => resolve(b));
          r.on('error', reject);
        });
        const e = JSON.parse(body) as { url: string; raw: string[]; principal?: string };
        assert.equal(e.principal, `${ISSUER}/alice`, body);
        assert.equal(e.url, '/x?a=1');
        assert.ok(!body.includes(token.split('.')[2] as string), body);
        assert.equal(e.raw[e.raw.indexOf(':path') + 1], '/x?a=1');
      } finally {
        c.close();
        await close();
      }
    });
  }
});
