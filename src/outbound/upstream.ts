/**
 * The innermost layer: admits the attempt through the cluster's pool limits (circuit
 * breaking: 503 UO with `x-envoy-overloaded` on overflow), counts it in flight on the
 * endpoint (least-request balancing reads that), hands it to the transport, and reports how
 * it ended to outlier detection.
 *
 * Until the transport starts the request, this layer is what the exchange waits on, so an
 * abort or a per-try timeout can cancel an attempt that is still queued or connecting.
 *
 * @module
 */
import { MeshletError } from '../core/errors.ts';
import { type Controller, type Dispatch, type Exchange, type Headers, type Layer, NO_CONTROLLER, type ResponseHandler, type Waiter } from '../core/exchange.ts';
import type { FailureKind } from '../core/outcome.ts';
import type { HostState } from '../routing/balancer/host.ts';
import type { ClusterState } from './cluster-state.ts';
import type { SlotWaiter } from './limits.ts';

/** What the upstream layer needs. */
export interface UpstreamLayerOptions {
  /** Classifies a transport error for outlier detection. */
  classify(err: Error): FailureKind;
}

class UpstreamCall implements ResponseHandler, Waiter, SlotWaiter {
  readonly #ex: Exchange;
  readonly #handler: ResponseHandler;
  readonly #cs: ClusterState;
  readonly #host: HostState | undefined;
  readonly #transport: Dispatch;
  readonly #o: UpstreamLayerOptions;
  #state: 0 | 1 | 2 | 3 = 0; // 0 queued/new, 1 sent, 2 started, 3 finished
  #abandoned: Error | undefined;
  #recorded = false;

  constructor(o: UpstreamLayerOptions, ex: Exchange, handler: ResponseHandler, cs: ClusterState, transport: Dispatch) {
    this.#o = o;
    this.#ex = ex;
    this.#handler = handler;
    this.#cs = cs;
    this.#host = ex.host as HostState | undefined;
    this.#transport = transport;
  }

  start(): void {
    const r = this.#cs.limiter.acquire(this);
    if (r === 'go') this.#send();
    else if (r === 'queued') this.#ex.waiting = this;
    else {
      const err = new MeshletError('MESHLET_ERR_OVERLOADED', 'upstream overflow: connection pool limits reached', this.#ex.errorContext());
      queueMicrotask(() => this.#handler.onResponseError?.(NO_CONTROLLER, err));
    }
  }

  grant(): void {
    if (this.#ex.waiting === this) this.#ex.waiting = undefined;
    this.#send();
  }

  #send(): void {
    this.#state = 1;
    const h = this.#host;
    if (h !== undefined) h.active++;
    this.#ex.waiting = this;
    this.#transport(this.#ex, this);
  }

  #release(): void {
    if (this.#state === 3) return;
    const wasSent = this.#state !== 0;
    this.#state = 3;
    if (this.#ex.waiting === this) this.#ex.waiting = undefined;
    if (wasSent) {
      const h = this.#host;
      if (h !== undefined) h.active--;
      this.#cs.limiter.release();
    }
  }

  /** Abort / per-try timeout / deadline while queued or not yet started. */
  cancel(reason: Error): void {
    if (this.#state === 0) {
      this.#cs.limiter.cancel(this);
      this.#state = 3;
    } else {
      this.#abandoned = reason;
      this.#release();
    }
    this.#handler.onResponseError?.(NO_CONTROLLER, reason);
  }

  #record(status: number, failure: FailureKind | undefined): void {
    if (this.#recorded) return;
    this.#recorded = true;
    const d = this.#cs.detector;
    const h = this.#host;
    if (d !== undefined && h !== undefined && failure !== 'cancelled' && failure !== 'overflow') d.record(h, status, failure);
  }

  onRequestStart(controller: Controller, context: unknown): void {
    if (this.#abandoned !== undefined) {
      controller.abort(this.#abandoned);
      return;
    }
    this.#state = 2;
    if (this.#ex.waiting === this) this.#ex.waiting = undefined;
    this.#handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    if (this.#abandoned !== undefined) return;
    this.#release();
    this.#handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    if (this.#abandoned !== undefined) return;
    if (statusCode >= 200) this.#record(statusCode, undefined);
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#abandoned !== undefined) return;
    this.#handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    if (this.#abandoned !== undefined) return;
    this.#release();
    this.#handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Controller, error: Error): void {
    if (this.#abandoned !== undefined) return;
    this.#release();
    const ex = this.#ex;
    const failure: FailureKind = ex.aborted ? 'cancelled' : ex.reason !== null || error.name === 'PerTryTimeout' ? 'per-try-timeout' : this.#o.classify(error);
    this.#record(0, failure);
    this.#handler.onResponseError?.(controller, error);
  }
}

/** Builds the upstream layer around the adapter's transport. */
export function upstreamLayer(o: UpstreamLayerOptions): Layer {
  return (transport: Dispatch): Dispatch =>
    (ex, handler) => {
      new UpstreamCall(o, ex, handler, ex.cluster as ClusterState, transport).start();
    };
}
