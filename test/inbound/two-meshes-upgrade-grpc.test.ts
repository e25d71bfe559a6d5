/**
 * Two meshes in one process, one server: each mesh judges WebSocket upgrades and gRPC calls by
 * its own policies, as each judges HTTP requests (10a7de7) — two sidecars each enforce their own
 * pod's. `b.protect(server)` on a server mesh A made or protected already was a no-op (protect()
 * kept one process-wide record of protected servers, and a mesh's own server counted as protected),
 * so B's AuthorizationPolicy never saw an upgrade on it.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { EchoClient, grpc, type Echo, echo, unary } from '../helpers/grpc.ts';
import { authorizationPolicy } from './mtls-helpers.ts';

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A mesh of workload `service` in foo that denies paths `deny`. */
async function mesh(service: string, deny: string[]): Promise<Mesh> {
  const m = await createMesh({ service, namespace: 'foo', logger: { warn: () => {} }, config: [authorizationPolicy(`deny-${service}`, 'foo', { action: 'DENY', rules: [{ to: [{ operation: { paths: deny } }] }] })] as never });
  closers.push(() => m.close());
  return m;
}

/** Sends an upgrade request; resolves with the status line of the answer. */
function upgrade(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (out += d));
    s.on('error', reject);
    s.on('close', () => resolve(out.slice(0, out.indexOf('\r\n'))));
    s.write(`GET ${path} HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  });
}

function acceptUpgrades(server: Server): void {
  server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  return (server.address() as AddressInfo).port;
}

describe('two meshes, one server: WebSocket upgrades', () => {
  it("b.protect() of mesh A's server: B's AuthorizationPolicy applies to upgrades (and requests) there, A's still does", async () => {
    const a = await mesh('alpha', ['/a/admin']);
    const b = await mesh('beta', ['/b/admin']);
    const server = a.createServer((_req, res) => res.end('ok'));
    acceptUpgrades(server);
    assert.equal(b.protect(server), server);
    const port = await listen(server);
    assert.equal(await upgrade(port, '/ws'), 'HTTP/1.1 101 Switching Protocols');
    assert.equal(await upgrade(port, '/b/admin'), 'HTTP/1.1 403 Forbidden', "B's DENY");
    assert.equal(await upgrade(port, '/a/admin'), 'HTTP/1.1 403 Forbidden', "A's DENY");
    const r = await request(`http://127.0.0.1:${port}/b/admin`);
    await r.body.dump();
    assert.equal(r.statusCode, 403);
  });

  it('an app’s server that both meshes protect: each judges', async () => {
    const a = await mesh('alpha', ['/a/admin']);
    const b = await mesh('beta', ['/b/admin']);
    const server = createServer((_req, res) => res.end('ok'));
    acceptUpgrades(server);
    a.protect(server);
    b.protect(server);
    // Twice by one mesh: judged once by it.
    b.protect(server);
    const port = await listen(server);
    assert.equal(await upgrade(port, '/ws'), 'HTTP/1.1 101 Switching Protocols');
    assert.equal(await upgrade(port, '/a/admin'), 'HTTP/1.1 403 Forbidden', "A's DENY");
    assert.equal(await upgrade(port, '/b/admin'), 'HTTP/1.1 403 Forbidden', "B's DENY");
  });
});

describe('two meshes, one gRPC server', () => {
  it("each mesh's serverInterceptors() judge every call by its own policies", async () => {
    const a = await mesh('alpha', ['/meshlet.test.Echo/ServerStream']);
    const b = await mesh('beta', ['/meshlet.test.Echo/Unary']);
    const server = new grpc.Server({ interceptors: [...a.grpc.serverInterceptors(), ...b.grpc.serverInterceptors()] });
    server.addService(EchoClient.service, echo('s') as never);
    const port = await a.grpc.bind(server, '127.0.0.1:0');
    const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    closers.push(async () => client.close());
    const r = await unary(client, { text: 'x' });
    assert.deepEqual([r.error?.code, r.error?.details], [grpc.status.PERMISSION_DENIED, 'RBAC: access denied'], "B's DENY");
    const s = await new Promise<grpc.StatusObject>((resolve) => {
      const st = client.ServerStream({ text: 'x', count: 1 });
      st.on('data', () => undefined);
      st.on('error', () => undefined);
      st.on('status', resolve);
    });
    assert.equal(s.code, grpc.status.PERMISSION_DENIED, "A's DENY");
  });
});
