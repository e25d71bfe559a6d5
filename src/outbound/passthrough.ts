/**
 * Calls to hosts outside the mesh under `ALLOW_ANY`: Istio's `allow_any` virtual host, whose one
 * route goes to `PassthroughCluster` with the route timeout disabled and no retry policy, so a
 * call is sent once to its original destination, with no outlier detection or pool limits. What
 * the sidecar still does, this layer does: a failure to reach the destination is Envoy's local
 * reply (503 `upstream connect error or disconnect/reset before headers. reset reason: connection
 * failure`, flag UF; a reset UC/UR, a TLS failure with its reason) — a {@link MeshletError} the
 * adapter renders or throws, never the HTTP client's own error. (The caller's deadline is the
 * timeout layer's, stacked in front of this one.)
 *
 * @module
 */
import { bodySourceFailed } from '../core/body.ts';
import { MeshletError } from '../core/errors.ts';
import type { Controller, Exchange, Headers, ResponseHandler } from '../core/exchange.ts';
import type { Dispatch, Layer } from '../core/layer.ts';
import type { FailureKind } from '../core/outcome.ts';
import { upstreamFailure } from '../policies/retry.ts';

/** What the passthrough layer needs. */
export interface PassthroughLayerOptions {
  /** Classifies a transport error (the exchange's transport decides). */
  classify(ex: Exchange, err: Error): FailureKind;
}

class PassthroughCall implements ResponseHandler {
  readonly #ex: Exchange;
  readonly #handler: ResponseHandler;
  readonly #o: PassthroughLayerOptions;
  constructor(ex: Exchange, handler: ResponseHandler, o: PassthroughLayerOptions) {
    this.#ex = ex;
    this.#handler = handler;
    this.#o = o;
  }
  onRequestStart(controller: Controller, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context);
  }
  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }
  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }
  onResponseData(controller: Controller, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: Controller, trailers: Headers): void {
    this.#handler.onResponseEnd?.(controller, trailers);
  }
  onResponseError(controller: Controller, error: Error): void {
    const ex = this.#ex;
    // The mesh's own (a deadline, close()) or the caller's (an abort): as they are.
    if (error instanceof MeshletError || ex.aborted) {
      this.#handler.onResponseError?.(controller, error);
      return;
    }
    const failure: FailureKind = bodySourceFailed(ex.body) ? 'local' : this.#o.classify(ex, error);
    this.#handler.onResponseError?.(controller, upstreamFailure(ex, failure, error, false, false));
  }
}

/** Builds the passthrough layer (in front of the transport's passthrough). */
export function passthroughLayer(o: PassthroughLayerOptions): Layer {
  return (next: Dispatch): Dispatch =>
    (ex, handler) => {
      next(ex, new PassthroughCall(ex, handler, o));
    };
}
