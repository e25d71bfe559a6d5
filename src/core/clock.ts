/**
 * Time and randomness, injected. The mesh owns one {@link Clock} and one {@link Random};
 * every policy that waits (backoff, fault delay, ejection, timeouts) or draws (weights,
 * faults, load balancing, jitter) goes through them, so tests drive time by hand and seed
 * the draws instead of sleeping and hoping.
 *
 * @module
 */
import { AsyncResource } from 'node:async_hooks';

/**
 * A cancellable timer.
 * @category Context and time
 */
export interface Timer {
  /** Cancels the timer; calling it after it fired is harmless. */
  clear(): void;
}

/**
 * Monotonic time in milliseconds, and timers on that time line.
 * @category Context and time
 */
export interface Clock {
  /** Milliseconds on a monotonic time line (not wall-clock time). */
  now(): number;
  /**
   * Calls `fn` after `ms` milliseconds. By default a timer does not keep the process alive
   * (background housekeeping: outlier sweeps, lease renewals, reconnects); pass `keepAlive`
   * for work a caller is awaiting (a retry backoff, a fault delay, `createMesh`'s startup
   * timeout), so the process does not exit in the middle of it.
   */
  setTimer(fn: () => void, ms: number, keepAlive?: boolean): Timer;
}

/**
 * A source of uniform numbers in [0, 1).
 * @category Context and time
 */
export interface Random {
  next(): number;
}

/** The longest delay `setTimeout` holds (2^31-1 ms, 24.8 days); Node fires a longer one after 1 ms. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A `setTimeout`, waited in steps of at most {@link MAX_TIMEOUT_MS} (a 60-day certificate renews after 30 days, not at once). */
class NodeTimer implements Timer {
  #handle: ReturnType<typeof setTimeout>;
  constructor(fn: () => void, ms: number, keepAlive: boolean) {
    this.#handle = this.#arm(fn, ms, keepAlive);
  }
  #arm(fn: () => void, ms: number, keepAlive: boolean): ReturnType<typeof setTimeout> {
    const h = ms > MAX_TIMEOUT_MS ? setTimeout(() => (this.#handle = this.#arm(fn, ms - MAX_TIMEOUT_MS, keepAlive)), MAX_TIMEOUT_MS) : setTimeout(fn, ms);
    if (!keepAlive) h.unref();
    return h;
  }
  clear(): void {
    clearTimeout(this.#handle);
  }
}

/**
 * The real clock: `performance.now()` and `setTimeout` (unref'd unless `keepAlive`).
 * @category Context and time
 */
export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimer(fn: () => void, ms: number, keepAlive = false): Timer {
    return new NodeTimer(fn, ms, keepAlive);
  },
});

/** Unix time (ms) from which a clock reading as Unix time counts: 2001-09-09, 10^12 ms. */
const UNIX_TIME_FROM = 1e12;

/**
 * The Unix time in ms at which `clock.now()` was 0, for what needs the wall clock (a JWT's
 * `exp`, the access log's `%START_TIME%`): the system clock counts from the process's start
 * (`performance.timeOrigin`); an injected clock whose reading is already Unix time
 * (`new ManualClock(Date.parse('2026-01-01T00:00:00Z'))`, as the docs suggest) counts from 0; any
 * other (`new ManualClock()`, starting at 0) counts from the process's start, as the system clock.
 * Read when called: call it once, where the clock is taken in.
 * @internal
 */
export function epochOf(clock: Clock): number {
  return clock !== systemClock && clock.now() >= UNIX_TIME_FROM ? 0 : performance.timeOrigin;
}

/**
 * The wall clock of `clock` in whole Unix milliseconds, for times that leave the process (a status
 * report): `Date.now` for the system clock (whose own readings count from the process's start), else
 * the injected clock's reading as Unix time ({@link epochOf}).
 * @internal
 */
export function unixMsOf(clock: Clock): () => number {
  if (clock === systemClock) return Date.now;
  const epoch = epochOf(clock);
  return () => Math.round(epoch + clock.now());
}

/**
 * `Math.random`.
 * @category Context and time
 */
export const systemRandom: Random = Object.freeze({ next: Math.random });

/**
 * A seeded generator (mulberry32): the same seed gives the same sequence. Good enough for
 * load balancing and fault draws; not for cryptography.
 * @category Context and time
 */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return {
    next(): number {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

interface ManualEntry {
  at: number;
  seq: number;
  fn: () => void;
  cleared: boolean;
}

/**
 * A clock that moves only when told to ({@link ManualClock.advance}), firing due timers in
 * order. For tests.
 * @category Context and time
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: ManualEntry[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): Timer {
    // Fired in the async context it was set in, as Node's own timers are (a MeshContext deadline, the caller's trace).
    const e: ManualEntry = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn: AsyncResource.bind(fn), cleared: false };
    this.#timers.push(e);
    return {
      clear: () => {
        e.cleared = true;
      },
    };
  }

  /** Timers not yet fired or cleared. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cleared).length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, earliest first. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: ManualEntry | undefined;
      for (const t of this.#timers) {
        if (t.cleared || t.at > end) continue;
        if (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq)) next = t;
      }
      if (next === undefined) break;
      this.#now = Math.max(this.#now, next.at);
      next.cleared = true;
      next.fn();
    }
    this.#now = end;
    this.#timers = this.#timers.filter((t) => !t.cleared);
  }
}
