/**
 * What `/stats` lists ({@link Stat}) and reads from the mesh ({@link MeshStatsSource}); the
 * counting is mesh-stats.ts's.
 *
 * @module
 */
import type { WorkloadIdentity } from './core/observe.ts';
import type { FlushedHistogram } from './mesh-stats-histogram.ts';

/** One statistic as `/stats` lists it. */
export interface Stat {
  /** Envoy's full name: `cluster.outbound|9080||reviews.default.svc.cluster.local;.upstream_rq_total`. */
  readonly name: string;
  readonly value: number;
  readonly kind: 'counter' | 'gauge' | 'histogram';
  /** Written since the start (Envoy's `used`): `?usedonly` keeps these only. */
  readonly used: boolean;
  /** The cluster a cluster stat belongs to (Prometheus `cluster_name`), undefined for others. */
  readonly cluster?: string | undefined;
  /** The name without `cluster.<name>;.` (`upstream_rq_503`), for cluster stats; without `http.<prefix>;.`, for HTTP ones. */
  readonly stat?: string | undefined;
  /** The HTTP connection manager's stat prefix of an `http.<prefix>;.` stat (Prometheus `http_conn_manager_prefix`). */
  readonly httpPrefix?: string | undefined;
  /** The listener address of a `listener.<address>.` stat (Prometheus `listener_address`). */
  readonly listenerAddress?: string | undefined;
  /** A histogram's interval and cumulative statistics as of the last flush. */
  readonly histogram?: ReturnType<FlushedHistogram['read']> | undefined;
}

/** What the stats read from the mesh when asked. */
export interface MeshStatsSource {
  readonly identity: WorkloadIdentity;
  /** The config's clusters and any the data plane still holds, with their state when calls used them. */
  clusters(): Iterable<StatsCluster>;
  /** The mesh's clock (histograms flush on it). */
  now(): number;
  /** Whether `owner` is the data-plane state of this mesh's cluster `cluster`. */
  owns(cluster: string, owner: object): boolean;
  /** Whether a RequestAuthentication applies now (Istio's jwt_authn filter is there). */
  jwtApplies(): boolean;
  /** The local rate limit filters' counters by `stat_prefix` (Envoy's `<stat_prefix>.http_local_rate_limit.*`). */
  localRateLimits(): Iterable<readonly [string, Readonly<Record<'enabled' | 'enforced' | 'ok' | 'rate_limited', number>>]>;
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

