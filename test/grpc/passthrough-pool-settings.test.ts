/**
 * gRPC calls to a ServiceEntry with resolution NONE go to the address the caller named, on
 * connections of their own; istiod builds that ORIGINAL_DST cluster with the DestinationRule's
 * connection pool as any cluster's (pilot/pkg/networking/core/cluster_traffic_policy.go
 * `applyConnectionPool`: `idle_timeout` and `connection_keepalive` in its HTTP protocol options).
 * So `http.idleTimeout` closes a connection no call has used for that long (on the mesh clock,
 * before the 5 s cleanup of unused passthrough hosts), and `http.http2KeepAlive` sends PINGs on it —
 * as on the mesh's other gRPC connections.
 */
import assert from 'node:assert/strict';
import { createServer as createH2Server, constants as h2, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { type Echo, EchoClient, type GrpcUpstream, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { until } from '../helpers/until.ts';
import { destinationRule } from '../helpers/upstreams.ts';

/** A resolution-NONE ServiceEntry for `localhost:port` (GRPC) and its DestinationRule's connection pool. */
function noneCluster(port: number, connectionPool: Record<string, unknown>): object[] {
  return [
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'ext', namespace: 'default' }, spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: port, name: 'grpc', protocol: 'GRPC' }] } },
    destinationRule('ext', 'localhost', { trafficPolicy: { connectionPool } }),
  ];
}

describe('gRPC to a resolution-NONE ServiceEntry: the DestinationRule idleTimeout and http2KeepAlive', () => {
  const meshes: Mesh[] = [];
  const clients: Echo[] = [];
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(closers.map((c) => c()));
  });

  it('idleTimeout (on the mesh clock): a connection unused for that long is closed, the next call opens another', async () => {
    const up: GrpcUpstream = await startGrpcUpstream('a');
    closers.push(() => up.close());
    const peers: string[] = [];
    const inner = up.behaviour.Unary;
    up.behaviour.Unary = (call, cb, hit) => {
      peers.push(call.getPeer());
      inner(call, cb, hit);
    };
    const clock = new ManualClock(1_000_000);
    const mesh = await createMesh({ service: 'client', clock, config: noneCluster(up.port, { http: { idleTimeout: '2s' } }) });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, `localhost:${up.port}`) as unknown as Echo;
    clients.push(client);
    const call = async (text: string) => assert.equal((await unary(client, { text })).reply?.text, text);

    await call('1');
    clock.advance(1999);
    await sleep(20);
    await call('2');
    assert.equal(peers[1], peers[0], 'a connection idle for less than idleTimeout is reused');
    // 2 s after the last call, still before the passthrough cleanup (5 s after the connection was made).
    clock.advance(2000);
    await sleep(20);
    await call('3');
    assert.notEqual(peers[2], peers[0], 'the idle connection was closed: the next call opened another');
  });

  it('http2KeepAlive: the connection sends PINGs at the interval', async () => {
    let pings = 0;
    const sessions = new Set<ServerHttp2Session>();
    const server = createH2Server();
    server.on('session', (s) => {
      sessions.add(s);
      s.on('ping', () => pings++);
      s.on('close', () => sessions.delete(s));
    });
    server.on('stream', (stream) => {
      stream.on('data', () => {});
      stream.respond({ [h2.HTTP2_HEADER_STATUS]: 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'no such method' }, { endStream: true });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sessions) s.destroy();
          server.close(() => r());
        }),
    );
    const port = (server.address() as AddressInfo).port;
    const mesh = await createMesh({ service: 'client', config: noneCluster(port, { http: { http2KeepAlive: { interval: '50ms', timeout: '10s' } } }) });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, `localhost:${port}`) as unknown as Echo;
    clients.push(client);
    assert.equal((await unary(client, { text: 'x' })).error?.code, 12);
    // grpc-js's own keepalive is off by default and the mesh's connections are its own: PINGs are the rule's.
    await until(() => pings >= 3, 'three PINGs on the passthrough connection', 20_000, 20);
  });
});
