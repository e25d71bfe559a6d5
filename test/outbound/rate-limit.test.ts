/**
 * Local rate limits on outbound calls (EnvoyFilter, context SIDECAR_OUTBOUND), through the real
 * entry points: Node's own fetch with `dispatcher: mesh.dispatcher`, `mesh.fetch`, and a grpc-js
 * client through `mesh.grpc` against a grpc-js server, all on 127.0.0.1. A refused call never
 * leaves the process: 429 `local_rate_limited`, flag RL, the configured headers (gRPC:
 * UNAVAILABLE, or RESOURCE_EXHAUSTED); the bucket refills on the mesh's ManualClock.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { CallEndMessage } from '../../src/core/observe.ts';
import { createMesh, isMeshletError, ManualClock, type Mesh } from '../../src/index.ts';
import { closedAfter, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { call, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const HCM = 'envoy.filters.network.http_connection_manager';
const pct = (numerator: number) => ({ runtime_key: 'k', default_value: { numerator, denominator: 'HUNDRED' } });

/** The filter's value: `max` tokens refilled `max` per `interval`, enabled and enforced (unless `over` says otherwise). */
function lrl(max: number, interval = '60s', over: Record<string, unknown> = {}): object {
  return { '@type': LRL, ...lrlValue(max, interval, over) };
}

/** The same, without its type (the `value` of a TypedStruct). */
function lrlValue(max: number, interval = '60s', over: Record<string, unknown> = {}): object {
  return {
    stat_prefix: 'http_local_rate_limiter',
    token_bucket: { max_tokens: max, tokens_per_fill: max, fill_interval: interval },
    filter_enabled: pct(100),
    filter_enforced: pct(100),
    response_headers_to_add: [{ append: false, header: { key: 'x-local-rate-limit', value: 'true' } }],
    ...over,
  };
}

/** An EnvoyFilter in the root namespace (mesh-wide) selecting app=productpage. */
function envoyFilter(name: string, configPatches: object[]): object {
  return { apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', metadata: { name, namespace: 'istio-system' }, spec: { workloadSelector: { labels: { app: 'productpage' } }, configPatches } };
}

/** An HTTP_FILTER patch inserting the local rate limit filter on outbound listeners (`listener`: the listener match). */
function outboundFilter(config: object, listener: object = {}, context = 'SIDECAR_OUTBOUND'): object {
  return {
    applyTo: 'HTTP_FILTER',
    match: { ...(context === '' ? {} : { context }), listener: { ...listener, filterChain: { filter: { name: HCM } } } },
    patch: { operation: 'INSERT_BEFORE', value: { name: 'envoy.filters.http.local_ratelimit', typed_config: config } },
  };
}

const RATINGS = 'ratings.default.svc.cluster.local';
const DETAILS = 'details.default.svc.cluster.local';

describe('outbound local rate limit: HTTP', () => {
  const ups: Upstream[] = [];
  const meshes: Mesh[] = [];
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(ups.map((u) => u.close()));
  });

  async function setup(patches: object[], extra: object[] = [], options: Record<string, unknown> = {}) {
    const ratings = await startUpstream('ratings');
    const details = await startUpstream('details');
    ups.push(ratings, details);
    const clock = new ManualClock(1_000_000);
    const mesh = await createMesh({
      service: 'productpage',
      labels: { app: 'productpage' },
      clock,
      config: [serviceEntry('ratings', RATINGS, 9080, [{ port: ratings.port }]), serviceEntry('details', DETAILS, 9081, [{ port: details.port }]), envoyFilter('out-rl', patches), ...extra],
      logger: { warn: () => undefined },
      ...options,
    });
    meshes.push(mesh);
    return { mesh, clock, ratings, details };
  }

  test('portNumber 9080: the third call in a minute is answered 429 local_rate_limited (flag RL, the configured header) by the mesh, through mesh.fetch and Node’s fetch with mesh.dispatcher; other ports are not limited; a token comes back 30 s later', async () => {
    const { mesh, clock, ratings, details } = await setup([outboundFilter(lrl(2), { portNumber: 9080 })]);
    const statuses: number[] = [];
    statuses.push((await call(mesh, 'http://ratings:9080/a')).status);
    statuses.push((await fetch('http://ratings:9080/b', { dispatcher: mesh.dispatcher } as RequestInit)).status);
    const ends: CallEndMessage[] = [];
    const onEnd = (m: unknown) => ends.push(m as CallEndMessage);
    subscribe('meshlet:call:end', onEnd);
    const refused = await call(mesh, 'http://ratings:9080/c').finally(() => unsubscribe('meshlet:call:end', onEnd));
    statuses.push(refused.status);
    // What telemetry (metrics, access logs) records of it: 429, flag RL, the route and cluster, no endpoint, one attempt-less call.
    assert.deepEqual(
      ends.map((e) => ({ status: e.status, flags: e.flags, route: e.route, cluster: e.cluster, endpoint: e.endpoint, attempts: e.attempts })),
      [{ status: 429, flags: 'RL', route: 'default', cluster: `outbound|9080||${RATINGS}`, endpoint: undefined, attempts: 0 }],
    );
    assert.deepEqual(statuses, [200, 200, 429]);
    assert.equal(refused.body, 'local_rate_limited');
    assert.equal(refused.flags, 'RL');
    assert.equal(refused.headers.get('x-local-rate-limit'), 'true');
    assert.equal(refused.upstream, null);
    const viaNodeFetch = await fetch('http://ratings:9080/d', { dispatcher: mesh.dispatcher } as RequestInit);
    assert.equal(viaNodeFetch.status, 429);
    assert.equal(await viaNodeFetch.text(), 'local_rate_limited');
    assert.equal(viaNodeFetch.headers.get('x-meshlet-response-flags'), 'RL');
    assert.equal(ratings.hits, 2, 'refused calls never reach the upstream');
    // details is on 9081: another outbound listener, which the patch does not match.
    for (let i = 0; i < 4; i++) assert.equal((await call(mesh, 'http://details:9081/')).status, 200);
    assert.equal(details.hits, 4);
    clock.advance(29_999);
    assert.equal((await call(mesh, 'http://ratings:9080/e')).status, 429);
    clock.advance(1);
    assert.equal((await call(mesh, 'http://ratings:9080/f')).status, 200, '2 per 60 s refills one token every 30 s');
    assert.equal((await call(mesh, 'http://ratings:9080/g')).status, 429);
    assert.deepEqual(mesh.outbound.rateLimits?.stats.get('http_local_rate_limiter'), { enabled: 7, ok: 3, rate_limited: 4, enforced: 4 });
  });

  test('no listener match: every outbound HTTP listener has the filter, a bucket per port; errors: "throw" gives a MeshletError RATE_LIMITED (429, RL)', async () => {
    const { mesh } = await setup([outboundFilter(lrl(1))], [], { errors: 'throw' });
    await (await mesh.fetch('http://ratings:9080/')).text();
    await (await mesh.fetch('http://details:9081/')).text();
    const err = await mesh.fetch('http://ratings:9080/').then(
      () => undefined,
      (e: unknown) => e,
    );
    const cause = (err as { cause?: unknown }).cause ?? err;
    assert.ok(isMeshletError(cause, 'MESHLET_ERR_RATE_LIMITED'), String(err));
    assert.equal(cause.httpStatus, 429);
    assert.equal(cause.flags, 'RL');
    assert.equal(cause.cluster, `outbound|9080||${RATINGS}`);
    await assert.rejects(mesh.fetch('http://details:9081/'));
  });

  test('retries take no token: the filter runs once per call, before the router', async () => {
    const { mesh, clock, ratings } = await setup([outboundFilter(lrl(1, '600s'), { portNumber: 9080 })], [virtualService('ratings', ['ratings'], [{ name: 'r', route: [{ destination: { host: 'ratings' } }], retries: { attempts: 2, retryOn: '503' } }])]);
    ratings.behaviour = (_q, res, hit) => {
      res.statusCode = hit < 3 ? 503 : 200;
      res.end(String(hit));
    };
    const p = call(mesh, 'http://ratings:9080/');
    // The retries wait their backoff on the mesh clock (well under a token's 600 s).
    for (let i = 0; i < 2; i++) {
      await until(() => clock.pending > 0, 'a retry to be scheduled');
      clock.advance(1_000);
    }
    const r = await p;
    assert.equal(r.status, 200);
    assert.equal(ratings.hits, 3, 'three attempts');
    const again = await call(mesh, 'http://ratings:9080/');
    assert.equal(again.status, 429, 'the call with its two retries took one token');
    assert.equal(ratings.hits, 3);
  });

  test('per-route buckets (Istio’s per-route pattern): the filter enabled for 0 %, an HTTP_ROUTE merge for route “limited” of virtual host ratings…:9080 with its own bucket', async () => {
    const routePatch = {
      applyTo: 'HTTP_ROUTE',
      match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { name: '9080', vhost: { name: `${RATINGS}:9080`, route: { name: 'limited', action: 'ROUTE' } } } },
      patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': { '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct', type_url: LRL, value: lrlValue(1) } } } },
    };
    const filterOff = outboundFilter({ '@type': LRL, stat_prefix: 'http_local_rate_limiter' });
    const vs = virtualService('ratings', ['ratings'], [
      { name: 'limited', match: [{ uri: { prefix: '/limited' } }], route: [{ destination: { host: 'ratings' } }] },
      { name: 'open', route: [{ destination: { host: 'ratings' } }] },
    ]);
    const { mesh } = await setup([filterOff, routePatch], [vs]);
    const codes = [];
    for (const path of ['/limited/1', '/limited/2', '/open/1', '/open/2', '/open/3']) codes.push((await call(mesh, `http://ratings:9080${path}`)).status);
    assert.deepEqual(codes, [200, 429, 200, 200, 200]);
    const ex = mesh.explain({ url: 'http://ratings:9080/limited/3' });
    assert.match(String(ex), /rate limit: envoy\.filters\.http\.local_ratelimit from EnvoyFilter istio-system\/out-rl configPatches\[1\] \(route limited of virtual host ratings\.default\.svc\.cluster\.local:9080/);
    assert.doesNotMatch(String(mesh.explain({ url: 'http://ratings:9080/open' })), /rate limit/);
  });

  test('shadow mode (filter_enforced 0 %): over-limit calls go on with request_headers_to_add_when_not_enforced', async () => {
    const config = lrl(1, '60s', { filter_enforced: pct(0), request_headers_to_add_when_not_enforced: [{ append_action: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'x-rl-shadow', value: 'over' } }] });
    const { mesh, ratings } = await setup([outboundFilter(config)]);
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 200);
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 200);
    assert.deepEqual(
      ratings.seen.map((s) => s.headers['x-rl-shadow']),
      [undefined, 'over'],
    );
    assert.deepEqual(mesh.outbound.rateLimits?.stats.get('http_local_rate_limiter'), { enabled: 2, ok: 1, rate_limited: 1, enforced: 0 });
  });

  test('descriptors on the client side: destination_cluster is the route’s cluster (outbound|9080||ratings…), remote_address the workload’s own address', async () => {
    const config = lrl(100, '60s', {
      descriptors: [
        { entries: [{ key: 'destination_cluster', value: `outbound|9080||${RATINGS}` }], token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: '60s' } },
        { entries: [{ key: 'remote_address', value: '10.1.2.3' }], token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: '60s' } },
      ],
      rate_limits: [{ actions: [{ destination_cluster: {} }] }, { actions: [{ remote_address: {} }] }],
    });
    const { mesh } = await setup([outboundFilter(config)], [], { sourceIp: '10.1.2.3' });
    const codes = [];
    for (const url of ['http://ratings:9080/', 'http://ratings:9080/', 'http://details:9081/', 'http://details:9081/', 'http://details:9081/']) codes.push((await call(mesh, url)).status);
    // ratings: its cluster's bucket (1) refuses the second call. details (another listener, so
    // buckets of its own, as Envoy has a filter per listener): only the remote_address bucket (2).
    assert.deepEqual(codes, [200, 429, 200, 200, 429]);
  });

  test('a context-less patch applies to outbound calls too (as Istio applies it to both directions); calls to a host outside the mesh go through virtual host allow_any', async () => {
    const vhostPatch = {
      applyTo: 'VIRTUAL_HOST',
      match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: 'allow_any' } } },
      patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': lrl(1) } } },
    };
    const outside = await startUpstream('outside');
    ups.push(outside);
    const { mesh } = await setup([outboundFilter(lrl(5), {}, ''), vhostPatch]);
    const url = `http://127.0.0.1:${outside.port}/`;
    assert.equal((await call(mesh, url)).status, 200);
    const r = await call(mesh, url);
    assert.equal(r.status, 429, 'the allow_any virtual host’s bucket');
    assert.equal(r.flags, 'RL');
    for (let i = 0; i < 5; i++) assert.equal((await call(mesh, 'http://ratings:9080/')).status, 200);
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 429, 'the filter’s own bucket of 5 on ratings’ listener');
  });
});

describe('outbound local rate limit: config reloads', () => {
  let dir: string;
  let up: Upstream;
  let mesh: Mesh;
  after(async () => {
    await mesh?.close();
    await up?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('an unrelated change keeps the buckets; a changed bucket starts full', async () => {
    up = await startUpstream('ratings');
    dir = await mkdtemp(join(tmpdir(), 'meshlet-rl-out-'));
    const write = (name: string, doc: object) => writeFile(join(dir, name), JSON.stringify(doc));
    await write('se.yaml', serviceEntry('ratings', RATINGS, 9080, [{ port: up.port }]));
    await write('ef.yaml', envoyFilter('out-rl', [outboundFilter(lrl(1, '600s'))]));
    const clock = new ManualClock();
    mesh = await createMesh({ service: 'productpage', labels: { app: 'productpage' }, clock, config: dir, logger: { warn: () => undefined } });
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 200);
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 429);
    await write('vs.yaml', virtualService('ratings', ['ratings'], [{ name: 'main', route: [{ destination: { host: 'ratings' } }], timeout: '5s' }]));
    assert.equal(await mesh.reload(), true);
    assert.match(mesh.configVersion, /./);
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 429, 'the bucket drained before the reload is still empty');
    await write('ef.yaml', envoyFilter('out-rl', [outboundFilter(lrl(2, '600s'))]));
    assert.equal(await mesh.reload(), true);
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 200, 'a new bucket (2 tokens) starts full');
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 200);
    assert.equal((await call(mesh, 'http://ratings:9080/')).status, 429);
  });
});

describe('outbound local rate limit: gRPC clients (mesh.grpc)', () => {
  const { ups, meshes, clients } = closedAfter();

  for (const [asRe, code] of [
    [false, grpc.status.UNAVAILABLE],
    [true, grpc.status.RESOURCE_EXHAUSTED],
  ] as const) {
    test(`2 calls served, the third ${grpc.status[code]} local_rate_limited with the configured header and flag RL; one more 30 s later`, async () => {
      const up = await startGrpcUpstream('echo');
      ups.push(up);
      const clock = new ManualClock();
      const config = lrl(2, '60s', asRe ? { rate_limited_as_resource_exhausted: true } : {});
      const mesh = await createMesh({
        service: 'productpage',
        labels: { app: 'productpage' },
        clock,
        config: [grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]), envoyFilter('out-rl', [outboundFilter(config, { portNumber: 9090 })])],
        logger: { warn: () => undefined },
      });
      meshes.push(mesh);
      const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
      clients.push(client);
      const codes: number[] = [];
      for (let i = 0; i < 3; i++) codes.push((await unary(client, { text: 'x' })).error?.code ?? 0);
      assert.deepEqual(codes, [0, 0, code]);
      const limited = await unary(client, { text: 'x' });
      assert.equal(limited.error?.details, 'local_rate_limited');
      assert.equal(limited.error?.metadata.get('x-local-rate-limit')[0], 'true');
      assert.equal(limited.error?.metadata.get('x-meshlet-response-flags')[0], 'RL');
      assert.equal(up.hits, 2, 'refused calls never reach the server');
      clock.advance(30_000);
      assert.equal((await unary(client, { text: 'x' })).error, undefined);
      assert.equal((await unary(client, { text: 'x' })).error?.code, code);
    });
  }
});
