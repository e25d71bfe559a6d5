/**
 * MeshConfig's mesh-wide `tcpKeepalive` on real sockets. istiod applies it to every cluster it
 * builds, then sets each field a DestinationRule's `connectionPool.tcp.tcpKeepalive` gives over it
 * (pilot/pkg/networking/core/cluster.go `applyTCPKeepalive` → `setKeepAliveSettings`), the
 * PassthroughCluster included (cluster_builder.go `buildDefaultPassthroughCluster` →
 * `applyConnectionPool`). Seen as the `socket.setKeepAlive(true, time, interval, probes)` the mesh
 * makes for fetch through `mesh.dispatcher` and for grpc-js clients through the mesh, and in
 * `mesh.explain()`, `/config_dump` and `meshlet routes --mesh-config`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { configDump } from '../../src/mesh-admin-views.ts';
import { meshlet } from '../cli/helpers.ts';
import { type Echo, EchoClient, type GrpcUpstream, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { keepAliveCalls } from '../helpers/keepalive.ts';
import { destinationRule, serviceEntry } from '../helpers/upstreams.ts';

const MESH_WIDE = [true, 41_000, 13_000, 5];

describe("MeshConfig tcpKeepalive: every cluster's connections and the PassthroughCluster's, a DestinationRule's fields over it", () => {
  let http1: Server;
  let port: number;
  let up: GrpcUpstream;
  let mesh: Mesh | undefined;
  const clients: Echo[] = [];

  before(async () => {
    http1 = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => http1.listen(0, '127.0.0.1', r));
    port = (http1.address() as AddressInfo).port;
    up = await startGrpcUpstream('g');
    const ports = (protocol: string) => ({ ports: [{ number: 9080, name: 'http', protocol }] });
    mesh = await createMesh({
      service: 'client',
      meshConfig: { tcpKeepalive: { time: '41s', interval: '13.5s', probes: 5 } },
      config: [
        serviceEntry('plain', 'plain.default.svc.cluster.local', 9080, [{ port }], ports('HTTP')),
        serviceEntry('probed', 'probed.default.svc.cluster.local', 9080, [{ port }], ports('HTTP')),
        destinationRule('probed', 'probed', { trafficPolicy: { connectionPool: { tcp: { tcpKeepalive: { probes: 2 } } } } }),
        serviceEntry('rpc', 'rpc.default.svc.cluster.local', 9080, [{ port: up.port }], ports('GRPC')),
      ],
    });
  });

  after(async () => {
    for (const c of clients) c.close();
    await mesh?.close();
    await Promise.all([new Promise<void>((r) => http1.close(() => r())), up.close()]);
  });

  it('HTTP: a cluster without a DestinationRule keepalive gets the mesh-wide one (whole seconds, as istiod sends it)', async () => {
    const calls = await keepAliveCalls(async () => assert.equal(await (await (mesh as Mesh).fetch('http://plain:9080/')).text(), 'ok'));
    assert.deepEqual(calls.at(-1), MESH_WIDE);
  });

  it("HTTP: a DestinationRule's field replaces the mesh's, the others stay the mesh's", async () => {
    const calls = await keepAliveCalls(async () => assert.equal(await (await (mesh as Mesh).fetch('http://probed:9080/')).text(), 'ok'));
    assert.deepEqual(calls.at(-1), [true, 41_000, 13_000, 2]);
  });

  it("HTTP: ALLOW_ANY's PassthroughCluster gets it too (Node's fetch through mesh.dispatcher)", async () => {
    const calls = await keepAliveCalls(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`, { dispatcher: (mesh as Mesh).dispatcher } as RequestInit);
      assert.equal(await res.text(), 'ok');
    });
    assert.deepEqual(calls.at(-1), MESH_WIDE);
  });

  it('gRPC: a mesh cluster and the PassthroughCluster get it', async () => {
    const viaCluster = (mesh as Mesh).grpc.client(EchoClient, 'rpc:9080') as unknown as Echo;
    const viaPassthrough = (mesh as Mesh).grpc.client(EchoClient, `127.0.0.1:${up.port}`) as unknown as Echo;
    clients.push(viaCluster, viaPassthrough);
    const cluster = await keepAliveCalls(async () => assert.equal((await unary(viaCluster, { text: 'a' })).reply?.text, 'a'));
    assert.deepEqual(cluster, [MESH_WIDE]);
    const passthrough = await keepAliveCalls(async () => assert.equal((await unary(viaPassthrough, { text: 'b' })).reply?.text, 'b'));
    assert.deepEqual(passthrough, [MESH_WIDE]);
  });

  it('mesh.explain() and /config_dump show the keepalive each cluster runs with', () => {
    assert.match((mesh as Mesh).explain({ url: 'http://plain:9080/' }).targets[0]?.connectionPool ?? '', /, TCP keepalive \(idle 41s, interval 13s, 5 probes\)$/);
    assert.match((mesh as Mesh).explain({ url: 'http://probed:9080/' }).targets[0]?.connectionPool ?? '', /, TCP keepalive \(idle 41s, interval 13s, 2 probes\)$/);
    assert.match((mesh as Mesh).explain({ url: 'http://192.0.2.1:81/' }).targets[0]?.connectionPool ?? '', /^no limits, connect timeout 10s, TCP keepalive \(idle 41s, interval 13s, 5 probes\)$/);
    const dump = configDump(mesh as Mesh, { service: 'client' });
    const probed = dump.clusters.find((c) => c.name === 'outbound|9080||probed.default.svc.cluster.local');
    assert.deepEqual(probed?.settings.connectionPool.tcpKeepalive, { timeMs: 41_000, intervalMs: 13_000, probes: 2 });
    assert.match(probed?.connectionPool ?? '', /TCP keepalive \(idle 41s, interval 13s, 2 probes\)/);
  });
});

describe('meshlet routes --mesh-config: MeshConfig tcpKeepalive in each cluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-mesh-keepalive-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("shows the mesh's keepalive under the DestinationRule's fields (text and JSON)", () => {
    const config = join(dir, 'mesh.yaml');
    writeFileSync(
      config,
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: plain, namespace: default}
spec: {hosts: [plain.internal], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 8080, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: plain, namespace: default}
spec: {host: plain.internal, trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 20s}}}}}
`,
    );
    const meshConfig = join(dir, 'mesh-config.yaml');
    writeFileSync(meshConfig, 'tcpKeepalive: {time: 300s, probes: 3}\n');
    const r = meshlet(['routes', config, '--service', 'client', '--mesh-config', meshConfig, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const c = (JSON.parse(r.stdout).clusters as { name: string; connectionPool: string; settings: { connectionPool: { tcpKeepalive: unknown } } }[]).find((x) => x.name === 'outbound|8080||plain.internal');
    assert.deepEqual(c?.settings.connectionPool.tcpKeepalive, { timeMs: 20_000, intervalMs: null, probes: 3 });
    assert.match(c?.connectionPool ?? '', /TCP keepalive \(idle 20s, 3 probes\)$/);
  });
});

describe('createMesh: a bad tcpKeepalive is refused, naming the field', () => {
  it('the option and the MeshConfig field', async () => {
    await assert.rejects(createMesh({ service: 'a', config: [], tcpKeepalive: { timeMs: -1 } }), /`tcpKeepalive\.timeMs` must be a non-negative number of milliseconds, got -1/);
    await assert.rejects(createMesh({ service: 'a', config: [], tcpKeepalive: { probes: 1.5 } }), /`tcpKeepalive\.probes` must be a whole number of probes, got 1\.5/);
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: { tcpKeepalive: { time: 'soon' } } }), /`meshConfig\.tcpKeepalive\.time` must be a duration/);
  });
});
