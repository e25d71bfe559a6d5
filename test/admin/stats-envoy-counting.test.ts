/**
 * /stats semantics checked against Envoy's source:
 *
 * - a mirror copy's answer is charged on the mirror cluster (`upstream_rq_<code>`, `_<N>xx`,
 *   `_completed`), as Envoy's shadow goes through the async client's router
 *   (source/common/http/async_client_impl.cc: its `Router::FilterConfig` has `emit_dynamic_stats`
 *   true, so router.cc `chargeUpstreamCode` runs) — not `upstream_rq_total` alone;
 * - a value under a millisecond is Envoy's 0 (`recordValue(uint64_t)` of whole milliseconds) and
 *   lands in libcircllhist's zero bin: quantiles 0 and a `_sum` of 0, not the bin [0, 0.1);
 * - `upstream_rq_total` counts a request once it is on a connection
 *   (source/common/conn_pool/conn_pool_base.cc `attachStreamToClient`), however it ends: one the
 *   route timeout or its caller ended too, so `upstream_rq_completed` never exceeds it;
 * - `upstream_rq_time` times a response that completed (router.cc `onUpstreamComplete` →
 *   `chargeResponseTiming`), not one the route timeout or the caller cut short mid-body.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, ManualClock } from '../../src/index.ts';
import { until } from '../helpers/until.ts';
import { answering, call, serviceEntry, startUpstream, virtualService } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };

async function stats(url: string): Promise<Map<string, string>> {
  const body = await (await fetch(url)).text();
  const m = new Map<string, string>();
  for (const line of body.split('\n')) {
    const i = line.indexOf(': ');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 2));
  }
  return m;
}

describe('admin /stats: mirror copies, sub-millisecond times and ended requests as Envoy counts them', () => {
  it("a mirror copy's answer is charged on the mirror cluster (upstream_rq_<code>, _<N>xx, _completed), as its attempts are in upstream_rq_total", async () => {
    const primary = await startUpstream('primary');
    const shadow = await startUpstream('shadow', answering(404, 'nope'));
    const mesh = await createMesh({
      service: 'client',
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('primary', 'primary.default.svc.cluster.local', 80, [{ port: primary.port }]),
        serviceEntry('shadow', 'shadow.default.svc.cluster.local', 80, [{ port: shadow.port }]),
        virtualService('primary', ['primary.default.svc.cluster.local'], [{ route: [{ destination: { host: 'primary.default.svc.cluster.local' } }], mirror: { host: 'shadow.default.svc.cluster.local' } }]),
      ],
    });
    const c = 'cluster.outbound|80||shadow.default.svc.cluster.local;.';
    try {
      for (let i = 0; i < 3; i++) assert.equal((await call(mesh, 'http://primary.default.svc.cluster.local/x')).status, 200);
      await until(() => shadow.hits === 3, 'three mirror copies');
      let s = new Map<string, string>();
      await until(async () => {
        s = await stats(`${mesh.adminUrl}/stats?filter=shadow`);
        return s.get(`${c}upstream_rq_total`) === '3';
      }, 'the copies counted');
      assert.equal(s.get(`${c}upstream_rq_404`), '3', 'the copies\' answers');
      assert.equal(s.get(`${c}upstream_rq_4xx`), '3');
      assert.equal(s.get(`${c}upstream_rq_completed`), '3', 'completed as many as sent');
      // The primary cluster is charged its own calls only.
      const p = await stats(`${mesh.adminUrl}/stats?filter=primary`);
      assert.equal(p.get('cluster.outbound|80||primary.default.svc.cluster.local;.upstream_rq_200'), '3');
      assert.equal(p.get('cluster.outbound|80||primary.default.svc.cluster.local;.upstream_rq_completed'), '3');
    } finally {
      await mesh.close();
      await primary.close();
      await shadow.close();
    }
  });

  it("a time under 1 ms is Envoy's 0 ms, in libcircllhist's zero bin: quantiles 0, _sum 0 (not the bin [0, 0.1))", async () => {
    const clock = new ManualClock(1_000_000);
    const up = await startUpstream('svc', (_req, res) => {
      clock.advance(0.4);
      res.end();
    });
    const mesh = await createMesh({ service: 'client', clock, logger: quiet, admin: { port: 0 }, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
    const SVC = 'outbound|80||svc.default.svc.cluster.local';
    try {
      for (let i = 0; i < 2; i++) assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/')).status, 200);
      clock.advance(5000);
      const s = await stats(`${mesh.adminUrl}/stats?filter=upstream_rq_time`);
      assert.equal(s.get(`cluster.${SVC};.upstream_rq_time`), 'P0(0,0) P25(0,0) P50(0,0) P75(0,0) P90(0,0) P95(0,0) P99(0,0) P99.5(0,0) P99.9(0,0) P100(0,0)');
      const prom = await (await fetch(`${mesh.adminUrl}/stats/prometheus?filter=upstream_rq_time`)).text();
      assert.ok(prom.includes(`envoy_cluster_upstream_rq_time_sum{cluster_name="${SVC}"} 0\n`), prom);
      assert.ok(prom.includes(`envoy_cluster_upstream_rq_time_bucket{cluster_name="${SVC}",le="0.5"} 2\n`), prom);
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  it('upstream_rq_total counts a request on a connection that the route timeout or its caller ended (upstream_rq_completed never above it)', async () => {
    const hanging = new Set<import('node:http').ServerResponse>();
    const up = await startUpstream('svc', (req, res) => {
      if (req.url === '/hang') hanging.add(res);
      else res.end();
    });
    const mesh = await createMesh({
      service: 'client',
      logger: quiet,
      admin: { port: 0 },
      config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]), virtualService('svc', ['svc.default.svc.cluster.local'], [{ timeout: '0.3s', route: [{ destination: { host: 'svc.default.svc.cluster.local' } }] }])],
    });
    const c = 'cluster.outbound|80||svc.default.svc.cluster.local;.';
    try {
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/ok')).status, 200);
      // The route timeout ends one that reached the upstream (504 UT).
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/hang')).status, 504);
      // The caller ends another once the upstream has it.
      const ac = new AbortController();
      const gone = mesh.fetch('http://svc.default.svc.cluster.local/hang', { signal: ac.signal }).then(
        () => 'answered',
        (e: Error) => e.name,
      );
      await until(() => hanging.size === 2, 'the upstream has both');
      ac.abort();
      assert.equal(await gone, 'AbortError');
      let s = new Map<string, string>();
      await until(async () => {
        s = await stats(`${mesh.adminUrl}/stats?filter=svc`);
        return s.get(`${c}upstream_rq_total`) === '3';
      }, 'the three requests that went out counted in upstream_rq_total');
      assert.equal(s.get(`${c}upstream_rq_completed`), '2', 'the 200 and the 504');
      assert.equal(s.get(`${c}upstream_rq_504`), '1');
      assert.equal(s.get(`${c}upstream_rq_timeout`), '1');
    } finally {
      for (const r of hanging) r.destroy();
      await mesh.close();
      await up.close();
    }
  });

  it('upstream_rq_time leaves out an answer cut short mid-body (the route timeout, the caller gone): Envoy times completed responses only', async () => {
    const clock = new ManualClock(1_000_000);
    const open = new Set<import('node:http').ServerResponse>();
    const up = await startUpstream('svc', (req, res) => {
      if (req.url === '/ok') {
        clock.advance(7);
        res.end('done');
        return;
      }
      // The head and part of the body, then nothing.
      res.writeHead(200);
      res.write('partial');
      open.add(res);
    });
    const mesh = await createMesh({
      service: 'client',
      clock,
      logger: quiet,
      admin: { port: 0 },
      config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]), virtualService('svc', ['svc.default.svc.cluster.local'], [{ timeout: '1s', route: [{ destination: { host: 'svc.default.svc.cluster.local' } }] }])],
    });
    const SVC = 'outbound|80||svc.default.svc.cluster.local';
    try {
      // The route timeout ends one mid-body (UT).
      const timedOut = await mesh.fetch('http://svc.default.svc.cluster.local/slow');
      assert.equal(timedOut.status, 200);
      const cut = timedOut.text().then(
        () => 'whole',
        () => 'cut',
      );
      clock.advance(1000);
      assert.equal(await cut, 'cut');
      // The caller leaves another mid-body (DC).
      const ac = new AbortController();
      const left = await mesh.fetch('http://svc.default.svc.cluster.local/slow', { signal: ac.signal });
      const gone = left.text().then(
        () => 'whole',
        () => 'gone',
      );
      ac.abort();
      assert.equal(await gone, 'gone');
      // One that completes, in 7 ms.
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/ok')).status, 200);
      clock.advance(5000);
      const prom = await (await fetch(`${mesh.adminUrl}/stats/prometheus?filter=upstream_rq_time`)).text();
      assert.ok(prom.includes(`envoy_cluster_upstream_rq_time_count{cluster_name="${SVC}"} 1\n`), prom);
      const s = await stats(`${mesh.adminUrl}/stats?filter=upstream_rq_time`);
      assert.match(s.get(`cluster.${SVC};.upstream_rq_time`) ?? '', /^P0\(7,7\) .* P100\(7\.1,7\.1\)$/);
    } finally {
      for (const r of open) r.destroy();
      await mesh.close();
      await up.close();
    }
  });
});
