/**
 * `meshlet_outlier_ejected_endpoints` reports 0 for a cluster that went away (the SDK would keep
 * its last count otherwise), so the mesh remembers the clusters it reported. Config churn (a
 * control plane adding and removing services for weeks) made that set grow with every cluster
 * name the process ever saw. Envoy drops a removed cluster's stats with the cluster; meshlet keeps
 * the gone ones only up to the own-metrics cache bound (1024), as its counters do.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeshMetrics } from '../../src/telemetry/mesh-metrics/mesh-metrics.ts';
import { sdk } from '../helpers/metric-reader.ts';

test('clusters that config churn removed are not remembered without bound by the ejected-endpoints gauge', async () => {
  const m = sdk();
  let present: { name: string; ejected: string[] }[] = [];
  const metrics = MeshMetrics.start(
    {
      identity: { service: 'client', namespace: 'default' } as never,
      config: () => ({ version: '1', source: 'file' }),
      inboundTls: () => ({ plaintext: 0, mtls: 0 }),
      outlierClusters: () => present,
    },
    { meterProvider: m.provider },
  ) as MeshMetrics;
  try {
    // 1500 clusters in all: below the SDK's own cardinality limit (2000 attribute sets per instrument), which it never forgets.
    for (let c = 0; c < 30; c++) {
      present = Array.from({ length: 50 }, (_, i) => ({ name: `outbound|80||svc-${c}-${i}.example`, ejected: i === 0 ? ['10.0.0.1:80'] : [] }));
      const points = await m.points('meshlet_outlier_ejected_endpoints');
      assert.equal(points.find((p) => p.attributes['cluster'] === `outbound|80||svc-${c}-0.example`)?.value, 1, `round ${c}: ${points.length} points`);
      if (c > 0) assert.equal(points.find((p) => p.attributes['cluster'] === `outbound|80||svc-${c - 1}-0.example`)?.value, 0, 'a cluster that went away reads 0');
    }
    assert.ok(metrics.reportedClusters <= 1024 + 50, `1500 clusters over time, ${metrics.reportedClusters} remembered`);
  } finally {
    metrics.close();
    await m.shutdown();
  }
});
