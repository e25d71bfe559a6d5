/**
 * The series a request's four data points go to, remembered per side (client, server) for the
 * requests that give the same label inputs, so most requests find their series without building
 * labels or a key. A group is valid for the Telemetry config it was made under and while none of
 * its series was evicted.
 *
 * @module
 */
import type { MetricAttributes } from '@opentelemetry/api';
import type { CompiledMode } from './compiled-mode.ts';
import type { HttpMetric } from './config.ts';
import type { MetricLabels } from './labels.ts';
import { type MetricSeries, type MetricSeriesStore, seriesKey } from './series.ts';

/** The four metrics, in the order of {@link SeriesGroup.series}. */
export const HTTP_METRICS: readonly HttpMetric[] = ['REQUEST_COUNT', 'REQUEST_DURATION', 'REQUEST_SIZE', 'RESPONSE_SIZE'];

/**
 * The series one request's data points go to, per metric in {@link HTTP_METRICS} order
 * (undefined where the metric is disabled).
 */
export interface SeriesGroup {
  /** The config it was made under. */
  readonly config: number;
  readonly series: readonly (MetricSeries | undefined)[];
}

/** The group caches of one mesh's standard metrics. */
export class SeriesGroups {
  readonly #stores: readonly MetricSeriesStore[];
  readonly #maxGroups: number;
  /** Client side: by the destination's registry labels (or what it said of itself), then the call's other inputs. */
  #client = new WeakMap<object, Map<string, SeriesGroup>>();
  /** Server side: by the caller's peer metadata, then the request's other inputs. */
  #server = new WeakMap<object, Map<string, SeriesGroup>>();
  /** Bumped when the Telemetry config changes (groups made before are made again). */
  #config = 0;

  /** `stores` in {@link HTTP_METRICS} order; at most `maxGroups` groups per key object. */
  constructor(stores: readonly MetricSeriesStore[], maxGroups: number) {
    this.#stores = stores;
    this.#maxGroups = maxGroups;
  }

  /** The groups of `side` under the key object `by`. */
  of(side: 'client' | 'server', by: object): Map<string, SeriesGroup> {
    const cache = side === 'client' ? this.#client : this.#server;
    let groups = cache.get(by);
    if (groups === undefined) {
      groups = new Map();
      cache.set(by, groups);
    } else if (groups.size >= this.#maxGroups) {
      // Inputs that keep changing (say, passthrough hosts): start over rather than grow.
      groups.clear();
    }
    return groups;
  }

  /** Whether `g` can still be used: made under the config in use, none of its series evicted. */
  valid(g: SeriesGroup): boolean {
    if (g.config !== this.#config) return false;
    for (const s of g.series) if (s?.evicted === true) return false;
    return true;
  }

  /** Forgets every group (the Telemetry config changed). */
  forget(): void {
    this.#config++;
    this.#client = new WeakMap();
    this.#server = new WeakMap();
  }

  /** The series of a request whose four metrics share `labels` (no tag overrides). */
  make(mode: CompiledMode, labels: MetricLabels): SeriesGroup {
    Object.freeze(labels);
    const key = seriesKey(labels);
    return {
      config: this.#config,
      series: HTTP_METRICS.map((metric, i) => (mode.metrics[metric].disabled ? undefined : (this.#stores[i] as MetricSeriesStore).series(key, labels as MetricAttributes))),
    };
  }
}
