/**
 * Telemetry `tagOverrides` of client-side metrics (`reporter="source"`) that read the request:
 * `request.headers['x-tenant']`, `request.useragent` see the call's request headers (as the client
 * access log's `%REQ(…)%` and `%CEL(…)%` do, and Istio's client sidecar), through the OTel API
 * (the app's MeterProvider) and through meshlet's metric producer (startTelemetry's way) alike.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { AggregationTemporality, type DataPoint, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { createMesh } from '../../src/index.ts';
import { aggregatingLocally } from '../../src/telemetry/metrics/outlet.ts';
import { meshletMetricProducer } from '../../src/telemetry/sdk/metric-producer.ts';
import { serviceEntry, startUpstream } from '../helpers/upstreams.ts';

class Reader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

const overrides = {
  apiVersion: 'telemetry.istio.io/v1',
  kind: 'Telemetry',
  metadata: { name: 'mesh-default', namespace: 'istio-system' },
  spec: { metrics: [{ overrides: [{ match: { metric: 'REQUEST_COUNT' }, tagOverrides: { tenant: { value: "request.headers['x-tenant']" }, ua: { value: 'request.useragent' }, path: { value: 'request.url_path' } } }] }] },
};

describe('client-side tag overrides that read the request', () => {
  after(() => assert.equal(aggregatingLocally(), false));

  for (const way of ['the OTel API', "meshlet's metric producer"] as const) {
    test(`request.headers and request.useragent are the call's (${way})`, async () => {
      const up = await startUpstream('ratings');
      const producer = way === 'the OTel API' ? undefined : meshletMetricProducer();
      const reader = new Reader({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE, ...(producer === undefined ? {} : { metricProducers: [producer] }) });
      const provider = new MeterProvider({ readers: [reader] });
      const mesh = await createMesh({ service: 'productpage', logger: { warn: () => undefined }, telemetry: { metrics: { meterProvider: provider } }, config: [serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: up.port }]), overrides] });
      try {
        const r = await mesh.fetch('http://ratings:9080/r/1?x=1', { headers: { 'x-tenant': 'acme', 'user-agent': 'ua1' } });
        await r.text();
        const { resourceMetrics } = await reader.collect();
        const points = resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics).filter((x) => x.descriptor.name === 'istio_requests_total').flatMap((x) => x.dataPoints as DataPoint<number>[]);
        assert.deepEqual(
          points.map((p) => [p.attributes['reporter'], p.attributes['tenant'], p.attributes['ua'], p.attributes['path'], p.value]),
          [['source', 'acme', 'ua1', '/r/1', 1]],
        );
      } finally {
        await mesh.close();
        producer?.release();
        await provider.shutdown();
        await up.close();
      }
    });
  }
});
