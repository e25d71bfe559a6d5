/**
 * A gRPC call to a ServiceEntry with resolution NONE (istiod's ORIGINAL_DST cluster, whose
 * DestinationRule connection pool applies as to any cluster: pilot/pkg/networking/core/cluster.go
 * `applyTCPKeepalive`, `upstream_connection_options.tcp_keepalive`) connects with the rule's `tcp.tcpKeepalive`, as the mesh's other
 * gRPC connections do: seen on the real socket (`setKeepAlive(true, time, interval, probes)`).
 * ALLOW_ANY's PassthroughCluster, which no DestinationRule configures, sets none, and a call there
 * to the same address does not share the NONE cluster's connection.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { destinationRule } from '../helpers/upstreams.ts';
import { keepAliveCalls } from '../helpers/keepalive.ts';
import { closedAfter, type Echo, EchoClient, startGrpcUpstream, unary } from '../helpers/grpc.ts';

describe('gRPC to a resolution-NONE ServiceEntry: the DestinationRule tcpKeepalive', () => {
  const { ups, meshes, clients } = closedAfter();

  it('the connection gets the rule\'s keepalive; the PassthroughCluster\'s to the same address none', async () => {
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const none = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'ext', namespace: 'default' },
      spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: up.port, name: 'grpc', protocol: 'GRPC' }] },
    };
    const rule = destinationRule('ext', 'localhost', { trafficPolicy: { connectionPool: { tcp: { tcpKeepalive: { time: '37s', interval: '11s', probes: 4 } } } } });
    const mesh = await createMesh({ service: 'client', config: [none, rule] });
    meshes.push(mesh);
    const viaNone = mesh.grpc.client(EchoClient, `localhost:${up.port}`) as unknown as Echo;
    const viaPassthrough = mesh.grpc.client(EchoClient, `127.0.0.1:${up.port}`) as unknown as Echo;
    clients.push(viaNone, viaPassthrough);

    const ruled = await keepAliveCalls(async () => {
      assert.equal((await unary(viaNone, { text: 'a' })).reply?.text, 'a');
    });
    assert.deepEqual(ruled, [[true, 37_000, 11_000, 4]]);

    const plain = await keepAliveCalls(async () => {
      assert.equal((await unary(viaPassthrough, { text: 'b' })).reply?.text, 'b');
    });
    assert.deepEqual(plain, [], 'ALLOW_ANY: no DestinationRule, no keepalive of the mesh\'s');
    assert.equal(up.hits, 2);
  });
});
