/**
 * The series a request's data points go to, remembered per side (client, server) for the
 * requests that give the same label inputs, so most requests find their series without building
 * labels or a key. A group is valid for the Telemetry config it was made under and while none of
 * its series was evicted.
 *
 * @module
 */
import type { MetricAttributes } from '@opentelemetry/api';
import type { CompiledMode } from './compiled-mode.ts';
import type { HttpMetric } from './config.ts';
import { type MetricLabels, messageLabels } from './labels.ts';
import { type MetricSeries, type MetricSeriesStore, seriesKey } from './series.ts';

/** The metrics, in the order of {@link SeriesGroup.series}: the four of every request, then the two of gRPC calls. */
export const HTTP_METRICS: readonly HttpMetric[] = ['REQUEST_COUNT', 'REQUEST_DURATION', 'REQUEST_SIZE', 'RESPONSE_SIZE', 'GRPC_REQUEST_MESSAGES', 'GRPC_RESPONSE_MESSAGES'];

/** Where the gRPC message counters start in {@link HTTP_METRICS}. */
export const GRPC_MESSAGE_METRICS_AT = 4;

/** The metrics that are counters (the others are histograms). */
export function isCounter(metric: HttpMetric): boolean {
  return metric === 'REQUEST_COUNT' || metric === 'GRPC_REQUEST_MESSAGES' || metric === 'GRPC_RESPONSE_MESSAGES';
}

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
    const series = g.series;
    for (let i = 0; i < series.length; i++) if (series[i]?.evicted === true) return false;
    return true;
  }

  /** Forgets every group (the Telemetry config changed). */
  forget(): void {
    this.#config++;
    this.#client = new WeakMap();
    this.#server = new WeakMap();
  }

  /**
   * The series of a request whose metrics have `labels` (no tag overrides); the gRPC message
   * counters only when `messages` (a gRPC call whose adapter counted its messages), under the
   * peers' labels.
   */
  make(mode: CompiledMode, labels: MetricLabels, messages: boolean): SeriesGroup {
    Object.freeze(labels);
    const key = seriesKey(labels);
    // The message counters have fewer labels (see messageLabels): their own label set.
    const peers = messages ? Object.freeze(messageLabels(labels)) : undefined;
    const peersKey = peers === undefined ? '' : seriesKey(peers);
    return {
      config: this.#config,
      series: HTTP_METRICS.map((metric, i) => {
        if (mode.metrics[metric].disabled) return undefined;
        const store = this.#stores[i] as MetricSeriesStore;
        if (i < GRPC_MESSAGE_METRICS_AT) return store.series(key, labels as MetricAttributes);
        return peers === undefined ? undefined : store.series(peersKey, peers as MetricAttributes);
      }),
    };
  }
}
