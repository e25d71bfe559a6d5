/**
 * An OpenTelemetry SDK MeterProvider with an in-memory reader the test collects from when it
 * wants, and ways to read one metric's points.
 */
import assert from 'node:assert/strict';
import { AggregationTemporality, type DataPoint, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';

/** A reader the test collects from when it wants. */
class TestReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export type Point = { attributes: Record<string, unknown>; value: number };

/** A MeterProvider with its reader, and a way to read one metric's points. */
export function sdk() {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  return {
    provider,
    /** Every point of `name`, attributes and value. */
    async points(name: string): Promise<Point[]> {
      const { resourceMetrics, errors } = await reader.collect();
      assert.deepEqual(errors, []);
      const out: Point[] = [];
      for (const sm of resourceMetrics.scopeMetrics) {
        for (const m of sm.metrics) {
          if (m.descriptor.name !== name) continue;
          for (const p of m.dataPoints as DataPoint<number>[]) out.push({ attributes: { ...p.attributes }, value: p.value });
        }
      }
      return out;
    },
    /** The value of the one point of `name` whose attributes include `labels`, or undefined. */
    async value(name: string, labels: Record<string, string>): Promise<number | undefined> {
      const ps = (await this.points(name)).filter((p) => Object.entries(labels).every(([k, v]) => p.attributes[k] === v));
      assert.ok(ps.length <= 1, `${name} ${JSON.stringify(labels)}: ${ps.length} points`);
      return ps[0]?.value;
    },
    async names(): Promise<string[]> {
      const { resourceMetrics } = await reader.collect();
      return resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics.filter((m) => m.dataPoints.length > 0).map((m) => m.descriptor.name));
    },
    shutdown: () => provider.shutdown(),
  };
}


/** A cumulative reader to read a mesh's `istio_requests_total` from (give it to a MeterProvider). */
export class RequestsReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
  /** Every point of istio_requests_total: its labels and `value`. */
  async requests(): Promise<Record<string, unknown>[]> {
    const { resourceMetrics } = await this.collect();
    return resourceMetrics.scopeMetrics
      .flatMap((sm) => sm.metrics)
      .filter((m) => m.descriptor.name === 'istio_requests_total')
      .flatMap((m) => (m.dataPoints as DataPoint<number>[]).map((p) => ({ ...p.attributes, value: p.value })));
  }
}
