/**
 * The retry layer's own errors: the markers it aborts an attempt with (read by name elsewhere:
 * `PerTryTimeout`, `RetriedResponse`) and the error of a retry that could not be sent.
 *
 * @module
 */
import type { Exchange, Headers } from '../core/exchange.ts';

/** The marker error a per-try timeout aborts its attempt with. */
export class PerTryTimeout extends Error {
  constructor() {
    super('per-try timeout');
    this.name = 'PerTryTimeout';
  }
}

/** The reason a retried response's stream is reset with (it reaches no one: the attempt ignores what follows). */
export class RetriedResponse extends Error {
  constructor() {
    super('response retried: upstream stream reset');
    this.name = 'RetriedResponse';
  }
}

/**
 * Whether a response with this head has nothing after it (Envoy's `end_stream` on headers): a
 * HEAD request's, or one with `content-length: 0`. Its stream is let end (its connection is
 * kept); any other retried response is reset.
 */
export function endsWithHead(method: string, headers: Headers): boolean {
  return method === 'HEAD' || headers['content-length'] === '0';
}

/**
 * The error a call ends with when its retry threw as it was sent, from the backoff timer (a bug
 * below the retry layer, an injected Clock or Random that throws): which retry, of which call,
 * where it was going, and the cause.
 */
export function retryNotSent(ex: Exchange, err: unknown): Error {
  const c = ex.errorContext();
  const where = c.cluster === undefined ? '' : ` to cluster ${c.cluster}${c.endpoint === undefined ? '' : ` (endpoint ${c.endpoint})`}`;
  const why = err instanceof Error ? err.message : String(err);
  return new Error(`meshlet: retry ${ex.attempts - 1} of ${ex.method} ${ex.authority}${ex.path}${where} could not be sent: ${why}`, { cause: err });
}
