/**
 * The Envoy stats `/stats` keeps beyond the cluster counters, over real sockets, under the names
 * and with the semantics of the Envoy source they come from:
 *
 * - `retry.upstream_rq_<code>` / `_<N>xx` / `_completed`: the answers of retried attempts
 *   (envoy source/common/router/router.cc, onUpstreamHeaders: `chargeBasicResponseStat(…,
 *   stat_names_.retry_, …)` when `retry_status == RetryStatus::Yes`; source/common/http/codes.cc
 *   `CodeStatsImpl::chargeBasicResponseStat`: `<prefix>upstream_rq_completed`, `<prefix>upstream_rq_<N>xx`,
 *   `<prefix>upstream_rq_<code>`);
 * - `upstream_rq_retry_success` exactly as source/common/router/retry_state_impl.cc
 *   `RetryStateImpl::shouldRetry`: a retry was made and the policy would not retry this outcome
 *   (whatever its status), and `upstream_rq_retry_limit_exceeded` when `retries_remaining_ == 0`;
 * - histograms: `upstream_rq_time` (router.cc onUpstreamComplete → chargeResponseTiming),
 *   `downstream_rq_time`, in Envoy's text (source/common/stats/thread_local_store.cc
 *   `ParentHistogramImpl::quantileSummary`: `P{:g}({},{})` joined by spaces, `No recorded values`
 *   before the first merge), quantiles of source/common/stats/histogram_impl.cc
 *   `supportedQuantiles` computed by libcircllhist's `hist_approx_quantile`, and Prometheus
 *   `_bucket`/`_sum`/`_count` over `defaultBuckets` (source/server/admin/prometheus_stats.cc);
 * - inbound `http.inbound_0.0.0.0_<port>;.downstream_rq_*` (Istio's stat prefix:
 *   pilot/pkg/networking/core/listener_inbound.go `StatPrefix`, delimited by `;`), RBAC
 *   `rbac.allowed` / `rbac.denied` per filter Istio builds (pilot/pkg/security/authz/builder/builder.go
 *   `build`: AUDIT, DENY, ALLOW) and `istio_dry_run_allow_rbac.shadow_*`
 *   (`shadowRuleStatPrefix`), `jwt_authn.allowed` / `denied`, and the local rate limit's
 *   `<stat_prefix>.http_local_rate_limit.*`, with the Prometheus tags of Istio's bootstrap
 *   (tools/packaging/common/envoy_bootstrap.json `stats_tags`);
 * - gRPC client connections in `upstream_cx_active`.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { exportJWK, generateKeyPair } from 'jose';
import { createMesh, ManualClock, seededRandom } from '../../src/index.ts';
import { channels } from '../../src/core/observe.ts';
import { inboundConnectionChannel, upstreamConnectionChannel } from '../../src/core/observe-connections.ts';
import { outlierOverflowChannel } from '../../src/core/observe-outlier.ts';
import { type Echo, EchoClient, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { fixture } from '../helpers/inbound-rate-limit.ts';
import { until } from '../helpers/until.ts';
import { answering, call, destinationRule, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };

async function text(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text() };
}

/** `name: value` lines of a /stats answer (histogram lines keep their text). */
function parse(body: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const i = line.indexOf(': ');
    m.set(line.slice(0, i), line.slice(i + 2));
  }
  return m;
}

const SVC = 'outbound|80||svc.default.svc.cluster.local';

describe('admin /stats: what Envoy keeps beyond the cluster counters', () => {
  it('retried answers under retry.upstream_rq_*, upstream_rq_retry_success exactly as Envoy (a retried call ending on a status the policy does not retry is a success, even a 500), upstream_rq_retry_limit_exceeded', async () => {
    const hits = new Map<string, number>();
    // /a: 503 then 200. /b: 503 then 500 (retryOn 503 only: the 500 is not retried). /c: 503 every time (retries run out).
    const plan: Record<string, number[]> = { '/a': [503, 200], '/b': [503, 500], '/c': [503, 503, 503] };
    const up = await startUpstream('svc', (req, res) => {
      const n = (hits.get(req.url ?? '') ?? 0) + 1;
      hits.set(req.url ?? '', n);
      res.statusCode = plan[req.url ?? '']?.[n - 1] ?? 200;
      res.end();
    });
    const mesh = await createMesh({
      service: 'client',
      random: seededRandom(1),
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
        virtualService('svc', ['svc.default.svc.cluster.local'], [{ route: [{ destination: { host: 'svc.default.svc.cluster.local' } }], retries: { attempts: 2, retryOn: '503', perTryTimeout: '5s' } }]),
      ],
    });
    try {
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/a')).status, 200);
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/b')).status, 500);
      const c = await call(mesh, 'http://svc.default.svc.cluster.local/c');
      assert.deepEqual([c.status, c.flags], [503, 'URX']);
      const s = parse((await text(`${mesh.adminUrl}/stats?filter=${encodeURIComponent('^cluster\\.outbound\\|80\\|\\|svc')}`)).body);
      const v = (name: string) => s.get(`cluster.${SVC};.${name}`);
      assert.equal(v('upstream_rq_retry'), '4');
      // retry_state_impl.cc: /a and /b ended on an outcome the policy would not retry (200, and 500 with retryOn 503); /c ran out.
      assert.equal(v('upstream_rq_retry_success'), '2');
      assert.equal(v('upstream_rq_retry_limit_exceeded'), '1');
      assert.equal(v('retry.upstream_rq_503'), '4', 'each retried attempt answered 503');
      assert.equal(v('retry.upstream_rq_5xx'), '4');
      assert.equal(v('retry.upstream_rq_completed'), '4');
      assert.equal(v('upstream_rq_200'), '1');
      assert.equal(v('upstream_rq_500'), '1');
      assert.equal(v('upstream_rq_503'), '1', 'only the final answer of /c');
      assert.equal(v('upstream_rq_completed'), '3');
      assert.equal(v('upstream_rq_total'), '7');
      // Prometheus: Istio's response_code tag comes off `retry.upstream_rq_503` too.
      const prom = (await text(`${mesh.adminUrl}/stats/prometheus`)).body;
      assert.ok(prom.includes(`envoy_cluster_retry_upstream_rq{response_code="503",cluster_name="${SVC}"} 4\n`), prom);
      assert.ok(prom.includes(`envoy_cluster_upstream_rq_retry_limit_exceeded{cluster_name="${SVC}"} 1\n`));
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it("outlier detection: Envoy's deprecated ejections_total counts consecutive-5xx ejections only, not a gateway-failure one (outlier_detection_impl.cc ejectHost)", async () => {
    const bad = await startUpstream('bad', answering(502, 'bad gateway'));
    const mesh = await createMesh({
      service: 'client',
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: bad.port }]),
        destinationRule('svc', 'svc.default.svc.cluster.local', { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 0, consecutiveGatewayErrors: 1, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }),
      ],
    });
    try {
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/')).status, 502);
      const s = parse((await text(`${mesh.adminUrl}/stats?filter=outlier_detection`)).body);
      const v = (name: string) => s.get(`cluster.${SVC};.outlier_detection.${name}`);
      assert.equal(v('ejections_enforced_consecutive_gateway_failure'), '1');
      assert.equal(v('ejections_enforced_total'), '1');
      assert.equal(v('ejections_active'), '1');
      assert.equal(v('ejections_total'), '0');
    } finally {
      await mesh.close();
      await bad.close();
    }
  });

  it('outlier detection: ejections_detected_* for every detection, ejections_overflow when maxEjectionPercent stops one (outlier_detection_impl.cc onConsecutiveErrorWorker, ejectHost)', async () => {
    const a = await startUpstream('a', answering(503, 'a'));
    const b = await startUpstream('b', answering(503, 'b'));
    const mesh = await createMesh({
      service: 'client',
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: a.port }, { port: b.port }]),
        destinationRule('svc', 'svc.default.svc.cluster.local', { trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 1, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50 } } }),
      ],
    });
    try {
      // The first endpoint is ejected (1 of 2: 50 %); the second's detection would make it 100 %.
      for (let i = 0; i < 2; i++) assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/')).status, 503);
      const s = parse((await text(`${mesh.adminUrl}/stats?filter=outlier_detection`)).body);
      const v = (name: string) => s.get(`cluster.${SVC};.outlier_detection.${name}`);
      assert.equal(v('ejections_detected_consecutive_5xx'), '2');
      assert.equal(v('ejections_enforced_consecutive_5xx'), '1');
      assert.equal(v('ejections_overflow'), '1');
      assert.equal(v('ejections_active'), '1');
      assert.equal(v('ejections_total'), '1');
      assert.equal(v('ejections_detected_consecutive_gateway_failure'), '0');
    } finally {
      await mesh.close();
      await a.close();
      await b.close();
    }
  });

  it('connections of the pools: upstream_cx_total, upstream_cx_destroy with _local (a `connection: close` answer) and _remote (the upstream closed an idle connection)', async () => {
    const up = await startUpstream('svc', (req, res) => {
      if (req.url === '/close') res.setHeader('connection', 'close');
      res.end('ok');
      // The upstream closes the connection once idle.
      if (req.url === '/end') res.on('finish', () => req.socket.end());
    });
    const mesh = await createMesh({ service: 'client', logger: quiet, admin: { port: 0 }, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
    try {
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/close')).status, 200);
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/end')).status, 200);
      const read = async () => parse((await text(`${mesh.adminUrl}/stats?filter=upstream_cx_`)).body);
      await until(async () => (await read()).get(`cluster.${SVC};.upstream_cx_destroy`) === '2', 'both connections closed');
      const s = await read();
      const v = (name: string) => s.get(`cluster.${SVC};.${name}`);
      assert.equal(v('upstream_cx_total'), '2');
      assert.equal(v('upstream_cx_destroy_local'), '1');
      assert.equal(v('upstream_cx_destroy_remote'), '1');
      assert.equal(v('upstream_cx_active'), '0');
      assert.equal(v('upstream_cx_connect_timeout'), '0');
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it("upstream_rq_time: Envoy's text (P0(interval,cumulative) …), merged every 5 s on the mesh clock, libcircllhist's quantiles; Prometheus _bucket/_sum/_count over Envoy's default buckets", async () => {
    const clock = new ManualClock(1_000_000);
    // Each answer takes as many (mesh-clock) milliseconds as its path says.
    const up = await startUpstream('svc', (req, res) => {
      clock.advance(Number(req.url?.slice(1)));
      res.end();
    });
    const mesh = await createMesh({ service: 'client', clock, logger: quiet, admin: { port: 0 }, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
    const name = `cluster.${SVC};.upstream_rq_time`;
    const read = async () => parse((await text(`${mesh.adminUrl}/stats?filter=upstream_rq_time`)).body).get(name);
    try {
      for (const ms of [7, 45, 123]) assert.equal((await call(mesh, `http://svc.default.svc.cluster.local/${ms}`)).status, 200);
      // Not merged yet (the stats flush every 5 s): Envoy says so.
      assert.equal(await read(), 'No recorded values');
      clock.advance(5000);
      // Bins [7,7.1) [45,46) [120,130); hist_approx_quantile interpolates within the bin where the quantile falls.
      const three = 'P0(7,7) P25(7.075,7.075) P50(45.5,45.5) P75(122.5,122.5) P90(127,127) P95(128.5,128.5) P99(129.7,129.7) P99.5(129.85,129.85) P99.9(129.97,129.97) P100(130,130)';
      assert.equal(await read(), three);
      const prom = (await text(`${mesh.adminUrl}/stats/prometheus?filter=upstream_rq_time`)).body;
      const series = (le: string) => `envoy_cluster_upstream_rq_time_bucket{cluster_name="${SVC}",le="${le}"}`;
      assert.match(prom, /^# TYPE envoy_cluster_upstream_rq_time histogram$/m);
      assert.ok(prom.includes(`${series('5')} 0\n${series('10')} 1\n${series('25')} 1\n${series('50')} 2\n${series('100')} 2\n${series('250')} 3\n`), prom);
      assert.ok(prom.includes(`${series('3600000')} 3\n${series('+Inf')} 3\n`));
      // The sum of the bins' midpoints (7.05 + 45.5 + 125), printed %.32g as Envoy prints it (C's printf('%.32g', 177.55) gives the same).
      assert.ok(prom.includes(`envoy_cluster_upstream_rq_time_sum{cluster_name="${SVC}"} 177.5500000000000113686837721616\n`), prom);
      assert.ok(prom.includes(`envoy_cluster_upstream_rq_time_count{cluster_name="${SVC}"} 3\n`));
      // The next window: the interval is its values alone, the cumulative all of them.
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/7')).status, 200);
      clock.advance(5000);
      assert.match((await read()) as string, /^P0\(7,7\) P25\(7\.025,7\.05\) P50\(7\.05,7\.1\) /);
      // A window without calls: the interval is empty (nan), the cumulative stays.
      clock.advance(5000);
      assert.match((await read()) as string, /^P0\(nan,7\) P25\(nan,7\.05\) /);
      // ?format=json: Envoy's histograms element, NaN as null.
      const j = JSON.parse((await text(`${mesh.adminUrl}/stats?format=json&filter=upstream_rq_time%24`)).body) as { stats: { histograms: { supported_quantiles: number[]; computed_quantiles: { name: string; values: { interval: number | null; cumulative: number | null }[] }[] } }[] };
      const h = j.stats[0]?.histograms;
      assert.deepEqual(h?.supported_quantiles, [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]);
      assert.deepEqual(h?.computed_quantiles[0]?.values[0], { interval: null, cumulative: 7 });
      assert.equal(h?.computed_quantiles[0]?.name, name);
      // Text: counters and gauges sorted, the histograms after them.
      const lines = (await text(`${mesh.adminUrl}/stats`)).body.trimEnd().split('\n');
      assert.equal(lines.at(-1)?.startsWith(`${name}: P0(`), true);
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it("inbound: http.inbound_0.0.0.0_<port>;.downstream_rq_*, downstream_rq_time, RBAC's rbac.allowed/denied per Istio filter and its dry-run shadow stats, jwt_authn.allowed/denied; Istio's Prometheus tags", async () => {
    const { publicKey } = await generateKeyPair('RS256');
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] });
    const clock = new ManualClock(1_000_000);
    const policy = (name: string, action: string, paths: string[], annotations?: Record<string, string>) => ({
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name, namespace: 'default', ...(annotations === undefined ? {} : { annotations }) },
      spec: { action, rules: [{ to: [{ operation: { paths } }] }] },
    });
    const mesh = await createMesh({
      service: 'httpbin',
      clock,
      logger: quiet,
      admin: { port: 0 },
      config: [
        { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name: 'jwt', namespace: 'default' }, spec: { jwtRules: [{ issuer: 'testing@secure.istio.io', jwks }] } },
        policy('deny-admin', 'DENY', ['/admin']),
        policy('allow-get', 'ALLOW', ['/get', '/admin']),
        policy('would-allow-other', 'ALLOW', ['/other'], { 'istio.io/dry-run': 'true' }),
      ],
    });
    const server = mesh.createServer((_req, res) => {
      clock.advance(3);
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const get = async (path: string, headers: Record<string, string> = {}) => (await fetch(`http://127.0.0.1:${port}${path}`, { headers })).status;
      assert.equal(await get('/get'), 200);
      assert.equal(await get('/admin'), 403, 'the DENY policy');
      assert.equal(await get('/other'), 403, 'no ALLOW rule');
      assert.equal(await get('/get', { authorization: 'Bearer not-a-jwt' }), 401, 'jwt_authn refuses it before RBAC');
      const p = `inbound_0.0.0.0_${port}`;
      const s = parse((await text(`${mesh.adminUrl}/stats?filter=${encodeURIComponent(`^http\\.${p}`)}`)).body);
      const v = (stat: string) => s.get(`http.${p};.${stat}`);
      assert.equal(v('downstream_rq_total'), '4');
      assert.equal(v('downstream_rq_completed'), '4');
      assert.equal(v('downstream_rq_2xx'), '1');
      assert.equal(v('downstream_rq_4xx'), '3');
      assert.equal(v('downstream_rq_5xx'), '0');
      assert.equal(v('downstream_rq_active'), '0');
      // DENY filter: allowed /get and /other, denied /admin; ALLOW filter: allowed /get, denied /other.
      assert.equal(v('rbac.allowed'), '3');
      assert.equal(v('rbac.denied'), '2');
      // The dry-run ALLOW policy's shadow engine, in the ALLOW filter (not reached by /admin): matched /other, not /get.
      assert.equal(v('istio_dry_run_allow_rbac.shadow_allowed'), '1');
      assert.equal(v('istio_dry_run_allow_rbac.shadow_denied'), '1');
      assert.equal(v('jwt_authn.allowed'), '3');
      assert.equal(v('jwt_authn.denied'), '1');
      clock.advance(5000);
      const time = parse((await text(`${mesh.adminUrl}/stats?filter=downstream_rq_time`)).body).get(`http.${p};.downstream_rq_time`);
      // One request the app answered (3 ms: bin [3,3.1)), three refused at once (0 ms: the zero bin, no width).
      assert.equal(time, 'P0(0,0) P25(0,0) P50(0,0) P75(0,0) P90(3.06,3.06) P95(3.08,3.08) P99(3.096,3.096) P99.5(3.098,3.098) P99.9(3.0996,3.0996) P100(3.1,3.1)');
      const prom = (await text(`${mesh.adminUrl}/stats/prometheus`)).body;
      assert.ok(prom.includes(`envoy_http_downstream_rq{response_code_class="4xx",http_conn_manager_prefix="${p}"} 3\n`), prom);
      assert.ok(prom.includes(`envoy_http_downstream_rq_total{http_conn_manager_prefix="${p}"} 4\n`));
      assert.ok(prom.includes(`envoy_http_rbac{authz_enforce_result="allowed",http_conn_manager_prefix="${p}"} 3\n`));
      assert.ok(prom.includes(`envoy_http_rbac{authz_dry_run_action="allow",authz_dry_run_result="denied",http_conn_manager_prefix="${p}"} 1\n`));
      assert.ok(prom.includes(`envoy_http_jwt_authn_denied{http_conn_manager_prefix="${p}"} 1\n`));
      assert.match(prom, /^# TYPE envoy_http_downstream_rq_time histogram$/m);
      assert.match(prom, /^# TYPE envoy_http_downstream_rq_active gauge$/m);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });

  it("local rate limit: Istio's task EnvoyFilter (stat_prefix http_local_rate_limiter) as <stat_prefix>.http_local_rate_limit.enabled/ok/rate_limited/enforced", async () => {
    const mesh = await createMesh({ service: 'clt', namespace: 'default', labels: { app: 'clt' }, logger: quiet, admin: { port: 0 }, config: fixture('enable_envoy_local_ratelimit.yaml') });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const codes: number[] = [];
      for (let i = 0; i < 3; i++) codes.push((await fetch(`http://127.0.0.1:${port}/`)).status);
      assert.deepEqual(codes, [200, 429, 429]);
      // What Istio's local rate limit task greps for.
      const s = parse((await text(`${mesh.adminUrl}/stats?filter=http_local_rate_limit`)).body);
      assert.deepEqual(Object.fromEntries(s), {
        'http_local_rate_limiter.http_local_rate_limit.enabled': '3',
        'http_local_rate_limiter.http_local_rate_limit.enforced': '2',
        'http_local_rate_limiter.http_local_rate_limit.ok': '1',
        'http_local_rate_limiter.http_local_rate_limit.rate_limited': '2',
      });
      const prom = (await text(`${mesh.adminUrl}/stats/prometheus?filter=http_local_rate_limit`)).body;
      assert.ok(prom.includes('envoy_http_local_rate_limiter_http_local_rate_limit_rate_limited 2\n'), prom);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });

  it('gRPC client connections count in upstream_cx_active and /clusters cx_active, as HTTP ones do', async () => {
    const up = await startGrpcUpstream('a');
    const mesh = await createMesh({ service: 'client', logger: quiet, admin: { port: 0 }, config: [grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }])] });
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    try {
      const r = await unary(client, { text: 'hi' });
      assert.equal(r.error, undefined);
      const cluster = 'outbound|9090||echo.default.svc.cluster.local';
      const s = parse((await text(`${mesh.adminUrl}/stats?filter=upstream_cx_active`)).body);
      assert.equal(s.get(`cluster.${cluster};.upstream_cx_active`), '1');
      const clusters = (await text(`${mesh.adminUrl}/clusters`)).body;
      assert.ok(clusters.includes(`${cluster}::127.0.0.1:${up.port}::cx_active::1\n`), clusters);
    } finally {
      client.close();
      await mesh.close();
      await up.close();
    }
  });

  it("nothing is subscribed without the admin endpoint (the channels the new stats read included; attempt:start is every mesh's already, for Istio's metrics)", async () => {
    const watched = [channels.inboundStart, channels.authzDecision, channels.retryBudgetExhausted, outlierOverflowChannel, inboundConnectionChannel, upstreamConnectionChannel];
    const plain = await createMesh({ service: 'a', logger: quiet, config: [] });
    try {
      assert.deepEqual(watched.map((c) => c.hasSubscribers), [false, false, false, false, false, false]);
    } finally {
      await plain.close();
    }
    const withAdmin = await createMesh({ service: 'b', logger: quiet, admin: { port: 0 }, config: [] });
    assert.deepEqual(watched.map((c) => c.hasSubscribers), [true, true, true, true, true, true]);
    await withAdmin.close();
    assert.deepEqual(watched.map((c) => c.hasSubscribers), [false, false, false, false, false, false]);
  });
});
