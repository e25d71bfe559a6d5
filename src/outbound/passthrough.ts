/**
 * Calls to hosts outside the mesh under `ALLOW_ANY`: Istio's `allow_any` virtual host, whose one
 * route goes to `PassthroughCluster` with the route timeout disabled and no retry policy, so a
 * call is sent once to its original destination, with no outlier detection or pool limits. What
 * the sidecar still does, this layer does: a failure to reach the destination is Envoy's local
 * reply (503 `upstream connect error or disconnect/reset before headers. reset reason: connection
 * failure`, flag UF; a reset UC/UR, a TLS failure with its reason) — a {@link MeshletError} the
 * adapter renders or throws, never the HTTP client's own error. A failure after the response
 * started fails the body with the client's error, flagged as Envoy flags a late reset. (The
 * caller's deadline is the timeout layer's, stacked in front of this one.)
 *
 * @module
 */
import { noteRequestSent, requestTimesWatched } from '../core/request-times.ts';
import { bodySourceFailed } from '../core/body.ts';
import { MeshletError } from '../core/errors.ts';
import { ErrorRewritingHandler } from '../core/error-rewriting-handler.ts';
import type { Controller, Exchange, Headers, ResponseHandler } from '../core/exchange.ts';
import type { Dispatch, Layer } from '../core/layer.ts';
import type { FailureKind } from '../core/outcome.ts';
import { flagLateReset, upstreamFailure } from '../policies/upstream-failure.ts';
import { ATTEMPT_COUNT_HEADER } from './upstream.ts';

/** What the passthrough layer needs. */
export interface PassthroughLayerOptions {
  /** Classifies a transport error (the exchange's transport decides). */
  classify(ex: Exchange, err: Error): FailureKind;
  /** The call carries `x-envoy-attempt-count: 1` (Istio's allow_any virtual host has include_request_attempt_count too). */
  readonly attemptCount?: boolean;
  /**
   * What stamps the call with the metadata-exchange headers, or undefined: Istio's sidecar sends
   * them on PassthroughCluster calls too unless `proxyHeaders.metadataExchangeHeaders.mode` is
   * IN_MESH (its peer_metadata filter's `skip_external_clusters` counts PassthroughCluster as external).
   */
  stamp?(): ((ex: Exchange) => void) | undefined;
}

class PassthroughCall extends ErrorRewritingHandler {
  readonly #ex: Exchange;
  readonly #o: PassthroughLayerOptions;
  /** The response head went on to the caller. */
  #headSent = false;
  constructor(ex: Exchange, handler: ResponseHandler, o: PassthroughLayerOptions) {
    super(handler);
    this.#ex = ex;
    this.#o = o;
  }
  override get dispatchedCall(): Exchange {
    return this.#ex;
  }
  /** undici sent the request to its end (`%REQUEST_TX_DURATION%`). */
  override onRequestSent(): void {
    const ex = this.#ex;
    if (requestTimesWatched() && ex.clock !== undefined) noteRequestSent(ex, ex.clock.now() - ex.startedAt);
  }
  override onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    if (statusCode >= 200) this.#headSent = true;
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }
  protected rewrite(error: Error): Error {
    const ex = this.#ex;
    // The mesh's own (a deadline, close()) or the caller's (an abort): as they are.
    if (error instanceof MeshletError || ex.aborted) return error;
    const failure: FailureKind = bodySourceFailed(ex.body) ? 'local' : this.#o.classify(ex, error);
    // The caller's own failure (its body source, its own undici timeout): its error, as plain undici reports it.
    if (failure === 'local') return error;
    if (this.#headSent) {
      // Mid-body: the body fails with the transport's error (not a reply "before headers"), flagged as Envoy flags it.
      flagLateReset(ex, failure);
      return error;
    }
    return upstreamFailure(ex, failure, error, false, false);
  }
}

/** Builds the passthrough layer (in front of the transport's passthrough). */
export function passthroughLayer(o: PassthroughLayerOptions): Layer {
  return (next: Dispatch): Dispatch =>
    (ex, handler) => {
      if (o.attemptCount === true) ex.headers[ATTEMPT_COUNT_HEADER] = '1';
      o.stamp?.()?.(ex);
      next(ex, new PassthroughCall(ex, handler, o));
    };
}
