/**
 * A warning that may repeat at every reconnect attempt (a token the control plane keeps
 * refusing): the first is logged, repeats are counted and summarized at most once per interval
 * while they persist, so the trouble stays visible without a line per URL per attempt.
 *
 * @module
 */
import type { Clock } from '../core/clock.ts';

/** Logs `message` the first time, then at most every `intervalMs` with how often it repeated. */
export class RepeatedWarning {
  readonly #clock: Clock;
  readonly #log: (message: string) => void;
  readonly #intervalMs: number;
  /** Per message: when it was last logged and how many repeats since. */
  readonly #seen = new Map<string, { at: number; repeats: number }>();

  constructor(clock: Clock, log: (message: string) => void, intervalMs = 60_000) {
    this.#clock = clock;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  warn(message: string): void {
    const now = this.#clock.now();
    const s = this.#seen.get(message);
    if (s === undefined) {
      this.#seen.set(message, { at: now, repeats: 0 });
      this.#log(`${message} (retrying; repeats of this are summarized every ${Math.round(this.#intervalMs / 1000)} s)`);
      return;
    }
    s.repeats++;
    if (now - s.at < this.#intervalMs) return;
    this.#log(`${message} (still refused: ${s.repeats} more time(s) in the last ${Math.round((now - s.at) / 1000)} s; retrying)`);
    s.at = now;
    s.repeats = 0;
  }

  /** The trouble ended (e.g. connected): the next occurrence is logged at once. */
  reset(): void {
    this.#seen.clear();
  }
}
