/**
 * Where Istio's standard metrics go. Two ways, decided per data point:
 *
 * - **Through the OTel metrics API** (the default): each data point is a `Counter.add` /
 *   `Histogram.record` with ~25 attributes, which the SDK hashes (sorts and stringifies) once per
 *   instrument — about 20 µs per request for the four metrics.
 * - **Aggregated by meshlet** once some metric producer reads them (`startTelemetry()` adds one
 *   to each of its readers; an app's own SDK can add `meshletMetricProducer()` to its readers):
 *   a data point then adds to the series meshlet holds (a map lookup and four additions), and the
 *   producer hands the series to the reader at each collection, as the SDK's own aggregation
 *   would have (same names, units, buckets, attributes).
 *
 * This module is the process-wide meeting point of the meshes' series and the producers.
 *
 * @module
 */
import type { MetricSeriesStore } from './series.ts';

/** The series one mesh holds, by metric name. */
export interface SeriesSource {
  /** Metric name → its series store and instrument description. */
  readonly metrics: ReadonlyMap<string, { readonly store: MetricSeriesStore; readonly description: string; readonly unit: string }>;
}

const sources = new Set<SeriesSource>();
/** The readers of the series (metric producers), each a token of its own. */
const consumers = new Set<object>();
/**
 * Sources of closed meshes, each with the consumers that have not collected since it closed: a
 * mesh closed before the last export (`await mesh.close(); await telemetry.shutdown()`) still
 * has its final values read once by each reader, then it is dropped.
 */
const retired = new Map<SeriesSource, Set<object>>();
/** Most closed meshes kept for readers that do not collect (a Prometheus endpoint nobody scrapes): the oldest go first. */
const MAX_RETIRED = 64;

/** True while some producer reads meshlet's series: meshes then aggregate themselves. */
export function aggregatingLocally(): boolean {
  return consumers.size > 0;
}

/** A reader of the series (a metric producer), from {@link addSeriesConsumer}. */
export interface SeriesConsumer {
  /** The series to collect now: the running meshes', and closed ones' this consumer has not collected yet. */
  sources(): Iterable<SeriesSource>;
  /** After a collection: closed meshes it has now collected are no longer its to read. */
  collected(): void;
  /** Stops reading (meshes go back to the OTel API once no consumer is left). */
  release(): void;
}

/** Registers a reader of the series (a metric producer). */
export function addSeriesConsumer(): SeriesConsumer {
  const token = {};
  consumers.add(token);
  let released = false;
  const forget = (): void => {
    for (const [s, pending] of retired) {
      if (pending.delete(token) && pending.size === 0) retired.delete(s);
    }
  };
  return {
    *sources() {
      if (released) return;
      yield* sources;
      for (const [s, pending] of retired) if (pending.has(token)) yield s;
    },
    collected: forget,
    release() {
      if (released) return;
      released = true;
      consumers.delete(token);
      forget();
    },
  };
}

/** Adds a mesh's series (while its metrics run). */
export function addSeriesSource(s: SeriesSource): void {
  retired.delete(s);
  sources.add(s);
}

/**
 * Removes a closed mesh's series: each consumer still reads them at its next collection (what
 * the mesh recorded since the last export is exported), then they are gone.
 */
export function removeSeriesSource(s: SeriesSource): void {
  if (!sources.delete(s) || consumers.size === 0) return;
  retired.set(s, new Set(consumers));
  if (retired.size > MAX_RETIRED) retired.delete(retired.keys().next().value as SeriesSource);
}
