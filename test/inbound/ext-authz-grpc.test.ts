/**
 * AuthorizationPolicy CUSTOM with an `envoyExtAuthzGrpc` provider, end to end: a real grpc-js
 * authorizer speaking Envoy's `envoy.service.auth.v3.Authorization/Check` — a port of Istio's
 * sample ext-authz server (samples/extauthz/cmd/extauthz/main.go, its v3 gRPC half), with a few
 * extra answers — defined by examples/ext-authz/ext-authz.proto and decoded by
 * @grpc/proto-loader, so meshlet's hand-written codec is checked against an independent one. The
 * mesh calls it through its own gRPC channel; requests go to `mesh.createServer` over real sockets.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createMesh, type Mesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { envoyExtAuthzGrpc } from '../../src/security/authz/ext-authz-grpc.ts';
import type { AuthzRequest } from '../../src/security/authz/types.ts';
import { raw } from '../helpers/frameworks.ts';
import { cleanupPki, makeCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { type Echo, EchoClient, unary } from '../helpers/grpc.ts';
import { type MeshGrpcServer, startMeshGrpcServer } from '../helpers/grpc-server.ts';

// The example's .proto (Envoy's message names and field numbers), so the tests decode and encode independently of meshlet's codec.
const PROTO = new URL('../../examples/ext-authz/ext-authz.proto', import.meta.url).pathname;
const DENY_BODY = 'denied by ext_authz for not found header `x-ext-authz: allow` in the request';

/** A CheckRequest as proto-loader decodes it. */
interface Check {
  attributes: {
    source: { address: { socket_address: { address: string; port_value: number } }; principal: string; service: string };
    destination: { address: { socket_address: { address: string; port_value: number } }; principal: string };
    request: { time: { seconds: number; nanos: number }; http: { id: string; method: string; headers: Record<string, string>; path: string; host: string; scheme: string; size: number; protocol: string } };
  };
}

const hv = (key: string, value: string, append?: boolean) => ({ header: { key, value }, ...(append === undefined ? {} : { append: { value: append } }) });

/** Istio's sample authorizer (gRPC v3), plus: `append`, `status-401`, `login-redirect`, `no-denied-response`, `error`, `hang`. */
function sampleCheck(seen: Check[]) {
  return (call: grpc.ServerUnaryCall<Check, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    const req = call.request;
    seen.push(req);
    const v = req.attributes.request.http.headers['x-ext-authz'];
    const received = JSON.stringify(req.attributes.request.http.path);
    if (v === 'hang') return;
    if (v === 'error') return cb({ code: grpc.status.UNAVAILABLE, details: 'authorizer down' } as grpc.ServiceError, null);
    if (v === 'allow' || v === 'append' || (v === undefined && req.attributes.source.principal.endsWith('/sa/a'))) {
      return cb(null, {
        status: { code: 0 },
        ok_response: {
          headers: [hv('x-ext-authz-check-result', 'allowed'), hv('x-ext-authz-check-received', received), hv('x-ext-authz-additional-header-override', 'grpc-additional-header-override-value'), ...(v === 'append' ? [hv('x-app', 'two', true)] : [])],
          headers_to_remove: ['x-remove-me', 'host'],
          response_headers_to_add: [hv('x-resp-added', 'yes'), hv('set-cookie', 'session_0=a; Path=/'), hv('set-cookie', 'session_1=b; Path=/')],
        },
      });
    }
    if (v === 'status-401') return cb(null, { status: { code: 16 }, denied_response: { status: { code: 401 }, headers: [hv('www-authenticate', 'Bearer realm="x"')], body: 'who are you' } });
    if (v === 'login-redirect') {
      const cookies = [hv('set-cookie', 'csrf=abc; Path=/'), hv('set-cookie', 'session_0=def; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/')];
      return cb(null, { status: { code: 16 }, denied_response: { status: { code: 302 }, headers: [hv('location', 'https://login.example.com/'), ...cookies], body: '' } });
    }
    if (v === 'no-denied-response') return cb(null, { status: { code: 7 } });
    cb(null, {
      status: { code: 7 },
      denied_response: { status: { code: 403 }, body: DENY_BODY, headers: [hv('x-ext-authz-check-result', 'denied'), hv('x-ext-authz-check-received', received)] },
    });
  };
}

async function startAuthorizer(seen: Check[]): Promise<{ server: grpc.Server; port: number }> {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { auth: { v3: { Authorization: { service: grpc.ServiceDefinition } } } } } };
  const server = new grpc.Server();
  server.addService(pkg.envoy.service.auth.v3.Authorization.service, { Check: sampleCheck(seen) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { server, port };
}

const meta = (name: string) => ({ name, namespace: 'foo' });

describe('AuthorizationPolicy CUSTOM with an envoyExtAuthzGrpc provider', () => {
  const seen: Check[] = [];
  let authorizer: { server: grpc.Server; port: number };
  let mesh: Mesh;
  let app: Server;
  let port: number;
  const appSaw: IncomingMessage['headers'][] = [];
  before(async () => {
    authorizer = await startAuthorizer(seen);
    mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [
        {
          apiVersion: 'security.istio.io/v1',
          kind: 'AuthorizationPolicy',
          metadata: meta('ext-authz'),
          spec: { action: 'CUSTOM', provider: { name: 'sample-ext-authz-grpc' }, rules: [{ to: [{ operation: { paths: ['/headers', '/headers/*'] } }] }] },
        },
      ],
      extensionProviders: [{ name: 'sample-ext-authz-grpc', envoyExtAuthzGrpc: { service: '127.0.0.1', port: authorizer.port, timeout: '60s', statusOnError: '503' } }],
      logger: { warn: () => {} },
    });
    app = mesh.createServer((req, res) => {
      appSaw.push(req.headers);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.headers));
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    port = (app.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((r) => app.close(() => r()));
    await mesh.close();
    authorizer.server.forceShutdown();
  });

  it('allows: the authorizer sees the request as Envoy describes it, and its headers reach the app and the client', async () => {
    const before = seen.length;
    const t0 = Date.now();
    const calls: { protocol: string; path: string; authority: string }[] = [];
    const onCall = (m: unknown) => void calls.push(m as (typeof calls)[number]);
    subscribe('meshlet:call:start', onCall);
    const r = await raw(port, '/headers?a=1', { headers: { 'x-ext-authz': 'allow', 'x-remove-me': 'secret', 'x-multi': ['a', 'b'], 'x-envoy-downstream-service-cluster': 'sleep.foo' } });
    unsubscribe('meshlet:call:start', onCall);
    assert.equal(r.statusCode, 200, r.text);
    assert.deepEqual(
      calls.map((c) => [c.protocol, c.authority, c.path]),
      [['grpc', `127.0.0.1:${authorizer.port}`, '/envoy.service.auth.v3.Authorization/Check']],
      'the check went out through the mesh, as a gRPC call',
    );
    assert.equal(r.headers['x-resp-added'], 'yes');
    // Added twice (APPEND_IF_EXISTS_OR_ADD): two lines, as Envoy adds each — not one cookie joined with ', '.
    assert.deepEqual(r.headers['set-cookie'], ['session_0=a; Path=/', 'session_1=b; Path=/']);
    const app = JSON.parse(r.text) as Record<string, string>;
    assert.equal(app['x-ext-authz-check-result'], 'allowed');
    assert.equal(app['x-ext-authz-check-received'], '"/headers?a=1"');
    assert.equal(app['x-ext-authz-additional-header-override'], 'grpc-additional-header-override-value');
    assert.equal(app['x-remove-me'], undefined, 'headers_to_remove is applied');
    assert.equal(app.host, `127.0.0.1:${port}`, 'Host is never removed');
    assert.equal(seen.length, before + 1);
    const a = (seen.at(-1) as Check).attributes;
    const http = a.request.http;
    assert.equal(http.method, 'GET');
    assert.equal(http.path, '/headers?a=1');
    assert.equal(http.host, `127.0.0.1:${port}`);
    assert.equal(http.scheme, 'http');
    assert.equal(http.protocol, 'HTTP/1.1');
    assert.match(http.id, /^\d+$/);
    assert.equal(http.headers[':method'], 'GET');
    assert.equal(http.headers[':path'], '/headers?a=1');
    assert.equal(http.headers[':authority'], `127.0.0.1:${port}`);
    assert.equal(http.headers['x-multi'], 'a,b', 'repeated headers are joined with ","');
    assert.equal(http.headers['x-remove-me'], 'secret');
    assert.equal(a.source.address.socket_address.address, '127.0.0.1');
    assert.ok(a.source.address.socket_address.port_value > 0);
    assert.equal(a.source.service, 'sleep.foo');
    assert.equal(a.source.principal, '', 'plaintext: no peer principal');
    assert.equal(a.destination.address.socket_address.port_value, port);
    assert.ok(Math.abs(a.request.time.seconds * 1000 + a.request.time.nanos / 1e6 - t0) < 60_000, 'the time is the request time');
  });

  it('appends a header when the authorizer asks to (append: true)', async () => {
    const r = await raw(port, '/headers', { headers: { 'x-ext-authz': 'append', 'x-app': 'one' } });
    assert.equal(r.statusCode, 200, r.text);
    assert.equal((JSON.parse(r.text) as Record<string, string>)['x-app'], 'one,two');
  });

  it("denies with the authorizer's status, headers and body; the app never sees the request", async () => {
    const n = appSaw.length;
    const r = await raw(port, '/headers', { headers: { 'x-ext-authz': 'deny' } });
    assert.equal(r.statusCode, 403);
    assert.equal(r.text, DENY_BODY);
    assert.equal(r.headers['x-ext-authz-check-result'], 'denied');
    const r401 = await raw(port, '/headers/x', { headers: { 'x-ext-authz': 'status-401' } });
    assert.equal(r401.statusCode, 401);
    assert.equal(r401.text, 'who are you');
    assert.equal(r401.headers['www-authenticate'], 'Bearer realm="x"');
    // Two set-cookie headers in denied_response: two lines (Envoy adds each), not one value joined with ','.
    const login = await raw(port, '/headers', { headers: { 'x-ext-authz': 'login-redirect' } });
    assert.equal(login.statusCode, 302);
    assert.equal(login.headers.location, 'https://login.example.com/');
    assert.deepEqual(login.headers['set-cookie'], ['csrf=abc; Path=/', 'session_0=def; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/']);
    const bare = await raw(port, '/headers', { headers: { 'x-ext-authz': 'no-denied-response' } });
    assert.equal(bare.statusCode, 403, 'a non-OK status without denied_response is 403');
    assert.equal(bare.text, '');
    assert.equal(appSaw.length, n);
  });

  it('an RPC error is an error: statusOnError, no body', async () => {
    const r = await raw(port, '/headers', { headers: { 'x-ext-authz': 'error' } });
    assert.equal(r.statusCode, 503);
    assert.equal(r.text, '');
  });

  it('paths the CUSTOM policy does not match are not checked', async () => {
    const n = seen.length;
    const r = await raw(port, '/other', { headers: { 'x-ext-authz': 'deny' } });
    assert.equal(r.statusCode, 200);
    assert.equal(seen.length, n);
  });
});

describe('envoyExtAuthzGrpc on its own', () => {
  const seen: Check[] = [];
  /** A plain grpc-js client (a mesh gives one on its channel). */
  const client = (target: string) => new grpc.Client(target, grpc.credentials.createInsecure());
  let authorizer: { server: grpc.Server; port: number };
  before(async () => {
    authorizer = await startAuthorizer(seen);
  });
  after(() => authorizer.server.forceShutdown());
  const request = (headers: Record<string, string>, peer?: string): AuthzRequest => ({
    method: 'POST',
    scheme: 'https',
    authority: 'httpbin.foo:8000',
    path: '/pkg.Svc/Method',
    headers,
    remoteAddress: '10.0.0.9',
    remotePort: 40000,
    localPort: 8000,
    localAddress: '10.0.0.1',
    protocol: 'grpc',
    peer: peer === undefined ? undefined : { principal: peer },
    requestPrincipal: undefined,
    claims: undefined,
  });

  it('times out on the injected clock: denied with statusOnError, or allowed with failOpen', async () => {
    for (const failOpen of [false, true]) {
      const clock = new ManualClock();
      const check = envoyExtAuthzGrpc({ service: '127.0.0.1', port: authorizer.port, timeout: '10s', failOpen }, { clock, client });
      const n = seen.length;
      const p = check(request({ 'x-ext-authz': 'hang' }));
      while (seen.length === n) await new Promise((r) => setTimeout(r, 5));
      clock.advance(9_999);
      let done = false;
      void p.then(() => (done = true));
      await new Promise((r) => setImmediate(r));
      assert.equal(done, false, 'not before the timeout');
      clock.advance(1);
      assert.deepEqual(await p, failOpen ? { allowed: true } : { allowed: false, status: 403, headers: {}, body: '', error: true });
    }
  });

  it('on mTLS connections, sends both principals; the sample allows service account a without the header', async () => {
    const check = envoyExtAuthzGrpc({ service: '127.0.0.1', port: authorizer.port }, { client, localPrincipal: 'spiffe://cluster.local/ns/foo/sa/httpbin' });
    const r = await check(request({}, 'spiffe://cluster.local/ns/foo/sa/a'));
    assert.equal(r.allowed, true);
    const a = (seen.at(-1) as Check).attributes;
    assert.equal(a.source.principal, 'spiffe://cluster.local/ns/foo/sa/a');
    assert.equal(a.destination.principal, 'spiffe://cluster.local/ns/foo/sa/httpbin');
    assert.equal(a.destination.address.socket_address.address, '10.0.0.1');
    assert.equal(a.source.address.socket_address.port_value, 40000);
    assert.equal(a.request.http.protocol, 'HTTP/2');
    assert.equal(a.request.http.headers[':scheme'], 'https');
    const denied = await check(request({}, 'spiffe://cluster.local/ns/foo/sa/b'));
    assert.equal(denied.allowed, false);
  });

  it('an unreachable authorizer is an error', async () => {
    const check = envoyExtAuthzGrpc({ service: '127.0.0.1', port: 1, timeout: '5s' }, { client });
    assert.deepEqual(await check(request({ 'x-ext-authz': 'allow' })), { allowed: false, status: 403, headers: {}, body: '', error: true });
  });

  it('refuses a config Istio refuses, naming the provider', () => {
    assert.throws(() => envoyExtAuthzGrpc({ service: '', port: 70000 }, { name: 'p', client }), /extension provider "p" \(envoyExtAuthzGrpc\): service must not be empty; port must be in the range/);
    assert.throws(() => envoyExtAuthzGrpc({ service: 'a', port: 9000, statusOnError: '999' }, { client }), /unsupported statusOnError "999"/);
  });
});

describe('a gRPC server under the mesh with an envoyExtAuthzGrpc CUSTOM policy', () => {
  const seen: Check[] = [];
  let authorizer: { server: grpc.Server; port: number };
  let mesh: Mesh;
  let server: MeshGrpcServer;
  let client: Echo;
  before(async () => {
    authorizer = await startAuthorizer(seen);
    mesh = await createMesh({
      service: 'echo',
      namespace: 'foo',
      labels: { app: 'echo' },
      config: [
        {
          apiVersion: 'security.istio.io/v1',
          kind: 'AuthorizationPolicy',
          metadata: meta('ext-authz'),
          spec: { action: 'CUSTOM', provider: { name: 'grpc-authz' }, rules: [{ to: [{ operation: { paths: ['/meshlet.test.Echo/*'] } }] }] },
        },
      ],
      extensionProviders: [{ name: 'grpc-authz', envoyExtAuthzGrpc: { service: '127.0.0.1', port: authorizer.port } }],
      logger: { warn: () => {} },
    });
    server = await startMeshGrpcServer(mesh, 'insecure');
    client = new EchoClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
  });
  after(async () => {
    client.close();
    await server.close();
    await mesh.close();
    authorizer.server.forceShutdown();
  });

  it('the check describes the gRPC call; an allow reaches the handler with the added metadata, a deny is PERMISSION_DENIED', async () => {
    const md = new grpc.Metadata();
    md.set('x-ext-authz', 'allow');
    const ok = await unary(client, { text: 'hi' }, { metadata: md });
    assert.equal(ok.error, undefined, ok.error?.details);
    assert.deepEqual((server.seen.at(-1) as { metadata: Record<string, unknown> }).metadata['x-ext-authz-check-result'], 'allowed');
    const http = (seen.at(-1) as Check).attributes.request.http;
    assert.deepEqual([http.method, http.path, http.protocol, http.headers['content-type']], ['POST', '/meshlet.test.Echo/Unary', 'HTTP/2', 'application/grpc']);
    const n = server.seen.length;
    const deny = new grpc.Metadata();
    deny.set('x-ext-authz', 'deny');
    const denied = await unary(client, { text: 'hi' }, { metadata: deny });
    assert.equal(denied.error?.code, grpc.status.PERMISSION_DENIED);
    assert.equal(server.seen.length, n, 'the handler never ran');
  });
});

describe('envoyExtAuthzGrpc on an mTLS connection, mesh to mesh', { skip: skipWithout('openssl') }, () => {
  const HOST = 'httpbin.default.svc.cluster.local';
  const seen: Check[] = [];
  const meshes: Mesh[] = [];
  let authorizer: { server: grpc.Server; port: number };
  const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'default' }, spec: { mtls: { mode: 'STRICT' } } };
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    authorizer.server.forceShutdown();
    cleanupPki();
  });

  it("the check names the caller's and this workload's SPIFFE IDs; Istio's sample allows service account a on them", async () => {
    const ca = makeCa({ name: 'cluster.local' });
    authorizer = await startAuthorizer(seen);
    const server = await createMesh({
      service: 'httpbin',
      serviceAccount: 'httpbin',
      config: [strict, { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'ext', namespace: 'default' }, spec: { action: 'CUSTOM', provider: { name: 'authz' }, rules: [{}] } }],
      extensionProviders: [{ name: 'authz', envoyExtAuthzGrpc: { service: '127.0.0.1', port: authorizer.port } }],
      logger: { warn: () => {} },
    });
    meshes.push(server);
    server.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'httpbin' }));
    const s = server.createServer((_req, res) => res.end('in'));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    const entry = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'httpbin', namespace: 'default' },
      spec: { hosts: [HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 8000, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: port }, serviceAccount: 'httpbin', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
    };
    for (const sa of ['a', 'b']) {
      const client = await createMesh({ service: sa, serviceAccount: sa, config: [entry], logger: { warn: () => {} } });
      meshes.push(client);
      client.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: sa }));
      const r = await client.fetch(`http://${HOST}:8000/`);
      assert.equal(r.status, sa === 'a' ? 200 : 403, await r.text());
      const a = (seen.at(-1) as Check).attributes;
      assert.equal(a.source.principal, `spiffe://cluster.local/ns/default/sa/${sa}`);
      assert.equal(a.destination.principal, 'spiffe://cluster.local/ns/default/sa/httpbin');
      assert.equal(a.request.http.scheme, 'https');
    }
  });
});

describe('envoyExtAuthzGrpc with includeRequestBodyInCheck: the body in the CheckRequest, decoded by proto-loader', () => {
  const seen: (Check & { attributes: { request: { http: { body: string; raw_body: Buffer } } } })[] = [];
  let authorizer: { server: grpc.Server; port: number };
  const meshes: Mesh[] = [];
  const servers: Server[] = [];
  before(async () => {
    authorizer = await startAuthorizer(seen as Check[]);
  });
  after(async () => {
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    await Promise.all(meshes.map((m) => m.close()));
    authorizer.server.forceShutdown();
  });

  async function appWith(body: { maxRequestBytes: number; allowPartialMessage?: boolean; packAsBytes?: boolean }): Promise<{ port: number; got: string[] }> {
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [{ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('ext'), spec: { action: 'CUSTOM', provider: { name: 'g' }, rules: [{}] } }],
      extensionProviders: [{ name: 'g', envoyExtAuthzGrpc: { service: '127.0.0.1', port: authorizer.port, includeRequestBodyInCheck: body } }],
      logger: { warn: () => {} },
    });
    meshes.push(mesh);
    const got: string[] = [];
    const s = mesh.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        got.push(Buffer.concat(chunks).toString('latin1'));
        res.end('ok');
      });
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { port: (s.address() as AddressInfo).port, got };
  }

  it('body as text (a byte that is not UTF-8 becomes "!"), size, x-envoy-auth-partial-body: false; the app reads the bytes as sent', async () => {
    const { port, got } = await appWith({ maxRequestBytes: 100 });
    const sent = Buffer.concat([Buffer.from('héllo '), Buffer.from([0xff, 0x41])]);
    const r = await raw(port, '/p', { method: 'POST', headers: { 'x-ext-authz': 'allow', 'content-length': String(sent.length) }, body: sent as unknown as string });
    assert.equal(r.statusCode, 200, r.text);
    const http = (seen.at(-1) as (typeof seen)[number]).attributes.request.http;
    assert.equal(http.body, 'héllo !A');
    assert.equal(http.raw_body.length, 0);
    assert.equal(http.size, sent.length);
    assert.equal(http.headers['x-envoy-auth-partial-body'], 'false');
    assert.equal(got.at(-1), sent.toString('latin1'));
  });

  it('packAsBytes with allowPartialMessage: raw_body has the first maxRequestBytes as sent, partial true; size counts what came', async () => {
    const { port, got } = await appWith({ maxRequestBytes: 4, allowPartialMessage: true, packAsBytes: true });
    const sent = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x02, 0x03, 0x04]);
    const r = await raw(port, '/p', { method: 'POST', headers: { 'x-ext-authz': 'allow', 'content-length': String(sent.length) }, body: sent as unknown as string });
    assert.equal(r.statusCode, 200, r.text);
    const http = (seen.at(-1) as (typeof seen)[number]).attributes.request.http;
    assert.deepEqual([...http.raw_body], [0xff, 0xfe, 0x00, 0x01]);
    assert.equal(http.body, '');
    assert.equal(http.headers['x-envoy-auth-partial-body'], 'true');
    assert.equal(http.size, sent.length);
    assert.equal(got.at(-1), sent.toString('latin1'));
  });

  it('a client’s own x-envoy-auth-partial-body never reaches the authorizer as sent', async () => {
    const { port } = await appWith({ maxRequestBytes: 100 });
    const r = await raw(port, '/p', { method: 'POST', headers: { 'x-ext-authz': 'allow', 'x-envoy-auth-partial-body': 'forged' }, body: 'abc' });
    assert.equal(r.statusCode, 200, r.text);
    assert.equal((seen.at(-1) as (typeof seen)[number]).attributes.request.http.headers['x-envoy-auth-partial-body'], 'false');
  });
});
