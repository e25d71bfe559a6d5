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
let consumers = 0;

/** True while some producer reads meshlet's series: meshes then aggregate themselves. */
export function aggregatingLocally(): boolean {
  return consumers > 0;
}

/** Registers a reader of the series (a metric producer); returns its release. */
export function addSeriesConsumer(): () => void {
  consumers++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    consumers--;
  };
}

/** Adds a mesh's series (while its metrics run). */
export function addSeriesSource(s: SeriesSource): void {
  sources.add(s);
}

/** Removes a mesh's series. */
export function removeSeriesSource(s: SeriesSource): void {
  sources.delete(s);
}

/** The meshes' series. */
export function seriesSources(): ReadonlySet<SeriesSource> {
  return sources;
}
