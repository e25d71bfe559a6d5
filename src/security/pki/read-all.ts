/**
 * Reading several files at once with a deterministic error: when more than one read fails, the
 * first in the given order is reported, whichever finished first.
 *
 * @module
 */

/** Awaits every read; the first failure in the given order is the one reported (the same whichever read finished first). */
export async function readAllInOrder<T extends readonly unknown[]>(reads: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(reads);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
