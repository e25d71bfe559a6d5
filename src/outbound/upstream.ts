/**
 * The innermost layer: admits the attempt through the cluster's pool limits (circuit
 * breaking: 503 UO with `x-envoy-overloaded` on overflow), counts it in flight on the
 * endpoint (least-request balancing reads that), hands it to the transport, and reports how
 * it ended to outlier detection — through the one classifier (core/classify.ts), so a gRPC
 * UNAVAILABLE counts as Envoy counts it (503) whether it came trailers-only or in trailers —
 * and publishes the attempt (`meshlet:attempt:start` / `:end`, when someone subscribes).
 *
 * Until the transport starts the request, this layer is what the exchange waits on, so an
 * abort or a per-try timeout can cancel an attempt that is still queued or connecting.
 *
 * @module
 */
import { noteRequestSent, requestTimesWatched } from '../core/request-times.ts';
import { bodySourceFailed } from '../core/body.ts';
import { MeshletError } from '../core/errors.ts';
import { type Controller, type Exchange, type Headers, NO_CONTROLLER, type ResponseHandler, type Waiter } from '../core/exchange.ts';
import type { Dispatch, Layer } from '../core/layer.ts';
import type { FailureKind } from '../core/outcome.ts';
import { DEFERRED, headGrpcStatus, headStatus, trailerGrpcStatus, trailerStatus } from '../core/classify.ts';
import type { Clock } from '../core/clock.ts';
import { type AttemptEndMessage, type AttemptStartMessage, channels, type PoolOverflowMessage } from '../core/observe.ts';
import { upstreamPendingChannel as pending, type UpstreamPendingMessage } from '../core/observe-connections.ts';
import type { HostState } from '../routing/balancer/host.ts';
import type { ClusterState } from './cluster-state.ts';
import type { SlotWaiter } from '../policies/limits.ts';

/** What the upstream layer needs. */
export interface UpstreamLayerOptions {
  /** Classifies a transport error for outlier detection (the exchange's transport decides). */
  classify(ex: Exchange, err: Error): FailureKind;
  readonly clock: Clock;
  /** Each attempt carries `x-envoy-attempt-count` (Istio's default; `proxyHeaders.attemptCount.disabled` turns it off). */
  readonly attemptCount?: boolean;
}

/** The header Envoy's router writes the attempt's number in (`include_request_attempt_count`). */
export const ATTEMPT_COUNT_HEADER = 'x-envoy-attempt-count';

const ATTEMPT_TEXT = ['1', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10'];

/** `x-envoy-attempt-count`'s value for attempt `n` (1 before any retry layer counted one). */
export function attemptText(n: number): string {
  return ATTEMPT_TEXT[n] ?? String(n);
}

/** The attempt's end was reported. */
const RECORDED = 1;
/** The head left the answer to the trailers (a gRPC stream): record at its end. */
const DEFERRED_ANSWER = 2;
/** The request was handed a connection (Envoy's pool ready). */
const STARTED = 4;

/**
 * Whether the call's transport starts an attempt on a connection (Envoy's pool ready): undici
 * writes a request on a connected socket; grpc-js starts a call before its channel connects (also
 * for gRPC sent through undici, the transport decides, not the protocol).
 */
function startsConnected(ex: Exchange): boolean {
  return ex.transport !== 'grpc';
}

/** What every call through one upstream layer shares. */
interface UpstreamRun {
  readonly o: UpstreamLayerOptions;
  /** The adapter's transport. */
  readonly transport: Dispatch;
}

class UpstreamCall implements ResponseHandler, Waiter, SlotWaiter {
  private readonly _ex: Exchange;
  private readonly _handler: ResponseHandler;
  private readonly _cs: ClusterState;
  private readonly _host: HostState | undefined;
  /** The layer's options and the transport (shared by its calls: one field, not two). */
  private readonly _run: UpstreamRun;
  private _state: 0 | 1 | 2 | 3 = 0; // 0 queued/new, 1 sent, 2 started, 3 finished
  private _abandoned: Error | undefined;
  /** RECORDED, DEFERRED (one field, not two booleans). */
  private _marks = 0;
  /** When the attempt went to the transport, on the mesh clock (only when observed). */
  private _sentAt = -1;

  constructor(run: UpstreamRun, ex: Exchange, handler: ResponseHandler, cs: ClusterState) {
    this._ex = ex;
    this._handler = handler;
    this._cs = cs;
    this._host = ex.host as HostState | undefined;
    this._run = run;
  }

  /** undici sent the request to its end (Envoy's last upstream tx byte: `%REQUEST_TX_DURATION%`). */
  onRequestSent(): void {
    if (requestTimesWatched()) noteRequestSent(this._ex, this._run.o.clock.now() - this._ex.startedAt);
  }

  /** The call this attempt sends (`core/upstream-connections.ts`: which call undici's request is). */
  get dispatchedCall(): Exchange {
    return this._ex;
  }

  start(): void {
    const r = this._cs.limiter.acquire(this);
    if (r === 'go') this._send();
    else if (r === 'queued') {
      this._ex.waiting = this;
      if (pending.hasSubscribers) pending.publish({ cluster: this._cs.name, owner: this._cs, event: 'queued' } satisfies UpstreamPendingMessage);
    } else {
      const ch = channels.poolOverflow;
      if (ch.hasSubscribers) {
        const l = this._cs.limiter;
        ch.publish({ workload: this._ex.workload, call: this._ex, cluster: this._cs.name, active: l.active, pending: l.pending } satisfies PoolOverflowMessage);
      }
      const err = new MeshletError('MESHLET_ERR_OVERLOADED', 'upstream overflow: connection pool limits reached', this._ex.errorContext());
      queueMicrotask(() => this._handler.onResponseError?.(NO_CONTROLLER, err));
    }
  }

  grant(): void {
    if (this._ex.waiting === this) this._ex.waiting = undefined;
    this._send();
  }

  private _send(): void {
    this._state = 1;
    const h = this._host;
    if (h !== undefined) {
      h.active++;
      h.stats.rqTotal++;
    }
    try {
      this._hand(h);
    } catch (err) {
      // Whatever threw once the attempt was counted (an injected Clock, an attempt observer, the
      // transport): the count is given back — least request and the pool limits must not see a
      // phantom request — and the call ends with the error (the dispatcher's catch).
      this._release();
      throw err;
    }
  }

  /** Stamps, publishes and hands the counted attempt to the transport. */
  private _hand(h: HostState | undefined): void {
    const ex = this._ex;
    ex.waiting = this;
    // As Envoy's router with Istio's include_request_attempt_count: the attempt's number, so the
    // server can tell a retry (and not retry again in its own calls).
    if (this._run.o.attemptCount === true) ex.headers[ATTEMPT_COUNT_HEADER] = attemptText(ex.attempts);
    // Published when someone listens, and told to the call's own observer (a traced call's attempt spans).
    const obs = ex.attemptObserver;
    if (obs !== undefined || channels.attemptStart.hasSubscribers || channels.attemptEnd.hasSubscribers) {
      this._sentAt = this._run.o.clock.now();
      const published = channels.attemptStart.hasSubscribers;
      if (published || obs !== undefined) {
        const m: AttemptStartMessage = { workload: ex.workload, call: ex, attempt: ex.attempts, cluster: this._cs.name, endpoint: h?.key };
        if (published) channels.attemptStart.publish(m);
        obs?.attemptStart(m);
      }
    }
    this._run.transport(ex, this);
  }

  private _release(): void {
    if (this._state === 3) return;
    const wasSent = this._state !== 0;
    this._state = 3;
    if (this._ex.waiting === this) this._ex.waiting = undefined;
    if (wasSent) {
      const h = this._host;
      if (h !== undefined) h.active--;
      this._cs.limiter.release();
    }
  }

  /** Abort / per-try timeout / deadline while queued or not yet started. */
  cancel(reason: Error): void {
    if (this._state === 0) {
      if (this._cs.limiter.cancel(this) && pending.hasSubscribers) pending.publish({ cluster: this._cs.name, owner: this._cs, event: 'cancelled' } satisfies UpstreamPendingMessage);
      this._state = 3;
    } else {
      this._abandoned = reason;
      this._release();
    }
    this._handler.onResponseError?.(NO_CONTROLLER, reason);
  }

  /**
   * Reports how the attempt ended: to outlier detection (`charged`: the status as it counts,
   * gRPC statuses mapped as Envoy maps them), and to subscribers (`status`: what came back).
   */
  private _record(charged: number, failure: FailureKind | undefined, status = charged): void {
    if ((this._marks & RECORDED) !== 0) return;
    this._marks |= RECORDED;
    const d = this._cs.detector;
    const h = this._host;
    if (h !== undefined && failure !== 'cancelled' && failure !== 'overflow' && failure !== 'local') {
      d?.record(h, charged, failure, !startsConnected(this._ex) && (this._marks & STARTED) !== 0);
      // Envoy's per-host rq_success / rq_error (a 5xx as charged, or no answer) / rq_timeout (admin /clusters).
      const st = h.stats;
      if (failure === undefined && charged < 500) st.rqSuccess++;
      else st.rqError++;
      if (failure === 'per-try-timeout') st.rqTimeout++;
    }
    const ex = this._ex;
    const obs = ex.attemptObserver;
    const published = channels.attemptEnd.hasSubscribers;
    if (this._sentAt !== -1 && (published || obs !== undefined)) {
      const m: AttemptEndMessage = {
        workload: ex.workload,
        call: ex,
        attempt: ex.attempts,
        cluster: this._cs.name,
        endpoint: h?.key,
        status: failure === undefined ? status : 0,
        grpcStatus: failure === undefined ? ex.grpcStatus : -1,
        failure,
        durationMs: this._run.o.clock.now() - this._sentAt,
        started: (this._marks & STARTED) !== 0,
      };
      if (published) channels.attemptEnd.publish(m);
      obs?.attemptEnd(m);
    }
  }

  onRequestStart(controller: Controller, context: unknown): void {
    if (this._abandoned !== undefined) {
      controller.abort(this._abandoned);
      return;
    }
    this._state = 2;
    this._marks |= STARTED;
    if (startsConnected(this._ex) && this._host !== undefined) this._cs.detector?.connected(this._host);
    if (this._ex.waiting === this) this._ex.waiting = undefined;
    this._handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    if (this._abandoned !== undefined) return;
    // An upgraded stream (a WebSocket) stays a request in flight on its endpoint and in the pool
    // limits until its socket closes, as Envoy's stays active (least request, max_requests).
    const s = socket as { readonly destroyed?: boolean; once?: (event: string, f: () => void) => unknown } | null;
    if (s !== null && typeof s === 'object' && typeof s.once === 'function' && s.destroyed !== true) s.once('close', () => this._release());
    else this._release();
    this._handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    if (this._abandoned !== undefined) return;
    if (statusCode >= 200) {
      const ex = this._ex;
      ex.grpcStatus = headGrpcStatus(ex.protocol, statusCode, headers);
      const charged = headStatus(ex.protocol, statusCode, headers);
      if (charged === DEFERRED) this._marks |= DEFERRED_ANSWER;
      else this._record(charged, undefined, statusCode);
    }
    this._handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this._abandoned !== undefined) return;
    this._handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    if (this._abandoned !== undefined) return;
    this._release();
    if ((this._marks & DEFERRED_ANSWER) !== 0) {
      // A gRPC stream's answer is in its trailers (a stream that ends without one is an error).
      this._ex.grpcStatus = trailerGrpcStatus(trailers);
      this._record(trailerStatus(trailers), undefined, 200);
    }
    this._handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Controller, error: Error): void {
    if (this._abandoned !== undefined) return;
    this._release();
    const ex = this._ex;
    // A MeshletError from the transport is the mesh's own doing (close() cancelled the call): not the endpoint's.
    const failure: FailureKind = ex.aborted || error instanceof MeshletError
      ? 'cancelled'
      : ex.reason !== null || error.name === 'PerTryTimeout'
        ? 'per-try-timeout'
        : bodySourceFailed(ex.body)
          ? 'local'
          : this._run.o.classify(ex, error);
    if ((this._marks & RECORDED) !== 0) this._lateReset(failure, error);
    else this._record(0, failure);
    this._handler.onResponseError?.(controller, error);
  }

  /**
   * The upstream failed after its response head was counted: as Envoy's router charges every
   * upstream reset (`LocalOriginConnectFailed`, a 503 unless local-origin errors are split), a
   * late one too, outlier detection hears of it — not of a response the retry layer discarded,
   * which the mesh reset itself.
   */
  private _lateReset(failure: FailureKind, error: Error): void {
    const d = this._cs.detector;
    const h = this._host;
    if (d === undefined || h === undefined || error.name === 'RetriedResponse') return;
    if (failure === 'reset' || failure === 'remote-reset' || failure === 'protocol') d.record(h, 0, failure, !startsConnected(this._ex));
  }
}

/** Builds the upstream layer around the adapter's transport. */
export function upstreamLayer(o: UpstreamLayerOptions): Layer {
  return (transport: Dispatch): Dispatch => {
    const run: UpstreamRun = { o, transport };
    return (ex, handler) => {
      new UpstreamCall(run, ex, handler, ex.cluster as ClusterState).start();
    };
  };
}
