/**
 * `/stats`' `?type=` and `?histogram_buckets=` as Envoy's admin reads them
 * (source/server/admin/stats_params.cc `StatsParams::parse`, utils.cc `histogramBucketsParam`) and
 * renders them (stats_render.cc: `bucketSummary` `B{:g}(interval,cumulative)`,
 * `addDisjointBuckets`, the detailed `totals=`/`intervals=`/`summary=` lines, and the JSON forms
 * of `collectBuckets` and `generateHistogramDetail`), over a real mesh and upstream.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, ManualClock } from '../../src/index.ts';
import { call, serviceEntry, startUpstream } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };
const SVC = 'outbound|80||svc.default.svc.cluster.local';
const NAME = `cluster.${SVC};.upstream_rq_time`;

async function get(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text() };
}

describe('admin /stats ?type= and ?histogram_buckets=', () => {
  it("lists one kind of stat, and a histogram's buckets cumulative, disjoint or detailed, in text and JSON", async () => {
    const clock = new ManualClock(1_000_000);
    const up = await startUpstream('svc', (req, res) => {
      clock.advance(Number(req.url?.slice(1)));
      res.end();
    });
    const mesh = await createMesh({ service: 'client', clock, logger: quiet, admin: { port: 0 }, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
    const stats = (q: string) => get(`${mesh.adminUrl}/stats?${q}`);
    const line = async (q: string) => {
      const { status, body } = await stats(`filter=upstream_rq_time%24&${q}`);
      assert.equal(status, 200, body);
      return body;
    };
    try {
      for (const ms of [7, 45, 123]) assert.equal((await call(mesh, `http://svc.default.svc.cluster.local/${ms}`)).status, 200);
      // Not merged yet (stats flush every 5 s).
      assert.equal((await line('histogram_buckets=cumulative')).trimEnd(), `${NAME}: No recorded values`);
      assert.equal((await line('histogram_buckets=detailed')).trimEnd(), `${NAME}: No recorded values`);
      clock.advance(5000);
      // Bins [7,7.1) [45,46) [120,130); counts at or below each default bound, {:g} bounds (1.8e+06).
      const cumulative = 'B0.5(0,0) B1(0,0) B5(0,0) B10(1,1) B25(1,1) B50(2,2) B100(2,2) B250(3,3) B500(3,3) B1000(3,3) B2500(3,3) B5000(3,3) B10000(3,3) B30000(3,3) B60000(3,3) B300000(3,3) B600000(3,3) B1.8e+06(3,3) B3.6e+06(3,3)';
      assert.equal(await line('histogram_buckets=cumulative'), `${NAME}: ${cumulative}\n`);
      const disjoint = 'B0.5(0,0) B1(0,0) B5(0,0) B10(1,1) B25(0,0) B50(1,1) B100(0,0) B250(1,1) B500(0,0) B1000(0,0) B2500(0,0) B5000(0,0) B10000(0,0) B30000(0,0) B60000(0,0) B300000(0,0) B600000(0,0) B1.8e+06(0,0) B3.6e+06(0,0)';
      assert.equal(await line('histogram_buckets=disjoint'), `${NAME}: ${disjoint}\n`);
      const summary = 'P0(7,7) P25(7.075,7.075) P50(45.5,45.5) P75(122.5,122.5) P90(127,127) P95(128.5,128.5) P99(129.7,129.7) P99.5(129.85,129.85) P99.9(129.97,129.97) P100(130,130)';
      assert.equal(await line('histogram_buckets=detailed'), `${NAME}:\n  totals=7,0.1:1, 45,1:1, 120,10:1\n  intervals=7,0.1:1, 45,1:1, 120,10:1\n  summary=${summary}\n`);
      assert.equal(await line('histogram_buckets=none'), `${NAME}: ${summary}\n`);
      assert.equal(await line('histogram_buckets='), `${NAME}: ${summary}\n`);
      // The next window: the interval holds its call alone.
      assert.equal((await call(mesh, 'http://svc.default.svc.cluster.local/7')).status, 200);
      clock.advance(5000);
      assert.match(await line('histogram_buckets=detailed'), /\n {2}totals=7,0\.1:2, 45,1:1, 120,10:1\n {2}intervals=7,0\.1:1\n/);
      assert.match(await line('histogram_buckets=cumulative'), /B10\(1,2\) B25\(1,2\) B50\(1,3\)/);

      // JSON: {histograms: [{name, buckets: [{upper_bound, interval, cumulative}]}]} ...
      type Buckets = { stats: { histograms: { name: string; buckets: { upper_bound: number; interval: number; cumulative: number }[] }[] }[] };
      const cj = JSON.parse(await line('format=json&histogram_buckets=disjoint')) as Buckets;
      const b = cj.stats[0]?.histograms[0];
      assert.equal(b?.name, NAME);
      assert.deepEqual(b?.buckets.slice(3, 6), [
        { upper_bound: 10, interval: 1, cumulative: 2 },
        { upper_bound: 25, interval: 0, cumulative: 0 },
        { upper_bound: 50, interval: 0, cumulative: 1 },
      ]);
      assert.equal(b?.buckets.length, 19);
      // ... and detailed: {histograms: {supported_percentiles, details: [{name, totals, intervals, percentiles}]}}.
      type Detail = { stats: { histograms: { supported_percentiles: number[]; details: { name: string; totals: unknown[]; intervals: unknown[]; percentiles: { cumulative: number | null; interval: number | null }[] }[] } }[] };
      const dj = JSON.parse(await line('format=json&histogram_buckets=detailed')) as Detail;
      const d = dj.stats[0]?.histograms;
      assert.deepEqual(d?.supported_percentiles, [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]);
      assert.deepEqual(d?.details[0]?.intervals, [{ lower_bound: 7, width: 0.1, count: 1 }]);
      assert.equal(d?.details[0]?.totals.length, 3);
      assert.deepEqual(d?.details[0]?.percentiles[0], { cumulative: 7, interval: 7 });

      // ?type=: one kind only; text readouts are none of meshlet's; anything else is refused as Envoy refuses it.
      const kinds = async (type: string) => {
        const { status, body } = await stats(`type=${type}&format=json`);
        assert.equal(status, 200, body);
        const s = (JSON.parse(body) as { stats: { name?: string; histograms?: unknown }[] }).stats;
        return { plain: s.filter((x) => x.name !== undefined).map((x) => x.name as string), histograms: s.some((x) => x.histograms !== undefined) };
      };
      const counters = await kinds('Counters');
      assert.ok(counters.plain.includes(`cluster.${SVC};.upstream_rq_total`), counters.plain.join('\n'));
      assert.ok(!counters.plain.includes(`cluster.${SVC};.upstream_rq_active`), 'a gauge is not a counter');
      assert.equal(counters.histograms, false);
      const gauges = await kinds('Gauges');
      assert.ok(gauges.plain.includes(`cluster.${SVC};.upstream_rq_active`));
      assert.ok(!gauges.plain.includes(`cluster.${SVC};.upstream_rq_total`));
      const histograms = await kinds('Histograms');
      assert.deepEqual(histograms.plain, []);
      assert.equal(histograms.histograms, true);
      assert.equal((await stats('type=TextReadouts')).body, '');
      const all = await kinds('All');
      assert.ok(all.plain.length === counters.plain.length + gauges.plain.length && all.histograms);
      for (const [q, what] of [
        ['type=counters', 'type "counters"'],
        ['type=', 'type ""'],
        ['histogram_buckets=summary', 'histogram_buckets "summary"'],
      ]) {
        const r = await stats(q as string);
        assert.equal(r.status, 400, q);
        assert.ok(r.body.includes(what as string), r.body);
      }
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
