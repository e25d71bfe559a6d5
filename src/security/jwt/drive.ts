/**
 * Runs a generator that yields promises only when it must wait: synchronously to the end when it
 * never yields (the verified-token cache's path costs no promise), as a promise from the first
 * yield on. A yielded promise's value is sent back in; its rejection is thrown back in.
 *
 * @module
 */

/** A computation that may wait: yields promises, gets their values back. */
export type Waiting<T> = Generator<Promise<unknown>, T, unknown>;

/** Runs `gen`: its result, or a promise of it once it waits. */
export function drive<T>(gen: Waiting<T>): T | Promise<T> {
  const step = gen.next();
  return step.done ? step.value : resume(gen, step.value);
}

async function resume<T>(gen: Waiting<T>, first: Promise<unknown>): Promise<T> {
  let pending = first;
  for (;;) {
    let step: IteratorResult<Promise<unknown>, T>;
    try {
      step = gen.next(await pending);
    } catch (err) {
      step = gen.throw(err);
    }
    if (step.done) return step.value;
    pending = step.value;
  }
}

/** Waits for `p` inside a {@link Waiting} computation: `const v = yield* wait(p)`. */
export function* wait<T>(p: T | Promise<T>): Generator<Promise<unknown>, T, unknown> {
  if (!(p instanceof Promise)) return p;
  return (yield p) as T;
}
