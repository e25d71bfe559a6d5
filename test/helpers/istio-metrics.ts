/**
 * The fixture of the Istio standard metrics tests: a mesh's IstioMetrics over its own
 * MeterProvider and a collecting reader, on a clock the test sets (`f.now`), made again before
 * each test; the end messages and channels the tests publish on.
 */
import { channel } from 'node:diagnostics_channel';
import { after, beforeEach } from 'node:test';
import { AggregationTemporality, type DataPoint, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import type { CallEndMessage, InboundEndMessage, WorkloadIdentity } from '../../src/core/observe.ts';
import { IstioMetrics } from '../../src/telemetry/metrics/istio-metrics.ts';
import type { IstioMetricsContext } from '../../src/telemetry/metrics/options.ts';
import { callEndMessage, inboundEndMessage } from './observe-messages.ts';

export class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
  async points(name: string): Promise<DataPoint<unknown>[]> {
    const { resourceMetrics } = await this.collect();
    const out: DataPoint<unknown>[] = [];
    for (const sm of resourceMetrics.scopeMetrics) for (const m of sm.metrics) if (m.descriptor.name === name) out.push(...(m.dataPoints as DataPoint<unknown>[]));
    return out;
  }
}

export const identity: WorkloadIdentity = Object.freeze({ service: 'reviews', namespace: 'shop', labels: Object.freeze({ app: 'reviews', version: 'v2' }), serviceAccount: 'reviews', workloadName: 'reviews-v2' });
export const other: WorkloadIdentity = Object.freeze({ service: 'other', namespace: 'shop', labels: Object.freeze({}), serviceAccount: 'default' });

export function callEnd(over: Partial<CallEndMessage> = {}): CallEndMessage {
  return callEndMessage(identity, over);
}

export function inboundEnd(over: Partial<InboundEndMessage> = {}): InboundEndMessage {
  return inboundEndMessage(identity, over);
}

export const callEndCh = channel('meshlet:call:end');
export const inboundEndCh = channel('meshlet:inbound:end');
export const attemptStartCh = channel('meshlet:attempt:start');

/** The metrics under test and what they report to; `make` replaces `m` (closed before the next test). */
export interface MetricsFixture {
  reader: TestReader;
  m: IstioMetrics;
  now: number;
  readonly warnings: string[];
  readonly made: IstioMetrics[];
  make(ctx?: Partial<IstioMetricsContext>, o?: { maxSeries?: number; idleSeriesMs?: number }): IstioMetrics;
}

/** The fixture, made again before each test of the calling suite. */
export function metricsFixture(): MetricsFixture {
  const f = {
    now: 0,
    warnings: [] as string[],
    made: [] as IstioMetrics[],
    make(ctx: Partial<IstioMetricsContext> = {}, o: { maxSeries?: number; idleSeriesMs?: number } = {}): IstioMetrics {
      const reader = new TestReader();
      f.reader = reader;
      const provider = new MeterProvider({ readers: [reader] });
      const x = new IstioMetrics(
        { identity, workloadName: 'reviews-v2', now: () => f.now, warn: (w) => f.warnings.push(w), principal: () => 'spiffe://cluster.local/ns/shop/sa/reviews', inMesh: () => true, ip: '10.1.1.1', ...ctx },
        { meterProvider: provider, ...o },
      );
      x.start();
      f.made.push(x);
      return x;
    },
  } as MetricsFixture;
  beforeEach(() => {
    for (const x of f.made.splice(0)) x.close();
    f.warnings.length = 0;
    f.now = 0;
    f.m = f.make();
  });
  after(() => {
    for (const x of f.made.splice(0)) x.close();
  });
  return f;
}
