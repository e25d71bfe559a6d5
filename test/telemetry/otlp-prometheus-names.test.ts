/**
 * The names meshlet documents are the names Prometheus stores whichever way the data points
 * travel. Scraped (the OpenTelemetry Prometheus exporter, `startTelemetry()`'s endpoint) they
 * are written as they are; pushed over OTLP to a collector's Prometheus exporter or remote write,
 * or to Prometheus's own OTLP receiver, they go through the OpenTelemetry→Prometheus translation
 * (the spec's "OTLP Metric points to Prometheus", `prometheus/otlptranslator` with suffixes, the
 * default): the unit's suffix is appended unless the name has it, `_total` for a monotonic sum,
 * and `_ratio` for a gauge of unit `1`. Every metric a mesh exports — Istio's four, through
 * meshlet's producer as `startTelemetry()` sets it up, and meshlet's own — must come out of that
 * translation unchanged, or dashboards, Kiali and Flagger (and docs/telemetry.md's queries) find
 * nothing behind an OTLP pipeline.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DataPointType, MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { createMesh, type Mesh } from '../../src/index.ts';
import { meshletMetricProducer } from '../../src/telemetry/sdk/index.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

/** UCUM units the translation spells out (otlptranslator's unit map, the ones that matter here). */
const UNIT_WORDS: Record<string, string> = { d: 'days', h: 'hours', min: 'minutes', s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds', By: 'bytes', '%': 'percent' };

/** The Prometheus name of an OTLP metric, as the OpenTelemetry→Prometheus translation with suffixes makes it. */
function translated(m: MetricData): string {
  let tokens = m.descriptor.name.split(/[^a-zA-Z0-9]+/).filter((t) => t !== '');
  const unit = m.descriptor.unit.replace(/\{[^}]*\}/g, '');
  const [main = '', per = ''] = unit.split('/');
  if (main !== '' && main !== '1') {
    const word = UNIT_WORDS[main] ?? main;
    if (!tokens.includes(word)) tokens.push(word);
  }
  if (per !== '') tokens.push('per', UNIT_WORDS[per] ?? per);
  if (m.dataPointType === DataPointType.SUM && m.isMonotonic) tokens = [...tokens.filter((t) => t !== 'total'), 'total'];
  if (unit === '1' && m.dataPointType === DataPointType.GAUGE) tokens = [...tokens.filter((t) => t !== 'ratio'), 'ratio'];
  return tokens.join('_');
}

class Reader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

describe('metric names survive the OTLP→Prometheus translation', () => {
  let up: Upstream;
  let server: Mesh;
  let client: Mesh;
  const producer = meshletMetricProducer();
  const reader = new Reader({ metricProducers: [producer] });
  const provider = new MeterProvider({ readers: [reader] });
  before(async () => {
    server = await createMesh({
      service: 'reviews',
      config: [],
      identity: 'none',
      telemetry: { metrics: { meterProvider: provider }, ownMetrics: { meterProvider: provider } },
    });
    up = await startUpstream('reviews');
    client = await createMesh({
      service: 'productpage',
      config: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])],
      identity: 'none',
      telemetry: { metrics: { meterProvider: provider }, ownMetrics: { meterProvider: provider } },
    });
  });
  after(async () => {
    await client.close();
    await server.close();
    await up.close();
    producer.release();
    await provider.shutdown();
  });

  it('every metric exported, Istio’s and meshlet’s own, keeps its name', async () => {
    assert.equal((await call(client, 'http://reviews:9080/')).status, 200);
    const { resourceMetrics, errors } = await reader.collect();
    assert.deepEqual(errors, []);
    const all = resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics);
    const names = all.map((m) => m.descriptor.name);
    for (const expected of ['istio_requests_total', 'istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes', 'istio_build', 'meshlet_config_version', 'meshlet_config_source', 'meshlet_config_applied_total']) {
      assert.ok(names.includes(expected), `${expected} is exported (${names.join(', ')})`);
    }
    assert.deepEqual(
      all.filter((m) => translated(m) !== m.descriptor.name).map((m) => `${m.descriptor.name} (unit '${m.descriptor.unit}') → ${translated(m)}`),
      [],
    );
  });
});
