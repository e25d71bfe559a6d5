/**
 * `meshletMetricProducer()`: hands the series of Istio's standard metrics that meshlet
 * aggregates itself to an OpenTelemetry `MetricReader`, at each collection, as `MetricData`
 * exactly like the SDK's own aggregation makes it (names, descriptions, units, Envoy's bucket
 * bounds, attributes, temporality). While at least one producer exists, meshes stop recording
 * those four metrics through the OTel API (where the SDK hashes ~25 attributes per instrument
 * per request) and add to their own series instead — see `../metrics/outlet.ts`.
 *
 * `startTelemetry()` puts one on each reader it makes. With your own SDK:
 * ```ts
 * const producer = meshletMetricProducer();
 * new MeterProvider({ readers: [new PrometheusExporter({ metricProducers: [producer] })] });
 * ```
 * A producer that no reader collects keeps the meshes' series to itself: call `release()` on
 * one you no longer use. It loads no OpenTelemetry SDK package itself (the SDK's enum values it
 * fills in are in `sdk-values.ts`): the reader it is given to comes from your SDK.
 *
 * @module
 */
import { type HrTime, ValueType } from '@opentelemetry/api';
import type { CollectionResult, DataPoint, Histogram, MetricData, MetricDescriptor, MetricProducer } from '@opentelemetry/sdk-metrics';
import { METER_NAME } from '../metrics/istio-metrics.ts';
import { addSeriesConsumer } from '../metrics/outlet.ts';
import { type HistogramState, type MetricSeries, seriesKey } from '../metrics/series.ts';
import { COUNTER_INSTRUMENT, CUMULATIVE, DELTA, EMPTY_RESOURCE, HISTOGRAM_INSTRUMENT, HISTOGRAM_POINTS, SUM_POINTS } from './sdk-values.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { checkOptionNames } from '../../core/option-names.ts';

/** Options of {@link meshletMetricProducer}. */
export interface MeshletMetricProducerOptions {
  /**
   * What the reader expects: `cumulative` (Prometheus, most OTLP backends) or `delta` (only
   * series that changed since the last collection, with what changed; histograms then carry no
   * min/max).
   * @defaultValue 'cumulative'
   */
  readonly temporality?: 'cumulative' | 'delta' | undefined;
}

/** A {@link MetricProducer} of meshlet's standard-metric series; `release()` when no reader uses it. */
export interface MeshletMetricProducer extends MetricProducer {
  /** Stops handing out series (meshes go back to the OTel API once no producer is left). */
  release(): void;
}

function hrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** What a delta producer reported of one series last time. */
interface Reported {
  readonly value: number;
  readonly count: number;
  readonly sum: number;
  readonly counts: readonly number[];
  readonly at: number;
}

/**
 * A metric producer for Istio's standard metrics as meshlet aggregates them (one per reader:
 * each keeps its own delta state).
 * @category Telemetry
 */
export function meshletMetricProducer(options: MeshletMetricProducerOptions = {}): MeshletMetricProducer {
  checkOptionNames('meshletMetricProducer', options, ['temporality'] satisfies (keyof MeshletMetricProducerOptions)[]);
  const temporality = options.temporality ?? 'cumulative';
  if (temporality !== 'cumulative' && temporality !== 'delta') throw new InvalidArgumentError(`meshletMetricProducer: temporality must be 'cumulative' or 'delta', got ${JSON.stringify(temporality)}`);
  const consumer = addSeriesConsumer();
  const delta = temporality === 'delta';
  let reported = new WeakMap<MetricSeries, Reported>();
  let lastCollect: number | undefined;

  const collect = async (): Promise<CollectionResult> => {
    // The wall clock, as the SDK's own points (and series.ts's start times).
    const now = Date.now();
    const end = hrTime(now);
    const next = new WeakMap<MetricSeries, Reported>();
    // Metric name → label-set key → data point (meshes with the same labels add up).
    const byMetric = new Map<string, { data: MetricData; points: Map<string, DataPoint<number | Histogram>> }>();
    for (const source of consumer.sources()) {
      for (const [name, { store, description, unit }] of source.metrics) {
        const bounds = store.buckets;
        let metric = byMetric.get(name);
        if (metric === undefined) {
          // As the SDK describes its instruments (`type` and `advice` are beyond the public type).
          const counter: MetricDescriptor = { name, type: COUNTER_INSTRUMENT, description, unit, valueType: ValueType.DOUBLE, advice: {} } as MetricDescriptor;
          const histogram: MetricDescriptor = { name, type: HISTOGRAM_INSTRUMENT, description, unit, valueType: ValueType.DOUBLE, advice: { explicitBucketBoundaries: [...(bounds ?? [])] } } as MetricDescriptor;
          const data: MetricData =
            bounds === undefined
              ? {
                  descriptor: counter,
                  aggregationTemporality: delta ? DELTA : CUMULATIVE,
                  dataPointType: SUM_POINTS,
                  dataPoints: [],
                  isMonotonic: true,
                }
              : {
                  descriptor: histogram,
                  aggregationTemporality: delta ? DELTA : CUMULATIVE,
                  dataPointType: HISTOGRAM_POINTS,
                  dataPoints: [],
                };
          metric = { data, points: new Map() };
          byMetric.set(name, metric);
        }
        for (const s of store.all()) {
          const h = s.histogram;
          const count = h === undefined ? s.value : h.count;
          let value: number | Histogram;
          let start: number;
          if (delta) {
            const prev = reported.get(s);
            start = prev?.at ?? Math.max(s.startTime, lastCollect ?? s.startTime);
            // The next window starts where this one ends, never before it: while NTP has stepped
            // the clock back behind a window's start, the window ends at its start (below), and
            // the one after it starts there too (a delta window that overlaps the one before reads
            // as counting the same increments twice).
            next.set(s, { value: s.value, count, sum: h?.sum ?? 0, counts: h === undefined ? [] : [...h.counts], at: Math.max(start, now) });
            if (prev !== undefined && prev.count === count) continue;
            value = h === undefined ? s.value - (prev?.value ?? 0) : histogramDelta(h, bounds as readonly number[], prev);
          } else {
            if (count === 0) continue;
            start = s.startTime;
            value = h === undefined ? s.value : histogramValue(h, bounds as readonly number[]);
          }
          const key = seriesKey(s.attributes as Record<string, string>);
          const had = metric.points.get(key);
          // After NTP stepped the wall clock back past the start, the point ends at its start: never
          // before it, and the start stays put (a new start reads as a counter reset to collectors).
          if (had === undefined) metric.points.set(key, { attributes: s.attributes, startTime: hrTime(start), endTime: start > now ? hrTime(start) : end, value });
          else metric.points.set(key, { ...had, value: addValues(had.value, value) });
        }
      }
    }
    consumer.collected();
    reported = next;
    lastCollect = now;
    const metrics: MetricData[] = [];
    for (const { data, points } of byMetric.values()) if (points.size > 0) metrics.push({ ...data, dataPoints: [...points.values()] } as MetricData);
    return { resourceMetrics: { resource: EMPTY_RESOURCE, scopeMetrics: metrics.length === 0 ? [] : [{ scope: { name: METER_NAME }, metrics }] }, errors: [] };
  };
  return { collect, release: consumer.release };
}

function histogramValue(h: HistogramState, bounds: readonly number[]): Histogram {
  return { buckets: { boundaries: bounds as number[], counts: [...h.counts] }, count: h.count, sum: h.sum, min: h.count === 0 ? undefined : h.min, max: h.count === 0 ? undefined : h.max };
}

function histogramDelta(h: HistogramState, bounds: readonly number[], prev: Reported | undefined): Histogram {
  if (prev === undefined) return histogramValue(h, bounds);
  return { buckets: { boundaries: bounds as number[], counts: h.counts.map((c, i) => c - (prev.counts[i] ?? 0)) }, count: h.count - prev.count, sum: h.sum - prev.sum, min: undefined, max: undefined };
}

function addValues(a: number | Histogram, b: number | Histogram): number | Histogram {
  if (typeof a === 'number' || typeof b === 'number') return (a as number) + (b as number);
  return {
    buckets: { boundaries: a.buckets.boundaries, counts: a.buckets.counts.map((c, i) => c + (b.buckets.counts[i] ?? 0)) },
    count: a.count + b.count,
    sum: (a.sum ?? 0) + (b.sum ?? 0),
    min: a.min === undefined ? b.min : b.min === undefined ? a.min : Math.min(a.min, b.min),
    max: a.max === undefined ? b.max : b.max === undefined ? a.max : Math.max(a.max, b.max),
  };
}
