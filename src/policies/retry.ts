/**
 * The retry layer: Envoy's router retry loop, transport-neutral.
 *
 * Each attempt goes down the rest of the pipeline (pick an endpoint, admit, send). An attempt
 * that fails in a way the route's `retryOn` covers is retried — after Envoy's jittered
 * exponential backoff, or the upstream's `Retry-After` when it is longer — while attempts,
 * the route deadline, the body's replay buffer and the destination's retry budget allow.
 * A retriable response is swallowed only once the retry is certain; then, as Envoy's router
 * does on retriable response headers, its stream is reset at once (its body is never waited
 * for; over HTTP/1.1 its connection closes) and the retry is scheduled. A response the caller
 * has started to receive is never retried. The per-try timeout is one entry in the shared
 * deadline queue, not a timer; as Envoy's, it starts once the attempt has sent the whole request.
 *
 * @module
 */
import { headGrpcStatus } from '../core/classify.ts';
import { type BodySentListener, bodySourceFailed, ReplayableBody } from '../core/body.ts';
import { canReplay } from '../core/replay.ts';
import type { Clock, Random } from '../core/clock.ts';
import type { DeadlineNode, DeadlineQueue } from '../core/deadlines.ts';
import { MeshletError } from '../core/errors.ts';
import { channels, type RetryBudgetExhaustedMessage } from '../core/observe.ts';
import { type Controller, type Exchange, type Headers, NO_CONTROLLER, type ResponseHandler, type Waiter } from '../core/exchange.ts';
import type { Dispatch, Layer } from '../core/layer.ts';
import type { AttemptOutcome, FailureKind } from '../core/outcome.ts';
import type { RetryPolicy } from '../routing/route-policy.ts';
import { backoffDelayMs, retryAfterMs } from './backoff.ts';
import type { RetryBudget } from './retry-budget.ts';
import { retryPolicyForCall, takeRetriableHeaders } from './retry-headers.ts';
import { type HeaderBag, isRetriable } from './retry-rules.ts';
import { PER_TRY_TIMEOUT_HEADER, timeoutFromHeader } from './timeout-headers.ts';
import { flagLateReset, upstreamFailure } from './upstream-failure.ts';
import { endsWithHead, PerTryTimeout, RetriedResponse, retryNotSent } from './retry-errors.ts';

/** What the retry layer needs from the mesh. */
export interface RetryLayerOptions {
  readonly clock: Clock;
  readonly random: Random;
  readonly deadlines: DeadlineQueue;
  /** The route's retry policy (from the route layer's decision). */
  policy(ex: Exchange): RetryPolicy;
  /** The destination's retry budget / maxRetries breaker. */
  budget(ex: Exchange): RetryBudget;
  /** Requests to the destination in flight or queued for a connection (the budget is a share of them, as Envoy's). */
  activeRequests(ex: Exchange): number;
  /** Classifies a transport error (the exchange's transport decides). */
  classify(ex: Exchange, err: Error): FailureKind;
  /** Longest `Retry-After` honoured; a longer one ends retrying. */
  readonly maxRetryAfterMs: number;
  /** A call's `x-envoy-upstream-rq-per-try-timeout-ms` replaces `perTryTimeout` (trustEnvoyRequestHeaders; else one a route set is sent on, as Envoy reads it before the route's headers). */
  readonly timeoutHeaders: boolean;
}

/** This attempt holds a slot of the retry budget. */
const IS_RETRY = 1;
/** The per-try timeout fired. */
const PER_TRY_EXPIRED = 2;
/** A retriable response is being discarded (the retry is scheduled; what is left of it is ignored). */
const DISCARDING = 4;
/** The response went on to the caller. */
const FORWARDED = 8;
/** The attempt ended (per-try entry and budget slot released). */
const FINISHED = 16;

/**
 * A response head's outcome while the attempt decides on it: one object for every attempt, as
 * the decision is synchronous (an attempt that retries keeps its own copy), rather than 64
 * bytes per response.
 */
const HEAD: AttemptOutcome = { status: 0, grpcStatus: -1, failure: undefined, requestSent: true, headers: undefined };

/** A policy without retries (its per-try timeout kept). */
function noRetries(p: RetryPolicy): RetryPolicy {
  return p.attempts === 0 ? p : { ...p, attempts: 0 };
}

/** Builds the retry layer. */
export function retryLayer(o: RetryLayerOptions): Layer {
  return (next: Dispatch): Dispatch => {
    const run: RetryRun = { o, next };
    return (ex, handler) => {
      // The route's policy, or as a trusted app widens it for this call (x-envoy-retry-on, x-envoy-max-retries;
      // without trustEnvoyRequestHeaders the pipeline removed them before this layer).
      // The mesh's own calls (a rate limit service's) are not retried: Envoy's async gRPC client has no retry policy unless its envoy_grpc sets one.
      const policy = ex.sideCall ? noRetries(o.policy(ex)) : retryPolicyForCall(o.policy(ex), ex.headers);
      const retriable = takeRetriableHeaders(ex.headers);
      // The route's per-try timeout, or the one the app asks for (x-envoy-upstream-rq-per-try-timeout-ms).
      ex.perTryTimeoutMs = o.timeoutHeaders ? timeoutFromHeader(ex.headers, PER_TRY_TIMEOUT_HEADER, policy.perTryTimeoutMs) : policy.perTryTimeoutMs;
      new Attempt(run, ex, handler, policy, retriable, false).send();
    };
  };
}

/** What every attempt through one retry layer shares (one field per attempt, not two). */
interface RetryRun {
  readonly o: RetryLayerOptions;
  /** The rest of the pipeline. */
  readonly next: Dispatch;
}

/** One attempt of a call; also the per-try deadline node. */
class Attempt implements ResponseHandler, DeadlineNode, Waiter, BodySentListener {
  due = 0;
  heapIndex = -1;
  private readonly _run: RetryRun;
  private readonly _ex: Exchange;
  private readonly _handler: ResponseHandler;
  private readonly _policy: RetryPolicy;
  /** The call's x-envoy-retriable-status-codes / x-envoy-retriable-header-names, for the retry rules. */
  private readonly _retriable: HeaderBag;
  /**
   * What has happened to the attempt, as bits (IS_RETRY, PER_TRY_EXPIRED, …): one field rather than
   * five booleans, 32 bytes less per attempt.
   */
  private _bits: number;
  private _controller: Controller | undefined;
  private _delayMs = 0;
  private _outcome: AttemptOutcome | undefined;
  private _timer: { clear(): void } | undefined;
  /** Forgets the mesh.close() hook of the backoff in progress. */
  private _forgetClose: (() => void) | undefined;

  constructor(run: RetryRun, ex: Exchange, handler: ResponseHandler, policy: RetryPolicy, retriable: HeaderBag, isRetry: boolean) {
    this._run = run;
    this._ex = ex;
    this._handler = handler;
    this._policy = policy;
    this._retriable = retriable;
    this._bits = isRetry ? IS_RETRY : 0;
  }

  send(): void {
    const ex = this._ex;
    ex.attempts++;
    // The deadline headers are what is left when the attempt starts (exchange-state.ts attemptAt).
    ex.attemptAt = this._run.o.clock.now();
    const per = ex.perTryTimeoutMs;
    // As Envoy's upstream request: the per-try timeout starts once the request is complete — at
    // once for a body already read (or none, or string/bytes), at the end of a streamed one
    // (read ahead, as the route timeout reads it, so a finished body waiting for a connection counts).
    if (per !== undefined) {
      const body = ex.body;
      if (body instanceof ReplayableBody && body.deferUntilSent(this)) body.readAhead();
      else this._startPerTry(per);
    }
    this._run.next(ex, this);
  }

  private _startPerTry(per: number): void {
    const due = this._run.o.clock.now() + per;
    if (due < this._ex.deadline) {
      this.due = due;
      this._run.o.deadlines.add(this);
    }
  }

  /** The streamed body was sent to its end: the per-try timeout starts, if the attempt still waits for its response. */
  bodySent(): void {
    if ((this._bits & (FORWARDED | DISCARDING | FINISHED | PER_TRY_EXPIRED)) !== 0) return;
    this._startPerTry(this._ex.perTryTimeoutMs as number);
  }

  /** Per-try timeout: cut the attempt short unless response headers already arrived. */
  expire(): void {
    if ((this._bits & (FORWARDED | DISCARDING | FINISHED)) !== 0) return;
    this._bits |= PER_TRY_EXPIRED;
    const err = new PerTryTimeout();
    if (this._controller !== undefined) this._controller.abort(err);
    else if (this._ex.waiting !== undefined) {
      const w = this._ex.waiting;
      this._ex.waiting = undefined;
      w.cancel(err);
    }
  }

  private _clearPerTry(): void {
    if (this.heapIndex !== -1) this._run.o.deadlines.remove(this);
  }

  private _end(): void {
    if ((this._bits & FINISHED) !== 0) return;
    this._bits |= FINISHED;
    this._clearPerTry();
    this._releaseRetrySlot();
  }

  /** Gives a retry's slot back, once (at the decision on its answer, or when it ends without one). */
  private _releaseRetrySlot(): void {
    if ((this._bits & IS_RETRY) === 0) return;
    this._bits &= ~IS_RETRY;
    this._run.o.budget(this._ex).endRetry();
  }

  // ── handler ──

  onRequestStart(controller: Controller, context: unknown): void {
    this._controller = controller;
    if ((this._bits & PER_TRY_EXPIRED) !== 0) {
      controller.abort(new PerTryTimeout());
      return;
    }
    this._handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    this._end();
    this._bits |= FORWARDED;
    this._handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    if (statusCode < 200) {
      this._handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
      return;
    }
    this._clearPerTry();
    // A retry gives its retry slot back at the decision on its answer, before the next retry asks
    // for one: Envoy's shouldRetry runs resetRetry() (retries().dec()) before canCreate().
    this._releaseRetrySlot();
    const outcome = HEAD;
    outcome.status = statusCode;
    outcome.grpcStatus = headGrpcStatus(this._ex.protocol, statusCode, headers);
    outcome.headers = headers;
    const retry = this._mayRetry(outcome);
    // Retries ran out on a response the policy would have retried: Envoy flags URX.
    const exhausted = !retry && this._ex.attempts > 1 && isRetriable(this._policy, outcome, this._retriable);
    outcome.headers = undefined;
    if (retry) {
      this._outcome = { status: statusCode, grpcStatus: outcome.grpcStatus, failure: undefined, requestSent: true, headers };
      this._bits |= DISCARDING;
      // As Envoy's router on retriable headers (onUpstreamHeaders: resetStream, doRetry): the
      // retry is scheduled now and the response's stream reset, not read to its end — an
      // endless or slow body must not hold the retry (over HTTP/1.1 the connection closes).
      // Outlier detection counted the status at the head (upstream layer), once.
      this._end();
      this._retry();
      if (!endsWithHead(this._ex.method, headers)) controller.abort(new RetriedResponse());
      return;
    }
    if (exhausted) this._ex.flag('URX');
    this._bits |= FORWARDED;
    this._handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if ((this._bits & DISCARDING) !== 0) return;
    this._handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    // A discarded response's end (one that ended with its head): the retry is already scheduled.
    if ((this._bits & DISCARDING) !== 0) return;
    this._end();
    this._handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Controller, error: Error): void {
    // The reset of a discarded response (or its failure): the retry is already scheduled, and
    // an abort or deadline from now on cancels it (the exchange waits on it).
    if ((this._bits & DISCARDING) !== 0) return;
    const ex = this._ex;
    this._end();
    if (ex.aborted || ex.reason instanceof MeshletError) {
      // Caller abort or route deadline: never retried; report the call's reason.
      this._handler.onResponseError?.(controller, ex.reason ?? error);
      return;
    }
    if ((this._bits & FORWARDED) !== 0 || error instanceof MeshletError) {
      // Mid-body failure (flagged as Envoy flags a reset after the response started), or a
      // failure the mesh made (no healthy upstream, overflow): final.
      if ((this._bits & FORWARDED) !== 0 && !(error instanceof MeshletError)) flagLateReset(ex, bodySourceFailed(ex.body) ? 'local' : this._run.o.classify(ex, error));
      this._handler.onResponseError?.(controller, error);
      return;
    }
    const failure: FailureKind = (this._bits & PER_TRY_EXPIRED) !== 0 ? 'per-try-timeout' : bodySourceFailed(ex.body) ? 'local' : this._run.o.classify(ex, error);
    if (failure === 'local') {
      // The caller's own failure (invalid argument, its body source): its error, as plain undici reports it.
      this._handler.onResponseError?.(controller, error);
      return;
    }
    const outcome: AttemptOutcome = { status: 0, grpcStatus: -1, failure, requestSent: this._controller !== undefined, headers: undefined };
    if (this._mayRetry(outcome)) {
      this._outcome = outcome;
      this._retry();
      return;
    }
    this._handler.onResponseError?.(controller, this._finalError(failure, error));
  }

  private _finalError(failure: FailureKind, cause: Error): MeshletError {
    const ex = this._ex;
    const retried = ex.attempts > 1;
    const exhausted = retried && isRetriable(this._policy, { status: 0, grpcStatus: -1, failure, requestSent: true, headers: undefined }, this._retriable);
    return upstreamFailure(ex, failure, cause, retried, exhausted);
  }

  /** Decides whether this outcome is retried; reserves the retry (budget) if so. */
  private _mayRetry(outcome: AttemptOutcome): boolean {
    const ex = this._ex;
    const p = this._policy;
    if (ex.attempts > p.attempts || ex.aborted || ex.reason !== null) return false;
    if (!isRetriable(p, outcome, this._retriable)) return false;
    if (!canReplay(ex.body)) return false;
    const now = this._run.o.clock.now();
    let delay = backoffDelayMs(ex.attempts, p.backoffBaseMs, this._run.o.random);
    if (outcome.headers !== undefined && outcome.headers['retry-after'] !== undefined) {
      const ra = retryAfterMs(outcome.headers, Date.now(), Number.POSITIVE_INFINITY);
      // A Retry-After longer than allowed, or reaching the deadline, ends retrying (meshlet's own rule).
      if (ra !== undefined) {
        if (ra > this._run.o.maxRetryAfterMs) return false;
        if (ra > delay) {
          if (now + ra >= ex.deadline) return false;
          delay = ra;
        }
      }
    }
    // A jittered backoff past the deadline is still waited on: Envoy arms the backoff timer
    // without looking at the route timeout, which then answers 504 UT during the wait
    // (router_test.cc RetryTimeoutDuringRetryDelay).
    const budget = this._run.o.budget(ex);
    if (!budget.tryStartRetry(this._run.o.activeRequests(ex))) {
      ex.flag('UO');
      const ch = channels.retryBudgetExhausted;
      if (ch.hasSubscribers) {
        ch.publish({ workload: ex.workload, call: ex, cluster: (ex.cluster as { name?: string } | undefined)?.name ?? '', attempt: ex.attempts, budgeted: budget.budgeted } satisfies RetryBudgetExhaustedMessage);
      }
      return false;
    }
    this._delayMs = delay;
    return true;
  }

  private _retry(): void {
    const ex = this._ex;
    if (ex.host !== undefined) {
      ex.tried ??= [];
      ex.tried.push(ex.host);
    }
    const next = new Attempt(this._run, ex, this._handler, this._policy, this._retriable, true);
    const deadlines = this._run.o.deadlines;
    // mesh.close() ends a backoff: the retry would open a connection on a mesh that closed its pools.
    const closed = (): void => {
      if (ex.waiting === this) ex.waiting = undefined;
      this.cancel(new MeshletError('MESHLET_ERR_CLOSED', 'mesh.close(): the call was waiting to retry and was cancelled', ex.errorContext()));
    };
    if (deadlines.closed) {
      closed();
      return;
    }
    const fire = (): void => {
      this._timer = undefined;
      this._forgetClose?.();
      this._forgetClose = undefined;
      if (ex.waiting === this) ex.waiting = undefined;
      // From the timer nobody catches what a layer below throws (a bug, an injected Clock or Random
      // that throws): the call ends with it, as the dispatcher ends a first attempt that throws.
      try {
        next.send();
      } catch (err) {
        next.notSent(err);
      }
    };
    ex.waiting = this;
    this._forgetClose = deadlines.onClose(closed);
    // The caller awaits this call: the backoff keeps the process alive (nothing else may).
    this._timer = this._run.o.clock.setTimer(fire, this._delayMs, true);
  }

  /** A retry that threw as it was sent (from the backoff timer): the call fails with an error that says which retry, where, and why. */
  notSent(err: unknown): void {
    const ex = this._ex;
    if (ex.done || (this._bits & (FORWARDED | DISCARDING | FINISHED)) !== 0) return;
    this._end();
    this._handler.onResponseError?.(NO_CONTROLLER, retryNotSent(ex, err));
  }

  /** Abort, deadline or mesh.close() during the backoff wait. */
  cancel(reason: Error): void {
    this._forgetClose?.();
    this._forgetClose = undefined;
    this._timer?.clear();
    this._timer = undefined;
    this._run.o.budget(this._ex).endRetry();
    this._handler.onResponseError?.(NO_CONTROLLER, reason);
  }

  /** The outcome that led to the retry in progress (for explain). */
  get outcome(): AttemptOutcome | undefined {
    return this._outcome;
  }
}
