/**
 * Two meshes in one process judging what node:http hands a server's other listeners (WebSocket
 * upgrades) and what a grpc-js server serves: each mesh applies its own policies. `b.protect()` of
 * a server mesh A protected already, or of a server mesh A made, makes B judge its upgrades too
 * (before, B's call changed nothing: the server counted as protected by any mesh, and B's DENY
 * did not stop a WebSocket upgrade on B's path). A grpc-js server with both meshes' interceptors
 * runs both meshes' AuthorizationPolicies.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import express from 'express';
import { createMesh, type Mesh } from '../../src/index.ts';
import { collect, echo, EchoClient, type Echo, grpc, unary } from '../helpers/grpc.ts';
import { plainClient } from '../helpers/grpc-server.ts';
import { authorizationPolicy } from './mtls-helpers.ts';

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A mesh of workload `service` in foo whose AuthorizationPolicy denies `path`. */
async function denying(service: string, path: string): Promise<Mesh> {
  const m = await createMesh({ service, namespace: 'foo', logger: { warn: () => {} }, config: [authorizationPolicy(`deny-${service}`, 'foo', { action: 'DENY', rules: [{ to: [{ operation: { paths: [path] } }] }] })] as never });
  closers.push(() => m.close());
  return m;
}

const JWT = new URL('../fixtures/istio/jwt/', import.meta.url).pathname;
const DEMO = readFileSync(`${JWT}demo.jwt`, 'utf8').trim();

/** A mesh of workload `service` in foo that admits only requests with a valid token of Istio's demo issuer (consumed: not forwarded). */
async function tokenRequired(service: string): Promise<Mesh> {
  const m = await createMesh({
    service,
    namespace: 'foo',
    logger: { warn: () => {} },
    config: [
      { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'foo' }, spec: { jwtRules: [{ issuer: 'testing@secure.istio.io', jwks: readFileSync(`${JWT}jwks.json`, 'utf8') }] } },
      authorizationPolicy('need-token', 'foo', { action: 'ALLOW', rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] }),
    ] as never,
  });
  closers.push(() => m.close());
  return m;
}

/** Sends a WebSocket upgrade request on a fresh connection; resolves with the status line the server wrote. */
function upgrade(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      out += d;
    });
    s.on('error', reject);
    s.on('close', () => resolve(out.split('\r\n')[0] ?? ''));
    s.write(`GET ${path} HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  });
}

/** An 'upgrade' listener as a WebSocket library has one: 101, then closes. */
const onUpgrade = (_req: IncomingMessage, socket: Duplex) => {
  socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
};

async function listening(server: Server): Promise<number> {
  server.on('upgrade', onUpgrade);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  return (server.address() as AddressInfo).port;
}

describe('two meshes: WebSocket upgrades and gRPC', () => {
  it("b.protect() of a server a.protect() wrapped: B's DENY stops a WebSocket upgrade, A's still applies", async () => {
    const a = await denying('alpha', '/a/admin');
    const b = await denying('beta', '/b/admin');
    const server = createServer(express());
    a.protect(server);
    b.protect(server);
    b.protect(server); // a second call by one mesh changes nothing (judged once)
    const port = await listening(server);
    assert.equal(await upgrade(port, '/b/admin'), 'HTTP/1.1 403 Forbidden', "B's DENY");
    assert.equal(await upgrade(port, '/a/admin'), 'HTTP/1.1 403 Forbidden', "A's DENY");
    assert.equal(await upgrade(port, '/b/chat'), 'HTTP/1.1 101 Switching Protocols');
  });

  it("b.protect() of a server a.createServer() made: B's DENY stops a WebSocket upgrade, A's still applies", async () => {
    const a = await denying('alpha', '/a/admin');
    const b = await denying('beta', '/b/admin');
    const server = a.createServer(express());
    b.protect(server);
    const port = await listening(server);
    assert.equal(await upgrade(port, '/b/admin'), 'HTTP/1.1 403 Forbidden', "B's DENY");
    assert.equal(await upgrade(port, '/a/admin'), 'HTTP/1.1 403 Forbidden', "A's DENY");
    assert.equal(await upgrade(port, '/b/chat'), 'HTTP/1.1 101 Switching Protocols');
  });

  it("a request B's protect() judged, then A's server: B's middleware finds it judged by B (not judged again without the token B consumed)", async () => {
    const a = await denying('alpha', '/a/admin');
    const b = await tokenRequired('beta');
    const app = express();
    app.use(a.express());
    app.get('/b', b.express(), (req, res) => {
      res.send(`b served ${req.headers.authorization === undefined ? 'without' : 'with'} the token`);
    });
    const server = a.createServer(app);
    b.protect(server);
    const port = await listening(server);
    const ok = await fetch(`http://127.0.0.1:${port}/b`, { headers: { authorization: `Bearer ${DEMO}` } });
    assert.deepEqual({ status: ok.status, body: await ok.text() }, { status: 200, body: 'b served without the token' });
    const none = await fetch(`http://127.0.0.1:${port}/b`);
    assert.equal(none.status, 403, "B's policy: no token");
    await none.text();
  });

  it("mesh B's middleware on a server mesh A made says that B does not judge its 'upgrade' listeners", async () => {
    const warnings: string[] = [];
    const a = await denying('alpha', '/a/admin');
    const b = await createMesh({ service: 'beta', namespace: 'foo', config: [], logger: { warn: (m: string) => warnings.push(m) } });
    closers.push(() => b.close());
    const app = express();
    app.use(b.express());
    app.get('/', (_req, res) => {
      res.send('ok');
    });
    const port = await listening(a.createServer(app));
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), 'ok');
    assert.ok(warnings.some((w) => w.includes("'upgrade'") && w.includes('mesh.protect(server)')), JSON.stringify(warnings));
  });

  it("a grpc-js server with both meshes' interceptors: each mesh's DENY applies to its calls", async () => {
    const ECHO = '/meshlet.test.Echo';
    const a = await denying('alpha', `${ECHO}/Bidi`);
    const b = await denying('beta', `${ECHO}/Unary`);
    const server = new grpc.Server({ interceptors: [...a.grpc.serverInterceptors(), ...b.grpc.serverInterceptors()] });
    server.addService(EchoClient.service, echo('s') as never);
    const port = await a.grpc.bind(server, '127.0.0.1:0');
    closers.push(async () => server.forceShutdown());
    const client = plainClient(port) as Echo;
    closers.push(async () => client.close());
    const r = await unary(client, { text: 'u' });
    assert.equal(r.error?.code, grpc.status.PERMISSION_DENIED, "B's DENY");
    assert.equal(r.error?.details, 'RBAC: access denied');
    const bidi = client.Bidi();
    bidi.on('data', () => undefined);
    bidi.on('error', () => undefined);
    const denied = new Promise<grpc.StatusObject>((resolve) => bidi.on('status', resolve));
    bidi.end();
    assert.equal((await denied).code, grpc.status.PERMISSION_DENIED, "A's DENY");
    const served = await collect(client.ServerStream({ text: 's', count: 2 }));
    assert.deepEqual({ code: served.status.code, n: served.messages.length }, { code: grpc.status.OK, n: 2 });
  });
});
