/**
 * The `x-envoy-*` request headers with which a request could steer Envoy's router (its retries and
 * timeouts, its trace), and what an Istio sidecar does with them: it removes them before routing,
 * so they change nothing — from the app's calls, and from the requests callers send the app (its
 * inbound listener takes every caller as external too). istiod gives the sidecar's outbound listener
 * `use_remote_address: false` (`PILOT_SIDECAR_USE_REMOTE_ADDRESS`, default false:
 * pilot/pkg/networking/core/listener.go, features/xds.go); the app's request carries no
 * `x-forwarded-for`, so Envoy's connection manager takes it for an external request and runs
 * `cleanInternalHeaders` on it (source/common/http/conn_manager_utility.cc: "If configured to not
 * use remote address, but no XFF header is available, even if the real remote is internal, the
 * request is considered external"; istio/istio#14923). With `PILOT_SIDECAR_USE_REMOTE_ADDRESS=true`
 * the app's requests are internal and the router honours the headers — meshlet's
 * `trustEnvoyRequestHeaders: true`, with which the retry and timeout layers read them
 * (retry-headers.ts, timeout-headers.ts).
 *
 * Sanitizing matters most at an edge: an app that forwards its caller's headers would otherwise
 * let any client set `x-envoy-max-retries: 100` or `x-envoy-upstream-rq-timeout-ms: 0` on the
 * calls it makes.
 *
 * @module
 */
import type { Headers } from './exchange.ts';

/**
 * What `cleanInternalHeaders` removes from an external request, as meshlet's calls could carry
 * them. `x-envoy-force-trace` too: Envoy removes it before its tracing decision
 * (`mutateTracingRequestHeader` runs after), so the app cannot force a trace; the tracer, which
 * sees the call before it is routed, does not honour it either unless the headers are trusted.
 */
const SANITIZED: readonly string[] = [
  'x-envoy-retriable-status-codes',
  'x-envoy-retriable-header-names',
  'x-envoy-retry-on',
  'x-envoy-retry-grpc-on',
  'x-envoy-max-retries',
  'x-envoy-upstream-alt-stat-name',
  'x-envoy-upstream-rq-timeout-ms',
  'x-envoy-upstream-rq-per-try-timeout-ms',
  'x-envoy-upstream-rq-timeout-alt-response',
  'x-envoy-expected-rq-timeout-ms',
  'x-envoy-ip-tags',
  'x-envoy-original-url',
  'x-envoy-hedge-on-per-try-timeout',
  'x-envoy-force-trace',
  // Removed from every request by Envoy ("Clean proxy headers") and set only on internal ones: a
  // caller's own would let it pass as internal (a global rate limit's `request_type: external`).
  'x-envoy-internal',
];

/**
 * The same on the way in, but `x-envoy-expected-rq-timeout-ms`: the server side reads it as the
 * caller's deadline and leaves it on the request (Envoy removes it), because every mesh caller
 * whose call has a timeout sends it, and taking it off would rebuild each such request's headers.
 */
const SANITIZED_INBOUND: readonly string[] = SANITIZED.filter((n) => n !== 'x-envoy-expected-rq-timeout-ms');

/**
 * Removes the router-steering `x-envoy-*` headers from a request (lower-case names), as Envoy's
 * `cleanInternalHeaders` for an external one: an app's call, or (`inbound`) a caller's request on
 * the way in. True when it removed any.
 */
export function cleanInternalHeaders(headers: Headers, inbound = false): boolean {
  // Looked up by name rather than listing the request's headers: every request takes this path,
  // and a `for…in` over a header dictionary allocates its key list (~100 B a request).
  const names = inbound ? SANITIZED_INBOUND : SANITIZED;
  let removed = false;
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    if (headers[name] !== undefined) removed = delete headers[name];
  }
  return removed;
}

/**
 * Marks the dispatch options of a request the mesh makes for an external authorizer (an
 * `envoyExtAuthzHttp` check): its `x-forwarded-client-cert` is the caller's, which Envoy's
 * ext_authz filter sends when the provider includes it (its check goes to the authorizer's cluster
 * directly, through no connection manager), so {@link removeAppClientCert} leaves it. A symbol of
 * this module's own: an app's request cannot carry it.
 */
export const EXT_AUTHZ_CHECK: unique symbol = Symbol('meshlet ext_authz check');

/**
 * Removes a call's own `x-forwarded-client-cert`, as an Istio sidecar's outbound listener does for
 * every request of the app: Envoy's connection manager removes XFCC from a request whose
 * downstream connection is not mutual TLS, or under `SANITIZE` — the default of
 * `forward_client_cert_details`, which istiod sets only on inbound, gateway and waypoint listeners
 * (listener_inbound.go) — whether or not the request is internal (`mutateXfccRequestHeader`,
 * source/common/http/conn_manager_utility.cc; the app's connection to its sidecar is plaintext).
 * So an upstream finds only what its own side appends: an app cannot put a certificate it does
 * not hold in front of the real one (`URI=spiffe://…/sa/admin,By=…;URI=<real caller>`), nor pass
 * its own caller's XFCC on by copying that caller's headers onto its call. `options`: the call's
 * dispatch options (an external authorizer's check, {@link EXT_AUTHZ_CHECK}, keeps it).
 */
export function removeAppClientCert(headers: Headers, options: unknown): void {
  if (headers['x-forwarded-client-cert'] === undefined) return;
  if (typeof options === 'object' && options !== null && (options as { [EXT_AUTHZ_CHECK]?: unknown })[EXT_AUTHZ_CHECK] === true) return;
  delete headers['x-forwarded-client-cert'];
}
