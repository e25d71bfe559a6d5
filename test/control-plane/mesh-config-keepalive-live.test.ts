/**
 * A control plane's MeshConfig `tcpKeepalive` changed while a mesh runs applies at once to new
 * connections, as istiod's full push on a MeshConfig change (pilot/pkg/bootstrap/server.go
 * `initMeshHandlers`) rebuilds every cluster with the new `upstream_connection_options.tcp_keepalive`
 * (pilot/pkg/networking/core/cluster.go `applyTCPKeepalive`), the PassthroughCluster's included
 * (cluster_builder.go `buildDefaultPassthroughCluster`), and Envoy drains the replaced clusters'
 * pools (source/common/upstream/cluster_manager_impl.cc `ClusterEntry::~ClusterEntry` →
 * drainConnPools): a call in flight finishes on its connection. A DestinationRule's field wins
 * over the pushed one, and a mesh's own `createMesh({ tcpKeepalive })` over both.
 * Seen as the `socket.setKeepAlive(true, time, interval, probes)` calls of new connections.
 * Real control plane, real meshes fed over loopback, real HTTP and gRPC upstreams.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createMesh, type Mesh, type MeshOptions } from '../../src/index.ts';
import { type Echo, EchoClient, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { keepAliveCalls } from '../helpers/keepalive.ts';
import { call, destinationRule, serviceEntry } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

/** An HTTP upstream whose `/hold` requests wait until `release()`; the others answer at once. */
async function holdingUpstream(): Promise<{ port: number; held: ServerResponse[]; release(): void; close(): Promise<void> }> {
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/hold') held.push(res);
    else res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    held,
    release: () => {
      for (const r of held.splice(0)) r.end('held ok');
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function fedMesh(t: TestControlPlane, o: Partial<MeshOptions> = {}): Promise<Mesh> {
  const token = await t.cp.mintToken({ service: 'client', namespace: 'default' });
  const mesh = await createMesh({ service: 'client', controlPlane: t.cp.url, token, identity: 'none', logger: quietLogger, ...o });
  open.unshift(mesh);
  return mesh;
}

/**
 * The last `setKeepAlive` the mesh made on a connection it opened while `fn` ran: client sockets only (the upstreams'
 * and the control plane's accepted sockets are this process's too), and not undici's own 2-argument call before the mesh's.
 */
async function lastCall(fn: () => Promise<void>): Promise<unknown[] | undefined> {
  const calls = await keepAliveCalls(fn, (socket) => (socket as { server?: unknown }).server == null);
  return calls.filter((c) => c.length === 4).at(-1);
}

describe("a control plane's MeshConfig tcpKeepalive changed while the mesh runs", () => {
  it('applies to new connections of HTTP and gRPC clusters and of the PassthroughCluster; a call in flight finishes; a DestinationRule field and the mesh’s own option win', async () => {
    const http = await holdingUpstream();
    open.push(http, { close: () => http.release() });
    const up: GrpcUpstream = await startGrpcUpstream('g');
    open.push(up);
    const ports = { ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }] };
    const t = await startTestControlPlane(
      {
        se: [
          serviceEntry('plain', 'plain.default.svc.cluster.local', 9080, [{ port: http.port }], ports),
          serviceEntry('probed', 'probed.default.svc.cluster.local', 9080, [{ port: http.port }], ports),
          destinationRule('probed', 'probed.default.svc.cluster.local', { trafficPolicy: { connectionPool: { tcp: { tcpKeepalive: { probes: 2 } } } } }),
          grpcServiceEntry('rpc', 'rpc.default.svc.cluster.local', 9090, [{ port: up.port }]),
        ],
      },
      { meshConfig: { tcpKeepalive: { time: '41s', interval: '13s', probes: 5 } } },
    );
    open.push({ close: () => t.close() });
    const warnings: string[] = [];
    const mesh = await fedMesh(t, { logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    const own = await fedMesh(t, { tcpKeepalive: { timeMs: 30_000, intervalMs: 10_000, probes: 4 } });
    const rpc = mesh.grpc.client(EchoClient, 'rpc:9090') as unknown as Echo;
    const rpcOutside = mesh.grpc.client(EchoClient, `127.0.0.1:${up.port}`) as unknown as Echo;
    open.push(rpc, rpcOutside);
    const outside = `http://127.0.0.1:${http.port}/`;
    const fetchOutside = async () => assert.equal(await (await fetch(outside, { dispatcher: mesh.dispatcher } as RequestInit)).text(), 'ok');

    // Before the change: the pushed keepalive (whole seconds), the DestinationRule's probes over it.
    assert.deepEqual(await lastCall(async () => assert.equal((await call(mesh, 'http://plain:9080/')).body, 'ok')), [true, 41_000, 13_000, 5]);
    assert.deepEqual(await lastCall(async () => assert.equal((await call(mesh, 'http://probed:9080/')).body, 'ok')), [true, 41_000, 13_000, 2]);
    assert.deepEqual(await lastCall(async () => assert.equal((await unary(rpc, { text: 'a' })).reply?.text, 'a')), [true, 41_000, 13_000, 5]);
    assert.deepEqual(await lastCall(fetchOutside), [true, 41_000, 13_000, 5]);
    assert.deepEqual(await lastCall(async () => assert.equal((await call(own, 'http://plain:9080/')).body, 'ok')), [true, 30_000, 10_000, 4]);

    // A call in flight on a connection made with the old keepalive.
    const inFlight = call(mesh, 'http://plain:9080/hold');
    await until(() => http.held.length === 1, 'the held request reached the upstream');

    const before = mesh.snapshot;
    const ownBefore = own.snapshot;
    // connectTimeout too, so that the mesh with its own keepalive compiles again (for the keepalive alone it has nothing to do).
    t.cp.setMeshConfig({ tcpKeepalive: { time: '70s', interval: '20s', probes: 3 }, connectTimeout: '9s' }, 'test-mesh.yaml');
    await until(() => mesh.snapshot !== before && own.snapshot !== ownBefore, 'the new MeshConfig compiled in');
    assert.deepEqual(mesh.snapshot.meshSettings?.tcpKeepalive, { timeMs: 70_000, intervalMs: 20_000, probes: 3 });

    // New connections take it at once; the DestinationRule's field still wins.
    assert.deepEqual(await lastCall(async () => assert.equal((await call(mesh, 'http://plain:9080/')).body, 'ok')), [true, 70_000, 20_000, 3]);
    assert.deepEqual(await lastCall(async () => assert.equal((await call(mesh, 'http://probed:9080/')).body, 'ok')), [true, 70_000, 20_000, 2]);
    assert.deepEqual(await lastCall(async () => assert.equal((await unary(rpc, { text: 'b' })).reply?.text, 'b')), [true, 70_000, 20_000, 3]);
    assert.deepEqual(await lastCall(async () => assert.equal((await unary(rpcOutside, { text: 'c' })).reply?.text, 'c')), [true, 70_000, 20_000, 3]);
    assert.deepEqual(await lastCall(fetchOutside), [true, 70_000, 20_000, 3]);
    assert.match(mesh.explain({ url: 'http://plain:9080/' }).targets[0]?.connectionPool ?? '', /TCP keepalive \(idle 70s, interval 20s, 3 probes\)$/);
    assert.match(mesh.explain({ url: outside }).targets[0]?.connectionPool ?? '', /TCP keepalive \(idle 70s, interval 20s, 3 probes\)$/);

    // The call in flight finishes on its connection.
    http.release();
    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'held ok');

    // The mesh's own option still wins.
    assert.deepEqual(own.snapshot.meshSettings?.tcpKeepalive, { timeMs: 30_000, intervalMs: 10_000, probes: 4 });
    assert.match(own.explain({ url: 'http://plain:9080/' }).targets[0]?.connectionPool ?? '', /TCP keepalive \(idle 30s, interval 10s, 4 probes\)$/);
    // Applied live: no "at its next start" warning for it.
    assert.deepEqual(
      warnings.filter((w) => /tcpKeepalive/.test(w)),
      [],
    );

    // Taken back: a MeshConfig without it leaves new connections without a mesh keepalive (the DestinationRule's field alone).
    const third = mesh.snapshot;
    t.cp.setMeshConfig({}, 'test-mesh.yaml');
    await until(() => mesh.snapshot !== third, 'the MeshConfig without tcpKeepalive compiled in');
    assert.equal(mesh.snapshot.meshSettings?.tcpKeepalive, null);
    const probed = await lastCall(async () => assert.equal((await call(mesh, 'http://probed:9080/')).body, 'ok'));
    assert.equal(probed?.[3], 2, "the DestinationRule's probes");
    assert.notEqual(probed?.[1], 70_000, 'not the taken-back mesh keepalive');
    assert.equal(await lastCall(async () => assert.equal((await call(mesh, 'http://plain:9080/')).body, 'ok')), undefined, 'no keepalive set by the mesh');
  });
});
