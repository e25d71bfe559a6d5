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
 */
export async function runSliced<T>(steps: Steps<T>, sliceMs = DEFAULT_SLICE_MS): Promise<T> {
  let start = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    if (performance.now() - start >= sliceMs) {
      await turn();
      start = performance.now();
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
