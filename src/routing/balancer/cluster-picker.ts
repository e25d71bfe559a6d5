/**
 * The {@link Picker} behind every algorithm: it keeps the cluster's priority tiers and
 * locality groups, rebuilds its tables lazily when {@link HostSet.healthVersion} moves, and
 * per pick chooses a tier by Envoy's priority load (1.4 overprovisioning), then a locality
 * by effective weight when locality-weighted balancing is on, then a host with the
 * algorithm. With a panic threshold (Istio's `outlierDetection.minHealthPercent`), a tier with
 * fewer healthy hosts than that percentage is in panic and balances over all its hosts, ejected
 * ones included, as Envoy does (`isHostSetInPanic`; every tier in panic: tiers loaded by host
 * count, `recalculateLoadInTotalPanic`). It retries selections to avoid hosts earlier attempts used (Envoy
 * `previous_hosts` with Istio's `host_selection_retry_max_attempts: 5`).
 *
 * @module
 */
import type { Random } from '../../core/clock.ts';
import type { Algorithm } from './algorithm.ts';
import { EdfScheduler } from './edf.ts';
import type { HostSet, HostState } from './host.ts';
import type { LocalityPlan } from './locality.ts';
import { choosePriority, effectiveLocalityWeight, priorityLoads, tierAvailability } from './priority-load.ts';

/** One host selection. Reuse one object per attempt; pickers never keep it. */
export interface PickRequest {
  /** uint32 hash of the consistent-hash key, or -1 when the request has no key (then pick uniformly at random among healthy hosts, as Envoy does). */
  hash: number;
  /** Hosts already tried by earlier attempts (Envoy previous_hosts): try up to 5 selections to avoid them, then accept one. May be undefined. */
  avoid: readonly HostState[] | undefined;
}

/** Chooses a host of one cluster for each request. */
export interface Picker {
  /** LEAST_REQUEST | ROUND_ROBIN | RANDOM | PASSTHROUGH | RING_HASH | MAGLEV */
  readonly kind: string;
  /**
   * Returns an ejected host only in panic mode (a panic threshold above 0, Istio's
   * `minHealthPercent`); with Istio's default 0, when every host is ejected the answer is
   * undefined → 503 UH.
   */
  pick(req: PickRequest): HostState | undefined;
  /** Compact, e.g. `LEAST_REQUEST (P2C) over 3 hosts, locality failover from us-east/a/1: P0 1, P1 2`. */
  toString(): string;
}

/** Extra selections made to avoid previously tried hosts (Istio's `HostSelectionRetryMaxAttempts`). */
export const HOST_SELECTION_RETRIES = 5;

const UINT32_RANGE = 4294967296;

interface GroupState {
  readonly locality: string;
  readonly hosts: readonly HostState[];
  readonly weight: number;
  /** Per-locality algorithm (locality-weighted, not hash-based). */
  readonly algorithm: Algorithm | undefined;
}

interface TierState {
  readonly groups: readonly GroupState[];
  /** Every host of the tier, healthy or not. */
  readonly all: readonly HostState[];
  readonly size: number;
  /** Whole-tier algorithm (flat, or hash-based). */
  readonly algorithm: Algorithm | undefined;
  /** Whole-tier algorithm over every host in panic, when the tier is balanced per locality (made when first needed). */
  panicAlgorithm: Algorithm | undefined;
  /** Fewer healthy hosts than the panic threshold: balanced over all of them (Envoy's panic mode). */
  panic: boolean;
  healthy: number;
  /** Groups with a positive effective weight, indexed by the scheduler. */
  live: GroupState[];
  scheduler: EdfScheduler | undefined;
}

/** What {@link ClusterPicker} needs. */
export interface ClusterPickerOptions {
  /** The picker kind (`LEAST_REQUEST`, `RING_HASH`, …). */
  readonly kind: string;
  /** The cluster's hosts. */
  readonly set: HostSet;
  /** Tiers and locality groups from {@link planLocality}. */
  readonly plan: LocalityPlan;
  /** Whether the algorithm is hash-based (ring hash, Maglev). */
  readonly hashed: boolean;
  /** Makes one algorithm instance (one per tier, or per locality group). */
  readonly newAlgorithm: () => Algorithm;
  /** Draws for tiers, localities and key-less hashing. */
  readonly random: Random;
  /** Extra description, e.g. the warmup settings ('' for none). */
  readonly extra: string;
  /** Envoy's healthy panic threshold in percent (Istio's `outlierDetection.minHealthPercent`); 0 or absent = no panic mode. */
  readonly panicThreshold?: number;
}

/** A cluster's picker: tiers → locality → algorithm, with lazy rebuilds. */
export class ClusterPicker implements Picker {
  readonly kind: string;
  readonly #set: HostSet;
  readonly #plan: LocalityPlan;
  readonly #hashed: boolean;
  readonly #random: Random;
  readonly #extra: string;
  readonly #tiers: readonly TierState[];
  readonly #availability: Int32Array;
  readonly #loads: Int32Array;
  readonly #panicThreshold: number;
  readonly #newAlgorithm: () => Algorithm;
  /** Whether the last selection came from a tier in panic (an ejected host is then a valid answer). */
  #panicked = false;
  #version = Number.NaN;

  /** @param o the picker's parts */
  constructor(o: ClusterPickerOptions) {
    this.kind = o.kind;
    this.#set = o.set;
    this.#plan = o.plan;
    this.#hashed = o.hashed;
    this.#random = o.random;
    this.#extra = o.extra;
    this.#panicThreshold = Math.min(100, Math.max(0, o.panicThreshold ?? 0));
    this.#newAlgorithm = o.newAlgorithm;
    const perGroup = o.plan.localityWeighted && !o.hashed;
    this.#tiers = o.plan.tiers.map((t) => ({
      groups: t.groups.map((g) => ({ ...g, algorithm: perGroup ? o.newAlgorithm() : undefined })),
      all: t.groups.flatMap((g) => g.hosts),
      size: t.groups.reduce((n, g) => n + g.hosts.length, 0),
      algorithm: perGroup ? undefined : o.newAlgorithm(),
      panicAlgorithm: undefined,
      panic: false,
      healthy: 0,
      live: [],
      scheduler: undefined,
    }));
    this.#availability = new Int32Array(this.#tiers.length);
    this.#loads = new Int32Array(this.#tiers.length);
    this.#rebuild();
  }

  pick(req: PickRequest): HostState | undefined {
    if (this.#set.healthVersion !== this.#version) this.#rebuild();
    const hash = this.#hashed ? req.hash : -1;
    let host = this.#once(hash, 0);
    const avoid = req.avoid;
    if (host === undefined || avoid === undefined || avoid.length === 0) return host;
    // A hashing algorithm is asked again with the attempt number (Envoy: the ring's next point,
    // Maglev's hash mutated), as Envoy's ThreadAwareLoadBalancerBase does.
    for (let i = 1; i <= HOST_SELECTION_RETRIES && avoid.includes(host); i++) {
      const next = this.#once(hash, i);
      if (next === undefined) break;
      host = next;
    }
    return host;
  }

  /** Current load per tier in percent (Envoy's healthy priority load). */
  get priorityLoads(): readonly number[] {
    if (this.#set.healthVersion !== this.#version) this.#rebuild();
    return Array.from(this.#loads);
  }

  toString(): string {
    const modes = new Set<string>();
    for (const t of this.#tiers) {
      if (t.algorithm !== undefined) modes.add(t.algorithm.describe());
      for (const g of t.groups) if (g.algorithm !== undefined) modes.add(g.algorithm.describe());
    }
    const n = this.#set.hosts.length;
    const ejected = n - this.#set.healthyCount;
    const parts = [`${this.kind} (${[...modes].join(' / ')}) over ${n} host${n === 1 ? '' : 's'}${ejected > 0 ? ` (${ejected} ejected)` : ''}`];
    if (this.#extra !== '') parts.push(this.#extra);
    if (this.#panicThreshold > 0) {
      const panicking = this.#tiers.flatMap((t, i) => (t.panic ? [this.#tiers.length === 1 ? 'all hosts' : `P${i}`] : []));
      parts.push(`panic below ${this.#panicThreshold}% healthy${panicking.length > 0 ? ` (in panic: ${panicking.join(', ')}, ejected hosts used)` : ''}`);
    }
    if (this.#plan.description !== '') parts.push(this.#plan.description);
    // Where calls go now, once they spill over from the first tier (Envoy's priority load).
    if (this.#tiers.length > 1) {
      const loads = this.priorityLoads;
      if (loads[0] !== 100) parts.push(loads.every((l) => l === 0) ? 'priority load: none (no healthy endpoint)' : `priority load ${loads.map((l, i) => `P${i} ${l}%`).join(' ')}`);
    }
    return parts.join(', ');
  }

  /** One selection; a host found ejected means the data plane did not bump the version: rebuild and choose again. */
  #once(hash: number, attempt: number): HostState | undefined {
    let h = this.#choose(hash, attempt);
    if (h?.ejected === true && !this.#panicked) {
      this.#rebuild();
      h = this.#choose(hash, attempt);
    }
    return h;
  }

  #choose(hash: number, attempt: number): HostState | undefined {
    const tiers = this.#tiers;
    // Envoy draws one random value for key-less requests and uses it like a hash.
    const h = this.#hashed && hash < 0 ? Math.floor(this.#random.next() * UINT32_RANGE) : hash;
    let tier = tiers[0] as TierState;
    if (tiers.length > 1) {
      const t = choosePriority(this.#loads, h >= 0 ? h : Math.floor(this.#random.next() * UINT32_RANGE));
      if (t < 0) return undefined;
      tier = tiers[t] as TierState;
    }
    this.#panicked = tier.panic;
    if (tier.panic && tier.panicAlgorithm !== undefined) return tier.panicAlgorithm.choose(h, attempt);
    if (tier.algorithm !== undefined) return tier.algorithm.choose(h, attempt);
    const s = tier.scheduler;
    if (s === undefined) return undefined;
    return (tier.live[s.pick()] as GroupState).algorithm?.choose(h, attempt);
  }

  #rebuild(): void {
    this.#version = this.#set.healthVersion;
    const weighted = this.#plan.localityWeighted;
    const threshold = this.#panicThreshold;
    const healthyPerTier: number[] = [];
    for (const tier of this.#tiers) {
      let n = 0;
      for (const h of tier.all) if (!h.ejected) n++;
      healthyPerTier.push(n);
    }
    // Envoy: every tier is in panic when nothing is available anywhere (normalized total availability 0).
    const totalPanic = threshold > 0 && this.#tiers.every((t, i) => tierAvailability(healthyPerTier[i] as number, t.size) === 0);
    for (let t = 0; t < this.#tiers.length; t++) {
      const tier = this.#tiers[t] as TierState;
      const healthyCount = healthyPerTier[t] as number;
      tier.panic = threshold > 0 && (totalPanic || tier.size === 0 || (100 * healthyCount) / tier.size < threshold);
      const healthy: HostState[] = [];
      const perGroup: (readonly HostState[])[] = [];
      for (const g of tier.groups) {
        const hs = tier.panic ? g.hosts : g.hosts.filter((h) => !h.ejected);
        perGroup.push(hs);
        for (const h of hs) healthy.push(h);
        if (!tier.panic) g.algorithm?.reset(hs, undefined);
      }
      tier.healthy = healthyCount;
      this.#availability[t] = tierAvailability(healthyCount, tier.size);
      if (tier.algorithm !== undefined) {
        if (this.#hashed && weighted) tier.algorithm.reset(healthy, normalizedWeights(tier.groups, perGroup, healthy.length));
        else tier.algorithm.reset(healthy, undefined, tier.all);
        continue;
      }
      if (tier.panic) {
        // Envoy balances a tier in panic over all its hosts, without choosing a locality first.
        tier.panicAlgorithm ??= this.#newAlgorithm();
        tier.panicAlgorithm.reset(tier.all, undefined);
        continue;
      }
      const live: GroupState[] = [];
      const eff: number[] = [];
      tier.groups.forEach((g, i) => {
        const w = effectiveLocalityWeight(g.weight, (perGroup[i] as readonly HostState[]).length, g.hosts.length);
        if (w > 0) {
          live.push(g);
          eff.push(w);
        }
      });
      tier.live = live;
      tier.scheduler = live.length === 0 ? undefined : new EdfScheduler(live.length, (i) => eff[i] as number);
      for (let k = Math.floor(this.#random.next() * live.length); k > 0; k--) tier.scheduler?.pick();
    }
    if (totalPanic) panicLoads(this.#tiers, this.#loads);
    else priorityLoads(this.#availability, this.#loads);
  }
}

/** Envoy's `recalculateLoadInTotalPanic`: each tier's load in proportion to its number of hosts, the rest to the first non-empty tier. */
function panicLoads(tiers: readonly TierState[], loads: Int32Array): void {
  let total = 0;
  for (const t of tiers) total += t.size;
  loads.fill(0);
  if (total === 0) {
    loads[0] = 100;
    return;
  }
  let left = 100;
  let first = -1;
  tiers.forEach((t, i) => {
    if (first < 0 && t.size > 0) first = i;
    const load = Math.floor((100 * t.size) / total);
    loads[i] = load;
    left -= load;
  });
  loads[first] = (loads[first] as number) + left;
}

/**
 * Envoy's `normalizeLocalityWeights` for hash-based balancing: each healthy host gets
 * `hostWeight / (healthy weight of its locality) × localityWeight / (sum of locality weights)`.
 */
function normalizedWeights(groups: readonly GroupState[], perGroup: readonly (readonly HostState[])[], count: number): Float64Array {
  const out = new Float64Array(count);
  let localitySum = 0;
  for (const g of groups) localitySum += g.weight;
  if (localitySum <= 0) return out;
  let k = 0;
  groups.forEach((g, i) => {
    const hs = perGroup[i] as readonly HostState[];
    let hostSum = 0;
    for (const h of hs) hostSum += h.weight;
    for (const h of hs) out[k++] = hostSum > 0 ? ((h.weight / hostSum) * g.weight) / localitySum : 0;
  });
  return out;
}
