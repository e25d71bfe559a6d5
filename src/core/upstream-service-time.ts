/**
 * `x-envoy-upstream-service-time`, as Envoy's router writes it on an upstream's response head
 * (source/common/router/router.cc, `Filter::onUpstreamHeaders`: only once the downstream request
 * is complete — `DateUtil::timePointValid(downstream_request_complete_time_)` — and not with
 * `suppress_envoy_headers`, Istio's `proxyHeaders.envoyDebugHeaders` disabled): the ms from the
 * request's end (retries and backoffs included) to the head. The HTTP and gRPC adapters both
 * write it.
 *
 * @module
 */

/** The header's name. */
export const SERVICE_TIME_HEADER = 'x-envoy-upstream-service-time';

/** The header's values below 1 s (most responses), made once each. */
const SERVICE_TIMES: string[] = [];

/** The header's value for `ms` (a whole number of ms, 0 or more): the same string for values below 1 s. */
export function serviceTimeText(ms: number): string {
  if (ms >= 1000) return String(ms);
  let t = SERVICE_TIMES[ms];
  if (t === undefined) {
    t = String(ms);
    SERVICE_TIMES[ms] = t;
  }
  return t;
}

/**
 * The header's value for a head arriving `now`, the request having ended at `completeAt` and been
 * routed at `routedAt` (after a fault delay: Envoy's router sees the request after the fault
 * filter), or undefined while the request has not ended (`completeAt` below 0).
 */
export function serviceTimeAt(now: number, completeAt: number, routedAt: number): string | undefined {
  if (completeAt < 0) return undefined;
  return serviceTimeText(Math.max(0, Math.floor(now - Math.max(completeAt, routedAt))));
}
