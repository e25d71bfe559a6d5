/**
 * The route timeout layer. The deadline of a call is the soonest of the route's `timeout`
 * (which spans every attempt and backoff, Istio default: none), the deadline carried in the
 * async context ({@link withDeadline}) and the caller's own (`Exchange.callerDeadline`: a gRPC
 * call's deadline). It is one entry in the mesh's deadline queue;
 * when it passes, the attempt in flight (or whatever the call waits on) is cancelled and the
 * caller gets 504 `upstream request timeout`, flag UT. It is never retried.
 *
 * As Envoy's router, the route's `timeout` starts once the whole request has been sent (its end
 * of stream): at once for a request without a body or with a string/bytes one, when the caller's
 * stream has been read to its end for a streamed one — a long upload is not cut short by it.
 * The caller's own deadline runs from the call's start whatever the body.
 *
 * @module
 */
import type { Clock } from '../core/clock.ts';
import { type BodySentListener, ReplayableBody } from '../core/body.ts';
import { currentDeadline } from '../core/context.ts';
import type { DeadlineNode, DeadlineQueue } from '../core/deadlines.ts';
import { MeshletError } from '../core/errors.ts';
import { type Exchange, NO_CONTROLLER } from '../core/exchange.ts';
import type { Dispatch, Layer } from '../core/layer.ts';

/** What the timeout layer needs. */
export interface TimeoutLayerOptions {
  readonly clock: Clock;
  readonly deadlines: DeadlineQueue;
  /** The route's timeout in ms, or undefined. */
  timeoutMs(ex: Exchange): number | undefined;
}

class RouteDeadline implements DeadlineNode {
  due: number;
  heapIndex = -1;
  protected readonly ex: Exchange;
  protected fromContext: boolean;
  constructor(ex: Exchange, due: number, fromContext: boolean) {
    this.ex = ex;
    this.due = due;
    this.fromContext = fromContext;
  }
  expire(): void {
    const ex = this.ex;
    ex.flag('UT');
    ex.expire(
      new MeshletError('MESHLET_ERR_TIMEOUT', this.fromContext ? 'upstream request timeout (caller deadline)' : 'upstream request timeout', ex.errorContext()),
    );
  }
}

/**
 * A route deadline whose timeout waits for the end of a streamed request body: until then only
 * the caller's deadline (`due`, Infinity when none) runs. Only such calls carry its fields.
 */
class DeferredRouteDeadline extends RouteDeadline implements BodySentListener {
  readonly #routeMs: number;
  readonly #o: TimeoutLayerOptions;
  constructor(ex: Exchange, callerDue: number, routeMs: number, o: TimeoutLayerOptions) {
    super(ex, callerDue, true);
    this.#routeMs = routeMs;
    this.#o = o;
  }

  /** The whole request is sent: the route timeout starts now (the caller's deadline still wins when sooner). */
  bodySent(): void {
    const ex = this.ex;
    if (ex.done || ex.reason !== null) return;
    const route = this.#o.clock.now() + this.#routeMs;
    if (route >= this.due) {
      ex.deadline = this.due;
      return;
    }
    this.due = route;
    this.fromContext = false;
    ex.deadline = route;
    this.#o.deadlines.add(this);
  }
}

/**
 * The caller's own deadline on the mesh clock: the sooner of its gRPC deadline
 * (`Exchange.callerDeadline`) and the async context's ({@link withDeadline}, an inbound request's,
 * kept on performance.now(): what remains of it is carried over); Infinity when it has none. The
 * timeout layer, a fault delay and a mirror copy all read it here.
 */
export function callerDue(ex: Exchange, clock: { now(): number }): number {
  const ctx = currentDeadline();
  if (ctx === Number.POSITIVE_INFINITY) return ex.callerDeadline;
  return Math.min(ex.callerDeadline, clock.now() + (ctx - performance.now()));
}

/** Builds the timeout layer. */
export function timeoutLayer(o: TimeoutLayerOptions): Layer {
  /**
   * The route deadline of a call without a caller deadline. When it comes while the caller is
   * still writing a gRPC stream ({@link ReplayableBody.endPending}), the call is not cut: its
   * route timeout starts again at the half-close, as Envoy's starts at the downstream's end of
   * stream (router.cc `Filter::onRequestComplete`). A unary call half-closes as it starts, so its
   * deadline is queued at dispatch with nothing to wait for (no listener per call). A stream that
   * half-closed after it started has its deadline moved, when it comes, to the half-close plus the
   * route timeout, as Envoy counts it; a unary call (half-closed as it started) expires then.
   */
  class StreamAwareDeadline extends RouteDeadline {
    override expire(): void {
      const ex = this.ex;
      const body = ex.body;
      if (body instanceof ReplayableBody && !body.endPending && body.endedAt >= 0) {
        const route = o.timeoutMs(ex);
        const due = route === undefined ? this.due : body.endedAt + route;
        if (due > this.due && due > o.clock.now()) {
          // Half-closed after the call started: the route timeout runs from then.
          this.due = due;
          ex.deadline = due;
          o.deadlines.add(this);
          return;
        }
      }
      const t = body instanceof ReplayableBody && body.endPending ? o.timeoutMs(ex) : undefined;
      if (t !== undefined) {
        const deferred = new DeferredRouteDeadline(ex, Number.POSITIVE_INFINITY, t, o);
        if ((body as ReplayableBody).deferUntilEnded(deferred)) {
          // The route timeout is not running until then: nothing to tell a retry's upstream.
          ex.deadline = Number.POSITIVE_INFINITY;
          ex.deadlineNode = deferred;
          return;
        }
      }
      super.expire();
    }
  }
  return (next: Dispatch): Dispatch =>
    (ex, handler) => {
      const t = o.timeoutMs(ex);
      const caller = callerDue(ex, o.clock);
      if (t === undefined && caller === Number.POSITIVE_INFINITY) {
        next(ex, handler);
        return;
      }
      const now = o.clock.now();
      let due = t === undefined ? Number.POSITIVE_INFINITY : now + t;
      // The caller's own deadline (a gRPC deadline, an inbound one, withDeadline's): the sooner wins.
      const fromContext = caller < due;
      if (fromContext) due = caller;
      // What the call may wait at most, as sent upstream (x-envoy-expected-rq-timeout-ms) and as
      // retries read it; a route timeout waiting for the end of a streamed body moves it later.
      ex.deadline = due;
      const body = ex.body;
      if (!fromContext && body instanceof ReplayableBody && body.streaming && due > now) {
        const deferred = new DeferredRouteDeadline(ex, caller, t as number, o);
        if (body.deferUntilEnded(deferred)) {
          // A streamed body still being read: the route timeout starts at its end (Envoy's
          // onRequestComplete); meanwhile only the caller's deadline, if any, is queued. The body
          // is read ahead (up to the retry buffer) as a sidecar reads the app's request, so a body
          // the caller has finished starts the timeout even while the attempt waits for a connection.
          body.readAhead();
          if (caller !== Number.POSITIVE_INFINITY) o.deadlines.add(deferred);
          ex.deadlineNode = deferred;
          ex.deadlineQueue = o.deadlines;
          next(ex, handler);
          return;
        }
      }
      if (!fromContext && caller !== Number.POSITIVE_INFINITY && body instanceof ReplayableBody && body.endPending && due > now) {
        // A gRPC stream with a caller deadline later than the route's: the route timeout waits
        // for the half-close (the caller's deadline queued meanwhile), as a streamed body's does.
        const deferred = new DeferredRouteDeadline(ex, caller, t as number, o);
        if (body.deferUntilEnded(deferred)) {
          o.deadlines.add(deferred);
          ex.deadlineNode = deferred;
          ex.deadlineQueue = o.deadlines;
          next(ex, handler);
          return;
        }
      }
      const node = !fromContext && caller === Number.POSITIVE_INFINITY && due > now ? new StreamAwareDeadline(ex, due, false) : new RouteDeadline(ex, due, fromContext);
      if (due <= now) {
        node.expire();
        handler.onResponseError?.(NO_CONTROLLER, ex.reason ?? new MeshletError('MESHLET_ERR_TIMEOUT', 'upstream request timeout'));
        return;
      }
      o.deadlines.add(node);
      // The exchange takes the entry out of the queue when the call ends.
      ex.deadlineNode = node;
      ex.deadlineQueue = o.deadlines;
      next(ex, handler);
    };
}
