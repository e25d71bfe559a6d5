/**
 * What the data plane keeps per upstream cluster beyond one config snapshot: endpoint state
 * (in-flight counts, ejections), the load-balancer picker, outlier detection, pool limits,
 * the retry budget and the adapter's connection pools. A new snapshot updates the state in
 * place when the cluster name survives, so counters, ejections and connections survive config
 * changes.
 *
 * @module
 */
import type { Clock, Random } from '../core/clock.ts';
import type { ConsistentHashLB } from '../config/types/destination-rule.ts';
import { OutlierDetector, type OutlierEvent } from '../policies/outlier.ts';
import { RetryBudget } from '../policies/retry-budget.ts';
import { HostSet, HostState } from '../routing/balancer/host.ts';
import { createPicker, type Picker } from '../routing/balancer/picker.ts';
import type { Cluster } from '../routing/route-table.ts';
import { poolLimits, RequestLimiter } from '../policies/limits.ts';

/** What every cluster state shares: the mesh's clock, randomness and this workload. */
export interface ClusterContext {
  readonly clock: Clock;
  readonly random: Random;
  /** This workload's locality (`region/zone/subzone`) or ''. */
  readonly locality: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Outlier ejections and returns. */
  onOutlierEvent(cluster: string, e: OutlierEvent): void;
}

const H2_PROTOCOLS = new Set(['HTTP2', 'GRPC', 'GRPC-WEB']);

/** The adapter's per-cluster transport (connection pools); closed when the cluster goes away. */
export interface ClusterTransport {
  /** An endpoint left the cluster: close its connections once idle. */
  removeHost(host: HostState): void;
  /** Closes the pools; calls in flight may finish for `graceMs` (default: as long as they take). */
  close(graceMs?: number): Promise<void>;
}

/** Per-cluster data-plane state. */
export class ClusterState {
  cluster: Cluster;
  readonly name: string;
  readonly hostsByKey = new Map<string, HostState>();
  hostSet: HostSet;
  picker: Picker;
  detector: OutlierDetector | undefined;
  limiter: RequestLimiter;
  budget: RetryBudget;
  /** The consistent-hash key policy, when the cluster uses consistent hashing. */
  hash: ConsistentHashLB | undefined;
  /** Send to the request's original address instead of picking an endpoint (resolution NONE, PASSTHROUGH). */
  passthrough: boolean;
  /** The upstream speaks HTTP/2 (port protocol HTTP2/GRPC, or h2UpgradePolicy UPGRADE). */
  h2: boolean;
  /**
   * What each transport keeps for this cluster (its pools, and the settings they were built
   * with), by transport name: HTTP and gRPC calls to one cluster share its limiter, outlier
   * detector and budget, and each transport has its own connections.
   */
  readonly transports = new Map<string, { pools: ClusterTransport; key: string }>();
  readonly #ctx: ClusterContext;

  constructor(cluster: Cluster, ctx: ClusterContext) {
    this.#ctx = ctx;
    this.name = cluster.name;
    this.cluster = cluster;
    this.hostSet = new HostSet([]);
    this.picker = createPicker(this.hostSet, undefined, this.#pickerContext(false));
    this.limiter = new RequestLimiter(poolLimits(undefined, false));
    this.budget = new RetryBudget(undefined, this.limiter.limits.maxRetries);
    this.hash = undefined;
    this.passthrough = false;
    this.h2 = false;
    this.update(cluster, true);
  }

  #pickerContext(outlier: boolean) {
    return { random: this.#ctx.random, clock: this.#ctx.clock, locality: this.#ctx.locality, labels: this.#ctx.labels, outlierDetection: outlier };
  }

  /** Applies a (possibly changed) cluster from a new snapshot, keeping endpoint state. */
  update(cluster: Cluster, initial = false): void {
    this.cluster = cluster;
    const policy = cluster.policy;
    const now = this.#ctx.clock.now();
    const seen = new Set<string>();
    const hosts: HostState[] = [];
    for (const ep of cluster.endpoints) {
      if (seen.has(ep.key)) continue;
      seen.add(ep.key);
      let h = this.hostsByKey.get(ep.key);
      if (h === undefined) {
        // Endpoints present when the cluster first appears are not warming; later ones are.
        h = new HostState(ep, initial ? Number.NEGATIVE_INFINITY : now);
        this.hostsByKey.set(ep.key, h);
      } else if (h.endpoint !== ep) {
        // Same address:port: keep the state (in-flight count, ejection), take the new labels/weight.
        (h as { endpoint: typeof ep }).endpoint = ep;
      }
      hosts.push(h);
    }
    for (const [k, h] of [...this.hostsByKey]) {
      if (seen.has(k)) continue;
      this.hostsByKey.delete(k);
      for (const t of this.transports.values()) t.pools.removeHost(h);
    }
    const od = policy.outlierDetection;
    if (od !== undefined) {
      if (this.detector === undefined) this.detector = new OutlierDetector(od, this.#ctx.clock, (e) => this.#onOutlier(e));
      else this.detector.updateSettings(od);
      this.detector.setHosts(hosts);
    } else if (this.detector !== undefined) {
      this.detector.close();
      this.detector = undefined;
      for (const h of hosts) h.ejected = false;
    }
    const version = this.hostSet.healthVersion + 1;
    this.hostSet = new HostSet(hosts);
    this.hostSet.healthVersion = version;
    const lb = policy.loadBalancer;
    this.picker = createPicker(this.hostSet, lb, this.#pickerContext(od !== undefined));
    this.hash = lb?.consistentHash;
    this.passthrough = lb?.simple === 'PASSTHROUGH' || cluster.service.resolution === 'NONE' || cluster.service.resolution === 'DYNAMIC_DNS';
    this.h2 = H2_PROTOCOLS.has(cluster.protocol) || policy.connectionPool?.http?.h2UpgradePolicy === 'UPGRADE';
    this.limiter.limits = poolLimits(policy.connectionPool, this.h2);
    this.budget = new RetryBudget(policy.retryBudget, this.limiter.limits.maxRetries);
  }

  #onOutlier(e: OutlierEvent): void {
    this.hostSet.healthVersion++;
    this.#ctx.onOutlierEvent(this.name, e);
  }

  /** Stops timers and closes the adapter's pools (calls in flight may finish for `graceMs`). */
  async close(graceMs?: number): Promise<void> {
    this.detector?.close();
    this.detector = undefined;
    const ts = [...this.transports.values()];
    this.transports.clear();
    await Promise.all(ts.map((t) => t.pools.close(graceMs)));
  }

  toString(): string {
    return `${this.name}: ${this.picker}; ${this.limiter}${this.detector ? `; ${this.detector}` : ''}`;
  }
}
