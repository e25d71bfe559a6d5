/**
 * Per-endpoint load-balancing state ({@link HostState}) and the hosts of one cluster
 * ({@link HostSet}). The data plane owns these objects: it counts in-flight requests,
 * outlier detection ejects and restores hosts, and the pickers read both. A HostState
 * outlives config swaps as long as its endpoint key (`address:port`) survives, so
 * counters and ejections carry over ({@link HostSet.from}).
 *
 * @module
 */
import type { Endpoint } from '../../config/registry.ts';

/** Mutable per-endpoint state owned by the data plane; survives config swaps when the endpoint key survives. */
export class HostState {
  /** The endpoint this state belongs to (replaced by {@link HostState.setEndpoint} when config changes it). */
  endpoint: Endpoint;
  /** The endpoint's load-balancing weight, at least 1 (Envoy rejects 0; Istio maps 0 to 1). */
  weight: number;
  /** In-flight requests (the data plane increments when a request starts and decrements when it ends). */
  active = 0;
  /** Attempts sent to the endpoint and how they ended, as Envoy's per-host stats (`rq_total`, …): read by the admin endpoint's `/clusters`. */
  readonly stats = { rqTotal: 0, rqSuccess: 0, rqError: 0, rqTimeout: 0 };
  /** Set by outlier detection. Change it through {@link HostSet.setEjected}, or bump {@link HostSet.healthVersion} yourself. */
  ejected = false;
  /** Clock ms when the ejection ends; informational. */
  ejectedUntil = 0;
  /** Why the host was ejected (e.g. `consecutive 5xx`); informational. */
  ejectReason = '';
  /**
   * Clock ms when slow start (warmup) began; `-Infinity` means the host is not warming.
   * Change it through {@link HostSet.startWarming} so pickers notice.
   */
  warmingSince: number;

  /**
   * @param endpoint the endpoint
   * @param warmingSince Clock ms when slow start began; `-Infinity` (the default) = not warming
   */
  constructor(endpoint: Endpoint, warmingSince = Number.NEGATIVE_INFINITY) {
    this.endpoint = endpoint;
    this.weight = weightOf(endpoint);
    this.warmingSince = warmingSince;
  }

  /**
   * Takes a new config's endpoint of the same `address:port` (new weight, locality or labels),
   * keeping the in-flight count, ejection and warmup. Pickers read the weight when they are
   * built, so build the cluster's picker again afterwards.
   */
  setEndpoint(endpoint: Endpoint): void {
    this.endpoint = endpoint;
    this.weight = weightOf(endpoint);
  }

  /** The endpoint key, `address:port`. */
  get key(): string {
    return this.endpoint.key;
  }

  /** `10.0.0.1:8080`, with ` (ejected)` when ejected. */
  toString(): string {
    return this.ejected ? `${this.endpoint.key} (ejected)` : this.endpoint.key;
  }
}

function weightOf(endpoint: Endpoint): number {
  return Number.isFinite(endpoint.weight) && endpoint.weight > 0 ? endpoint.weight : 1;
}

/** Whether two endpoints describe the same host for load balancing (same weight, locality and labels) and for telemetry (same workload name). */
function sameBalancing(a: Endpoint, b: Endpoint): boolean {
  if (a === b) return true;
  if (a.weight !== b.weight || a.locality !== b.locality || a.workloadName !== b.workloadName) return false;
  const ka = Object.keys(a.labels);
  if (ka.length !== Object.keys(b.labels).length) return false;
  for (const k of ka) if (a.labels[k] !== b.labels[k]) return false;
  return true;
}

/**
 * The hosts of one cluster plus a version number bumped whenever any host's `ejected` flag
 * changes (pickers rebuild cached tables lazily when it changes).
 */
export class HostSet {
  /** The hosts, in endpoint order. */
  readonly hosts: readonly HostState[];
  /**
   * Bumped whenever a host's `ejected` flag (or `warmingSince`) changes. Pickers compare it on
   * every pick and rebuild their tables when it moved.
   */
  healthVersion = 0;

  /** @param hosts the cluster's hosts (copied) */
  constructor(hosts: readonly HostState[]) {
    this.hosts = Object.freeze(hosts.slice());
  }

  /**
   * Builds the host set for a new config, reusing the HostState of every endpoint whose key
   * survives (so in-flight counts, ejections and warmup carry over). When a surviving
   * endpoint changed weight, locality or labels, a new HostState is made that keeps the
   * ejection and warmup state (its in-flight count starts at 0: requests still running hold
   * the old object).
   *
   * New endpoints start slow start at `nowMs` when `previous` exists (a host joining a live
   * cluster); the hosts of a brand-new cluster do not warm up. Pickers only apply warmup when
   * the DestinationRule configures it.
   *
   * @param endpoints the endpoints of the new config
   * @param previous the host set of the config being replaced, if any
   * @param nowMs the Clock time, used as `warmingSince` for new hosts
   */
  static from(endpoints: readonly Endpoint[], previous: HostSet | undefined, nowMs: number): HostSet {
    const old = new Map<string, HostState>();
    if (previous !== undefined) for (const h of previous.hosts) old.set(h.key, h);
    const hosts: HostState[] = [];
    for (const ep of endpoints) {
      const prev = old.get(ep.key);
      if (prev === undefined) {
        hosts.push(new HostState(ep, previous === undefined ? Number.NEGATIVE_INFINITY : nowMs));
      } else if (sameBalancing(prev.endpoint, ep)) {
        hosts.push(prev);
      } else {
        const h = new HostState(ep, prev.warmingSince);
        h.ejected = prev.ejected;
        h.ejectedUntil = prev.ejectedUntil;
        h.ejectReason = prev.ejectReason;
        hosts.push(h);
      }
    }
    return new HostSet(hosts);
  }

  /**
   * Ejects or restores a host and bumps {@link healthVersion} when the flag changes.
   * @param host a host of this set
   * @param ejected the new state
   * @param untilMs Clock ms when the ejection ends (informational)
   * @param reason why (informational)
   */
  setEjected(host: HostState, ejected: boolean, untilMs = 0, reason = ''): void {
    host.ejectedUntil = ejected ? untilMs : 0;
    host.ejectReason = ejected ? reason : '';
    if (host.ejected === ejected) return;
    host.ejected = ejected;
    this.healthVersion++;
  }

  /** Starts slow start for a host at `nowMs` and bumps {@link healthVersion}. */
  startWarming(host: HostState, nowMs: number): void {
    host.warmingSince = nowMs;
    this.healthVersion++;
  }

  /** Number of hosts not ejected. */
  get healthyCount(): number {
    let n = 0;
    for (const h of this.hosts) if (!h.ejected) n++;
    return n;
  }
}
