/**
 * The trailers of a call's response (HTTP/1 chunked trailers, HTTP/2 trailers, a gRPC call's
 * status and trailing metadata), kept for the access log's `%TRAILER(…)%` only while a log asks
 * ({@link watchResponseTrailers}); otherwise noting is one comparison.
 *
 * @module
 */

let watchers = 0;
const trailers = new WeakMap<object, Readonly<Record<string, string | string[] | undefined>>>();

/** Starts (`true`) or stops keeping trailers; watchers are counted (one per mesh whose logs need them). */
export function watchResponseTrailers(on: boolean): void {
  watchers += on ? 1 : -1;
}

/** `call`'s response ended with `t` (kept only while watched, and only when there are some). */
export function noteResponseTrailers(call: object, t: Readonly<Record<string, string | string[] | undefined>> | undefined): void {
  if (watchers > 0 && t !== undefined && Object.keys(t).length > 0) trailers.set(call, t);
}

/** The trailers noted for `call` (and forgotten). */
export function responseTrailersOf(call: object): Readonly<Record<string, string | string[] | undefined>> | undefined {
  if (watchers === 0) return undefined;
  const t = trailers.get(call);
  if (t !== undefined) trailers.delete(call);
  return t;
}
