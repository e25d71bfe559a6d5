/**
 * Config work that can give the event loop a turn. Validating, analysing and compiling tens of
 * thousands of resources takes hundreds of milliseconds; done in one go, a mesh serving requests
 * (or a control plane serving its API) stands still for that long. So the long loops are written
 * as generators that `yield` between items, and one implementation runs two ways:
 * {@link runNow} runs it to the end at once (the CLI, tests, synchronous APIs), {@link runSliced}
 * runs it in slices of a few milliseconds with a turn of the event loop between them (reloads in
 * meshes and the control plane).
 *
 * A `yield` costs a generator resume and, in `runSliced`, a clock read: yield per resource or
 * per service, not per field.
 *
 * @module
 */
import { setImmediate } from 'node:timers';
import { type Clock, systemClock } from '../core/clock.ts';

/** A computation of a `T` that may pause at each `yield` (it yields nothing; only the pauses matter). */
export type Steps<T> = Generator<void, T, undefined>;

/** The longest a slice runs before the event loop gets a turn, in ms. */
export const DEFAULT_SLICE_MS = 8;

/** Runs `steps` to the end, now. */
export function runNow<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs `steps` in slices of about `sliceMs`, letting timers and I/O run between slices (a
 * `setImmediate` turn). A single step longer than a slice still runs whole: keep steps small.
 *
 * The first slice runs after a turn too, never in the caller's: a run started from an I/O
 * callback (a file read, a response from the control plane) would otherwise run its first slice
 * in the poll phase and its second in the check phase right after it, with no timer and no I/O
 * between them — a block of two slices, plus whatever the callback had done already. Each slice
 * running in the check phase has timers and I/O between it and the next.
 *
 * `clock`: what slices are measured with (tests pass a manual clock).
 */
export async function runSliced<T>(steps: Steps<T>, sliceMs = DEFAULT_SLICE_MS, clock: Pick<Clock, 'now'> = systemClock): Promise<T> {
  for (;;) {
    await turn();
    const start = clock.now();
    for (;;) {
      const r = steps.next();
      if (r.done === true) return r.value;
      if (clock.now() - start >= sliceMs) break;
    }
  }
}

/** Steps over `items` calling `fn` on each, pausing after each. */
export function* eachStep<T>(items: Iterable<T>, fn: (item: T, index: number) => void): Steps<void> {
  let i = 0;
  for (const item of items) {
    fn(item, i++);
    yield;
  }
}
