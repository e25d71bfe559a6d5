/**
 * The request headers with which an app widens its route's retry policy for one call, as Envoy's
 * router reads them on an Istio sidecar's outbound listener when istiod trusts the app's
 * `x-envoy-*` headers (`PILOT_SIDECAR_USE_REMOTE_ADDRESS=true`; meshlet's `trustEnvoyRequestHeaders`
 * — by default they are removed before the call reaches this layer, core/clean-internal-headers.ts):
 * `x-envoy-retry-on` and `x-envoy-retry-grpc-on` add retry conditions to the
 * route's, and `x-envoy-max-retries` sets the number of retries when any condition applies (Envoy's
 * RetryStateImpl). A route without retries (`attempts: 0`) starts from Envoy's default of one retry
 * and no condition. `x-envoy-retriable-status-codes` and `x-envoy-retriable-header-names` (read
 * by the retry rules) are taken off too. Envoy consumes them all: they are not sent upstream.
 *
 * @module
 */
import type { Headers } from '../core/exchange.ts';
import type { RetryPolicy } from '../routing/route-policy.ts';
import { type HeaderBag, RETRIABLE_HEADER_NAMES_HEADER, RETRIABLE_STATUS_CODES_HEADER } from './retry-rules.ts';
import { UNSIGNED } from './timeout-headers.ts';

export const RETRY_ON_HEADER = 'x-envoy-retry-on';
export const RETRY_GRPC_ON_HEADER = 'x-envoy-retry-grpc-on';
export const MAX_RETRIES_HEADER = 'x-envoy-max-retries';
/** Envoy's hedging switch (`hedge_on_per_try_timeout`), consumed and not acted on. */
const HEDGE_HEADER = 'x-envoy-hedge-on-per-try-timeout';

/** The conditions Envoy reads from `x-envoy-retry-on` (parseRetryOn); others are ignored. */
const HTTP_ON = new Set(['5xx', 'gateway-error', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx', 'refused-stream', 'retriable-status-codes', 'retriable-headers', 'reset', 'reset-before-request', 'http3-post-connect-failure']);
/** The conditions Envoy reads from `x-envoy-retry-grpc-on` (parseRetryGrpcOn). */
const GRPC_ON = new Set(['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);

function addTokens(into: Set<string>, value: string | string[] | undefined, known: ReadonlySet<string>): void {
  if (typeof value !== 'string') return;
  for (const raw of value.split(',')) {
    const t = raw.trim();
    if (known.has(t)) into.add(t);
  }
}

/**
 * `policy` as the call's retry headers widen it (the headers are removed), or `policy` itself
 * when the call has none — the common case, which allocates nothing.
 */
export function retryPolicyForCall(policy: RetryPolicy, headers: Headers): RetryPolicy {
  const on = headers[RETRY_ON_HEADER];
  const grpcOn = headers[RETRY_GRPC_ON_HEADER];
  const max = headers[MAX_RETRIES_HEADER];
  if (on === undefined && grpcOn === undefined && max === undefined) return policy;
  delete headers[RETRY_ON_HEADER];
  delete headers[RETRY_GRPC_ON_HEADER];
  delete headers[MAX_RETRIES_HEADER];
  // Istio gives a route with `attempts: 0` no retry policy: Envoy's default is one retry, no condition.
  const enabled = policy.attempts > 0;
  const retryOn = new Set<string>(enabled ? policy.retryOn : []);
  addTokens(retryOn, on, HTTP_ON);
  addTokens(retryOn, grpcOn, GRPC_ON);
  let attempts = enabled ? policy.attempts : 1;
  if (retryOn.size > 0 && typeof max === 'string' && UNSIGNED.test(max)) attempts = Number(max.trim());
  if (retryOn.size === 0) attempts = 0;
  return Object.freeze({ ...policy, attempts, retryOn, isDefault: false });
}

/**
 * The request headers the retry rules read for the call (`x-envoy-retriable-status-codes`,
 * `x-envoy-retriable-header-names`), taken off the headers sent upstream with
 * `x-envoy-hedge-on-per-try-timeout`; `headers` itself when it has neither (nothing allocated).
 */
export function takeRetriableHeaders(headers: Headers): HeaderBag {
  // Consumed with the retry headers (Envoy's RetryStateImpl::create); meshlet does not hedge.
  if (headers[HEDGE_HEADER] !== undefined) delete headers[HEDGE_HEADER];
  const codes = headers[RETRIABLE_STATUS_CODES_HEADER];
  const names = headers[RETRIABLE_HEADER_NAMES_HEADER];
  if (codes === undefined && names === undefined) return headers;
  delete headers[RETRIABLE_STATUS_CODES_HEADER];
  delete headers[RETRIABLE_HEADER_NAMES_HEADER];
  return { [RETRIABLE_STATUS_CODES_HEADER]: codes, [RETRIABLE_HEADER_NAMES_HEADER]: names };
}
