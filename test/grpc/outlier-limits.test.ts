/**
 * Outlier detection and connection-pool limits see gRPC calls as they see HTTP ones: an
 * endpoint that answers UNAVAILABLE is ejected whether the status comes trailers-only or in
 * trailers (charged as 503, as Envoy maps it); calls beyond `maxConcurrentStreams` on a
 * connection open another, up to `maxConnections`; calls beyond that wait for a stream in the
 * pending queue (`http1MaxPendingRequests`), and beyond it overflow as UNAVAILABLE, flag UO; a
 * call beyond `http2MaxRequests` overflows at once, as in Envoy. HTTP and gRPC calls to one
 * cluster share its limiter.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, type OutboundEvent, seededRandom } from '../../src/index.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { closedAfter, type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

describe('gRPC outlier detection and pool limits through the mesh', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup(trafficPolicy: Record<string, unknown>, names = ['a']) {
    const list: GrpcUpstream[] = [];
    for (const n of names) list.push(await startGrpcUpstream(n));
    ups.push(...list);
    const mesh = await createMesh({
      service: 'client',
      random: seededRandom(11),
      config: [
        grpcServiceEntry('echo', HOST, 9090, list.map((u) => ({ port: u.port }))),
        destinationRule('echo', 'echo', { trafficPolicy }),
        virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 } }]),
      ],
    });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    return { list, client, mesh };
  }

  const modes: [string, (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => void][] = [
    ['trailers-only', (_call, cb) => cb(status(grpc.status.UNAVAILABLE, 'down'))],
    [
      'trailers (after response metadata)',
      (call, cb) => {
        call.sendMetadata(new grpc.Metadata());
        setImmediate(() => cb(status(grpc.status.UNAVAILABLE, 'down')));
      },
    ],
  ];
  for (const [mode, fail] of modes) {
    it(`an endpoint answering UNAVAILABLE ${mode} is ejected after consecutive5xxErrors`, async () => {
      const { list, client, mesh } = await setup({ loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 2, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } }, ['bad', 'good']);
      const [bad, good] = list as [GrpcUpstream, GrpcUpstream];
      bad.behaviour.Unary = fail as never;
      const events: OutboundEvent[] = [];
      mesh.on('ejected', (e: OutboundEvent) => events.push(e));
      for (let i = 0; i < 10; i++) await unary(client, { text: 'o' });
      assert.equal(bad.hits, 2, 'ejected after the second consecutive UNAVAILABLE');
      assert.equal(good.hits, 8);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.endpoint, `127.0.0.1:${bad.port}`);
      const eps = mesh.diagnostics().clusters.find((c) => c.name.endsWith(HOST))?.endpoints ?? [];
      assert.deepEqual(eps.filter((e) => e.ejected).map((e) => e.endpoint), [`127.0.0.1:${bad.port}`]);
    });
  }

  it('a non-5xx status (NOT_FOUND, charged 404) never ejects', async () => {
    const { list, client, mesh } = await setup({ outlierDetection: { consecutive5xxErrors: 2, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } }, ['nf']);
    (list[0] as GrpcUpstream).behaviour.Unary = (_c, cb) => cb(status(grpc.status.NOT_FOUND, 'none'));
    for (let i = 0; i < 5; i++) assert.equal((await unary(client, { text: 'n' })).error?.code, grpc.status.NOT_FOUND);
    const eps = mesh.diagnostics().clusters.find((c) => c.name.endsWith(HOST))?.endpoints ?? [];
    assert.equal(eps.some((e) => e.ejected), false);
  });

  /** Holds unary calls on `up` until released; resolves `arrived(n)` once n calls reached it. */
  function hold(up: GrpcUpstream) {
    const held: grpc.sendUnaryData<unknown>[] = [];
    const waiters: (() => void)[] = [];
    up.behaviour.Unary = ((call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      held.push((e, v) => cb(e, v ?? { text: call.request.text, server: up.name, seen: [] }));
      for (const w of waiters.splice(0)) w();
    }) as never;
    return {
      held,
      async arrived(n: number): Promise<void> {
        while (held.length < n) await new Promise<void>((r) => waiters.push(r));
      },
      release(): void {
        for (const cb of held.splice(0)) cb(null);
      },
    };
  }

  it('http2MaxRequests: a call beyond it gets UNAVAILABLE at once, flag UO, and is not sent — Envoy never queues for max_requests, whatever http1MaxPendingRequests says', async () => {
    const { list, client } = await setup({ connectionPool: { http: { http2MaxRequests: 1, http1MaxPendingRequests: 5 } } });
    const up = list[0] as GrpcUpstream;
    const h = hold(up);
    const first = unary(client, { text: '1' });
    await h.arrived(1);
    const second = await unary(client, { text: '2' });
    assert.equal(second.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(second.error?.metadata.get('x-meshlet-response-flags')[0], 'UO');
    assert.equal(second.error?.metadata.get('x-envoy-overloaded')[0], 'true', 'Envoy\'s overflow reply says so');
    assert.match(second.error?.details ?? '', /overflow/);
    assert.equal(up.hits, 1);
    h.release();
    assert.equal((await first).reply?.text, '1');
    const third = unary(client, { text: '3' });
    await h.arrived(1);
    h.release();
    assert.equal((await third).reply?.text, '3', 'the freed slot takes the next call');
    assert.equal(up.hits, 2);
  });

  it('maxConcurrentStreams: a call beyond it opens another connection to the endpoint (maxConnections unset)', async () => {
    const { list, client } = await setup({ connectionPool: { http: { maxConcurrentStreams: 1 } } });
    const up = list[0] as GrpcUpstream;
    const peers: string[] = [];
    const h = hold(up);
    const inner = up.behaviour.Unary;
    up.behaviour.Unary = (call, cb, hit) => {
      peers.push(call.getPeer());
      inner(call, cb, hit);
    };
    const calls = [unary(client, { text: '1' }), unary(client, { text: '2' })];
    await h.arrived(2);
    assert.equal(new Set(peers).size, 2, `two connections: ${peers.join(', ')}`);
    h.release();
    assert.deepEqual((await Promise.all(calls)).map((r) => r.reply?.text), ['1', '2']);
  });

  it('maxConcurrentStreams × maxConnections reached: a call waits for a stream; beyond the pending queue it overflows (UNAVAILABLE, UO)', async () => {
    const { list, client } = await setup({ connectionPool: { tcp: { maxConnections: 1 }, http: { maxConcurrentStreams: 1, http1MaxPendingRequests: 1 } } });
    const up = list[0] as GrpcUpstream;
    const h = hold(up);
    const first = unary(client, { text: '1' });
    await h.arrived(1);
    const second = unary(client, { text: '2' });
    const third = await unary(client, { text: '3' });
    assert.equal(third.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(third.error?.metadata.get('x-meshlet-response-flags')[0], 'UO');
    assert.equal(up.hits, 1, 'the second call waits for the stream');
    h.release();
    assert.equal((await first).reply?.text, '1');
    await h.arrived(1);
    h.release();
    assert.equal((await second).reply?.text, '2');
    assert.equal(up.hits, 2);
  });

  it('HTTP and gRPC calls to one cluster share its limiter: a gRPC call in flight makes an HTTP call overflow (http2MaxRequests 1)', async () => {
    const { list, client, mesh } = await setup({ connectionPool: { http: { http2MaxRequests: 1 } } });
    const h = hold(list[0] as GrpcUpstream);
    const first = unary(client, { text: '1' });
    await h.arrived(1);
    const res = await mesh.fetch('http://echo:9090/meshlet.test.Echo/Unary', { method: 'POST' });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('x-meshlet-response-flags'), 'UO');
    await res.text();
    h.release();
    assert.equal((await first).reply?.text, '1');
  });
});
