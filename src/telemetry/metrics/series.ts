/**
 * The series of one standard metric, held by meshlet itself: each label set's counter value or
 * histogram (Envoy's buckets), when it was last recorded, and a bound on how many label sets
 * there are.
 *
 * Bounded cardinality: each metric keeps at most `maxSeries` label sets; a data point with a new
 * label set beyond that is recorded under the OpenTelemetry overflow attribute set
 * (`otel.metric.overflow: true`, as the SDK's own cardinality limit does), counted, and warned
 * about once per metric. Label sets not seen for `idleMs` are forgotten, so the room they took is
 * free again — and, where meshlet aggregates itself (see `outlet.ts`), they leave the output: a
 * series that comes back starts again from zero, as when Istio's proxy rotates its stats.
 *
 * Where the data points go through the OTel API instead (an app's own SDK without meshlet's
 * metric producer), the SDK keeps every label set it has seen (the API cannot delete a series):
 * forgetting one here only bounds what meshlet creates.
 *
 * @module
 */
import type { MetricAttributes } from '@opentelemetry/api';

/** The attributes an overflowing data point is recorded with. */
export const OVERFLOW_ATTRIBUTES: MetricAttributes = Object.freeze({ 'otel.metric.overflow': true });

/** Options of {@link MetricSeriesStore}. */
export interface SeriesLimits {
  /** Label sets per metric. */
  readonly maxSeries: number;
  /** A label set unseen for this long is forgotten. */
  readonly idleMs: number;
}

/** A histogram's state: `counts[i]` counts values in (`bounds[i-1]`, `bounds[i]`], the last one those above every bound. */
export interface HistogramState {
  readonly counts: number[];
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** One label set of one metric. */
export class MetricSeries {
  readonly attributes: MetricAttributes;
  /** When it was created (epoch ms): the start of its cumulative values. */
  readonly startTime: number;
  /** When it was last recorded (the mesh's clock). */
  lastSeen: number;
  /** The counter's value (counters). */
  value = 0;
  /** The histogram (histograms). */
  readonly histogram: HistogramState | undefined;
  /** Forgotten (idle): no longer in its store. */
  evicted = false;

  constructor(attributes: MetricAttributes, now: number, buckets: readonly number[] | undefined) {
    this.attributes = attributes;
    // The wall clock, as the OpenTelemetry SDK stamps its points (Date.now): a host that slept
    // reports the time it woke to, not one behind by the sleep (the monotonic clock stops then).
    // Fixed: a cumulative series' start never moves (meshletMetricProducer keeps ends after it).
    this.startTime = Date.now();
    this.lastSeen = now;
    this.histogram = buckets === undefined ? undefined : { counts: new Array<number>(buckets.length + 1).fill(0), count: 0, sum: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };
  }
}

/** Adds `v` to a histogram with upper-inclusive `bounds` (as the OTel SDK buckets). */
export function recordHistogram(h: HistogramState, bounds: readonly number[], v: number): void {
  if (Number.isNaN(v)) return;
  h.count++;
  h.sum += v;
  if (v < h.min) h.min = v;
  if (v > h.max) h.max = v;
  let lo = 0;
  let hi = bounds.length - 1;
  let at = bounds.length;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if ((bounds[mid] as number) < v) lo = mid + 1;
    else {
      at = mid;
      hi = mid - 1;
    }
  }
  (h.counts[at] as number)++;
}

/** The label sets of one metric. */
export class MetricSeriesStore {
  readonly #limits: SeriesLimits;
  readonly #now: () => number;
  /** Histogram bounds, or undefined for a counter. */
  readonly buckets: readonly number[] | undefined;
  /** Label-set key → series. */
  readonly #series = new Map<string, MetricSeries>();
  #overflow: MetricSeries | undefined;
  #lastSweep = 0;
  /** Data points recorded under the overflow attributes. */
  overflowed = 0;
  readonly #onFirstOverflow: () => void;

  constructor(limits: SeriesLimits, now: () => number, buckets: readonly number[] | undefined, onFirstOverflow: () => void) {
    this.#limits = limits;
    this.#now = now;
    this.buckets = buckets;
    this.#onFirstOverflow = onFirstOverflow;
    this.#lastSweep = now();
  }

  /** How many label sets are tracked (the overflow set not counted). */
  get size(): number {
    return this.#series.size;
  }

  /** The series, the overflow one included. */
  *all(): IterableIterator<MetricSeries> {
    yield* this.#series.values();
    if (this.#overflow !== undefined) yield this.#overflow;
  }

  /**
   * The series of `labels` (whose key is `key`), made if new — or the overflow series when the
   * metric is full. `labels` must not change afterwards.
   */
  series(key: string, labels: MetricAttributes): MetricSeries {
    const now = this.#now();
    const s = this.#series.get(key);
    if (s !== undefined) {
      s.lastSeen = now;
      return s;
    }
    // Full: look for idle label sets (at most once a second, so a flood of new ones stays cheap).
    if (this.#series.size >= this.#limits.maxSeries && now - this.#lastSweep >= Math.min(this.#limits.idleMs, 1000)) this.#sweep(now);
    if (this.#series.size >= this.#limits.maxSeries) {
      if (this.overflowed++ === 0) this.#onFirstOverflow();
      this.#overflow ??= new MetricSeries(OVERFLOW_ATTRIBUTES, now, this.buckets);
      this.#overflow.lastSeen = now;
      return this.#overflow;
    }
    const made = new MetricSeries(labels, now, this.buckets);
    this.#series.set(key, made);
    return made;
  }

  /** Forgets idle label sets when `idleMs` has passed since the last look; returns when the next look is due. */
  tick(now: number): number {
    if (now - this.#lastSweep >= this.#limits.idleMs) this.#sweep(now);
    return this.#lastSweep + this.#limits.idleMs;
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    const cutoff = now - this.#limits.idleMs;
    for (const [k, s] of this.#series) {
      if (s.lastSeen <= cutoff) {
        s.evicted = true;
        this.#series.delete(k);
      }
    }
    const o = this.#overflow;
    if (o !== undefined && o.lastSeen <= cutoff) {
      o.evicted = true;
      this.#overflow = undefined;
    }
  }
}

/**
 * A key for a label set, in the order its labels were set: the label builders set them in a
 * fixed order, so the same set gives the same key (no sort on the hot path).
 */
export function seriesKey(labels: Readonly<Record<string, string>>): string {
  let key = '';
  for (const n in labels) key += `${n}\u0001${labels[n]}\u0000`;
  return key;
}
