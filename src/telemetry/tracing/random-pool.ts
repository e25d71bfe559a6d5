/**
 * The random bytes of the ids meshlet makes itself — `x-request-id` UUIDs, and the trace and span
 * ids of a request no SDK samples — cut from one pool refilled by one `crypto.randomFillSync`
 * of 64 KiB (4096 request ids; as Envoy's come from BoringSSL's `RAND_bytes`). A call costs about
 * as much as 4 KiB of bytes, so a larger pool spends less of each id on it; filled word by word
 * from `Math.random` (as the OpenTelemetry SDK's `RandomIdGenerator` draws), the refill loop ran
 * too rarely to be optimised and boxed every draw (~100 B of garbage per `traceparent`); a
 * `randomFillSync` per id cost more than the rest of a call's tracing.
 *
 * @module
 */
import crypto from 'node:crypto';

/** The pool's size in bytes. */
export const POOL_SIZE = 65536;
/** The pool: read the bytes {@link takeRandom} gave before taking more. */
export const POOL = Buffer.alloc(POOL_SIZE);
let used = POOL_SIZE;

/** The offset in {@link POOL} of `n` fresh random bytes (the pool refilled first when fewer are left). */
export function takeRandom(n: number): number {
  if (used + n > POOL_SIZE) {
    crypto.randomFillSync(POOL);
    used = 0;
  }
  const at = used;
  used += n;
  return at;
}
