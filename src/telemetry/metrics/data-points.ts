/**
 * One request's data points of Istio's standard metrics, added to the series of its label sets:
 * into meshlet's own aggregates (what `startTelemetry()`'s metric producers read), or through
 * the OpenTelemetry API's instruments (an app's own SDK without meshlet's producer).
 *
 * `series` is a series group's list, in `HTTP_METRICS` order (requests, duration, request bytes,
 * response bytes, gRPC request messages, gRPC response messages); undefined where that metric is
 * disabled or does not apply. Read by index: an array pattern goes through the array iterator,
 * which allocates wherever V8 has not optimised the caller.
 *
 * @module
 */
import { ENVOY_DEFAULT_BUCKETS, type Instruments } from './instruments.ts';
import { type MetricSeries, recordHistogram } from './series.ts';

/** What a request's data points are made of (a `call:end` or `inbound:end` message). */
export interface DataPoints {
  readonly durationMs: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly requestMessages?: number | undefined;
  readonly responseMessages?: number | undefined;
}

/** Adds a request's data points to meshlet's own series: a counter addition, three histogram buckets. */
export function addLocally(series: readonly (MetricSeries | undefined)[], m: DataPoints): void {
  const count = series[0];
  if (count !== undefined) count.value++;
  const duration = series[1]?.histogram;
  if (duration !== undefined) recordHistogram(duration, ENVOY_DEFAULT_BUCKETS, m.durationMs);
  const reqSize = series[2]?.histogram;
  if (reqSize !== undefined) recordHistogram(reqSize, ENVOY_DEFAULT_BUCKETS, m.requestBytes);
  const respSize = series[3]?.histogram;
  if (respSize !== undefined) recordHistogram(respSize, ENVOY_DEFAULT_BUCKETS, m.responseBytes);
  // Present only for gRPC calls whose messages were counted (istio-metrics.ts countsMessages).
  const reqMessages = series[4];
  if (reqMessages !== undefined) reqMessages.value += m.requestMessages ?? 0;
  const respMessages = series[5];
  if (respMessages !== undefined) respMessages.value += m.responseMessages ?? 0;
}

/** Records a request's data points through the API's instruments (the SDK aggregates them). */
export function recordThrough(outlet: Instruments, series: readonly (MetricSeries | undefined)[], m: DataPoints): void {
  const count = series[0];
  if (count !== undefined) outlet.requests.add(1, count.attributes);
  const duration = series[1];
  if (duration !== undefined) outlet.duration.record(m.durationMs, duration.attributes);
  const reqSize = series[2];
  if (reqSize !== undefined) outlet.requestBytes.record(m.requestBytes, reqSize.attributes);
  const respSize = series[3];
  if (respSize !== undefined) outlet.responseBytes.record(m.responseBytes, respSize.attributes);
  const reqMessages = series[4];
  if (reqMessages !== undefined) outlet.requestMessages.add(m.requestMessages ?? 0, reqMessages.attributes);
  const respMessages = series[5];
  if (respMessages !== undefined) outlet.responseMessages.add(m.responseMessages ?? 0, respMessages.attributes);
}
