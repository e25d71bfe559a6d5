/**
 * Deadlines carried in the async context. Code that runs under {@link withDeadline} (and,
 * later, under meshlet's inbound middleware) has a deadline; no outbound call made inside it
 * waits past what remains.
 *
 * @module
 */
import { AsyncLocalStorage } from 'node:async_hooks';

interface DeadlineStore {
  /** Absolute deadline, `performance.now()` milliseconds. */
  readonly at: number;
}

const storage = new AsyncLocalStorage<DeadlineStore>();

/**
 * Runs `fn` with a deadline `timeoutMs` from now (or the enclosing deadline, if that is
 * sooner). Outbound calls made by `fn` through the mesh time out when it passes.
 * @category Context and time
 */
export function withDeadline<T>(timeoutMs: number, fn: () => T): T {
  const at = performance.now() + timeoutMs;
  const outer = storage.getStore();
  return storage.run({ at: outer !== undefined && outer.at < at ? outer.at : at }, fn);
}

/**
 * Runs `fn` with an absolute deadline in `performance.now()` milliseconds.
 * @category Context and time
 */
export function withDeadlineAt<T>(at: number, fn: () => T): T {
  const outer = storage.getStore();
  return storage.run({ at: outer !== undefined && outer.at < at ? outer.at : at }, fn);
}

/**
 * The deadline of the current async context, in `performance.now()` milliseconds, or Infinity.
 * @category Context and time
 */
export function currentDeadline(): number {
  const s = storage.getStore();
  return s === undefined ? Number.POSITIVE_INFINITY : s.at;
}
