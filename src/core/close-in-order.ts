/**
 * Shutting down a whole made of parts: every part is closed even when an earlier one fails, so
 * one failing step (a cache that cannot be flushed, a deregistration that throws) never leaves
 * connection pools, servers or timers open behind it.
 *
 * @module
 */

/** One step: a part's close, or several that may close together (awaited as a group). */
export type CloseStep = () => Promise<unknown> | undefined | readonly (Promise<unknown> | undefined)[];

/**
 * Runs `steps` one after another (a step's parts together), waiting for each to settle before
 * the next starts. Resolves when all closed; otherwise rejects, after every step has run, with
 * the only error, or an `AggregateError` of all of them in order.
 */
export async function closeInOrder(steps: readonly CloseStep[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    let parts: ReturnType<CloseStep>;
    try {
      parts = step();
    } catch (e) {
      errors.push(e);
      continue;
    }
    if (parts === undefined) continue;
    if (!Array.isArray(parts)) parts = [parts as Promise<unknown>];
    for (const r of await Promise.allSettled(parts as readonly (Promise<unknown> | undefined)[])) {
      if (r.status === 'rejected') errors.push(r.reason);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} parts failed to close: ${errors.map((e) => (e as Error)?.message ?? String(e)).join('; ')}`);
}

/**
 * The parts of a step that start only when `first` has settled: `first` (its error reported as a
 * part's) and `next`'s parts, run as a step of their own (their errors reported too).
 */
export function afterPart(first: Promise<unknown>, next: CloseStep): Promise<unknown>[] {
  return [first, first.then(noop, noop).then(() => closeInOrder([next]))];
}

function noop(): void {}
