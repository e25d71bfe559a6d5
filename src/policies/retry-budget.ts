/**
 * The cluster-wide cap on concurrent retries: Envoy's retry circuit breaker, either the
 * `max_retries` threshold (Istio `connectionPool.http.maxRetries`) or, when the
 * DestinationRule has a `retryBudget`, the retry budget that replaces it (reference §1.2).
 *
 * One instance per destination cluster. A retry that the budget refuses is not made; the
 * caller returns the last attempt's result with response flag **UO** (reference §2.4).
 *
 * Ported from Envoy `ResourceManagerImpl::RetryBudgetImpl`
 * (source/common/upstream/resource_manager_impl.h):
 * - without a budget, a retry may start while `activeRetries < maxRetries`;
 * - with a budget, while `activeRetries < max(floor(percent/100 · activeRequests), minRetryConcurrency)`,
 *   and `maxRetries` is ignored.
 *
 * @module
 */
import type { RetryBudget as RetryBudgetSettings } from '../config/types/destination-rule.ts';
import { DEFAULT_MAX_RETRIES, type ResolvedRetryBudget, resolveRetryBudget } from '../routing/cluster-settings.ts';

export { DEFAULT_BUDGET_PERCENT, DEFAULT_MAX_RETRIES, DEFAULT_MIN_RETRY_CONCURRENCY } from '../routing/cluster-settings.ts';

/**
 * Concurrent-retry limiter for one destination cluster.
 *
 * "Active" retries are counted from {@link RetryBudget.tryStartRetry} (taken when a retry is
 * scheduled, so the backoff wait counts) until {@link RetryBudget.endRetry} (when the retried
 * attempt finishes), as Envoy holds the retry resource from `shouldRetry` to the next decision.
 *
 * Active requests: the caller either passes its own count (e.g. the connection pool's active
 * plus pending requests) to {@link RetryBudget.tryStartRetry}, or lets this object count them
 * with {@link RetryBudget.startRequest} / {@link RetryBudget.endRequest}. Retried attempts are
 * requests too, as in Envoy.
 */
export class RetryBudget {
  #percent: number | undefined;
  #minConcurrency: number;
  #maxRetries: number;
  #activeRequests = 0;
  #activeRetries = 0;

  /**
   * @param settings - the DestinationRule's `retryBudget`; undefined means no budget.
   *   `percent` defaults to 20 (an explicit 0 is kept: only `minRetryConcurrency` applies);
   *   `minRetryConcurrency` defaults to 3 (0 or unset means the default, as Istio does).
   * @param maxRetries - `connectionPool.http.maxRetries`; Istio maps 0/unset to 2^32 − 1.
   */
  constructor(settings: RetryBudgetSettings | undefined, maxRetries: number = DEFAULT_MAX_RETRIES) {
    const r = resolveRetryBudget(settings, maxRetries);
    this.#percent = r.percent;
    this.#minConcurrency = r.minRetryConcurrency;
    this.#maxRetries = r.maxRetries;
  }

  /** A limiter for settings already resolved (a snapshot cluster's `settings.retryBudget`). */
  static of(settings: ResolvedRetryBudget): RetryBudget {
    const b = new RetryBudget(undefined);
    b.#percent = settings.percent;
    b.#minConcurrency = settings.minRetryConcurrency;
    b.#maxRetries = settings.maxRetries;
    return b;
  }

  /** True when a retry budget (rather than the `maxRetries` threshold) is in force. */
  get budgeted(): boolean {
    return this.#percent !== undefined;
  }

  /** Requests counted by {@link RetryBudget.startRequest} and not yet ended. */
  get activeRequests(): number {
    return this.#activeRequests;
  }

  /** Retries admitted by {@link RetryBudget.tryStartRetry} and not yet ended. */
  get activeRetries(): number {
    return this.#activeRetries;
  }

  /** Counts one more active request towards the budget's percentage. */
  startRequest(): void {
    this.#activeRequests++;
  }

  /** Ends a request counted by {@link RetryBudget.startRequest}. */
  endRequest(): void {
    if (this.#activeRequests > 0) this.#activeRequests--;
  }

  /** How many retries may be active at once given `activeRequests` (default: this object's own count). */
  limit(activeRequests: number = this.#activeRequests): number {
    if (this.#percent === undefined) return this.#maxRetries;
    return Math.max(Math.floor((this.#percent / 100) * Math.max(0, activeRequests)), this.#minConcurrency);
  }

  /**
   * Admits a retry if the limit allows one more, counting it as active; false means the retry
   * must not be made (response flag UO).
   */
  tryStartRetry(activeRequests: number = this.#activeRequests): boolean {
    if (this.#activeRetries >= this.limit(activeRequests)) return false;
    this.#activeRetries++;
    return true;
  }

  /** Ends a retry admitted by {@link RetryBudget.tryStartRetry}. */
  endRetry(): void {
    if (this.#activeRetries > 0) this.#activeRetries--;
  }

  /**
   * What `mesh.explain` prints for the destination, given its active and pending requests (what
   * the retry layer passes to {@link RetryBudget.tryStartRetry}): `retry budget 20% of active
   * requests, min 3: 3 retries allowed now, 0 active` or `maxRetries unlimited (2^32-1), 0 active`.
   */
  describe(activeRequests: number): string {
    const active = `${this.#activeRetries} active`;
    if (this.#percent === undefined) return `maxRetries ${this.#maxRetries === DEFAULT_MAX_RETRIES ? 'unlimited (2^32-1)' : this.#maxRetries}, ${active}`;
    const limit = this.limit(activeRequests);
    return `retry budget ${this.#percent}% of active requests, min ${this.#minConcurrency}: ${limit} retr${limit === 1 ? 'y' : 'ies'} allowed now, ${active}`;
  }

  /** E.g. `retry budget 20% of active requests, min 3 (1 active retry, 4 active requests)` or `maxRetries 3 (0 active)`. */
  toString(): string {
    const active = `${this.#activeRetries} active retr${this.#activeRetries === 1 ? 'y' : 'ies'}`;
    if (this.#percent === undefined) {
      const max = this.#maxRetries === DEFAULT_MAX_RETRIES ? 'unlimited (2^32-1)' : String(this.#maxRetries);
      return `maxRetries ${max} (${active})`;
    }
    return `retry budget ${this.#percent}% of active requests, min ${this.#minConcurrency} (${active}, ${this.#activeRequests} active requests)`;
  }
}
