/**
 * Istio's metadata exchange between a gRPC client mesh and a gRPC server mesh, as between two
 * sidecars: the server's interceptor takes the caller's `x-envoy-peer-metadata(-id)` off the call
 * (the handler never sees them) and answers with its own in the response metadata — with the
 * response head, or with a trailers-only status —; the client takes those off the response
 * (the caller never sees them either); both sides' `istio_requests_total` name each other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { type Echo, EchoClient, grpc, grpcServiceEntry, unary } from '../helpers/grpc.ts';
import { md, type MeshGrpcServer, plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';

describe('peer metadata exchange over gRPC, between two meshes', () => {
  let server: Mesh;
  let client: Mesh;
  let grpcServer: MeshGrpcServer;
  let echo: Echo;
  const serverMetrics = sdk();
  const clientMetrics = sdk();
  before(async () => {
    server = await createMesh({ service: 'reviews', workloadName: 'reviews-v2', labels: { app: 'reviews', version: 'v2' }, config: [], identity: 'none', telemetry: { metrics: { meterProvider: serverMetrics.provider } } });
    grpcServer = await startMeshGrpcServer(server, 'mesh', { Unary: (call, cb) => (call.request.text === 'fail' ? cb(Object.assign(new Error('no'), { code: grpc.status.NOT_FOUND, details: 'no' })) : cb(null, { text: call.request.text, server: 'reviews', seen: [] })) });
    client = await createMesh({
      service: 'productpage',
      workloadName: 'productpage-v1',
      labels: { app: 'productpage', version: 'v1' },
      config: [grpcServiceEntry('reviews', 'reviews.default.svc.cluster.local', 9090, [{ port: grpcServer.port }])],
      identity: 'none',
      telemetry: { metrics: { meterProvider: clientMetrics.provider } },
    });
    echo = client.grpc.client(EchoClient, 'reviews:9090') as unknown as Echo;
  });
  after(async () => {
    echo.close();
    await client.close();
    await grpcServer.close();
    await server.close();
    await serverMetrics.shutdown();
    await clientMetrics.shutdown();
  });

  for (const [name, text, code] of [
    ['an answer with response metadata', 'ok', grpc.status.OK],
    ['a trailers-only error status', 'fail', grpc.status.NOT_FOUND],
  ] as const) {
    it(`${name}: the handler and the caller never see the exchange headers; both sides name each other`, async () => {
      const r = await unary(echo, { text });
      assert.equal(r.error?.code ?? 0, code);
      const handler = grpcServer.seen.at(-1)?.metadata ?? {};
      assert.equal(handler['x-envoy-peer-metadata'], undefined);
      assert.equal(handler['x-envoy-peer-metadata-id'], undefined);
      const back = [r.metadata, r.trailers, r.error?.metadata].flatMap((m) => (m === undefined ? [] : [...m.get('x-envoy-peer-metadata'), ...m.get('x-envoy-peer-metadata-id')]));
      assert.deepEqual(back, []);
      const status = String(code);
      const src = (await clientMetrics.points('istio_requests_total')).find((p) => p.attributes['reporter'] === 'source' && p.attributes['grpc_response_status'] === status);
      assert.equal(src?.attributes['destination_workload'], 'reviews-v2');
      assert.equal(src?.attributes['destination_app'], 'reviews');
      assert.equal(src?.attributes['destination_version'], 'v2');
      const dst = (await serverMetrics.points('istio_requests_total')).find((p) => p.attributes['reporter'] === 'destination' && p.attributes['grpc_response_status'] === status);
      assert.equal(dst?.attributes['source_workload'], 'productpage-v1');
      assert.equal(dst?.attributes['source_app'], 'productpage');
      assert.equal(dst?.attributes['request_protocol'], 'grpc');
    });
  }

  it('a caller that sends no metadata gets none back; one that sends only the ID gets only the ID', async () => {
    const plain = plainClient(grpcServer.port) as Echo;
    try {
      const none = await unary(plain, { text: 'p' });
      assert.deepEqual([...(none.metadata?.get('x-envoy-peer-metadata') ?? []), ...(none.metadata?.get('x-envoy-peer-metadata-id') ?? [])], []);
      const idOnly = await unary(plain, { text: 'p' }, { metadata: md({ 'x-envoy-peer-metadata-id': 'sidecar~10.0.0.1~x.default~default.svc.cluster.local' }) });
      assert.equal(idOnly.metadata?.get('x-envoy-peer-metadata-id')[0], 'sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local');
      assert.deepEqual(idOnly.metadata?.get('x-envoy-peer-metadata'), []);
      assert.equal(grpcServer.seen.at(-1)?.metadata['x-envoy-peer-metadata-id'], undefined);
    } finally {
      plain.close();
    }
  });
});
