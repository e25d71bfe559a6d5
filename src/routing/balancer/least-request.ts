/**
 * LEAST_REQUEST (also UNSPECIFIED and the deprecated LEAST_CONN): Istio's default.
 *
 * - Equal weights and nobody warming: power of two choices. Two hosts are drawn at random,
 *   independently (both draws may be the same host, which is then chosen however loaded it is),
 *   and the one with fewer in-flight requests wins; a tie goes to the first draw (Envoy's
 *   `unweightedHostPickNChoices` with `choice_count` 2, load_balancer_impl_test.cc `PNC`). With
 *   loads 0,1,2,3 on four hosts the shares are 7/16, 5/16, 3/16, 1/16.
 * - Unequal weights, or a host in slow start: a weighted random draw with weight
 *   `weight × slowStart / (active + 1)`, Envoy's `hostWeight` with `active_request_bias` 1
 *   (Envoy feeds those weights to an EDF schedule; a random draw has the same expectation).
 *
 * @module
 */
import type { Clock, Random } from '../../core/clock.ts';
import { type Algorithm, equalWeights } from './algorithm.ts';
import type { HostState } from './host.ts';
import { type SlowStart, slowStartFactor } from './warmup.ts';

/** The least-request algorithm over one list of hosts. */
export class LeastRequest implements Algorithm {
  readonly #random: Random;
  readonly #clock: Clock;
  readonly #slowStart: SlowStart | undefined;
  #hosts: readonly HostState[] = [];
  #equal = true;
  /** Clock ms until which some host may still be warming. */
  #warmUntil = Number.NEGATIVE_INFINITY;
  #scratch = new Float64Array(0);

  /**
   * @param random draws
   * @param clock for slow start
   * @param slowStart the warmup configuration, if any
   */
  constructor(random: Random, clock: Clock, slowStart: SlowStart | undefined) {
    this.#random = random;
    this.#clock = clock;
    this.#slowStart = slowStart;
  }

  reset(hosts: readonly HostState[]): void {
    this.#hosts = hosts;
    this.#equal = equalWeights(hosts);
    this.#scratch = new Float64Array(hosts.length);
    let until = Number.NEGATIVE_INFINITY;
    if (this.#slowStart !== undefined) {
      for (const h of hosts) until = Math.max(until, h.warmingSince + this.#slowStart.windowMs);
    }
    this.#warmUntil = until;
  }

  /** True when the last choice would use the weighted draw rather than P2C. */
  get weighted(): boolean {
    return !this.#equal || (this.#slowStart !== undefined && this.#clock.now() < this.#warmUntil);
  }

  choose(_hash: number, _attempt: number): HostState | undefined {
    const hosts = this.#hosts;
    const n = hosts.length;
    if (n < 2) return hosts[0];
    const ss = this.#slowStart;
    const now = ss === undefined ? 0 : this.#clock.now();
    if (this.#equal && (ss === undefined || now >= this.#warmUntil)) {
      const r = this.#random;
      const i = Math.floor(r.next() * n);
      const j = Math.floor(r.next() * n);
      const a = hosts[i] as HostState;
      const b = hosts[j] as HostState;
      return b.active < a.active ? b : a;
    }
    const w = this.#scratch;
    let total = 0;
    for (let k = 0; k < n; k++) {
      const h = hosts[k] as HostState;
      let x = h.weight / (Math.max(h.active, 0) + 1);
      if (ss !== undefined && now < this.#warmUntil) x *= slowStartFactor(ss, h.warmingSince, now);
      w[k] = x;
      total += x;
    }
    let r = this.#random.next() * total;
    for (let k = 0; k < n; k++) {
      r -= w[k] as number;
      if (r < 0) return hosts[k];
    }
    return hosts[n - 1];
  }

  describe(): string {
    return this.weighted ? 'weighted' : 'P2C';
  }
}
