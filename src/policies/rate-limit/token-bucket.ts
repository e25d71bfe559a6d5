/**
 * Envoy's local rate limit token bucket (`AtomicTokenBucketImpl`, the only bucket since Envoy
 * replaced the timer-refilled one — envoyproxy/envoy#35207, 1.31): no timer, tokens refill
 * continuously at `tokens_per_fill / fill_interval` and are counted when a request looks, capped
 * at `max_tokens`; a new bucket starts full. So with 10 tokens per 60s, a drained bucket has its
 * next token 6s later, not 60s later; and a request is let through when a whole token is there.
 *
 * The state is kept in "token-milliseconds" (tokens × fill interval), so the arithmetic on a
 * clock of whole milliseconds is exact: a bucket of 1 token per 600s that is drained at t
 * refuses at t + 599 999 ms and allows again at t + 600 000 ms, never a float's 0.99999… token.
 *
 * @module
 */
import type { Clock } from '../../core/clock.ts';
import type { TokenBucketSettings } from '../../config/types/local-rate-limit.ts';

/** What a response can tell of a bucket (the `x-ratelimit-*` headers). */
export interface BucketState {
  readonly maxTokens: number;
  /** Whole tokens left. */
  readonly remainingTokens: number;
  /** Seconds until the next whole token, as Envoy rounds it (0 when one is there). */
  readonly resetSeconds: number;
}

/**
 * One token bucket on the injected clock.
 * @category Policies
 */
export class TokenBucket {
  readonly settings: TokenBucketSettings;
  readonly #clock: Clock;
  /** Capacity in token-ms. */
  readonly #capacity: number;
  /** Level in token-ms at `#at`. */
  #level: number;
  #at: number;

  constructor(settings: TokenBucketSettings, clock: Clock) {
    this.settings = settings;
    this.#clock = clock;
    this.#capacity = settings.maxTokens * settings.fillIntervalMs;
    this.#level = this.#capacity;
    this.#at = clock.now();
  }

  /** Tokens per second, for ordering descriptor buckets (Envoy consumes the slowest first). */
  get fillRate(): number {
    return (this.settings.tokensPerFill * 1000) / this.settings.fillIntervalMs;
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#level = Math.min(this.#capacity, this.#level + (now - this.#at) * this.settings.tokensPerFill);
      this.#at = now;
    }
  }

  /** Takes `tokens` (a descriptor's `hits_addend`; default one) if they are all there. */
  consume(tokens = 1): boolean {
    this.#refill(this.#clock.now());
    const cost = this.settings.fillIntervalMs * tokens;
    if (this.#level < cost) return false;
    this.#level -= cost;
    return true;
  }

  /** Whole tokens left now. */
  get remaining(): number {
    this.#refill(this.#clock.now());
    return Math.floor(this.#level / this.settings.fillIntervalMs);
  }

  /** The bucket as the `x-ratelimit-*` headers report it. */
  state(): BucketState {
    const remaining = this.remaining;
    // Envoy: nextTokenAvailable() is 0 with a token there, else ceil(1 / fill rate) in ms; reset
    // is that in whole seconds (its integer division truncates).
    const nextMs = remaining >= 1 ? 0 : Math.ceil(this.settings.fillIntervalMs / this.settings.tokensPerFill);
    return { maxTokens: this.settings.maxTokens, remainingTokens: remaining, resetSeconds: Math.floor(nextMs / 1000) };
  }

  /** Same settings (a bucket can be kept across config reloads when they are). */
  sameAs(settings: TokenBucketSettings): boolean {
    const s = this.settings;
    return s.maxTokens === settings.maxTokens && s.tokensPerFill === settings.tokensPerFill && s.fillIntervalMs === settings.fillIntervalMs;
  }

  toString(): string {
    const s = this.settings;
    return `bucket ${s.maxTokens} max, ${s.tokensPerFill} per ${s.fillIntervalMs}ms`;
  }
}
