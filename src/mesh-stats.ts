/**
 * Envoy-style statistics for a mesh's admin endpoint (`GET /stats`, `mesh-admin-stats.ts`
 * renders them): the counters a sidecar's Envoy keeps per cluster (`upstream_rq_total`,
 * `upstream_rq_503`, `upstream_rq_pending_overflow`, `outlier_detection.ejections_enforced_total`,
 * …) under Envoy's names, so `curl localhost:15000/stats | grep pending` reads as it does in a pod
 * with a sidecar. No OpenTelemetry SDK is involved.
 *
 * Counts come from the kernel's observation channels (core/observe.ts), filtered to this mesh;
 * gauges (`upstream_rq_active`, `upstream_cx_active`, `outlier_detection.ejections_active`,
 * `circuit_breakers.default.*`) are read from the clusters' data-plane state when asked. Only the
 * admin endpoint starts this: without it, nothing is subscribed and calls pay nothing.
 *
 * @module
 */
import type { Channel } from 'node:diagnostics_channel';
import { isMeshletError } from './core/errors.ts';
import {
  type AttemptEndMessage,
  type CallEndMessage,
  type ConfigAppliedMessage,
  type ConfigRejectedMessage,
  channels,
  type InboundEndMessage,
  type OutlierEjectedMessage,
  type PoolOverflowMessage,
  type RetryBudgetExhaustedMessage,
  type WorkloadIdentity,
} from './core/observe.ts';

/** One statistic as `/stats` lists it. */
export interface Stat {
  /** Envoy's full name: `cluster.outbound|9080||reviews.default.svc.cluster.local;.upstream_rq_total`. */
  readonly name: string;
  readonly value: number;
  readonly kind: 'counter' | 'gauge';
  /** Written since the start (Envoy's `used`): `?usedonly` keeps these only. */
  readonly used: boolean;
  /** The cluster a cluster stat belongs to (Prometheus `cluster_name`), undefined for others. */
  readonly cluster?: string | undefined;
  /** The name without `cluster.<name>;.` (`upstream_rq_503`), for cluster stats. */
  readonly stat?: string | undefined;
}

/** What the stats read from the mesh when asked. */
export interface MeshStatsSource {
  readonly identity: WorkloadIdentity;
  /** The config's clusters and any the data plane still holds, with their state when calls used them. */
  clusters(): Iterable<StatsCluster>;
}

/** One cluster's gauges, read when `/stats` is asked. */
export interface StatsCluster {
  readonly name: string;
  /** Whether calls used it (its data-plane state exists). */
  readonly used: boolean;
  readonly outlierDetection: boolean;
  readonly endpoints: number;
  readonly ejected: number;
  readonly rqActive: number;
  readonly rqPending: number;
  readonly cxActive: number;
  readonly limits: { readonly maxConnections: number; readonly maxPending: number; readonly maxRequests: number };
}

/** Counters every outbound cluster shows, 0 until written (as Envoy lists them). */
const CLUSTER_COUNTERS = [
  'upstream_cx_connect_fail',
  'upstream_rq_completed',
  'upstream_rq_pending_overflow',
  'upstream_rq_per_try_timeout',
  'upstream_rq_retry',
  'upstream_rq_retry_overflow',
  'upstream_rq_retry_success',
  'upstream_rq_rx_reset',
  'upstream_rq_timeout',
  'upstream_rq_total',
] as const;

/** Outlier-detection counters of a cluster that has outlier detection. */
const OUTLIER_COUNTERS = [
  'outlier_detection.ejections_enforced_consecutive_5xx',
  'outlier_detection.ejections_enforced_consecutive_gateway_failure',
  'outlier_detection.ejections_enforced_consecutive_local_origin_failure',
  'outlier_detection.ejections_enforced_total',
  'outlier_detection.ejections_total',
] as const;

/** Most clusters counted; past it, clusters the config no longer has are forgotten (config churn bounds this, never traffic). */
const MAX_CLUSTERS = 1024;

/** Envoy's limit for "unlimited" (`4294967295`), as Istio's defaults set it. */
const U32 = 4294967295;

/** Response flags of answers made before Envoy's router (fault abort, outbound local rate limit): no upstream stats. */
const BEFORE_ROUTER = /(?:^|,)(?:FI|RL)(?:,|$)/;

/** One mesh's `/stats` counters; {@link MeshStats.close} unsubscribes. */
export class MeshStats {
  readonly #source: MeshStatsSource;
  readonly #clusters = new Map<string, Map<string, number>>();
  readonly #global = new Map<string, number>();
  readonly #subscriptions: [Channel, (m: unknown) => void][] = [];
  /** Calls whose last attempt ended on its per-try timeout (their UT is not a route timeout). */
  readonly #perTryExpired = new WeakSet<object>();

  constructor(source: MeshStatsSource) {
    this.#source = source;
    const id = source.identity;
    const mine = (m: { workload: WorkloadIdentity | undefined }): boolean => m.workload === id;
    this.#on(channels.attemptEnd, (m: AttemptEndMessage) => {
      if (!mine(m) || m.failure === 'cancelled' || m.failure === 'local') return;
      this.#inc(m.cluster, 'upstream_rq_total');
      if (m.failure === 'per-try-timeout') {
        this.#inc(m.cluster, 'upstream_rq_per_try_timeout');
        this.#perTryExpired.add(m.call);
      } else this.#perTryExpired.delete(m.call);
      if (m.failure === 'connect-failure') this.#inc(m.cluster, 'upstream_cx_connect_fail');
      else if (m.failure === 'reset') this.#inc(m.cluster, 'upstream_rq_rx_reset');
    });
    this.#on(channels.callEnd, (m: CallEndMessage) => {
      const c = m.cluster;
      if (c === undefined || !mine(m) || BEFORE_ROUTER.test(m.flags)) return;
      if (m.attempts > 1) {
        this.#inc(c, 'upstream_rq_retry', m.attempts - 1);
        // Envoy: the retried call ended on an answer it would not retry (a final 5xx or no answer is not a success).
        if (m.status > 0 && m.status < 500) this.#inc(c, 'upstream_rq_retry_success');
      }
      if (m.flags.includes('UT') && !this.#perTryExpired.has(m.call)) this.#inc(c, 'upstream_rq_timeout');
      // The answer the caller got; for a mesh-made failure, the HTTP status Envoy's router charges
      // (a gRPC call's trailers-only 200 stands for a 503 or 504), also with errors: 'throw'.
      const made = m.rendered ?? (m.status > 0 ? undefined : m.error);
      const code = isMeshletError(made) && made.httpStatus !== undefined ? made.httpStatus : m.status;
      if (code > 0) this.#code(c, code);
    });
    this.#on(channels.inboundEnd, (m: InboundEndMessage) => {
      // Requests an admission phase refused never reach Envoy's inbound router (RBAC, JWT, rate limits are HTTP filters before it); a pool overflow is the router's own.
      if (!mine(m) || m.status === 0 || (m.deniedBy !== undefined && m.deniedBy !== 'connection-pool')) return;
      const c = `inbound|${m.localPort}||`;
      if (m.deniedBy === undefined) this.#inc(c, 'upstream_rq_total');
      // The router's overflow is charged 503, though a gRPC caller gets it as grpc-status 14 in a 200.
      this.#code(c, m.deniedBy === 'connection-pool' ? 503 : m.status);
    });
    this.#on(channels.poolOverflow, (m: PoolOverflowMessage) => {
      if (mine(m)) this.#inc(m.cluster, 'upstream_rq_pending_overflow');
    });
    this.#on(channels.retryBudgetExhausted, (m: RetryBudgetExhaustedMessage) => {
      if (mine(m)) this.#inc(m.cluster, 'upstream_rq_retry_overflow');
    });
    this.#on(channels.outlierEjected, (m: OutlierEjectedMessage) => {
      if (!mine(m)) return;
      this.#inc(m.cluster, 'outlier_detection.ejections_enforced_total');
      this.#inc(m.cluster, 'outlier_detection.ejections_total');
      this.#inc(m.cluster, `outlier_detection.ejections_enforced_${m.detector}`);
    });
    this.#on(channels.configApplied, (m: ConfigAppliedMessage) => {
      if (mine(m)) this.#global.set('cluster_manager.cds.update_success', (this.#global.get('cluster_manager.cds.update_success') ?? 0) + 1);
    });
    this.#on(channels.configRejected, (m: ConfigRejectedMessage) => {
      if (mine(m)) this.#global.set('cluster_manager.cds.update_rejected', (this.#global.get('cluster_manager.cds.update_rejected') ?? 0) + 1);
    });
  }

  #on<T>(ch: Channel, fn: (m: T) => void): void {
    const f = fn as (m: unknown) => void;
    ch.subscribe(f);
    this.#subscriptions.push([ch, f]);
  }

  #inc(cluster: string, stat: string, n = 1): void {
    let m = this.#clusters.get(cluster);
    if (m === undefined) {
      if (this.#clusters.size >= MAX_CLUSTERS) this.#forgetGone();
      m = new Map();
      this.#clusters.set(cluster, m);
    }
    m.set(stat, (m.get(stat) ?? 0) + n);
  }

  /** Envoy's code stats of an answer: `upstream_rq_<code>`, `upstream_rq_<N>xx`, `upstream_rq_completed`. */
  #code(cluster: string, code: number): void {
    this.#inc(cluster, `upstream_rq_${code}`);
    this.#inc(cluster, `upstream_rq_${Math.floor(code / 100)}xx`);
    this.#inc(cluster, 'upstream_rq_completed');
  }

  /** Drops the counts of clusters the mesh no longer has (outbound ones; inbound ports are few). */
  #forgetGone(): void {
    const present = new Set<string>();
    for (const c of this.#source.clusters()) present.add(c.name);
    for (const name of this.#clusters.keys()) if (!present.has(name) && !name.startsWith('inbound|')) this.#clusters.delete(name);
    // Still full (inbound ports churning?): start over rather than grow.
    if (this.#clusters.size >= MAX_CLUSTERS) this.#clusters.clear();
  }

  /** Every statistic now, sorted by name; `server`: the admin endpoint's state and uptime (seconds). */
  stats(server: { readonly live: boolean; readonly uptimeSeconds: number }): Stat[] {
    const out: Stat[] = [];
    const counter = (name: string, value: number): void => {
      out.push({ name, value, kind: 'counter', used: value > 0 });
    };
    const gauge = (name: string, value: number, used = true): void => {
      out.push({ name, value, kind: 'gauge', used });
    };
    const clusterStat = (cluster: string, stat: string, value: number, kind: 'counter' | 'gauge', used: boolean): void => {
      out.push({ name: `cluster.${cluster};.${stat}`, value, kind, used, cluster, stat });
    };
    gauge('server.live', server.live ? 1 : 0);
    // Envoy's server.state: 0 LIVE, 1 DRAINING.
    gauge('server.state', server.live ? 0 : 1);
    gauge('server.uptime', server.uptimeSeconds);
    counter('cluster_manager.cds.update_success', this.#global.get('cluster_manager.cds.update_success') ?? 0);
    counter('cluster_manager.cds.update_rejected', this.#global.get('cluster_manager.cds.update_rejected') ?? 0);
    const seen = new Set<string>();
    let active = 0;
    for (const c of this.#source.clusters()) {
      if (seen.has(c.name)) continue;
      seen.add(c.name);
      active++;
      const counts = this.#clusters.get(c.name);
      const names = new Set<string>([...CLUSTER_COUNTERS, ...(c.outlierDetection ? OUTLIER_COUNTERS : []), ...(counts?.keys() ?? [])]);
      for (const n of names) {
        const v = counts?.get(n) ?? 0;
        clusterStat(c.name, n, v, 'counter', v > 0);
      }
      const g = (stat: string, v: number): void => clusterStat(c.name, stat, v, 'gauge', c.used);
      g('membership_total', c.endpoints);
      g('membership_healthy', c.endpoints - c.ejected);
      g('upstream_rq_active', c.rqActive);
      g('upstream_rq_pending_active', c.rqPending);
      g('upstream_cx_active', c.cxActive);
      if (c.outlierDetection) g('outlier_detection.ejections_active', c.ejected);
      const l = c.limits;
      g('circuit_breakers.default.cx_open', c.cxActive >= l.maxConnections ? 1 : 0);
      g('circuit_breakers.default.rq_open', c.rqActive >= l.maxRequests ? 1 : 0);
      g('circuit_breakers.default.rq_pending_open', c.rqPending >= l.maxPending ? 1 : 0);
      // Istio sets track_remaining: Envoy then keeps these (the limit less what is in use).
      g('circuit_breakers.default.remaining_cx', remaining(l.maxConnections, c.cxActive));
      g('circuit_breakers.default.remaining_pending', remaining(l.maxPending, c.rqPending));
      g('circuit_breakers.default.remaining_rq', remaining(l.maxRequests, c.rqActive));
    }
    // Clusters counted that the config no longer has (a removed cluster, the inbound ones, PassthroughCluster).
    for (const [name, counts] of this.#clusters) {
      if (seen.has(name)) continue;
      for (const [n, v] of counts) clusterStat(name, n, v, 'counter', v > 0);
    }
    gauge('cluster_manager.active_clusters', active);
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out;
  }

  /** Stops counting (the admin endpoint closed). */
  close(): void {
    for (const [ch, f] of this.#subscriptions) ch.unsubscribe(f);
    this.#subscriptions.length = 0;
  }
}

function remaining(limit: number, used: number): number {
  return Math.max(0, Math.min(limit, U32) - used);
}
