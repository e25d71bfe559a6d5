/**
 * meshletMetricProducer's data points when NTP steps the wall clock back: a point's start is never
 * after its end (collectors refuse or misread such points), in both temporalities, and a cumulative
 * series keeps its start (a point ends at its start while the clock is behind it).
 */
import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { it } from 'node:test';
import { AggregationTemporality, type DataPoint, MeterProvider, MetricReader, type MetricProducer } from '@opentelemetry/sdk-metrics';
import type { WorkloadIdentity } from '../../core/observe.ts';
import { callEndMessage } from '../../../test/helpers/observe-messages.ts';
import { IstioMetrics } from '../metrics/istio-metrics.ts';
import { meshletMetricProducer } from './metric-producer.ts';

class TestReader extends MetricReader {
  constructor(temporality: AggregationTemporality, producers: MetricProducer[]) {
    super({ aggregationTemporalitySelector: () => temporality, metricProducers: producers });
  }
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
  async points(): Promise<DataPoint<unknown>[]> {
    const { resourceMetrics } = await this.collect();
    return resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics).flatMap((m) => (m.descriptor.name.startsWith('istio_') ? (m.dataPoints as DataPoint<unknown>[]) : []));
  }
}

const identity: WorkloadIdentity = Object.freeze({ service: 'reviews', namespace: 'shop', labels: Object.freeze({ app: 'reviews' }), serviceAccount: 'reviews', workloadName: 'reviews' });
const callEnd = channel('meshlet:call:end');
const ms = ([s, ns]: [number, number]): number => s * 1000 + ns / 1e6;

for (const temporality of ['delta', 'cumulative'] as const) {
  it(`${temporality}: the wall clock stepped back an hour gives no point that starts after it ends`, async () => {
    const realNow = Date.now;
    let step = 0;
    Date.now = () => realNow() + step;
    const producer = meshletMetricProducer({ temporality });
    const reader = new TestReader(temporality === 'delta' ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE, [producer]);
    const provider = new MeterProvider({ readers: [reader] });
    const m = new IstioMetrics({ identity, workloadName: 'reviews', now: () => 0, warn: () => {}, principal: () => '', inMesh: () => true, ip: '10.1.1.1' }, { meterProvider: provider });
    m.start();
    try {
      callEnd.publish(callEndMessage(identity, { durationMs: 3 }));
      assert.ok((await reader.points()).length > 0);
      step = -3_600_000;
      callEnd.publish(callEndMessage(identity, { durationMs: 4 }));
      const points = await reader.points();
      assert.ok(points.length > 0);
      for (const p of points) assert.ok(ms(p.startTime) <= ms(p.endTime), `start ${ms(p.startTime)} after end ${ms(p.endTime)}`);
      if (temporality === 'delta') {
        // The next window starts where the last one ended (no overlap), while the clock is still behind.
        callEnd.publish(callEndMessage(identity, { durationMs: 5 }));
        const next = await reader.points();
        assert.ok(next.length > 0);
        const lastEnd = Math.max(...points.map((p) => ms(p.endTime)));
        for (const p of next) assert.ok(ms(p.startTime) >= lastEnd, `window starts at ${ms(p.startTime)}, before the last one's end ${lastEnd}`);
      }
      if (temporality === 'cumulative') {
        // A cumulative series keeps its start: a new one reads as a counter reset to a collector.
        await new Promise((r) => setTimeout(r, 5));
        const again = await reader.points();
        assert.deepEqual(again.map((p) => ms(p.startTime)), points.map((p) => ms(p.startTime)), 'the start of a cumulative series moved');
      }
    } finally {
      Date.now = realNow;
      m.close();
      producer.release();
      await provider.shutdown();
    }
  });
}
