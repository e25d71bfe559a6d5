/**
 * Envoy's retry decision ("would this attempt be retried?"), transport-neutral: the HTTP and
 * gRPC adapters describe an attempt as an {@link AttemptOutcome} and ask {@link isRetriable}.
 * The attempt budget (`attempts`), the retry budget / `maxRetries` circuit breaker and the
 * route timeout are the caller's business; this module only answers whether the *kind* of
 * failure is covered by the policy's `retryOn` (reference §2.1, §2.4).
 *
 * Ported from Envoy `RetryStateImpl::wouldRetryFromReset` / `wouldRetryFromHeaders`
 * (source/common/router/retry_state_impl.cc):
 *
 * - An attempt that got **no response** (`outcome.failure` set) is judged like an Envoy stream
 *   reset, whatever `outcome.status` says: a 503 that the proxy would synthesise for a reset
 *   does not match `retryOn: "503"`, it matches `reset`. A per-try timeout is a *local reset*,
 *   so only `5xx`, `gateway-error`, `reset` (and `reset-before-request` when no byte was sent)
 *   retry it; Istio's default policy therefore does not.
 * - `overflow` (circuit breaker, UO) and `cancelled` (the caller gave up) are never retried.
 * - A **response** is judged on its status, its headers and its `grpc-status`.
 *
 * Nothing here allocates unless the caller sent `x-envoy-retriable-header-names`.
 *
 * @module
 */
import { GRPC_STATUS } from '../core/grpc-status.ts';
import type { AttemptOutcome } from '../core/outcome.ts';
import type { RetryPolicy } from '../routing/route-policy.ts';

/** Request or response headers as the adapters hand them over (lower-case names). */
export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

/** Request header adding status codes to `retriable-status-codes` (comma list of integers). */
export const RETRIABLE_STATUS_CODES_HEADER = 'x-envoy-retriable-status-codes';
/** Request header naming response headers whose presence makes a response retriable (`retriable-headers`). */
export const RETRIABLE_HEADER_NAMES_HEADER = 'x-envoy-retriable-header-names';
/** Response header set by an upstream Envoy that rate-limited the request. */
export const RATE_LIMITED_HEADER = 'x-envoy-ratelimited';


/**
 * Whether an attempt that ended like `outcome` may be retried under `policy` (attempt budget not
 * considered). `requestHeaders` carries x-envoy-retriable-status-codes /
 * x-envoy-retriable-header-names if the caller sent them.
 *
 * Token by token (Envoy semantics):
 *
 * | token | no response (`failure` set) | response |
 * |---|---|---|
 * | `5xx` | any failure but overflow/cancelled | status 500–599 |
 * | `gateway-error` | any failure but overflow/cancelled | 502, 503, 504 |
 * | `reset` | any failure but overflow/cancelled | — |
 * | `reset-before-request` | a failure with `requestSent` false | — |
 * | `connect-failure` | `connect-failure` | — |
 * | `refused-stream` | `refused-stream` | — |
 * | `retriable-4xx` | — | 409 |
 * | `retriable-status-codes` | — | status in the policy's codes or the request header's |
 * | `retriable-headers` | — | a response header named in `x-envoy-retriable-header-names` |
 * | `envoy-ratelimited` | — | an `x-envoy-ratelimited` header (see below) |
 * | `cancelled`, `deadline-exceeded`, `resource-exhausted`, `internal`, `unavailable` | — | `grpc-status` 1, 4, 8, 13, 14 in the response headers |
 * | `http3-post-connect-failure` | never (no HTTP/3 here) | — |
 *
 * A response carrying `x-envoy-ratelimited` (any value: an upstream Envoy rate-limited it) is
 * retried if and only if `retryOn` contains `envoy-ratelimited`, whatever its status — no other
 * rule applies to it (Envoy's `wouldRetryFromHeaders` checks the header first). A response
 * without it is judged by the other rules, `envoy-ratelimited` in the policy or not. Failures
 * without a response are unaffected.
 */
export function isRetriable(policy: RetryPolicy, outcome: AttemptOutcome, requestHeaders: HeaderBag): boolean {
  const on = policy.retryOn;
  const failure = outcome.failure;
  if (failure !== undefined) {
    // Envoy wouldRetryFromReset. `overflow` is Envoy's "never retry" reset; `cancelled` means the
    // downstream went away, after which Envoy never starts another attempt.
    if (failure === 'overflow' || failure === 'cancelled' || failure === 'local') return false;
    if (failure === 'connect-failure' && on.has('connect-failure')) return true;
    if (!outcome.requestSent && on.has('reset-before-request')) return true;
    if (on.has('reset') || on.has('5xx') || on.has('gateway-error')) return true;
    return failure === 'refused-stream' && on.has('refused-stream');
  }
  const status = outcome.status;
  if (status === 0) return false; // neither a response nor a failure: nothing to retry

  const headers = outcome.headers;
  if (headers?.[RATE_LIMITED_HEADER] !== undefined) return on.has('envoy-ratelimited');
  if (on.has('5xx') && status >= 500 && status <= 599) return true;
  if (on.has('gateway-error') && (status === 502 || status === 503 || status === 504)) return true;
  if (on.has('retriable-4xx') && status === 409) return true;
  if (on.has('retriable-status-codes')) {
    if (policy.retriableStatusCodes.has(status)) return true;
    if (headerListsCode(requestHeaders[RETRIABLE_STATUS_CODES_HEADER], status)) return true;
  }
  if (on.has('retriable-headers') && headers !== undefined) {
    if (namesPresentHeader(requestHeaders[RETRIABLE_HEADER_NAMES_HEADER], headers)) return true;
  }
  return grpcRetriable(on, outcome.grpcStatus);
}

function grpcRetriable(on: ReadonlySet<string>, grpc: number): boolean {
  switch (grpc) {
    case GRPC_STATUS.CANCELLED:
      return on.has('cancelled');
    case GRPC_STATUS.DEADLINE_EXCEEDED:
      return on.has('deadline-exceeded');
    case GRPC_STATUS.RESOURCE_EXHAUSTED:
      return on.has('resource-exhausted');
    case GRPC_STATUS.INTERNAL:
      return on.has('internal');
    case GRPC_STATUS.UNAVAILABLE:
      return on.has('unavailable');
    default:
      return false;
  }
}

/** True if a comma list of integers (Envoy `splitToken` + `SimpleAtoi`) contains `code`. Allocation-free. */
function headerListsCode(value: string | readonly string[] | undefined, code: number): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'string') {
    for (const v of value) if (headerListsCode(v, code)) return true;
    return false;
  }
  let n = -1; // -1: no digit yet in this token; -2: token is not a number
  for (let i = 0; i <= value.length; i++) {
    const c = i < value.length ? value.charCodeAt(i) : 44; // ',' terminates the last token
    if (c === 44) {
      if (n === code) return true;
      n = -1;
    } else if (c >= 48 && c <= 57) {
      if (n === -2) continue;
      // Digits after a space inside a token ("50 3") make it invalid.
      if (n >= 0 && i > 0 && isSpace(value.charCodeAt(i - 1))) n = -2;
      else n = (n < 0 ? 0 : n * 10) + (c - 48);
    } else if (!isSpace(c)) {
      n = -2;
    }
  }
  return false;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/** True if any comma-separated name in `value` is a header present in `response` (name-only match, case-insensitive). */
function namesPresentHeader(value: string | readonly string[] | undefined, response: HeaderBag): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'string') {
    for (const v of value) if (namesPresentHeader(v, response)) return true;
    return false;
  }
  for (const raw of value.split(',')) {
    const name = raw.trim().toLowerCase();
    if (name !== '' && response[name] !== undefined) return true;
  }
  return false;
}
