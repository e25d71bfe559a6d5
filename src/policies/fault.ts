/**
 * Fault injection, as Envoy's fault filter runs it on the client side: the delay is decided
 * and applied first, then the abort is decided by its own draw (P(both) = p_delay·p_abort).
 * A delay happens before the router, so it does not count against the route timeout; the
 * caller's own deadline (a gRPC call's, `withDeadline`'s) keeps running, as the caller's clock
 * does behind a sidecar: when it comes first, the delay ends there and the timeout layer ends the
 * call (504 `UT`, `DEADLINE_EXCEEDED`). An abort never reaches the router, so nothing is sent
 * upstream and it is never retried.
 * Draws come from the mesh's Random, so tests are deterministic. Flags: DI, FI.
 *
 * @module
 */
import type { Clock, Random } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import { grpcStatusCode } from '../core/grpc-status.ts';
import { type Exchange, NO_CONTROLLER, type ResponseHandler } from '../core/exchange.ts';
import type { Dispatch, Layer } from '../core/layer.ts';
import type { FaultPolicy } from '../routing/route-policy.ts';
import { callerDue } from './timeout.ts';


/** What the fault layer needs. */
export interface FaultLayerOptions {
  readonly clock: Clock;
  readonly random: Random;
  fault(ex: Exchange): FaultPolicy | undefined;
}

function abort(ex: Exchange, f: FaultPolicy): void {
  ex.flag('FI');
  const grpc = f.abortGrpcStatus === undefined ? undefined : grpcStatusCode(f.abortGrpcStatus);
  const { route } = ex.errorContext();
  // The outcome only: the adapter renders it (a gRPC-only abort is answered trailers-only, as Envoy does).
  const what = f.abortHttpStatus === undefined && grpc !== undefined ? `fault filter abort (grpc-status ${grpc})` : 'fault filter abort';
  ex.fail(new MeshletError('MESHLET_ERR_FAULT_ABORT', what, { route, flags: ex.flags, httpStatus: f.abortHttpStatus, grpcStatus: grpc }));
}

/** Builds the fault layer. */
export function faultLayer(o: FaultLayerOptions): Layer {
  return (next: Dispatch): Dispatch =>
    (ex, handler) => {
      const f = o.fault(ex);
      if (f === undefined) {
        next(ex, handler);
        return;
      }
      const delay = f.delayMs !== undefined && f.delayFraction > 0 && o.random.next() < f.delayFraction;
      if (!delay) {
        afterDelay(o, f, next, ex, handler);
        return;
      }
      ex.flag('DI');
      const delayMs = f.delayMs as number;
      const callerLeft = callerDue(ex, o.clock) - o.clock.now();
      const timer = o.clock.setTimer(
        () => {
          if (ex.waiting === waiter) ex.waiting = undefined;
          ex.routedAt = o.clock.now();
          // The caller's deadline came during the delay: the timeout layer ends the call (no abort draw).
          if (callerLeft < delayMs) next(ex, handler);
          else afterDelay(o, f, next, ex, handler);
        },
        Math.max(0, Math.min(delayMs, callerLeft)),
        true, // the caller awaits the call: keep the process alive
      );
      const waiter = {
        cancel(reason: Error): void {
          timer.clear();
          handler.onResponseError?.(NO_CONTROLLER, reason);
        },
      };
      ex.waiting = waiter;
    };
}

function afterDelay(o: FaultLayerOptions, f: FaultPolicy, next: Dispatch, ex: Exchange, handler: ResponseHandler): void {
  const hasAbort = f.abortHttpStatus !== undefined || f.abortGrpcStatus !== undefined;
  if (hasAbort && f.abortFraction > 0 && o.random.next() < f.abortFraction) abort(ex, f);
  else next(ex, handler);
}
