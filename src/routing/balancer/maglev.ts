/**
 * MAGLEV (Eisenbud et al., NSDI 2016, listing 1; Envoy's `MaglevTable`): a lookup table of
 * prime size M filled by letting hosts, sorted by key, take turns claiming their next free
 * slot in their own permutation `(offset + skip·j) mod M`, with
 * `offset = hash32(key) mod M` and `skip = hash32b(key) mod (M−1) + 1`. Weighted hosts take
 * turns in proportion to their weight (Envoy's `target_weight` scheme). A request goes to
 * `table[hash mod M]`.
 *
 * @module
 */
import type { Algorithm } from './algorithm.ts';
import { hash32, hash32b } from './hash.ts';
import type { HostState } from './host.ts';

/** Envoy's (and Istio's) default Maglev table size. */
export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;

/** Envoy's primality test (1, 2 and 3 count as prime). */
export function isPrime(x: number): boolean {
  if (!Number.isInteger(x) || x < 1) return false;
  if (x < 4) return true;
  if (x % 2 === 0) return false;
  const limit = Math.floor(Math.sqrt(x));
  for (let f = 3; f <= limit; f += 2) if (x % f === 0) return false;
  return true;
}

/** The smallest prime ≥ x (at least 2). */
export function nextPrime(x: number): number {
  let p = Math.max(2, Math.ceil(x));
  while (!isPrime(p)) p++;
  return p;
}

/** A Maglev lookup table over one list of hosts. */
export class Maglev implements Algorithm {
  readonly #size: number;
  #table: Int32Array;
  #owners: HostState[] = [];

  /**
   * @param tableSize the table size; must be prime (validation checks it). A non-prime size
   *   is raised to the next prime rather than risk a fill that never ends.
   */
  constructor(tableSize: number) {
    const n = tableSize > 1 ? Math.floor(tableSize) : DEFAULT_MAGLEV_TABLE_SIZE;
    this.#size = isPrime(n) && n > 2 ? n : nextPrime(Math.max(3, n));
    this.#table = new Int32Array(0);
  }

  /** The table size M. */
  get tableSize(): number {
    return this.#size;
  }

  reset(hosts: readonly HostState[], weights: Float64Array | undefined): void {
    const entries: { host: HostState; key: string; weight: number }[] = [];
    for (let i = 0; i < hosts.length; i++) {
      const host = hosts[i] as HostState;
      const weight = weights === undefined ? host.weight : (weights[i] as number);
      if (weight > 0) entries.push({ host, key: host.key, weight });
    }
    // Stable order by key, so the table depends on the set of hosts, not their order.
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    this.#owners = entries.map((e) => e.host);
    const m = this.#size;
    if (this.#table.length !== m) this.#table = new Int32Array(m);
    const table = this.#table;
    table.fill(-1);
    const n = entries.length;
    if (n === 0) return;
    let sum = 0;
    for (const e of entries) sum += e.weight;
    let maxNorm = 0;
    const weight = new Float64Array(n);
    const offset = new Float64Array(n);
    const skip = new Float64Array(n);
    const next = new Float64Array(n);
    const target = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const e = entries[i] as (typeof entries)[number];
      weight[i] = e.weight / sum;
      maxNorm = Math.max(maxNorm, weight[i] as number);
      offset[i] = hash32(e.key) % m;
      skip[i] = (hash32b(e.key) % (m - 1)) + 1;
    }
    let filled = 0;
    for (let iteration = 1; filled < m; iteration++) {
      for (let i = 0; i < n && filled < m; i++) {
        // A host of the largest weight claims a slot every iteration; one of a third of that
        // weight, every third iteration.
        if (iteration * (weight[i] as number) < (target[i] as number)) continue;
        target[i] = (target[i] as number) + maxNorm;
        let c = ((offset[i] as number) + (skip[i] as number) * (next[i] as number)) % m;
        while ((table[c] as number) !== -1) {
          next[i] = (next[i] as number) + 1;
          c = ((offset[i] as number) + (skip[i] as number) * (next[i] as number)) % m;
        }
        table[c] = i;
        next[i] = (next[i] as number) + 1;
        filled++;
      }
    }
  }

  /**
   * The table entry for `hash`; on a reselection (`attempt` > 0, made to avoid hosts tried
   * before) the hash is first XORed with `2^32 − attempt`, as Envoy's `MaglevTable::chooseHost`
   * mutates its 64-bit hash with `~0 − attempt + 1`.
   */
  choose(hash: number, attempt = 0): HostState | undefined {
    if (this.#owners.length === 0) return undefined;
    const h = attempt > 0 ? (hash ^ (0x1_0000_0000 - attempt)) >>> 0 : hash >>> 0;
    return this.#owners[this.#table[h % this.#size] as number];
  }

  describe(): string {
    return `table of ${this.#size}`;
  }
}
