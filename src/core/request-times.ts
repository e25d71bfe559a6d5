/**
 * When a request's last byte was received from its downstream and when it was sent upstream, in
 * ms since the request started: Envoy's `%REQUEST_DURATION%` (`TimingUtility::lastDownstreamRxByteReceived`)
 * and `%REQUEST_TX_DURATION%` (`lastUpstreamTxByteSent`), `source/common/formatter/stream_info_formatter.cc`.
 * Noted only while an access log asks ({@link watchRequestTimes}); otherwise noting is one comparison.
 *
 * The points that note them: a call's request sent upstream — undici's `onRequestSent` of the
 * handler it was given (`outbound/upstream.ts`), the gRPC transport's half-close; the caller's
 * end of a gRPC call's messages (its body's `endedAt`) and of a streamed body (telemetry's
 * capture); a served request's end (telemetry's capture for node:http, the gRPC server
 * interceptor's half-close).
 *
 * @module
 */

let watchers = 0;
/** The call or request → ms since its start when its last byte was received from the downstream. */
const received = new WeakMap<object, number>();
/** The call or request → ms since its start when its last byte was sent upstream. */
const sent = new WeakMap<object, number>();

/** Starts (`true`) or stops noting; watchers are counted (one per mesh whose logs need them). */
export function watchRequestTimes(on: boolean): void {
  watchers += on ? 1 : -1;
}

/** True while someone wants the times noted. */
export function requestTimesWatched(): boolean {
  return watchers > 0;
}

/** `key`'s request was received to its end `ms` after it started (the first note stands). */
export function noteRequestReceived(key: object, ms: number): void {
  if (watchers > 0 && !received.has(key)) received.set(key, ms);
}

/** `key`'s request was sent upstream to its end `ms` after it started (a retry's later send replaces it). */
export function noteRequestSent(key: object, ms: number): void {
  if (watchers > 0) sent.set(key, ms);
}

/** The times noted for `key` (and forgotten). */
export function requestTimesOf(key: object): { readonly receivedMs: number | undefined; readonly sentMs: number | undefined } | undefined {
  if (watchers === 0) return undefined;
  const receivedMs = received.get(key);
  const sentMs = sent.get(key);
  if (receivedMs === undefined && sentMs === undefined) return undefined;
  received.delete(key);
  sent.delete(key);
  return { receivedMs, sentMs };
}
