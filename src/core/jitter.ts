/**
 * Jitter, in one place. Every randomised wait in meshlet draws its delay here from a
 * {@link Random}: Envoy's retry backoff (`policies/backoff.ts`), the control-plane client's
 * reconnect backoff (`control-plane/backoff.ts`), the etcd watch's reconnect and the etcd config
 * store's retry after a conflicting write. The exponential growth stays with each owner, because
 * the formulas differ on purpose: Envoy's retry interval is `(2^n − 1)·base`, the reconnect
 * backoff's is `base·2^n`.
 *
 * @module
 */
import type { Random } from './clock.ts';

/**
 * A jittered delay: uniform in `[minMs, maxMs)`, in whole milliseconds (rounded down). With
 * `minMs` 0, the default, this is "full jitter" (AWS, "Exponential Backoff And Jitter") and
 * Envoy's fully jittered backoff. An empty range (`maxMs <= minMs`, or not a number) gives
 * `minMs` rounded down, and never less than 0.
 *
 * @param random the draw (the mesh's injected one where there is one)
 * @param maxMs the upper bound (exclusive)
 * @param minMs the lower bound (inclusive). @defaultValue 0
 * @example jitterMs(random, 250) // 0 … 249
 * @example jitterMs(random, 1.25 * d, 0.75 * d) // d ± 25 %
 */
export function jitterMs(random: Random, maxMs: number, minMs = 0): number {
  const lo = Math.max(0, minMs);
  if (!(maxMs > lo)) return Math.floor(lo);
  const v = Math.floor(lo + random.next() * (maxMs - lo));
  // lo + r·(max − lo) can round up to max itself when r is just below 1.
  return v < maxMs ? v : Math.max(Math.floor(lo), Math.ceil(maxMs) - 1);
}
