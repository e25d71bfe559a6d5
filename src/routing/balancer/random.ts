/**
 * RANDOM (and PASSTHROUGH, whose host the data plane replaces with the request's original
 * address): a uniform draw among the healthy hosts. Envoy's random balancer ignores endpoint
 * weights (`hosts_to_use[random % size]`); locality weights still apply above it.
 *
 * @module
 */
import type { Random } from '../../core/clock.ts';
import type { Algorithm } from './algorithm.ts';
import type { HostState } from './host.ts';

/** The random algorithm over one list of hosts. */
export class RandomChoice implements Algorithm {
  readonly #random: Random;
  #hosts: readonly HostState[] = [];

  /** @param random draws */
  constructor(random: Random) {
    this.#random = random;
  }

  reset(hosts: readonly HostState[]): void {
    this.#hosts = hosts;
  }

  choose(): HostState | undefined {
    const n = this.#hosts.length;
    if (n < 2) return this.#hosts[0];
    return this.#hosts[Math.floor(this.#random.next() * n)];
  }

  describe(): string {
    return 'uniform';
  }
}
