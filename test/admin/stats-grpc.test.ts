/**
 * `/stats` code counters of gRPC calls (`mesh.grpc`), as Envoy's router charges them: an answer
 * from the server is its HTTP status (200, whatever its `grpc-status`), and a local reply of the
 * router — an overflow (UO), a route timeout (UT) — is charged with the HTTP status it stands for
 * (`chargeUpstreamAbort(503)`), though the caller gets it as a trailers-only 200 with
 * `grpc-status: 14`. So `curl …/stats | grep upstream_rq_5xx` shows a gRPC service's overflows as it
 * shows an HTTP one's — on the calling side and on the serving side (the inbound connection pool).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createMesh, seededRandom } from '../../src/index.ts';
import { closedAfter, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';
import { plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

const { ups, meshes, clients } = closedAfter();
const CLUSTER = 'outbound|9090||echo.default.svc.cluster.local';

it('gRPC: an overflow counts as upstream_rq_503 (5xx), answers of the server as upstream_rq_200, UNAVAILABLE ones included', async () => {
  const up = await startGrpcUpstream('g');
  ups.push(up);
  const held: (() => void)[] = [];
  let n = 0;
  up.behaviour.Unary = ((_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
    n++;
    if (n === 2) cb(status(grpc.status.UNAVAILABLE, 'down'));
    else held.push(() => cb(null, { text: 'x', server: 'g', seen: [] }));
  }) as never;
  const mesh = await createMesh({
    service: 'client',
    random: seededRandom(3),
    admin: { port: 0 },
    config: [
      grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]),
      destinationRule('echo', 'echo', { trafficPolicy: { connectionPool: { http: { http2MaxRequests: 1 } } } }),
      virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 } }]),
    ],
  });
  meshes.push(mesh);
  const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  clients.push(client);
  const first = unary(client, { text: '1' });
  await until(() => held.length === 1, 'the first call reached the server');
  assert.equal((await unary(client, { text: '2' })).error?.code, grpc.status.UNAVAILABLE, 'overflow');
  held.shift()?.();
  assert.equal((await first).error, undefined);
  assert.equal((await unary(client, { text: '3' })).error?.code, grpc.status.UNAVAILABLE, 'the server says UNAVAILABLE');
  const body = await (await fetch(`${mesh.adminUrl}/stats?filter=${encodeURIComponent('echo.*upstream_rq_(\\d|total|completed|pending_overflow)')}`)).text();
  const stats = Object.fromEntries(body.trim().split('\n').map((l) => [l.slice(`cluster.${CLUSTER};.`.length, l.lastIndexOf(':')), Number(l.slice(l.lastIndexOf(':') + 1))]));
  assert.deepEqual(stats, {
    upstream_rq_200: 2,
    upstream_rq_2xx: 2,
    upstream_rq_503: 1,
    upstream_rq_5xx: 1,
    upstream_rq_completed: 3,
    upstream_rq_pending_overflow: 1,
    upstream_rq_total: 2,
  });
});

it('gRPC server: an inbound overflow counts as upstream_rq_503 on inbound|<port>||, a served call as upstream_rq_200', async () => {
  const mesh = await createMesh({
    service: 'httpbin',
    namespace: 'foo',
    labels: { app: 'httpbin' },
    admin: { port: 0 },
    watch: false,
    logger: { warn: () => {} },
    config: [{ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'httpbin', namespace: 'foo' }, spec: { host: 'httpbin', trafficPolicy: { connectionPool: { http: { http2MaxRequests: 1 } } } } }],
  });
  meshes.push(mesh);
  const held: (() => void)[] = [];
  const server = await startMeshGrpcServer(mesh, 'insecure', {
    Unary: (call, cb) => {
      held.push(() => cb(null, { text: call.request.text, server: 'held', seen: [] }));
    },
  });
  const client = plainClient(server.port) as Echo;
  clients.push(client);
  try {
    const first = unary(client, { text: 'a' });
    await until(() => held.length === 1, 'the first call reached the handler');
    assert.equal((await unary(client, { text: 'b' })).error?.code, grpc.status.UNAVAILABLE, 'overflow');
    held.shift()?.();
    assert.equal((await first).reply?.text, 'a');
    const c = `inbound|${server.port}||`;
    const body = await (await fetch(`${mesh.adminUrl}/stats?filter=${encodeURIComponent('^cluster\\.inbound')}`)).text();
    const stats = Object.fromEntries(body.trim().split('\n').map((l) => [l.slice(`cluster.${c};.`.length, l.lastIndexOf(':')), Number(l.slice(l.lastIndexOf(':') + 1))]));
    assert.equal(stats.upstream_rq_503, 1, body);
    assert.equal(stats.upstream_rq_200, 1, body);
    assert.equal(stats.upstream_rq_pending_overflow, 1, body);
  } finally {
    await server.close();
  }
});
