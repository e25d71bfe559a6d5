/**
 * The request headers with which an app overrides its route's timeouts for one call, as Envoy's
 * router reads them on an Istio sidecar's outbound listener when istiod trusts the app's
 * `x-envoy-*` headers (`PILOT_SIDECAR_USE_REMOTE_ADDRESS=true`; meshlet's `trustEnvoyRequestHeaders`
 * — by default they are removed before the call is routed, core/clean-internal-headers.ts): `x-envoy-upstream-rq-timeout-ms`
 * replaces the route `timeout` (0: none) and `x-envoy-upstream-rq-per-try-timeout-ms` the retry
 * policy's `perTryTimeout` (0: none). A header holding an unsigned integer is consumed (not sent
 * upstream); one that does not is ignored, and sent on as it is, as Envoy does.
 *
 * @module
 */
import type { Headers } from '../core/exchange.ts';

/** Replaces the route timeout for the call (Envoy's FilterUtility::finalTimeout). */
export const RQ_TIMEOUT_HEADER = 'x-envoy-upstream-rq-timeout-ms';
/** Replaces the per-try timeout for the call. */
export const PER_TRY_TIMEOUT_HEADER = 'x-envoy-upstream-rq-per-try-timeout-ms';

/** An unsigned decimal, as absl::SimpleAtoi reads one (surrounding blanks and a leading `+` allowed). */
export const UNSIGNED = /^\s*\+?\d+\s*$/;

/**
 * The timeout `name` gives the call, in ms (undefined for 0: no timeout), removing the header; or
 * `fallback` (the route's) when the call has no such header or its value is not a number.
 */
export function timeoutFromHeader(headers: Headers, name: string, fallback: number | undefined): number | undefined {
  const v = headers[name];
  if (v === undefined || typeof v !== 'string' || !UNSIGNED.test(v)) return fallback;
  delete headers[name];
  const ms = Number(v.trim());
  return ms === 0 || !Number.isSafeInteger(ms) ? undefined : ms;
}
