/**
 * DestinationRule `connectionPool.http.useClientProtocol` (Envoy's use_downstream_protocol_config):
 * calls keep the protocol their client speaks. The mesh's HTTP clients (fetch, undici) speak
 * HTTP/1.1, so a port declared HTTP2 is reached over HTTP/1.1 — an HTTP/1.1-only server answers
 * them, which the same port without the setting (h2c prior knowledge) cannot reach; gRPC calls stay
 * HTTP/2.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { EchoClient, type Echo, grpcServiceEntry, type GrpcUpstream, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('useClientProtocol', () => {
  let h1: Upstream;
  let rpc: GrpcUpstream;
  let mesh: Mesh;

  before(async () => {
    h1 = await startUpstream('http1-only');
    rpc = await startGrpcUpstream('rpc');
    const http2Port = { ports: [{ number: 9080, name: 'http', protocol: 'HTTP2' }] };
    const keep = { trafficPolicy: { connectionPool: { http: { useClientProtocol: true } } } };
    mesh = await createMesh({
      service: 'client',
      config: [
        serviceEntry('kept', 'kept.default.svc.cluster.local', 9080, [{ port: h1.port }], http2Port),
        serviceEntry('upgraded', 'upgraded.default.svc.cluster.local', 9080, [{ port: h1.port }], http2Port),
        destinationRule('kept', 'kept', keep),
        grpcServiceEntry('rpc', 'rpc.default.svc.cluster.local', 9090, [{ port: rpc.port }]),
        destinationRule('rpc', 'rpc', keep),
      ],
    });
  });

  after(async () => {
    await mesh?.close();
    await h1.close();
    await rpc.close();
  });

  it('an HTTP2 port with useClientProtocol is reached over HTTP/1.1 by fetch', async () => {
    const r = await call(mesh, 'http://kept:9080/x');
    assert.equal(r.status, 200, `${r.status} ${r.flags} ${r.body}`);
    assert.equal(r.body, 'http1-only');
  });

  it('the same port without it speaks HTTP/2 (an HTTP/1.1-only server cannot answer)', async () => {
    const r = await call(mesh, 'http://upgraded:9080/x');
    assert.notEqual(r.status, 200);
    assert.match(r.flags ?? '', /U/);
  });

  it('gRPC calls stay HTTP/2', async () => {
    const client = mesh.grpc.client(EchoClient, 'rpc:9090') as unknown as Echo;
    try {
      const { reply, error } = await unary(client, { text: 'hi' });
      assert.equal(error, undefined, error?.details);
      assert.equal(reply?.text, 'hi');
    } finally {
      client.close();
    }
  });
});
