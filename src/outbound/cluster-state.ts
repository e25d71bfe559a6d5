/**
 * What the data plane keeps per upstream cluster beyond one config snapshot: endpoint state
 * (in-flight counts, ejections), the load-balancer picker, outlier detection, pool limits,
 * the retry budget and the adapter's connection pools. Built from the cluster's compiled
 * settings (`cluster.settings`, made once per config by the snapshot's cluster compiler):
 * nothing here reads the DestinationRule's own fields. A new snapshot updates the state in
 * place when the cluster name survives, so counters, ejections and connections survive config
 * changes.
 *
 * @module
 */
import type { Clock, Random } from '../core/clock.ts';
import type { CallHolder, ExchangeState } from '../core/exchange-state.ts';
import type { LocalityLoadBalancerSetting } from '../config/types/destination-rule.ts';
import { OutlierDetector, type OutlierEvent, type ResolvedOutlierSettings } from '../policies/outlier.ts';
import { RetryBudget } from '../policies/retry-budget.ts';
import { HostSet, HostState } from '../routing/balancer/host.ts';
import type { HashKeyPolicy } from '../routing/balancer/lb-settings.ts';
import { type Picker, pickerFor } from '../routing/balancer/picker.ts';
import type { Cluster } from '../routing/route-table.ts';
import { effectiveConnectTimeoutMs, effectiveTcpKeepalive, type TcpKeepalive } from '../routing/cluster-settings.ts';
import { RequestLimiter } from '../policies/limits.ts';
import { type DnsSettings, DnsTarget } from './dns-target.ts';
import { logicalDnsEndpoints, strictDnsEndpoints } from './strict-dns.ts';

/** What every cluster state shares: the mesh's clock, randomness and this workload. */
export interface ClusterContext {
  readonly clock: Clock;
  readonly random: Random;
  /** This workload's locality (`region/zone/subzone`) or ''. */
  readonly locality: string;
  /** MeshConfig's `localityLbSetting`, for destinations whose DestinationRule and Service set none. */
  readonly meshLocality?: LocalityLoadBalancerSetting | undefined;
  readonly labels: Readonly<Record<string, string>>;
  /** Outlier ejections and returns. */
  onOutlierEvent(cluster: string, e: OutlierEvent): void;
  /** How `resolution: DNS` names are resolved (STRICT_DNS); undefined: they are left to the transport. */
  readonly dns?: DnsSettings | undefined;
  /** MeshConfig's `connectTimeout` (`createMesh({ connectTimeoutMs })`), for clusters whose DestinationRule sets no `tcp.connectTimeout`; undefined: Istio's 10 s. */
  readonly connectTimeoutMs?: number | undefined;
  /** MeshConfig's `tcpKeepalive` (`createMesh({ tcpKeepalive })`), under the fields a DestinationRule's `tcp.tcpKeepalive` sets; undefined: none. */
  readonly tcpKeepalive?: TcpKeepalive | undefined;
}

/** The adapter's per-cluster transport (connection pools); closed when the cluster goes away. */
export interface ClusterTransport {
  /** An endpoint left the cluster: close its connections once idle. */
  removeHost(host: HostState): void;
  /** Connections open to the endpoint now (Envoy's per-host `cx_active`), when the transport counts them. */
  connections?(host: HostState): number;
  /**
   * Closes the pools; calls in flight may finish for `graceMs` (default: as long as they take). A
   * second call while the first still waits bounds the wait by its own `graceMs`.
   */
  close(graceMs?: number): Promise<void>;
}

/** Per-cluster data-plane state. */
export class ClusterState implements CallHolder {
  cluster: Cluster;
  readonly name: string;
  readonly hostsByKey = new Map<string, HostState>();
  hostSet: HostSet;
  picker: Picker;
  detector: OutlierDetector | undefined;
  limiter: RequestLimiter;
  budget: RetryBudget;
  /** The consistent-hash key policy, when the cluster uses consistent hashing. */
  hash: HashKeyPolicy | undefined;
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
  /** Pools replaced by new settings, draining their calls in flight (close() bounds them too). */
  readonly #retiring = new Set<ClusterTransport>();
  /** What close() closed. */
  readonly #closing = new Set<ClusterTransport>();
  readonly #ctx: ClusterContext;
  /** STRICT_DNS: the names being resolved, by host name (see {@link strictDnsEndpoints}). */
  readonly dnsTargets = new Map<string, DnsTarget>();
  /** Calls waiting for the first resolution of a name. */
  #dnsWaiters: (() => void)[] = [];
  /** A name of this STRICT_DNS cluster has no answer yet (calls wait: {@link waitForDns}); one read per call. */
  dnsPending = false;
  /** Calls routed here that have not ended ({@link assign}). */
  #calls = 0;
  /** Told when the last call ends ({@link whenIdle}). */
  #onIdle: (() => void) | undefined;

  /**
   * How long a new connection may take to come up: the DestinationRule's `tcp.connectTimeout`,
   * else the mesh's (MeshConfig `connectTimeout`, Istio's default 10 s), as istiod sets each
   * cluster's `connect_timeout`.
   */
  get connectTimeoutMs(): number {
    return effectiveConnectTimeoutMs(this.cluster.settings.connectionPool, this.#ctx.connectTimeoutMs);
  }

  /**
   * The TCP keepalive of the cluster's new connections: MeshConfig's, with each field the
   * DestinationRule's `tcp.tcpKeepalive` sets over it (istiod's cluster.go `applyTCPKeepalive`);
   * undefined when neither sets one.
   */
  get tcpKeepalive(): TcpKeepalive | undefined {
    return effectiveTcpKeepalive(this.cluster.settings.connectionPool, this.#ctx.tcpKeepalive);
  }

  constructor(cluster: Cluster, ctx: ClusterContext) {
    this.#ctx = ctx;
    this.name = cluster.name;
    this.cluster = cluster;
    const s = cluster.settings;
    this.hostSet = new HostSet([]);
    this.picker = pickerFor(this.hostSet, s.loadBalancer, this.#pickerContext(undefined));
    this.limiter = new RequestLimiter(s.connectionPool.limits);
    this.budget = RetryBudget.of(s.retryBudget);
    this.hash = s.loadBalancer.hashKey;
    this.passthrough = s.passthrough;
    this.h2 = s.h2;
    this.update(cluster, true);
  }

  #pickerContext(outlier: ResolvedOutlierSettings | undefined) {
    const { random, clock, locality, labels, meshLocality } = this.#ctx;
    return { random, clock, locality, labels, meshLocality, outlierDetection: outlier !== undefined, panicThreshold: outlier?.minHealthPercent ?? 0 };
  }

  /** Applies a (possibly changed) cluster from a new snapshot, keeping endpoint state. */
  update(cluster: Cluster, initial = false): void {
    this.cluster = cluster;
    const settings = cluster.settings;
    const now = this.#ctx.clock.now();
    const seen = new Set<string>();
    const hosts: HostState[] = [];
    const dns = this.#ctx.dns;
    const resolution = cluster.service.resolution;
    const make = (name: string) => this.#newTarget(name, dns as DnsSettings);
    const endpoints =
      dns === undefined || settings.passthrough
        ? cluster.endpoints
        : resolution === 'DNS'
          ? strictDnsEndpoints(cluster.endpoints, this.dnsTargets, make)
          : resolution === 'DNS_ROUND_ROBIN'
            ? logicalDnsEndpoints(cluster.endpoints, this.dnsTargets, make)
            : cluster.endpoints;
    if (endpoints === cluster.endpoints && this.dnsTargets.size > 0) {
      for (const t of this.dnsTargets.values()) t.close();
      this.dnsTargets.clear();
    }
    for (const ep of endpoints) {
      if (seen.has(ep.key)) continue;
      seen.add(ep.key);
      let h = this.hostsByKey.get(ep.key);
      if (h === undefined) {
        // Endpoints present when the cluster first appears are not warming; later ones are.
        h = new HostState(ep, initial ? Number.NEGATIVE_INFINITY : now);
        this.hostsByKey.set(ep.key, h);
      } else if (h.endpoint !== ep) {
        // Same address:port: keep the state (in-flight count, ejection), take the new labels and weight.
        h.setEndpoint(ep);
      }
      hosts.push(h);
    }
    for (const [k, h] of [...this.hostsByKey]) {
      if (seen.has(k)) continue;
      this.hostsByKey.delete(k);
      for (const t of this.transports.values()) t.pools.removeHost(h);
    }
    const od = settings.outlierDetection;
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
    const lb = settings.loadBalancer;
    this.picker = pickerFor(this.hostSet, lb, this.#pickerContext(od));
    this.hash = lb.hashKey;
    this.passthrough = settings.passthrough;
    this.h2 = settings.h2;
    const limiter = this.limiter;
    limiter.limits = settings.connectionPool.limits;
    // Raised limits let the calls waiting for a slot go now (after the update, not in the middle of it), not at the next release.
    if (limiter.pending > 0) queueMicrotask(() => limiter.setLimits(limiter.limits));
    this.budget = RetryBudget.of(settings.retryBudget);
    this.dnsPending = false;
    for (const t of this.dnsTargets.values()) if (t.addresses === undefined) this.dnsPending = true;
    // Calls waiting for first answers go once every name has one (or is gone), after this update.
    if (this.#dnsWaiters.length > 0) queueMicrotask(() => this.#releaseDnsWaiters());
  }

  /** A name to resolve: a changed answer rebuilds the host set (removed addresses' connections drain). */
  #newTarget(name: string, dns: DnsSettings): DnsTarget {
    // The first answer's addresses are the cluster's first hosts (not slow-started); later ones join a cluster in use.
    return new DnsTarget(name, dns, this.#ctx.clock, (first) => {
      if (this.dnsTargets.get(name) !== undefined) this.update(this.cluster, first);
    });
  }

  /**
   * Whether a name of this STRICT_DNS cluster has not been resolved yet: then `f` is called once
   * every name's first resolution ended (Envoy warms the cluster first), and true returned.
   */
  waitForDns(f: () => void): boolean {
    if (!this.dnsPending) return false;
    this.#dnsWaiters.push(f);
    return true;
  }

  /** A call given up while waiting ({@link waitForDns}). */
  stopWaitingForDns(f: () => void): void {
    const i = this.#dnsWaiters.indexOf(f);
    if (i !== -1) this.#dnsWaiters.splice(i, 1);
  }

  #releaseDnsWaiters(): void {
    const w = this.#dnsWaiters;
    if (w.length === 0 || this.dnsPending) return;
    this.#dnsWaiters = [];
    for (const f of w) f();
  }

  #onOutlier(e: OutlierEvent): void {
    if (e.type !== 'overflow') this.hostSet.healthVersion++;
    this.#ctx.onOutlierEvent(this.name, e);
  }

  /** Routes a call (or a mirrored copy) to this cluster: it counts as running here until it ends. */
  assign(ex: ExchangeState): void {
    ex.cluster = this;
    const before = ex.holder;
    if (before === this) return;
    ex.holder = this;
    this.#calls++;
    before?.letGo();
  }

  /** A call {@link assign}ed here ended (the exchange tells its holder once). */
  letGo(): void {
    this.#calls--;
    if (this.#calls === 0) this.#onIdle?.();
  }

  /** Calls routed here that have not ended. */
  get calls(): number {
    return this.#calls;
  }

  /** Calls `f` once no call runs here: now, or when the last one ends (a removed cluster closes then). */
  whenIdle(f: () => void): void {
    this.#onIdle = f;
    if (this.#calls === 0) f();
  }

  /** Pools an adapter replaced (new connection settings): they close once their calls end, or when close() ends them. */
  retire(pools: ClusterTransport): void {
    this.#retiring.add(pools);
    void pools.close().finally(() => this.#retiring.delete(pools));
  }

  /**
   * Stops timers and closes the adapter's pools (calls in flight may finish for `graceMs`). A
   * second call while the first still waits (a removed cluster closing, then `mesh.close()`)
   * bounds the same pools by its own `graceMs`.
   */
  async close(graceMs?: number): Promise<void> {
    for (const t of this.dnsTargets.values()) t.close();
    this.dnsTargets.clear();
    this.dnsPending = false;
    this.#releaseDnsWaiters();
    this.detector?.close();
    this.detector = undefined;
    const ts = this.#closing;
    for (const t of this.transports.values()) ts.add(t.pools);
    for (const t of this.#retiring) ts.add(t);
    this.transports.clear();
    this.#retiring.clear();
    await Promise.all([...ts].map((t) => t.close(graceMs)));
  }

  toString(): string {
    const dns = this.dnsTargets.size === 0 ? '' : `; DNS ${[...this.dnsTargets.values()].join('; ')}`;
    return `${this.name}: ${this.picker}; ${this.limiter}${this.detector ? `; ${this.detector}` : ''}${dns}`;
  }
}
