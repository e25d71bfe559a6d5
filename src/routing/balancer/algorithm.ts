/**
 * The contract between the cluster picker and one load-balancing algorithm. An algorithm
 * sees only a list of healthy hosts (one priority tier, or one locality of it); the cluster
 * picker owns health, priorities, localities and retries.
 *
 * @module
 */
import type { HostState } from './host.ts';

/** One load-balancing algorithm over a list of healthy hosts. */
export interface Algorithm {
  /**
   * Replaces the hosts (all healthy). Called when the picker is built and whenever host
   * health changes; may allocate and precompute (tables, rings, schedulers).
   * @param hosts the healthy hosts; the algorithm may keep the array, the caller never mutates it
   * @param weights per-host weights for hash-based algorithms (Envoy's locality-normalised
   *   weights); undefined = each host's own {@link HostState.weight}
   * @param all every host of the tier, ejected ones included, when `weights` is undefined: a
   *   hash-based algorithm sizes its layout from them so that an ejection removes only the
   *   ejected host's share instead of rescaling everyone's
   */
  reset(hosts: readonly HostState[], weights: Float64Array | undefined, all?: readonly HostState[]): void;
  /**
   * Chooses a host, or undefined when there is none. Runs per request: must not allocate.
   * @param hash uint32 request hash (hash-based algorithms; others ignore it)
   * @param attempt 0 for the first selection, 1.. for reselections made to avoid hosts that
   *   earlier attempts used (Envoy passes the same to its hashing balancers)
   */
  choose(hash: number, attempt: number): HostState | undefined;
  /** A few words about the current mode, e.g. `P2C` or `ring of 1024`. */
  describe(): string;
}

/** Whether every host has the same weight (Envoy's `hostWeightsAreEqual`). */
export function equalWeights(hosts: readonly HostState[]): boolean {
  const first = hosts[0];
  if (first === undefined) return true;
  for (let i = 1; i < hosts.length; i++) if ((hosts[i] as HostState).weight !== first.weight) return false;
  return true;
}
