/**
 * The inbound observation seam: `meshlet:inbound:start` and `meshlet:inbound:end` for every
 * request reaching the mesh's server side — node:http (`mesh.createServer`, `mesh.handler()` on
 * an app's own server), Express 5, Express 4 and Fastify 5 — admitted and denied, with Envoy's
 * response flags and `%RESPONSE_CODE_DETAILS%`; a caller that goes away is `DC`, status 0; a
 * subscriber's `wrap` runs admission and the handler inside its async context, and headers it
 * adds reach the app.
 */
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { hasSubscribers, subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, IncomingMessage, request, type Server, ServerResponse } from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { observeInbound } from '../../src/adapters/server/observe-inbound.ts';
import { ManualClock } from '../../src/core/clock.ts';
import type { InboundEndMessage, InboundStartMessage } from '../../src/core/observe.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { frameworks, listen, raw } from '../helpers/frameworks.ts';
import { localRateLimitFilter } from '../helpers/rate-limit.ts';

const ISSUER = 'testing@secure.istio.io';

function extAuthz(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.headers['x-ext-authz'] === 'allow') {
      res.writeHead(200);
      res.end();
      return;
    }
    res.writeHead(403);
    res.end('denied by ext_authz');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

function policies(jwks: string): object[] {
  const meta = (name: string) => ({ name, namespace: 'foo' });
  return [
    { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: meta('jwt'), spec: { selector: { matchLabels: { app: 'httpbin' } }, jwtRules: [{ issuer: ISSUER, jwks }] } },
    { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('deny-admin'), spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } },
    {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: meta('allow'),
      spec: { action: 'ALLOW', rules: [{ from: [{ source: { requestPrincipals: [`${ISSUER}/*`] } }] }, { to: [{ operation: { paths: ['/public/*', '/slow', '/ext/*'] } }] }] },
    },
    { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('ext'), spec: { action: 'CUSTOM', provider: { name: 'ext' }, rules: [{ to: [{ operation: { paths: ['/ext/*'] } }] }] } },
  ];
}

/** An app's own node:http server with `mesh.handler()` — the one entry point `frameworks` does not cover. */
const ownServer = {
  name: 'node:http (mesh.handler() on the app server)',
  async start(mesh: Mesh) {
    const server = createServer(
      mesh.handler((req: IncomingMessage, res: ServerResponse) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ path: req.url }));
      }),
    );
    const port = await listen(server);
    return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
  },
};

interface Row {
  path: string;
  headers?: (t: { valid: string; expired: string }) => Record<string, string>;
  status: number;
  flags: string;
  details: string;
  deniedBy?: string;
  authzPolicy?: string;
  principal?: string;
}

const rows: Row[] = [
  { path: '/public/a', status: 200, flags: '', details: 'via_upstream', authzPolicy: 'ns[foo]-policy[allow]-rule[1]' },
  { path: '/public/a?x=1', headers: (t) => ({ authorization: `Bearer ${t.valid}` }), status: 200, flags: '', details: 'via_upstream', authzPolicy: 'ns[foo]-policy[allow]-rule[0]', principal: `${ISSUER}/sub-1` },
  { path: '/private', status: 403, flags: '', details: 'rbac_access_denied_matched_policy[none]', deniedBy: 'authorization' },
  { path: '/admin', headers: (t) => ({ authorization: `Bearer ${t.valid}` }), status: 403, flags: '', details: 'rbac_access_denied_matched_policy[ns[foo]-policy[deny-admin]-rule[0]]', deniedBy: 'authorization', authzPolicy: 'ns[foo]-policy[deny-admin]-rule[0]', principal: `${ISSUER}/sub-1` },
  { path: '/public/a', headers: (t) => ({ authorization: `Bearer ${t.expired}` }), status: 401, flags: '', details: 'jwt_authn_access_denied{Jwt_is_expired}', deniedBy: 'jwt' },
  { path: '/ext/a', status: 403, flags: 'UAEX', details: 'ext_authz_denied', deniedBy: 'authorization', authzPolicy: 'ns[foo]-policy[ext]-rule[0]' },
  { path: '/ext/a', headers: () => ({ 'x-ext-authz': 'allow' }), status: 200, flags: '', details: 'via_upstream', authzPolicy: 'ns[foo]-policy[allow]-rule[1]' },
  { path: '/a/%00', status: 400, flags: '', details: 'path_normalization_failed', deniedBy: 'path' },
];

describe('without subscribers', () => {
  it('nothing is built: observeInbound returns undefined before it touches the request', () => {
    assert.equal(hasSubscribers('meshlet:inbound:start') || hasSubscribers('meshlet:inbound:end'), false);
    const conn = { remoteAddress: '127.0.0.1', remotePort: 1, localPort: 2, scheme: 'http' as const };
    // A request and response that throw on any use: never touched.
    const trap = new Proxy({}, { get: () => assert.fail('touched') }) as never;
    assert.equal(observeInbound({ workload: { service: 's', namespace: 'n', labels: {}, serviceAccount: 'default' }, clock: new ManualClock() }, trap, trap, {}, 'GET', 'a', '/', conn), undefined);
    // And with a subscriber it is observed.
    const noop = () => {};
    subscribe('meshlet:inbound:end', noop);
    try {
      assert.throws(() => observeInbound({ workload: { service: 's', namespace: 'n', labels: {}, serviceAccount: 'default' }, clock: new ManualClock() }, trap, trap, {}, 'GET', 'a', '/', conn), /touched/);
    } finally {
      unsubscribe('meshlet:inbound:end', noop);
    }
  });

  it("adds no property to the response: its shape stays the raw server's (only a 'close' listener, which publishes the end once)", () => {
    // A response of another shape than the app's unobserved ones makes node:http's and the
    // framework's code polymorphic on it (measured: Express with telemetry).
    const req = new IncomingMessage(new Socket());
    const res = new ServerResponse(req);
    const keys = Reflect.ownKeys(res);
    const ends: unknown[] = [];
    const onEnd = (m: unknown) => ends.push(m);
    subscribe('meshlet:inbound:end', onEnd);
    try {
      const conn = { remoteAddress: '127.0.0.1', remotePort: 1, localPort: 2, scheme: 'http' as const };
      assert.notEqual(observeInbound({ workload: { service: 's', namespace: 'n', labels: {}, serviceAccount: 'default' }, clock: new ManualClock() }, req, res, {}, 'GET', 'a', '/', conn), undefined);
      assert.deepEqual(Reflect.ownKeys(res), keys);
      assert.equal(res.listenerCount('close'), 1);
      res.emit('close');
      res.emit('close');
      assert.equal(ends.length, 1);
    } finally {
      unsubscribe('meshlet:inbound:end', onEnd);
    }
  });

  it("the end message's own fields are the message's, in its order (a spread or JSON of it sees the same data), and nothing of the observation's", () => {
    // The observation is the end message (no copy made at the end): its own state stays private.
    const req = new IncomingMessage(new Socket());
    req.httpVersionMajor = 1;
    const res = new ServerResponse(req);
    res.setHeader('content-type', 'text/plain');
    const starts: InboundStartMessage[] = [];
    const ends: InboundEndMessage[] = [];
    const onStart = (m: unknown) => starts.push(m as InboundStartMessage);
    const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
    subscribe('meshlet:inbound:start', onStart);
    subscribe('meshlet:inbound:end', onEnd);
    try {
      const conn = { remoteAddress: '127.0.0.1', remotePort: 1, localPort: 2, localAddress: '127.0.0.2', scheme: 'http' as const };
      const headers = { host: 'a' };
      const clock = new ManualClock();
      const workload = { service: 's', namespace: 'n', labels: {}, serviceAccount: 'default' };
      const ob = observeInbound({ workload, clock }, req, res, headers, 'GET', 'a', '/p', conn);
      assert.ok(ob !== undefined);
      clock.advance(7);
      res.emit('close');
      const m = ends[0] as InboundEndMessage;
      assert.deepEqual(Object.keys(m), [
        'workload', 'request', 'protocol', 'method', 'scheme', 'authority', 'path', 'headers', 'peerMetadata', 'status', 'grpcStatus', 'flags', 'details', 'deniedBy', 'deniedBefore',
        'requestBytes', 'responseBytes', 'durationMs', 'endedAt', 'mtls', 'peer', 'requestPrincipal', 'authzPolicy', 'remoteAddress', 'remotePort', 'localAddress', 'localPort', 'sni', 'connection', 'error',
      ]);
      assert.deepEqual({ ...m }, {
        workload, request: req, protocol: 'http1', method: 'GET', scheme: 'http', authority: 'a', path: '/p', headers, peerMetadata: undefined, status: 0, grpcStatus: -1, flags: 'UC', details: 'upstream_reset_before_response_started{connection_termination}', deniedBy: undefined, deniedBefore: undefined,
        requestBytes: m.requestBytes, responseBytes: 0, durationMs: 7, endedAt: clock.now(), mtls: false, peer: undefined, requestPrincipal: undefined, authzPolicy: undefined, remoteAddress: '127.0.0.1', remotePort: 1, localAddress: '127.0.0.2', localPort: 2, sni: undefined, connection: undefined, error: undefined,
      });
      // Nothing was sent: no response headers.
      assert.equal(m.responseHeaders, undefined);
      // The start message is a message of its own, left as it was published.
      assert.notEqual(starts[0], m);
      assert.equal(starts[0]?.path, '/p');
    } finally {
      unsubscribe('meshlet:inbound:start', onStart);
      unsubscribe('meshlet:inbound:end', onEnd);
    }
  });
});

describe('meshlet:inbound:start / :end through every server entry point', () => {
  const starts: InboundStartMessage[] = [];
  const ends: InboundEndMessage[] = [];
  const onStart = (m: unknown) => starts.push(m as InboundStartMessage);
  const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
  let tokens: { valid: string; expired: string };
  let jwks: string;
  let ext: Awaited<ReturnType<typeof extAuthz>>;
  before(async () => {
    subscribe('meshlet:inbound:start', onStart);
    subscribe('meshlet:inbound:end', onEnd);
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] });
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey);
    tokens = { valid: await sign({ iss: ISSUER, sub: 'sub-1', exp: now + 3600 }), expired: await sign({ iss: ISSUER, sub: 'sub-1', exp: now - 120 }) };
    ext = await extAuthz();
  });
  after(async () => {
    unsubscribe('meshlet:inbound:start', onStart);
    unsubscribe('meshlet:inbound:end', onEnd);
    await new Promise<void>((r) => ext.server.close(() => r()));
  });

  for (const fw of [...frameworks, ownServer]) {
    describe(fw.name, () => {
      let mesh: Mesh;
      let server: { port: number; close(): Promise<void> };
      before(async () => {
        mesh = await createMesh({
          service: 'httpbin',
          namespace: 'foo',
          labels: { app: 'httpbin' },
          config: policies(jwks),
          extensionProviders: [{ name: 'ext', envoyExtAuthzHttp: { service: '127.0.0.1', port: ext.port, includeRequestHeadersInCheck: ['x-ext-authz'] } }],
          logger: { warn: () => {} },
        });
        server = await fw.start(mesh);
      });
      after(async () => {
        await server.close();
        await mesh.close();
      });
      for (const row of rows) {
        it(`${row.path}${row.headers === undefined ? '' : ' (with headers)'} → ${row.status} ${row.details}`, async () => {
          starts.length = 0;
          ends.length = 0;
          const r = await raw(server.port, row.path, { headers: row.headers?.(tokens) });
          assert.equal(r.statusCode, row.status, r.text);
          // The end is published when the response closes, just after the client got it.
          for (let i = 0; i < 50 && ends.length === 0; i++) await new Promise((res) => setImmediate(res));
          const s = starts.filter((m) => m.workload === mesh.identity);
          const e = ends.filter((m) => m.workload === mesh.identity);
          assert.equal(s.length, 1, 'one start');
          assert.equal(e.length, 1, 'one end');
          const [start, end] = [s[0] as InboundStartMessage, e[0] as InboundEndMessage];
          assert.equal(end.request, start.request, 'the same request object correlates them');
          assert.equal(start.method, 'GET');
          assert.equal(start.path, row.path);
          assert.match(start.authority, /^127\.0\.0\.1:\d+$/);
          assert.equal(start.remoteAddress, '127.0.0.1');
          assert.equal(start.localPort, server.port);
          assert.equal(start.protocol, 'http1');
          assert.deepEqual(
            { status: end.status, flags: end.flags, details: end.details, deniedBy: end.deniedBy, authzPolicy: end.authzPolicy, principal: end.requestPrincipal },
            { status: row.status, flags: row.flags, details: row.details, deniedBy: row.deniedBy, authzPolicy: row.authzPolicy, principal: row.principal },
          );
          assert.equal(end.grpcStatus, -1);
          assert.equal(end.mtls, false);
          // Sizes: at least the request line and Host, at least the status line and the body.
          assert.ok(end.requestBytes >= `GET ${row.path} HTTP/1.1\r\n`.length + 6, String(end.requestBytes));
          assert.ok(end.responseBytes >= `HTTP/1.1 ${row.status} \r\n`.length + Buffer.byteLength(r.text), `${end.responseBytes} for ${r.text.length} bytes of body`);
          assert.ok(end.durationMs >= 0);
          assert.notEqual(end.responseHeaders, undefined);
          if (row.status !== 200) assert.equal(end.responseHeaders?.['content-type'], 'text/plain');
        });
      }
    });
  }

  it('the local rate limit: 429 with RL and local_rate_limited (and the end on the mesh clock: endedAt)', async () => {
    const clock = new ManualClock(5000);
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      clock,
      logger: { warn: () => {} },
      config: [
        localRateLimitFilter({ name: 'rl', namespace: 'foo' }, 1, '60s', {}, { app: 'httpbin' }),
      ],
    });
    const server = await (frameworks[0] as (typeof frameworks)[number]).start(mesh);
    try {
      ends.length = 0;
      assert.equal((await raw(server.port, '/a')).statusCode, 200);
      assert.equal((await raw(server.port, '/a')).statusCode, 429);
      for (let i = 0; i < 50 && ends.length < 2; i++) await new Promise((res) => setImmediate(res));
      const e = ends.filter((m) => m.workload === mesh.identity);
      assert.deepEqual(
        e.map((m) => [m.status, m.flags, m.details, m.deniedBy]),
        [
          [200, '', 'via_upstream', undefined],
          [429, 'RL', 'local_rate_limited', 'rate-limit'],
        ],
      );
      // The clock reading the duration was measured with, for subscribers that need the time (Istio metrics' idle series).
      assert.deepEqual(
        e.map((m) => [m.endedAt, m.durationMs]),
        [
          [5000, 0],
          [5000, 0],
        ],
      );
    } finally {
      await server.close();
      await mesh.close();
    }
  });

  for (const fw of [...frameworks, ownServer]) {
    it(`${fw.name}: a caller that goes away before the answer is DC, status 0, downstream_remote_disconnect`, async () => {
      const mesh = await createMesh({ service: 'slow', namespace: 'foo', config: [], logger: { warn: () => {} } });
      // Every framework's app answers right away; this one holds /slow until the caller left.
      let release: (() => void) | undefined;
      const held = new Promise<void>((r) => (release = r));
      const sub = (m: unknown) => {
        const s = m as InboundStartMessage;
        if (s.workload !== mesh.identity) return;
        // Hold the request inside the subscriber's wrap: admission and the app run when released.
        s.wrap = (fn) => {
          held.then(fn);
          return undefined as never;
        };
      };
      subscribe('meshlet:inbound:start', sub);
      const server = await fw.start(mesh);
      try {
        ends.length = 0;
        await new Promise<void>((resolve) => {
          const req = request({ host: '127.0.0.1', port: server.port, path: '/slow' });
          req.on('error', () => resolve());
          req.end();
          setTimeout(() => req.destroy(), 50);
        });
        for (let i = 0; i < 100 && !ends.some((m) => m.workload === mesh.identity); i++) await new Promise((res) => setTimeout(res, 5));
        const e = ends.filter((m) => m.workload === mesh.identity);
        assert.equal(e.length, 1);
        assert.deepEqual([e[0]?.status, e[0]?.flags, e[0]?.details], [0, 'DC', 'downstream_remote_disconnect']);
      } finally {
        unsubscribe('meshlet:inbound:start', sub);
        release?.();
        await server.close();
        await mesh.close();
      }
    });
  }

  /** Apps that report what their handler saw: the subscriber's async context and the added header. */
  const probes: { name: string; start(mesh: Mesh, saw: (ctx: string | undefined, rid: unknown) => void): Promise<{ port: number; close(): Promise<void> }> }[] = [
    {
      name: 'mesh.handler()',
      async start(mesh, saw) {
        const server = createServer(
          mesh.handler((req, res) => {
            saw(als.getStore(), req.headers['x-request-id']);
            res.end('ok');
          }),
        );
        const port = await listen(server);
        return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
      },
    },
    {
      name: 'Express 5',
      async start(mesh, saw) {
        const app = express();
        app.use(mesh.express());
        app.get('/x', (req, res) => {
          saw(als.getStore(), req.headers['x-request-id']);
          res.send('ok');
        });
        const server = app.listen(0, '127.0.0.1');
        await new Promise((r) => server.once('listening', r));
        return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
      },
    },
    {
      name: 'Fastify 5',
      async start(mesh, saw) {
        const app = Fastify({ ...mesh.fastifyOptions() });
        await app.register(mesh.fastify() as never);
        app.get('/x', async (req) => {
          await new Promise((r) => setImmediate(r));
          saw(als.getStore(), req.headers['x-request-id']);
          return 'ok';
        });
        await app.listen({ port: 0, host: '127.0.0.1' });
        return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
      },
    },
  ];
  const als = new AsyncLocalStorage<string>();
  // Without a phase the app's own header object is judged; with one (an ALLOW-all policy), a copy that is handed back to the app.
  const allowAll = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'all', namespace: 'foo' }, spec: { action: 'ALLOW', rules: [{}] } };
  for (const [probe, config] of probes.flatMap((p) => [
    [p, []],
    [p, [allowAll]],
  ] as const)) {
    it(`${probe.name}${config.length === 0 ? '' : ' (a phase in use)'}: wrap runs the handler inside the subscriber's context; a header it adds reaches the app`, async () => {
      const mesh = await createMesh({ service: 'ctx', namespace: 'foo', config: [...config], logger: { warn: () => {} } });
      if (config.length > 0) assert.deepEqual(mesh.diagnostics().inboundPhases, ['authorization']);
      const seenInApp: unknown[] = [];
      const sub = (m: unknown) => {
        const s = m as InboundStartMessage;
        if (s.workload !== mesh.identity) return;
        s.headers['x-request-id'] = 'rid-1';
        const outer = s.wrap;
        s.wrap = (fn) => als.run('span-1', () => (outer === undefined ? fn() : outer(fn)));
      };
      subscribe('meshlet:inbound:start', sub);
      const server = await probe.start(mesh, (ctx, rid) => seenInApp.push(ctx, rid));
      try {
        assert.equal((await raw(server.port, '/x')).statusCode, 200);
        assert.deepEqual(seenInApp, ['span-1', 'rid-1']);
      } finally {
        unsubscribe('meshlet:inbound:start', sub);
        await server.close();
        await mesh.close();
      }
    });
  }
});
