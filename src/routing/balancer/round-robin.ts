/**
 * ROUND_ROBIN, as Envoy does it: with equal weights and nobody warming, a plain rotation
 * whose start is drawn at random once (Envoy seeds `rr_index` with a random value); with
 * unequal weights or hosts in slow start, an EDF schedule ({@link EdfScheduler}) whose
 * weights are re-read at each host's turn, advanced by a random number of picks when built
 * (Envoy's `createWithPicks`).
 *
 * @module
 */
import type { Clock, Random } from '../../core/clock.ts';
import { type Algorithm, equalWeights } from './algorithm.ts';
import { EdfScheduler } from './edf.ts';
import type { HostState } from './host.ts';
import { type SlowStart, slowStartFactor } from './warmup.ts';

/** The round-robin algorithm over one list of hosts. */
export class RoundRobin implements Algorithm {
  readonly #random: Random;
  readonly #clock: Clock;
  readonly #slowStart: SlowStart | undefined;
  readonly #weightOf: (i: number) => number;
  #hosts: readonly HostState[] = [];
  #next: number;
  #edf: EdfScheduler | undefined;

  /**
   * @param random draws the starting point
   * @param clock for slow start
   * @param slowStart the warmup configuration, if any
   */
  constructor(random: Random, clock: Clock, slowStart: SlowStart | undefined) {
    this.#random = random;
    this.#clock = clock;
    this.#slowStart = slowStart;
    this.#next = Math.floor(random.next() * 0x7fffffff);
    this.#weightOf = (i: number): number => {
      const h = this.#hosts[i] as HostState;
      const ss = this.#slowStart;
      return ss === undefined ? h.weight : h.weight * slowStartFactor(ss, h.warmingSince, this.#clock.now());
    };
  }

  reset(hosts: readonly HostState[]): void {
    this.#hosts = hosts;
    this.#edf = undefined;
    if (hosts.length < 2) return;
    let warming = false;
    const ss = this.#slowStart;
    if (ss !== undefined) {
      const now = this.#clock.now();
      for (const h of hosts) if (now - h.warmingSince < ss.windowMs) warming = true;
    }
    if (equalWeights(hosts) && !warming) return;
    const edf = new EdfScheduler(hosts.length, this.#weightOf);
    for (let k = Math.floor(this.#random.next() * hosts.length); k > 0; k--) edf.pick();
    this.#edf = edf;
  }

  choose(): HostState | undefined {
    const hosts = this.#hosts;
    const n = hosts.length;
    if (n < 2) return hosts[0];
    if (this.#edf !== undefined) return hosts[this.#edf.pick()];
    const i = this.#next % n;
    this.#next = i + 1;
    return hosts[i];
  }

  describe(): string {
    return this.#edf === undefined ? 'rotation' : 'weighted EDF';
  }
}
