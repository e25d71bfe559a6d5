/**
 * What the undici transport hands undici for one attempt: the dispatch options (Host, Envoy's
 * expected-timeout header, the caller's own undici options), or the failure of a call that cannot
 * be sent.
 *
 * @module
 */
import type { Dispatch } from '../../core/layer.ts';
import { MeshletError } from '../../core/errors.ts';
import { type Exchange, NO_CONTROLLER } from '../../core/exchange.ts';
import { bodyForAttempt } from '../../core/replay.ts';

/** Envoy's header with the time the caller still waits, in ms. */
const EXPECTED_TIMEOUT_HEADER = 'x-envoy-expected-rq-timeout-ms';

/** Fails an attempt without sending it: the cluster's TLS cannot be set up (never sent in plaintext instead). */
export function fail(ex: Exchange, handler: Parameters<Dispatch>[1], why: string): void {
  const err = new MeshletError('MESHLET_ERR_UPSTREAM_TLS', `TLS to this destination cannot be set up, the call is not sent: ${why}`, ex.errorContext());
  queueMicrotask(() => handler.onResponseError?.(NO_CONTROLLER, err));
}

/** The dispatch options undici needs for one attempt. */
export function dispatchOptions(ex: Exchange, expected: boolean, origin: string | undefined, httpServername?: string): Record<string, unknown> {
  ex.headers.host = ex.authority;
  // As Envoy's router: tell the upstream how long the caller still waits, so its own calls can
  // stop in time (meshlet's server side turns this into the request's MeshContext deadline). Not
  // to a host outside the mesh (no route: Istio's allow_any route has no timeout to tell).
  // Not with Istio's proxyHeaders.envoyDebugHeaders disabled (`expected` false: Envoy's suppress_envoy_headers).
  // As Envoy's setTimeoutHeaders: the per-try timeout when the route has one, else the route's,
  // and never more than what is left of the call's deadline.
  if (expected && ex.clock !== undefined && ex.route !== undefined) {
    // What was left when the attempt started (Envoy writes it then, before the pool's wait: exchange-state.ts attemptAt).
    const left = ex.deadline === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : Math.ceil(ex.deadline - (ex.attemptAt >= 0 ? ex.attemptAt : ex.clock.now()));
    const ms = ex.perTryTimeoutMs === undefined ? left : Math.min(left, ex.perTryTimeoutMs);
    if (ms !== Number.POSITIVE_INFINITY) ex.headers[EXPECTED_TIMEOUT_HEADER] = String(Math.max(1, ms));
  }
  const src = ex.options as Record<string, unknown> | undefined;
  // Plain HTTP has no SNI; undici still derives a name from the Host header for every request
  // (a hostname parse and two IP regexes) and only uses it to label new connections. Give it
  // the service's host, what it would derive from an unrewritten Host header. TLS keeps
  // undici's derivation. Each shape is one literal: a property added afterwards would cost
  // the object an out-of-object property array (40 B per attempt).
  const body = bodyForAttempt(ex.body);
  const o: Record<string, unknown> =
    origin !== undefined
      ? { path: ex.path, method: ex.method, headers: ex.headers, body, origin }
      : httpServername !== undefined && ex.scheme === 'http'
        ? { path: ex.path, method: ex.method, headers: ex.headers, body, servername: httpServername }
        : { path: ex.path, method: ex.method, headers: ex.headers, body };
  if (src !== undefined) {
    if (src.headersTimeout !== undefined) o.headersTimeout = src.headersTimeout;
    if (src.bodyTimeout !== undefined) o.bodyTimeout = src.bodyTimeout;
    if (src.upgrade !== undefined) o.upgrade = src.upgrade;
    if (src.reset !== undefined) o.reset = src.reset;
    if (src.blocking !== undefined) o.blocking = src.blocking;
    if (src.idempotent !== undefined) o.idempotent = src.idempotent;
    if (src.expectContinue !== undefined) o.expectContinue = src.expectContinue;
  }
  return o;
}
