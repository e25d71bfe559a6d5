/**
 * Connection-pool circuit breaking for one cluster, as Envoy applies Istio's
 * `connectionPool` settings: at most `maxActive` requests in flight (http2MaxRequests, and
 * for HTTP/1.1 also maxConnections, since each request holds a connection). Only a request
 * waiting for a *connection* queues — HTTP/1.1 with every one of `maxConnections` busy — up to
 * `maxPending` (http1MaxPendingRequests); a request beyond `http2MaxRequests` overflows at once,
 * as Envoy's pool does (`max_requests` is checked when a stream is attached to a connection:
 * `upstream_rq_pending_overflow`, never queued). Overflow: 503, UO, `x-envoy-overloaded: true`.
 * Counters only: nothing is queued or allocated while the limits are not reached, which with
 * Istio's defaults (2^32−1) is always.
 *
 * @module
 */
import { type PoolLimits, UNLIMITED } from '../routing/cluster-settings.ts';

// The limits are compiled with the cluster (routing/cluster-settings.ts); this file enforces them.
export { type PoolLimits, poolLimits, UNLIMITED } from '../routing/cluster-settings.ts';

/** A request waiting for a slot. */
export interface SlotWaiter {
  /** Called when a slot is granted. */
  grant(): void;
}

/** Active and pending requests of one cluster. */
export class RequestLimiter {
  limits: PoolLimits;
  /** Requests in flight. */
  active = 0;
  /** Requests overflowed so far (for explain and metrics). */
  overflows = 0;
  readonly #queue: SlotWaiter[] = [];
  #head = 0;

  constructor(limits: PoolLimits) {
    this.limits = limits;
  }

  /** Requests waiting for a slot. */
  get pending(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Asks for a slot: `'go'` (taken), `'queued'` (the waiter's `grant` is called later), or
   * `'overflow'` (rejected).
   */
  acquire(w: SlotWaiter): 'go' | 'queued' | 'overflow' {
    const l = this.limits;
    if (this.active < l.maxActive) {
      this.active++;
      return 'go';
    }
    // At max_requests: no waiting for it (only for a connection, below).
    if (this.active < l.maxRequests && this.pending < l.maxPending) {
      this.#queue.push(w);
      return 'queued';
    }
    this.overflows++;
    return 'overflow';
  }

  /** Gives a slot back; the oldest waiter, if any, gets it. */
  release(): void {
    this.active--;
    this.#grantWaiting();
  }

  /**
   * New limits (a config reload): requests in flight keep their slots (fewer slots than requests
   * in flight take effect as they end); waiters that more room lets in get a slot now.
   */
  setLimits(limits: PoolLimits): void {
    this.limits = limits;
    this.#grantWaiting();
  }

  #grantWaiting(): void {
    while (this.pending > 0 && this.active < this.limits.maxActive) {
      const w = this.#queue[this.#head] as SlotWaiter;
      this.#queue[this.#head++] = undefined as unknown as SlotWaiter;
      if (this.#head > 64 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      this.active++;
      w.grant();
    }
  }

  /** Removes a waiter that gave up (abort, deadline). */
  cancel(w: SlotWaiter): boolean {
    const i = this.#queue.indexOf(w, this.#head);
    if (i === -1) return false;
    this.#queue.splice(i, 1);
    return true;
  }

  toString(): string {
    const l = this.limits;
    const f = (n: number) => (n === UNLIMITED ? '∞' : String(n));
    return `active ${this.active}/${f(l.maxActive)}, pending ${this.pending}/${f(l.maxPending)}, overflows ${this.overflows}`;
  }
}
