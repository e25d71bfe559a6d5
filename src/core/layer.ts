/**
 * The pipeline's shape: a `Dispatch` handles an {@link Exchange}, a `Layer` wraps the rest of
 * the pipeline (`(next) => dispatch`), and `stack` composes layers once, outermost first, around
 * a terminal dispatch (the transport). Every cross-cutting behaviour of the outbound side is a
 * layer; the order is pinned by a test.
 *
 * @module
 */
import type { Exchange } from './exchange.ts';
import type { ResponseHandler } from './handler.ts';

/** One step of the pipeline: handles the exchange, usually by calling the next step. */
export type Dispatch = (ex: Exchange, handler: ResponseHandler) => void;

/** A layer wraps the rest of the pipeline: `(next) => dispatch`. */
export type Layer = (next: Dispatch) => Dispatch;

/** Composes layers, outermost first, around a terminal dispatch. */
export function stack(layers: readonly Layer[], terminal: Dispatch): Dispatch {
  let d = terminal;
  for (let i = layers.length - 1; i >= 0; i--) d = (layers[i] as Layer)(d);
  return d;
}
