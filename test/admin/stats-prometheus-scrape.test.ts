/**
 * The admin endpoint's `/stats/prometheus`, scraped by a real Prometheus (Debian's, as
 * scripts/provision.ts installs it) with `metrics_path: /stats/prometheus` as a PodMonitor of a
 * sidecar's 15000 would: the target is up (the page parses), and the overflow and code counters
 * query under the names and labels Istio's dashboards use — `envoy_cluster_upstream_rq_pending_overflow
 * {cluster_name=…}` and `envoy_cluster_upstream_rq{response_code="503"}` beside
 * `{response_code_class="5xx"}` in one family.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type PrometheusServer, startPrometheus } from '../helpers/prometheus.ts';
import { skipWithout } from '../helpers/tools.ts';
import { until } from '../helpers/until.ts';
import { destinationRule, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const CLUSTER = 'outbound|8000||httpbin.default.svc.cluster.local';

let prometheus: PrometheusServer | undefined;
let mesh: Mesh | undefined;
let httpbin: Upstream | undefined;
after(async () => {
  await prometheus?.stop();
  await mesh?.close();
  await httpbin?.close();
});

it('a real Prometheus scrapes /stats/prometheus: target up, overflow and per-code counters queryable with cluster_name', { skip: skipWithout('prometheus') }, async () => {
  httpbin = await startUpstream('httpbin', async (_req, res) => {
    await delay(15);
    res.end('{}');
  });
  mesh = await createMesh({
    service: 'fortio',
    logger: { warn: () => {} },
    admin: { port: 0 },
    config: [
      serviceEntry('httpbin', 'httpbin.default.svc.cluster.local', 8000, [{ port: httpbin.port }]),
      destinationRule('httpbin', 'httpbin', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } } }),
    ],
  });
  const m = mesh;
  const codes = await Promise.all(
    Array.from({ length: 10 }, async () => {
      const r = await m.fetch('http://httpbin.default.svc.cluster.local:8000/get');
      await r.text();
      return r.status;
    }),
  );
  const overflows = codes.filter((c) => c === 503).length;
  assert.ok(overflows > 0, `some calls overflowed: ${codes.join(',')}`);
  prometheus = await startPrometheus({ targets: [new URL(m.adminUrl as string).host], metricsPath: '/stats/prometheus', scrapeIntervalMs: 1000 });
  const p = prometheus;
  await until(async () => (await p.query('up{job="meshlet"}'))[0]?.value === 1, 'the target to be scraped and up', 30_000, 200);
  const overflow = await p.query('envoy_cluster_upstream_rq_pending_overflow');
  assert.deepEqual(
    overflow.map((s) => [s.metric.cluster_name, s.value]),
    [[CLUSTER, overflows]],
  );
  const by503 = await p.query('envoy_cluster_upstream_rq{response_code="503"}');
  assert.deepEqual(by503.map((s) => [s.metric.cluster_name, s.value]), [[CLUSTER, overflows]]);
  const by5xx = await p.query('envoy_cluster_upstream_rq{response_code_class="5xx"}');
  assert.deepEqual(by5xx.map((s) => s.value), [overflows]);
  const live = await p.query('envoy_server_live');
  assert.deepEqual(live.map((s) => s.value), [1]);
});
