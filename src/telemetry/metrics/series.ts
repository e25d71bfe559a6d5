/**
 * Bounded cardinality for the standard metrics: each metric keeps at most `maxSeries` label
 * sets; a data point with a new label set beyond that is recorded under the OpenTelemetry
 * overflow attribute set (`otel.metric.overflow: true`, as the SDK's own cardinality limit
 * does), counted, and warned about once per metric. Label sets not seen for `idleMs` are
 * forgotten, so the room they took is free again.
 *
 * The OTel metrics API cannot delete a series: with cumulative temporality the SDK keeps every
 * label set it has seen for the life of the process (synchronous and asynchronous instruments
 * alike). Forgetting a label set here therefore only bounds what meshlet will create; the
 * series themselves leave the output when the reader uses delta temporality and the store that
 * accumulates them evicts idle ones — which `startTelemetry()`'s Prometheus endpoint does with
 * the same idle time (see `src/telemetry/sdk/evicting-prometheus.ts`).
 *
 * @module
 */
import type { MetricAttributes } from '@opentelemetry/api';

/** The attributes an overflowing data point is recorded with. */
export const OVERFLOW_ATTRIBUTES: MetricAttributes = Object.freeze({ 'otel.metric.overflow': true });

/** Options of {@link SeriesLimiter}. */
export interface SeriesLimits {
  /** Label sets per metric. */
  readonly maxSeries: number;
  /** A label set unseen for this long is forgotten. */
  readonly idleMs: number;
}

/** Tracks the label sets of one metric. */
export class SeriesLimiter {
  readonly #limits: SeriesLimits;
  readonly #now: () => number;
  /** Label-set key → when it was last recorded (insertion order = least recently added first). */
  readonly #seen = new Map<string, number>();
  #lastSweep = 0;
  /** Data points recorded under the overflow attributes. */
  overflowed = 0;
  readonly #onFirstOverflow: () => void;

  constructor(limits: SeriesLimits, now: () => number, onFirstOverflow: () => void) {
    this.#limits = limits;
    this.#now = now;
    this.#onFirstOverflow = onFirstOverflow;
  }

  /** How many label sets are tracked. */
  get size(): number {
    return this.#seen.size;
  }

  /** The attributes to record with: `labels` itself, or the overflow set when the metric is full. */
  admit(key: string, labels: MetricAttributes): MetricAttributes {
    const now = this.#now();
    if (this.#seen.has(key)) {
      this.#seen.set(key, now);
      return labels;
    }
    // Full: look for idle label sets (at most once a second, so a flood of new ones stays cheap).
    if (this.#seen.size >= this.#limits.maxSeries && now - this.#lastSweep >= Math.min(this.#limits.idleMs, 1000)) this.#sweep(now, true);
    if (this.#seen.size >= this.#limits.maxSeries) {
      if (this.overflowed++ === 0) this.#onFirstOverflow();
      return OVERFLOW_ATTRIBUTES;
    }
    this.#seen.set(key, now);
    if (now - this.#lastSweep >= this.#limits.idleMs) this.#sweep(now, false);
    return labels;
  }

  #sweep(now: number, force: boolean): void {
    if (!force && now - this.#lastSweep < this.#limits.idleMs) return;
    this.#lastSweep = now;
    const cutoff = now - this.#limits.idleMs;
    for (const [k, t] of this.#seen) if (t <= cutoff) this.#seen.delete(k);
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
