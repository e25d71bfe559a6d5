/**
 * The pipeline's plumbing: the handler and controller shapes (those of undici 8's dispatcher
 * API), waiters, the error mode and response header operations. Nothing here knows the
 * Exchange; the layer types that take one (`Dispatch`, `Layer`, `stack`) live in `exchange.ts`.
 *
 * @module
 */

/** Header values, names lower-cased. */
export type Headers = Record<string, string | string[] | undefined>;

/** Controls one request (an attempt, or the whole call). Same shape as undici 8's controller. */
export interface Controller {
  abort(reason?: Error): void;
  pause(): void;
  resume(): void;
  readonly aborted: boolean;
  readonly paused: boolean;
  readonly reason: Error | null;
}

/** Receives a response. Same shape as undici 8's `Dispatcher.DispatchHandler`. */
export interface ResponseHandler {
  onRequestStart?(controller: Controller, context: unknown): void;
  onRequestUpgrade?(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void;
  onResponseStart?(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void;
  onResponseData?(controller: Controller, chunk: Buffer): void;
  onResponseEnd?(controller: Controller, trailers: Headers): void;
  onResponseError?(controller: Controller, error: Error): void;
}

/** A controller for callbacks that have none (failures made by the mesh, before any attempt started). */
export const NO_CONTROLLER: Controller = Object.freeze({
  abort() {},
  pause() {},
  resume() {},
  aborted: false,
  paused: false,
  reason: null,
});

/** Something the exchange is waiting on (a backoff, a fault delay, a queue slot) that abort must cancel. */
export interface Waiter {
  /** Stops waiting and fails the exchange's handler with `reason`. */
  cancel(reason: Error): void;
}

/**
 * How mesh-made failures reach the caller.
 * @category Mesh
 */
export type ErrorMode = 'respond' | 'throw';

/** A header operation applied to responses (compiled form). */
export interface ResponseHeaderOps {
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

/**
 * Applies header operations in Envoy's order (HeaderParser::evaluateHeaders: "remove-before-add"):
 * remove, then set (overwrite), then add (append) — `remove: [x]` with `set: {x: v}` sends `x: v`.
 */
export function applyHeaderOps(headers: Headers, ops: ResponseHeaderOps): void {
  for (const k of ops.remove) delete headers[k];
  for (const [k, v] of ops.set) headers[k] = v;
  for (const [k, v] of ops.add) {
    // Own values only: the headers may be a plain object, and `constructor` is a header name too.
    const cur = Object.hasOwn(headers, k) ? headers[k] : undefined;
    if (cur === undefined) headers[k] = v;
    else if (typeof cur === 'string') headers[k] = [cur, v];
    else cur.push(v);
  }
}
