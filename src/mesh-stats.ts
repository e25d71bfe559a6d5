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
  type AttemptStartMessage,
  type CallEndMessage,
  type ConfigAppliedMessage,
  type ConfigRejectedMessage,
  channels,
  type InboundEndMessage,
  type InboundStartMessage,
  type OutlierEjectedMessage,
  type PoolOverflowMessage,
  type RetryBudgetExhaustedMessage,
  type WorkloadIdentity,
} from './core/observe.ts';
import {
  type ConnectionBytes,
  type InboundConnectionMessage,
  inboundConnectionChannel,
  type UpstreamConnectionMessage,
  type UpstreamPendingMessage,
  upstreamConnectionChannel,
  upstreamPendingChannel,
} from './core/observe-connections.ts';
import { type OutlierOverflowMessage, outlierOverflowChannel } from './core/observe-outlier.ts';
import type { AuthzDecisionMessage } from './inbound/authz-phase.ts';
import { FlushedHistogram } from './mesh-stats-histogram.ts';
import type { MeshStatsSource, Stat, StatsCluster } from './mesh-stats-types.ts';
import { InboundStats } from './mesh-stats-inbound.ts';
import { UpstreamConnectionStats, undiciBeforeConnect, undiciConnected } from './mesh-stats-upstream.ts';
import { CLUSTER_COUNTERS, OUTLIER_COUNTERS } from './mesh-stats-names.ts';

export type { MeshStatsSource, Stat, StatsCluster };

/** Most clusters counted; past it, clusters the config no longer has are forgotten (config churn bounds this, never traffic). */
const MAX_CLUSTERS = 1024;

/** Envoy's limit for "unlimited" (`4294967295`), as Istio's defaults set it. */
const U32 = 4294967295;

/** Response flags of answers made before Envoy's router (fault abort, outbound local rate limit): no upstream stats. */
const BEFORE_ROUTER = /(?:^|,)(?:FI|RL)(?:,|$)/;

/** Calls that ended without the retry policy judging their last outcome: retries ran out (URX), the route timeout (UT), the caller went away (DC). */
const NOT_JUDGED = /(?:^|,)(?:URX|UT|DC)(?:,|$)/;

/** Flags of a call whose answer started but did not complete: the route timeout, the caller gone, the upstream resetting it or breaking HTTP mid-body. */
const CUT_SHORT = /(?:^|,)(?:UT|DC|UC|UR|UPE)(?:,|$)/;

/** How an attempt ended when it had an answer: its status, and whether the response completed. */
interface Answer {
  readonly status: number;
  readonly complete: boolean;
}

/** One mesh's `/stats` counters; {@link MeshStats.close} unsubscribes. */
export class MeshStats {
  readonly #source: MeshStatsSource;
  readonly #clusters = new Map<string, Map<string, number>>();
  readonly #global = new Map<string, number>();
  readonly #subscriptions: [Channel, (m: unknown) => void][] = [];
  /** Calls whose last attempt ended on its per-try timeout (their UT is not a route timeout). */
  readonly #perTryExpired = new WeakSet<object>();
  /** Each call's last attempt that got an answer (a retry charges it under `retry.`, the call's end times it). */
  readonly #answered = new WeakMap<object, Answer>();
  /** Calls a retry was refused for by the retry budget or `maxRetries` (Envoy's NoOverflow: no retry success). */
  readonly #retryOverflowed = new WeakSet<object>();
  /** `upstream_rq_time` per cluster. */
  readonly #rqTime = new Map<string, FlushedHistogram>();
  readonly #inbound: InboundStats;
  readonly #upstream: UpstreamConnectionStats;
  readonly #start: number;

  constructor(source: MeshStatsSource) {
    this.#source = source;
    this.#start = source.now();
    this.#inbound = new InboundStats(source, this.#start);
    this.#upstream = new UpstreamConnectionStats({ inc: (c, st, n) => this.#inc(c, st, n), set: (c, st, v) => this.#set(c, st, v) }, () => source.now(), this.#start);
    const id = source.identity;
    const mine = (m: { workload: WorkloadIdentity | undefined }): boolean => m.workload === id;
    this.#on(channels.attemptStart, (m: AttemptStartMessage) => {
      if (!mine(m) || m.attempt < 2) return;
      // The attempt before was retried: Envoy's router charges its answer under `retry.` (router.cc onUpstreamHeaders, chargeBasicResponseStat(…, retry_, …)).
      const a = this.#answered.get(m.call);
      if (a === undefined) return;
      this.#answered.delete(m.call);
      this.#code(m.cluster, a.status, 'retry.');
    });
    this.#on(channels.attemptEnd, (m: AttemptEndMessage) => {
      if (!mine(m)) return;
      if (m.status > 0) this.#answered.set(m.call, { status: m.status, complete: m.failure === undefined });
      else this.#answered.delete(m.call);
      // Envoy counts a request once it is on a connection (conn_pool_base.cc attachStreamToClient), also when the route timeout or the caller ends it.
      if (m.failure === 'local' || (m.failure === 'cancelled' && m.started !== true)) return;
      this.#inc(m.cluster, 'upstream_rq_total');
      if (m.failure === 'cancelled') return;
      // A mirror copy has no call:end: Envoy's shadow goes through the async client's router, which charges its answer (dynamic stats on).
      if ((m.call as { mirror?: boolean }).mirror === true) this.#mirrorCode(m);
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
      const answer = this.#answered.get(m.call);
      this.#answered.delete(m.call);
      if (m.attempts > 1) {
        this.#inc(c, 'upstream_rq_retry', m.attempts - 1);
        // Envoy (retry_state_impl.cc shouldRetry): a retry was made and the policy would not retry this
        // outcome — whatever it is; not when retries ran out (URX: upstream_rq_retry_limit_exceeded),
        // a retry overflowed, or the call ended before the policy judged (route timeout, caller gone).
        if (!NOT_JUDGED.test(m.flags) && !this.#retryOverflowed.has(m.call)) this.#inc(c, 'upstream_rq_retry_success');
      }
      if (/(?:^|,)URX(?:,|$)/.test(m.flags)) this.#inc(c, 'upstream_rq_retry_limit_exceeded');
      // Envoy times the upstream response that completed and went downstream (router.cc onUpstreamComplete, chargeResponseTiming).
      if (answer?.complete === true && m.status > 0 && !CUT_SHORT.test(m.flags)) this.#histogram(c).record(m.durationMs, this.#source.now());
      if (m.flags.includes('UT') && !this.#perTryExpired.has(m.call)) this.#inc(c, 'upstream_rq_timeout');
      // The answer the caller got; for a mesh-made failure, the HTTP status Envoy's router charges
      // (a gRPC call's trailers-only 200 stands for a 503 or 504), also with errors: 'throw'.
      const made = m.rendered ?? (m.status > 0 ? undefined : m.error);
      const code = isMeshletError(made) && made.httpStatus !== undefined ? made.httpStatus : m.status;
      if (code > 0) this.#code(c, code);
    });
    const up = this.#upstream;
    this.#on(upstreamConnectionChannel, (m: UpstreamConnectionMessage) => {
      if (source.owns(m.cluster, m.owner)) up.connection(m);
    });
    this.#on(upstreamPendingChannel, (m: UpstreamPendingMessage) => {
      if (source.owns(m.cluster, m.owner)) up.pending(m);
    });
    this.#on(undiciBeforeConnect, (m: { connector?: unknown }) => up.beforeConnect(m));
    this.#on(undiciConnected, (m: { connector?: unknown; socket?: ConnectionBytes }) => up.connected(m));
    this.#on(inboundConnectionChannel, (m: InboundConnectionMessage) => {
      if (mine(m)) this.#inbound.connection(m);
    });
    this.#on(channels.inboundStart, (m: InboundStartMessage) => {
      if (mine(m)) this.#inbound.started(m);
    });
    this.#on(channels.authzDecision, (m: AuthzDecisionMessage) => {
      if (mine(m)) this.#inbound.decided(m, m.request.localPort);
    });
    this.#on(channels.inboundEnd, (m: InboundEndMessage) => {
      if (mine(m)) this.#inbound.ended(m, this.#source.now());
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
      if (!mine(m)) return;
      this.#inc(m.cluster, 'upstream_rq_retry_overflow');
      this.#retryOverflowed.add(m.call);
    });
    this.#on(outlierOverflowChannel, (m: OutlierOverflowMessage) => {
      if (!mine(m)) return;
      // outlier_detection_impl.cc: onConsecutiveErrorWorker counts the detection, ejectHost the overflow.
      this.#inc(m.cluster, `outlier_detection.ejections_detected_${m.detector}`);
      this.#inc(m.cluster, 'outlier_detection.ejections_overflow');
    });
    this.#on(channels.outlierEjected, (m: OutlierEjectedMessage) => {
      if (!mine(m)) return;
      // Every detection meshlet makes is enforced (Istio sets enforcing_* to 100 for the detectors it turns on).
      this.#inc(m.cluster, `outlier_detection.ejections_detected_${m.detector}`);
      this.#inc(m.cluster, 'outlier_detection.ejections_enforced_total');
      // Envoy's deprecated ejections_total counts consecutive-5xx (and success-rate) ejections only (outlier_detection_impl.cc ejectHost).
      if (m.detector === 'consecutive_5xx') this.#inc(m.cluster, 'outlier_detection.ejections_total');
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
    const m = this.#counts(cluster);
    m.set(stat, (m.get(stat) ?? 0) + n);
  }

  #set(cluster: string, stat: string, value: number): void {
    this.#counts(cluster).set(stat, value);
  }

  #counts(cluster: string): Map<string, number> {
    let m = this.#clusters.get(cluster);
    if (m === undefined) {
      if (this.#clusters.size >= MAX_CLUSTERS) this.#forgetGone();
      m = new Map();
      this.#clusters.set(cluster, m);
    }
    return m;
  }

  /** Envoy's code stats of an answer: `upstream_rq_<code>`, `upstream_rq_<N>xx`, `upstream_rq_completed` (after `prefix`: `retry.` for a retried one). */
  #code(cluster: string, code: number, prefix = ''): void {
    this.#inc(cluster, `${prefix}upstream_rq_${code}`);
    this.#inc(cluster, `${prefix}upstream_rq_${Math.floor(code / 100)}xx`);
    this.#inc(cluster, `${prefix}upstream_rq_completed`);
  }

  /** A mirror copy's code stats: its answer, or the router's local reply for no answer (502 for a protocol error, else 503). */
  #mirrorCode(m: AttemptEndMessage): void {
    if (m.status > 0) this.#code(m.cluster, m.status);
    else if (m.failure === 'protocol') this.#code(m.cluster, 502);
    else if (m.failure !== undefined && m.failure !== 'per-try-timeout' && m.failure !== 'overflow') this.#code(m.cluster, 503);
  }

  #histogram(cluster: string): FlushedHistogram {
    let h = this.#rqTime.get(cluster);
    if (h === undefined) {
      h = new FlushedHistogram(this.#start);
      this.#rqTime.set(cluster, h);
    }
    return h;
  }

  /** Drops the counts of clusters the mesh no longer has (outbound ones; inbound ports are few). */
  #forgetGone(): void {
    const present = new Set<string>();
    for (const c of this.#source.clusters()) present.add(c.name);
    for (const name of this.#clusters.keys()) if (!present.has(name) && !name.startsWith('inbound|')) this.#clusters.delete(name);
    for (const name of this.#rqTime.keys()) if (!present.has(name)) this.#rqTime.delete(name);
    this.#upstream.forget(present);
    // Still full (inbound ports churning?): start over rather than grow.
    if (this.#clusters.size >= MAX_CLUSTERS) {
      this.#clusters.clear();
      this.#rqTime.clear();
      this.#upstream.forget(undefined);
    }
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
    this.#upstream.syncBytes();
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
    this.#more(out);
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return out;
  }

  /** The inbound HTTP stats, the local rate limits' and the histograms. */
  #more(out: Stat[]): void {
    const now = this.#source.now();
    for (const s of this.#inbound.stats()) {
      if (s.listener === true) out.push({ name: `listener.${s.prefix}.${s.stat}`, value: s.value, kind: s.kind, used: s.used, stat: s.stat, listenerAddress: s.prefix });
      else out.push({ name: `http.${s.prefix};.${s.stat}`, value: s.value, kind: s.kind, used: s.used, stat: s.stat, httpPrefix: s.prefix });
    }
    for (const [prefix, h] of this.#inbound.histograms()) {
      const r = h.read(now);
      out.push({ name: `http.${prefix};.downstream_rq_time`, value: r.cumulative.count, kind: 'histogram', used: r.used, stat: 'downstream_rq_time', httpPrefix: prefix, histogram: r });
    }
    for (const [stat, hs] of [
      ['upstream_rq_time', this.#rqTime],
      ['upstream_cx_connect_ms', this.#upstream.connectMs],
    ] as const) {
      for (const [cluster, h] of hs) {
        const r = h.read(now);
        out.push({ name: `cluster.${cluster};.${stat}`, value: r.cumulative.count, kind: 'histogram', used: r.used, cluster, stat, histogram: r });
      }
    }
    const limits = new Map<string, Record<string, number>>();
    for (const [prefix, st] of this.#source.localRateLimits()) {
      const sum = limits.get(prefix) ?? { enabled: 0, enforced: 0, ok: 0, rate_limited: 0 };
      for (const k of ['enabled', 'enforced', 'ok', 'rate_limited'] as const) sum[k] = (sum[k] ?? 0) + st[k];
      limits.set(prefix, sum);
    }
    for (const [prefix, sum] of limits) {
      for (const [k, v] of Object.entries(sum)) out.push({ name: `${prefix}.http_local_rate_limit.${k}`, value: v, kind: 'counter', used: v > 0 });
    }
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
