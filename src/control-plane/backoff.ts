/**
 * Reconnect timing of the control-plane client: exponential backoff with full jitter, and a
 * rotation over several control-plane URLs that skips a dead replica at once and backs off only
 * after every URL failed in a row.
 *
 * @module
 */
import type { Random } from '../core/clock.ts';
import { jitterMs } from '../core/jitter.ts';

/** Backoff bounds. */
export interface BackoffOptions {
  /** Upper bound of the first delay. @defaultValue 250 */
  readonly baseMs?: number;
  /** Upper bound of every delay. @defaultValue 15000 */
  readonly maxMs?: number;
}

/**
 * Full-jitter exponential backoff ("Exponential Backoff And Jitter", AWS): uniform in
 * `[0, min(maxMs, baseMs · 2^attempt))`, whole milliseconds. `attempt` counts from 0.
 */
export function fullJitterMs(attempt: number, random: Random, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? 250;
  const max = options.maxMs ?? 15_000;
  if (!(base > 0)) return 0;
  const n = Math.max(0, Math.min(Math.floor(attempt), 52));
  return jitterMs(random, Math.min(max, base * 2 ** n));
}

/**
 * Which URL to try next and how long to wait first. The first is a random one; a failure moves to the next URL; as long
 * as some URL in the round has not been tried since the last success the next one is tried at
 * once, and a full round of failures waits a jittered, growing delay. A success resets it.
 */
export class UrlRotation {
  readonly urls: readonly string[];
  readonly #random: Random;
  readonly #options: BackoffOptions;
  #index = 0;
  #failures = 0;

  /**
   * Starts at a random one of `urls`, so that a fleet of meshes given the same list spreads over
   * the replicas (as istiod's Service spreads sidecars' connections) instead of all using the
   * first one — and all moving to the next at once when it goes.
   */
  constructor(urls: readonly string[], random: Random, options: BackoffOptions = {}) {
    if (urls.length === 0) throw new RangeError('UrlRotation: no URLs');
    this.urls = urls;
    this.#random = random;
    this.#options = options;
    if (urls.length > 1) this.#index = Math.min(urls.length - 1, Math.floor(random.next() * urls.length));
  }

  /** The URL to use now. */
  get current(): string {
    return this.urls[this.#index] as string;
  }

  /** Consecutive failures since the last success. */
  get failures(): number {
    return this.#failures;
  }

  /** True when every URL failed since the last success (a whole round). */
  get roundFailed(): boolean {
    return this.#failures >= this.urls.length;
  }

  /** A connection worked (it got as far as a `hello`). */
  succeeded(): void {
    this.#failures = 0;
  }

  /**
   * The stream on the current URL ended or failed: moves to the next URL and returns how long
   * to wait before trying it.
   */
  next(): number {
    this.#failures++;
    this.#index = (this.#index + 1) % this.urls.length;
    const n = this.urls.length;
    // Round k (1, 2, …) of failures waits up to base·2^(k-1); the first failure after a success
    // waits a little too, so a fleet whose control plane restarted does not reconnect at once.
    if (this.#failures % n === 0) return fullJitterMs(this.#failures / n - 1, this.#random, this.#options);
    return this.#failures === 1 ? fullJitterMs(0, this.#random, this.#options) : 0;
  }
}
