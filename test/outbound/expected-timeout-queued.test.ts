/**
 * `x-envoy-expected-rq-timeout-ms` (and a gRPC attempt's `grpc-timeout`) of an attempt that waits
 * for a pool slot first. Envoy's router writes both as it starts the attempt, before the pool's
 * pending queue: `FilterUtility::finalTimeout` → `setTimeoutHeaders(0, …)` in `decodeHeaders` for
 * the first attempt (elapsed 0: the whole per-try or route timeout), and `doRetry` with the time
 * since the request completed for a retry (source/common/router/router.cc). So a call queued
 * behind `maxConnections: 1` for 3 s under a 10 s route timeout still tells its upstream 10000 —
 * not what is left once its turn came. Through Node's fetch on `mesh.dispatcher` and a grpc-js
 * client through the mesh; the mesh clock is a ManualClock, the values exact.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMesh, ManualClock } from '../../src/index.ts';
import { settle, until } from '../helpers/mesh-calls.ts';
import { closedAfter, type Echo, EchoClient, type grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { destinationRule, serviceEntry, virtualService } from '../helpers/upstreams.ts';

const HEADER = 'x-envoy-expected-rq-timeout-ms';

describe('x-envoy-expected-rq-timeout-ms of an attempt that waited for a pool slot: what was left when it started', () => {
  const seen: (string | undefined)[] = [];
  const held: ServerResponse[] = [];
  let server: Server;
  let port = 0;
  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers[HEADER] as string | undefined);
      if (req.url === '/hold') held.push(res);
      else res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('HTTP (fetch through mesh.dispatcher): queued 3 s behind maxConnections 1 under a 10 s timeout, it is told 10000', async () => {
    const clock = new ManualClock();
    const mesh = await createMesh({
      service: 'client',
      clock,
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port }]),
        virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }], timeout: '10s' }]),
        destinationRule('svc', 'svc', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 5 } } } }),
      ],
    });
    try {
      const first = fetch('http://svc/hold', { dispatcher: mesh.dispatcher } as RequestInit);
      await until(() => held.length === 1, 'the first request at the upstream');
      const second = fetch('http://svc/queued', { dispatcher: mesh.dispatcher } as RequestInit);
      await until(() => /pending 1\//.test(mesh.explain({ url: 'http://svc/' }).targets[0]?.connectionPool ?? ''), 'the second request queued');
      clock.advance(3000);
      (held.shift() as ServerResponse).end('done');
      const r2 = await settle(second, 'the queued request');
      assert.equal(await r2.text(), 'ok');
      await (await first).text();
      assert.deepEqual(seen.slice(-2), ['10000', '10000']);
    } finally {
      server.closeAllConnections();
      await mesh.close();
    }
  });
});

describe('gRPC: x-envoy-expected-rq-timeout-ms (and grpc-timeout, the same value) of a call that waited for a pool slot', () => {
  const { ups, meshes, clients } = closedAfter();

  it('queued 3 s behind one connection of one stream under a 10 s timeout: it is told 10000', async () => {
    const held: (() => void)[] = [];
    const got: unknown[] = [];
    const up = await startGrpcUpstream('a');
    ups.push(up);
    const inner = up.behaviour.Unary;
    up.behaviour.Unary = (call: grpc.ServerUnaryCall<unknown, unknown>, cb, hit) => {
      got.push(call.metadata.get(HEADER)[0]);
      const go = () => inner(call as never, cb, hit);
      if ((call.request as { text: string }).text === 'hold') held.push(go);
      else go();
    };
    const clock = new ManualClock(5_000);
    const mesh = await createMesh({
      service: 'client',
      clock,
      config: [
        grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]),
        virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], timeout: '10s' }]),
        destinationRule('echo', 'echo', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { maxConcurrentStreams: 1 } } } }),
      ] as never,
    });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    const first = unary(client, { text: 'hold' });
    await until(() => held.length === 1, 'the first call at the upstream');
    const second = unary(client, { text: 'queued' });
    // Waiting for a stream on the one connection (nothing to observe it by: a short real pause, then the mesh clock moves).
    await sleep(50);
    assert.equal(got.length, 1, 'the second call waits');
    clock.advance(3000);
    (held.shift() as () => void)();
    assert.equal((await second).reply?.text, 'queued');
    assert.equal((await first).reply?.text, 'hold');
    assert.deepEqual(got, ['10000', '10000']);
  });
});
