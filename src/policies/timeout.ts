/**
 * The route timeout layer. The deadline of a call is the soonest of the route's `timeout`
 * (which spans every attempt and backoff, Istio default: none), the deadline carried in the
 * async context ({@link withDeadline}) and the caller's own (`Exchange.callerDeadline`: a gRPC
 * call's deadline). It is one entry in the mesh's deadline queue;
 * when it passes, the attempt in flight (or whatever the call waits on) is cancelled and the
 * caller gets 504 `upstream request timeout`, flag UT. It is never retried.
 *
 * @module
 */
import type { Clock } from '../core/clock.ts';
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
  readonly #ex: Exchange;
  readonly #fromContext: boolean;
  constructor(ex: Exchange, due: number, fromContext: boolean) {
    this.#ex = ex;
    this.due = due;
    this.#fromContext = fromContext;
  }
  expire(): void {
    const ex = this.#ex;
    ex.flag('UT');
    ex.expire(
      new MeshletError('MESHLET_ERR_TIMEOUT', this.#fromContext ? 'upstream request timeout (caller deadline)' : 'upstream request timeout', ex.errorContext()),
    );
  }
}

/** Builds the timeout layer. */
export function timeoutLayer(o: TimeoutLayerOptions): Layer {
  return (next: Dispatch): Dispatch =>
    (ex, handler) => {
      const t = o.timeoutMs(ex);
      const ctx = currentDeadline();
      const caller = ex.callerDeadline;
      if (t === undefined && ctx === Number.POSITIVE_INFINITY && caller === Number.POSITIVE_INFINITY) {
        next(ex, handler);
        return;
      }
      const now = o.clock.now();
      let due = t === undefined ? Number.POSITIVE_INFINITY : now + t;
      let fromContext = false;
      if (caller < due) {
        // The caller's own deadline (a gRPC deadline, an inbound one): the sooner wins.
        due = caller;
        fromContext = true;
      }
      if (ctx !== Number.POSITIVE_INFINITY) {
        // The context deadline is on performance.now(); carry the time remaining over to the mesh clock.
        const viaCtx = now + (ctx - performance.now());
        if (viaCtx < due) {
          due = viaCtx;
          fromContext = true;
        }
      }
      ex.deadline = due;
      const node = new RouteDeadline(ex, due, fromContext);
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
