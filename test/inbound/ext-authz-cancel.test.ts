/**
 * A caller that goes away while an external authorizer is deciding about its request: the check
 * is cancelled, as Envoy's ext_authz filter cancels it (`onDestroy` → `client_->cancel()`) when
 * the downstream resets — the authorizer sees its check request (HTTP) or call (gRPC) end, and
 * nothing stays pending for the rest of the provider's `timeout` (600s by default). Through
 * node:http (`mesh.createServer`), Express, Fastify and a grpc-js server, with real authorizers
 * on 127.0.0.1 that never answer. The provider's clock is a ManualClock that never moves, so
 * only the cancellation can end a check.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createMesh, type Mesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { envoyExtAuthzGrpc } from '../../src/security/authz/ext-authz-grpc.ts';
import { envoyExtAuthzHttp } from '../../src/security/authz/ext-authz-http.ts';
import type { AuthzRequest } from '../../src/security/authz/types.ts';
import { frameworks } from '../helpers/frameworks.ts';
import { type Echo, EchoClient } from '../helpers/grpc.ts';
import { type MeshGrpcServer, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const PROTO = new URL('../../examples/ext-authz/ext-authz.proto', import.meta.url).pathname;

/** An HTTP authorizer that never answers: resolves `arrived` with each check's request, which the test then watches close. */
async function silentHttpAuthorizer(): Promise<{ server: Server; port: number; next(): Promise<IncomingMessage> }> {
  const waiting: ((r: IncomingMessage) => void)[] = [];
  const arrived: IncomingMessage[] = [];
  const server = createServer((req) => {
    const w = waiting.shift();
    if (w === undefined) arrived.push(req);
    else w(req);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    next: () => {
      const r = arrived.shift();
      return r === undefined ? new Promise((resolve) => waiting.push(resolve)) : Promise.resolve(r);
    },
  };
}

/** Resolves when the check request's connection closes (the provider cancelled it). */
function closed(req: IncomingMessage): Promise<void> {
  return new Promise((r) => {
    if (req.socket.destroyed) r();
    else req.socket.once('close', () => r());
  });
}

/** Sends a request on a raw socket; returns the socket, to be destroyed by the test (the caller going away). */
function sendAndHold(port: number, path: string): Promise<ReturnType<typeof connect>> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(`GET ${path} HTTP/1.1\r\nhost: httpbin.foo\r\n\r\n`);
      resolve(s);
    });
    s.on('error', () => undefined);
  });
}

const policy = (provider: string) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'ext', namespace: 'foo' },
  spec: { action: 'CUSTOM', provider: { name: provider }, rules: [{ to: [{ operation: { paths: ['/ext/*', '/meshlet.test.Echo/*'] } }] }] },
});

describe('the caller goes away while the external authorizer (envoyExtAuthzHttp) is asked: the check is cancelled', () => {
  let ext: Awaited<ReturnType<typeof silentHttpAuthorizer>>;
  let mesh: Mesh;
  before(async () => {
    ext = await silentHttpAuthorizer();
    mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      clock: new ManualClock(),
      config: [policy('http-authz')] as never,
      extensionProviders: [{ name: 'http-authz', envoyExtAuthzHttp: { service: '127.0.0.1', port: ext.port } }],
      logger: { warn: () => undefined, info: () => undefined },
    });
  });
  after(async () => {
    await mesh.close();
    ext.server.closeAllConnections();
    await new Promise<void>((r) => ext.server.close(() => r()));
  });

  for (const fw of frameworks.filter((f) => /node:http|Express 5|Fastify/.test(f.name))) {
    it(`${fw.name}: the authorizer's check request ends when the caller's connection does`, async () => {
      const s = await fw.start(mesh);
      try {
        const caller = await sendAndHold(s.port, '/ext/a');
        const check = await ext.next();
        assert.equal(check.url, '/ext/a');
        caller.destroy();
        await closed(check);
        assert.equal(check.socket.destroyed, true);
      } finally {
        await s.close();
      }
    });
  }

  it("mesh.createServer, a WebSocket upgrade: the check ends when the caller's connection does, and the app's 'upgrade' listener never runs", async () => {
    const server = mesh.createServer((_q, res) => res.end('http'));
    let upgraded = 0;
    server.on('upgrade', (_req, socket) => {
      upgraded++;
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const caller = await new Promise<ReturnType<typeof connect>>((resolve) => {
        const c = connect((server.address() as AddressInfo).port, '127.0.0.1', () => {
          c.write('GET /ext/ws HTTP/1.1\r\nhost: httpbin.foo\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
          resolve(c);
        });
        c.on('error', () => undefined);
      });
      const check = await ext.next();
      assert.equal(check.url, '/ext/ws');
      caller.destroy();
      await closed(check);
      assert.equal(upgraded, 0);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('envoyExtAuthzHttp / envoyExtAuthzGrpc providers: a request whose signal aborts ends its check with a local answer', () => {
  const req = (signal: AbortSignal): AuthzRequest => ({
    method: 'GET',
    authority: 'httpbin.foo',
    path: '/ext/a',
    headers: {},
    remoteAddress: '127.0.0.1',
    localPort: 8000,
    peer: undefined,
    requestPrincipal: undefined,
    claims: undefined,
    signal,
  });

  it('HTTP: the pending check is aborted, and the answer says the caller went away (not ext_authz_error, even with failOpen)', async () => {
    const ext = await silentHttpAuthorizer();
    try {
      const check = envoyExtAuthzHttp({ service: '127.0.0.1', port: ext.port, failOpen: true }, { clock: new ManualClock() });
      const ac = new AbortController();
      const answer = check(req(ac.signal));
      const seen = await ext.next();
      ac.abort();
      const a = await answer;
      assert.equal(a.allowed, false);
      assert.equal(a.allowed === false ? a.local?.details : undefined, 'downstream_remote_disconnect');
      await closed(seen);
    } finally {
      ext.server.closeAllConnections();
      await new Promise<void>((r) => ext.server.close(() => r()));
    }
  });

  it('gRPC: the pending call is cancelled', async () => {
    let cancel = 0;
    const ac = new AbortController();
    const check = envoyExtAuthzGrpc(
      { service: '127.0.0.1', port: 9000 },
      {
        clock: new ManualClock(),
        client: () => ({
          makeUnaryRequest: (() => {
            queueMicrotask(() => ac.abort());
            return { cancel: () => cancel++ };
          }) as never,
        }),
      },
    );
    const a = await check(req(ac.signal));
    assert.equal(a.allowed === false ? a.local?.details : undefined, 'downstream_remote_disconnect');
    assert.equal(cancel, 1);
  });
});

describe('a gRPC call cancelled while the envoyExtAuthzGrpc authorizer is asked: the check call is cancelled', () => {
  let authz: grpc.Server;
  let authzPort: number;
  const checks: grpc.ServerUnaryCall<unknown, unknown>[] = [];
  const waiting: ((c: grpc.ServerUnaryCall<unknown, unknown>) => void)[] = [];
  let mesh: Mesh;
  let app: MeshGrpcServer;
  before(async () => {
    const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { auth: { v3: { Authorization: { service: grpc.ServiceDefinition } } } } } };
    authz = new grpc.Server();
    // Never answers.
    authz.addService(pkg.envoy.service.auth.v3.Authorization.service, {
      Check: (call: grpc.ServerUnaryCall<unknown, unknown>) => {
        const w = waiting.shift();
        if (w === undefined) checks.push(call);
        else w(call);
      },
    });
    authzPort = await new Promise<number>((res, rej) => authz.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      clock: new ManualClock(),
      config: [policy('grpc-authz')] as never,
      extensionProviders: [{ name: 'grpc-authz', envoyExtAuthzGrpc: { service: '127.0.0.1', port: authzPort } }],
      logger: { warn: () => undefined, info: () => undefined },
    });
    app = await startMeshGrpcServer(mesh);
  });
  after(async () => {
    await app.close();
    await mesh.close();
    authz.forceShutdown();
  });

  it('the authorizer sees its Check call cancelled when the caller cancels', async () => {
    const client = new EchoClient(`127.0.0.1:${app.port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    try {
      const call = client.Unary({ text: 'hi' }, new grpc.Metadata(), {}, () => undefined);
      const check = checks.shift() ?? (await new Promise<grpc.ServerUnaryCall<unknown, unknown>>((r) => waiting.push(r)));
      const cancelled = new Promise<void>((r) => check.once('cancelled', () => r()));
      call.cancel();
      await cancelled;
      assert.equal(check.cancelled, true);
    } finally {
      client.close();
    }
  });
});
