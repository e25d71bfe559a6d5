/**
 * Istio's gRPC message counters end to end: a grpc-js client through a client mesh (frontend)
 * calls a grpc-js server under a server mesh (echo), each mesh with the app's own OTel SDK. Each
 * call's counts on `call:end` (what the caller sent and received) and `inbound:end` (what the
 * server received and sent), for the four call types, a retried call (the caller's messages count
 * once, as Envoy's grpc_stats filter counts the downstream stream; each attempt the server saw
 * counts on its side) and a fault abort (no message); and `istio_request_messages_total` /
 * `istio_response_messages_total` of both reporters.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import type { CallEndMessage, InboundEndMessage } from '../../src/core/observe.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { virtualService } from '../helpers/upstreams.ts';
import { collect, type Echo, EchoClient, echo, grpc, grpcServiceEntry, status, unary } from '../helpers/grpc.ts';
import { md, type MeshGrpcServer, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const HOST = 'echo.default.svc.cluster.local';

describe('gRPC message counts and istio_request/response_messages_total', () => {
  const clientMetrics = sdk();
  const serverMetrics = sdk();
  let clientMesh: Mesh;
  let serverMesh: Mesh;
  let server: MeshGrpcServer;
  let client: Echo;
  /** [requestMessages, responseMessages] of each call / request that ended, by side. */
  const source: [number | undefined, number | undefined, number][] = [];
  const destination: [number | undefined, number | undefined][] = [];
  const onCallEnd = (m: unknown): void => {
    const e = m as CallEndMessage;
    if (e.workload?.service === 'frontend') source.push([e.requestMessages, e.responseMessages, e.attempts]);
  };
  const onInboundEnd = (m: unknown): void => {
    const e = m as InboundEndMessage;
    if (e.workload.service === 'echo') destination.push([e.requestMessages, e.responseMessages]);
  };
  /** The counts of the calls made by `run`, each side's. */
  async function counts(run: () => Promise<unknown>): Promise<{ source: typeof source; destination: typeof destination }> {
    source.length = 0;
    destination.length = 0;
    await run();
    // The server's end message comes when its status went out: by now, or a turn later.
    for (let i = 0; i < 50 && destination.length < source.length; i++) await new Promise((r) => setTimeout(r, 5));
    return { source: [...source], destination: [...destination] };
  }

  before(async () => {
    subscribe('meshlet:call:end', onCallEnd);
    subscribe('meshlet:inbound:end', onInboundEnd);
    serverMesh = await createMesh({ service: 'echo', labels: { app: 'echo', version: 'v1' }, telemetry: { metrics: { meterProvider: serverMetrics.provider } }, config: [] });
    server = await startMeshGrpcServer(serverMesh, 'mesh');
    clientMesh = await createMesh({
      service: 'frontend',
      labels: { app: 'frontend', version: 'v1' },
      telemetry: { metrics: { meterProvider: clientMetrics.provider } },
      config: [
        grpcServiceEntry('echo', HOST, 9090, [{ port: server.port, labels: { app: 'echo', version: 'v1' } }]),
        virtualService('echo', ['echo'], [
          { match: [{ headers: { 'x-fault': { exact: 'abort' } } }], fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } }, route: [{ destination: { host: 'echo' } }] },
          { route: [{ destination: { host: 'echo' } }], retries: { attempts: 2, retryOn: 'unavailable' } },
        ]),
      ],
    });
    client = clientMesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  });
  after(async () => {
    unsubscribe('meshlet:call:end', onCallEnd);
    unsubscribe('meshlet:inbound:end', onInboundEnd);
    client.close();
    await clientMesh.close();
    await server.close();
    await serverMesh.close();
    await clientMetrics.shutdown();
    await serverMetrics.shutdown();
  });

  it('the four call types: every message counts, streams included, on both sides; both reporters add them up', async () => {
    const unaryCall = await counts(() => unary(client, { text: 'u' }));
    assert.deepEqual(unaryCall.source, [[1, 1, 1]]);
    assert.deepEqual(unaryCall.destination, [[1, 1]]);

    const serverStream = await counts(async () => assert.equal((await collect(client.ServerStream({ text: 's', count: 4 }))).messages.length, 4));
    assert.deepEqual(serverStream.source, [[1, 4, 1]]);
    assert.deepEqual(serverStream.destination, [[1, 4]]);

    const clientStream = await counts(
      () =>
        new Promise<void>((resolve, reject) => {
          const call = client.ClientStream(new grpc.Metadata(), {}, (err) => (err ? reject(err) : resolve()));
          for (const t of ['x', 'y', 'z']) call.write({ text: t });
          call.end();
        }),
    );
    assert.deepEqual(clientStream.source, [[3, 1, 1]]);
    assert.deepEqual(clientStream.destination, [[3, 1]]);

    const bidi = await counts(async () => {
      const call = client.Bidi();
      for (const t of ['1', '2']) {
        call.write({ text: t });
        await new Promise((r) => call.once('data', r));
      }
      const done = collect(call);
      call.end();
      assert.equal((await done).status.code, grpc.status.OK);
    });
    assert.deepEqual(bidi.source, [[2, 2, 1]]);
    assert.deepEqual(bidi.destination, [[2, 2]]);

    // One series per reporter (the four calls share their labels): 1+1+3+2 request messages, 1+4+1+2 response messages.
    const labels = { source_workload: 'frontend', source_app: 'frontend', destination_workload: 'echo', destination_app: 'echo', destination_version: 'v1', destination_service: HOST };
    assert.equal(await clientMetrics.value('istio_request_messages_total', { ...labels, reporter: 'source' }), 7);
    assert.equal(await clientMetrics.value('istio_response_messages_total', { ...labels, reporter: 'source' }), 8);
    assert.equal(await serverMetrics.value('istio_request_messages_total', { ...labels, reporter: 'destination' }), 7);
    assert.equal(await serverMetrics.value('istio_response_messages_total', { ...labels, reporter: 'destination' }), 8);
    // The labels of istio_requests_total but the ones the proxy adds when a request ends.
    for (const metrics of [clientMetrics, serverMetrics]) {
      const [requests] = await metrics.points('istio_requests_total');
      const [messages] = await metrics.points('istio_request_messages_total');
      const { request_protocol, response_flags, connection_security_policy, response_code, grpc_response_status, ...peers } = requests?.attributes ?? {};
      assert.deepEqual([request_protocol, response_code, grpc_response_status, requests?.value], ['grpc', '200', '0', 4]);
      assert.deepEqual(messages?.attributes, peers);
    }
  });

  it("a retried call: the caller's messages count once; the server counts each attempt it saw", async () => {
    const before = server.seen.length;
    server.behaviour.Unary = (call, cb, hit) => (hit === before + 1 ? cb(status(grpc.status.UNAVAILABLE, 'first fails')) : cb(null, { text: call.request.text, server: 'mesh', seen: [] }));
    const retriedUnary = await counts(async () => assert.equal((await unary(client, { text: 'r' })).reply?.text, 'r'));
    assert.deepEqual(retriedUnary.source, [[1, 1, 2]]);
    assert.deepEqual(retriedUnary.destination, [
      [1, 0],
      [1, 1],
    ]);

    const first = server.seen.length + 1;
    server.behaviour.ClientStream = (call, cb, hit) => {
      if (hit === first) cb(status(grpc.status.UNAVAILABLE, 'first fails'));
      else echo('mesh').ClientStream(call, cb, hit);
    };
    const retriedStream = await counts(
      () =>
        new Promise<void>((resolve, reject) => {
          const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) => (err ? reject(err) : res?.text === 'a,b,c' ? resolve() : reject(new Error(`reply ${res?.text}`))));
          for (const t of ['a', 'b', 'c']) call.write({ text: t });
          call.end();
        }),
    );
    assert.deepEqual(retriedStream.source, [[3, 1, 2]]);
    // The first attempt was answered as it came in: the server read what had arrived by then.
    assert.equal(retriedStream.destination.length, 2);
    assert.deepEqual(retriedStream.destination[1], [3, 1]);
  });

  it('a fault abort: the mesh answered before sending anything, no message either way', async () => {
    const aborted = await counts(async () => assert.equal((await unary(client, { text: 'f' }, { metadata: md({ 'x-fault': 'abort' }) })).error?.code, grpc.status.UNAVAILABLE));
    assert.deepEqual(aborted.source, [[0, 0, 0]]);
    assert.deepEqual(aborted.destination, []);
  });
});
