/**
 * The outbound pipeline and the state it runs on. One {@link Outbound} per mesh: it holds the
 * current snapshot and the per-cluster state, and composes the layers once, outermost first:
 *
 * ```
 * route ─► fault ─► mirror ─► timeout ─► retry ─► balance ─► upstream ─► transport (adapter)
 * ```
 *
 * Outbound local rate limits (EnvoyFilters for SIDECAR_OUTBOUND) are no layer: the route layer
 * checks them once per call when the snapshot has some ({@link Outbound.rateLimits}).
 *
 * A new snapshot is swapped in with {@link Outbound.install}; calls already running finish on
 * the routes they started with, and cluster state whose name survives is kept.
 *
 * @module
 */
import { DEFAULT_DNS_REFRESH_MS, lookupFamily, systemDnsResolve } from './dns-target.ts';
import type { Clock, Timer } from '../core/clock.ts';
import { DeadlineQueue } from '../core/deadlines.ts';
import type { Exchange } from '../core/exchange.ts';
import { type Dispatch, type Layer, stack } from '../core/layer.ts';
import type { FailureKind } from '../core/outcome.ts';
import { channels, type OutlierEjectedMessage, type OutlierReturnedMessage } from '../core/observe.ts';
import { transportOf } from './transport.ts';
import { faultLayer } from '../policies/fault.ts';
import { type LiveMirrors, type MirrorStats, mirrorLayer } from '../policies/mirror.ts';
import type { OutlierEvent } from '../policies/outlier.ts';
import { type OutlierOverflowMessage, outlierOverflowChannel } from '../core/observe-outlier.ts';
import { retryLayer } from '../policies/retry.ts';
import { timeoutLayer } from '../policies/timeout.ts';
import { RQ_TIMEOUT_HEADER, timeoutFromHeader } from '../policies/timeout-headers.ts';
import { DEFAULT_ROOT_NAMESPACE } from '../config/resource.ts';
import type { Snapshot, UnknownHostPolicy } from '../routing/compile.ts';
import type { CompiledRoute } from '../routing/route-table.ts';
import { DEFAULT_CONNECT_TIMEOUT_MS, type TcpKeepalive } from '../routing/cluster-settings.ts';
import { balanceLayer } from './balance.ts';
import { type ClusterContext, ClusterState } from './cluster-state.ts';
import { routeLayer } from './route-layer.ts';
import type { PathNormalization } from '../core/path-normalization.ts';
import { passthroughLayer } from './passthrough.ts';
import { compileOutboundRateLimits, type OutboundRateLimits } from './rate-limit.ts';
import { upstreamLayer } from './upstream.ts';
import { watchNodeHttpBypass } from './node-http-bypass.ts';
import { cleanInternalHeaders, removeAppClientCert } from '../core/clean-internal-headers.ts';

/** How long a mirrored copy may take when its route has no timeout. */
const MIRROR_TIMEOUT_MS = 10_000;

import type { OutboundEvent, OutboundOptions } from './outbound-options.ts';

export type { OutboundEvent, OutboundOptions };

/** The outbound data plane of one mesh. */
export class Outbound {
  #snapshot: Snapshot;
  /** What calls to hosts outside the mesh get under the current snapshot: its Sidecar's policy, else the mesh's. */
  #unknownHosts: UnknownHostPolicy;
  /** The mesh's policy for them: the snapshot's (`meshSettings`), else the option's. */
  #meshPolicy: UnknownHostPolicy;
  /** The mesh's connect timeout: the snapshot's (`meshSettings`), else the option's (read by every cluster state). */
  #connectTimeoutMs: number | undefined;
  /** The mesh's TCP keepalive: the snapshot's (`meshSettings`), else the option's (read by every cluster state). */
  #tcpKeepalive: TcpKeepalive | undefined;
  /** The snapshot's outbound local rate limits; undefined when none can limit anything. */
  #rateLimits: OutboundRateLimits | undefined;
  readonly #clusters = new Map<string, ClusterState>();
  /** Clusters a snapshot removed, until their pools closed: once their calls ended, 30 s later at the latest, or by close() (see #retire). */
  readonly #retired = new Map<ClusterState, Timer>();
  /** close() has begun: a mirrored copy still waiting for its body is not sent. */
  #closing = false;
  readonly #clusterContext: ClusterContext;
  readonly #o: OutboundOptions;
  /** The shared deadline queue (route and per-try timeouts). */
  readonly deadlines: DeadlineQueue;
  /** Mirrored-request counters. */
  readonly mirrorStats: MirrorStats = { sent: 0, dropped: 0, failed: 0, inFlight: 0 };
  readonly #liveMirrors: LiveMirrors = new Set();
  /** The whole pipeline: route a call and carry it out. */
  readonly dispatch: Dispatch;
  /** The layers, outermost first (the order is part of the contract; a test pins it). */
  readonly layerNames: readonly string[];
  /** Stamps a passthrough call with the metadata-exchange headers (set once telemetry runs, under `metadataExchangeHeaders` UNDEFINED). */
  stampPassthrough: ((ex: Exchange) => void) | undefined = undefined;
  /** Stops watching node:http's requests for calls that bypass the mesh. */
  readonly #stopBypassWatch: (() => void) | undefined;

  constructor(snapshot: Snapshot, o: OutboundOptions) {
    this.#o = o;
    this.#snapshot = snapshot;
    this.#meshPolicy = Object.freeze({ mode: snapshot.meshSettings?.outboundTrafficPolicy ?? o.outboundTrafficPolicy, egressProxy: undefined, source: '' });
    this.#connectTimeoutMs = snapshot.meshSettings?.connectTimeoutMs ?? o.connectTimeoutMs;
    this.#tcpKeepalive = meshKeepalive(snapshot.meshSettings, o.tcpKeepalive);
    this.#unknownHosts = snapshot.sidecar?.outboundTrafficPolicy ?? this.#meshPolicy;
    this.#rateLimits = this.#compileRateLimits(snapshot);
    this.deadlines = new DeadlineQueue(o.clock);
    this.#stopBypassWatch = o.warn === undefined ? undefined : watchNodeHttpBypass(() => this.#snapshot.routes, o.warn);
    const outbound = this;
    this.#clusterContext = {
      clock: o.clock,
      random: o.random,
      locality: o.locality,
      meshLocality: o.localityLbSetting,
      // Read when a cluster's connections are set up: a snapshot with another mesh connect timeout applies to new connections.
      get connectTimeoutMs() {
        return outbound.#connectTimeoutMs;
      },
      // Read alike: a snapshot with another mesh keepalive rebuilds the clusters' pools (transports' refresh), as istiod's full push rebuilds every cluster.
      get tcpKeepalive() {
        return outbound.#tcpKeepalive;
      },
      labels: o.labels,
      dns: { resolve: o.dns?.resolve ?? systemDnsResolve, refreshMs: o.dns?.refreshRateMs ?? DEFAULT_DNS_REFRESH_MS, family: lookupFamily(o.sourceIp) },
      onOutlierEvent: (cluster: string, e: OutlierEvent) => {
        this.#publishOutlier(cluster, e);
        if (e.type !== 'overflow') this.#o.onEvent({ type: e.type, cluster, endpoint: e.host.key, reason: e.reason, untilMs: e.untilMs });
      },
    };
    const route = (ex: Exchange) => ex.route as CompiledRoute;
    const trusted = o.trustEnvoyRequestHeaders === true;
    const balance = balanceLayer({ random: o.random, sourceIp: o.sourceIp });
    const transports = o.transports;
    const classify = (ex: Exchange, err: Error): FailureKind => transportOf(transports, ex.transport).classify(err, ex);
    // The terminal step: the transport the exchange names.
    const send: Dispatch = (ex, handler) => transportOf(transports, ex.transport).dispatch(ex, handler);
    // A host outside the mesh (ALLOW_ANY): Istio's allow_any route — no route timeout (unless a
    // trusted app asks for one: x-envoy-upstream-rq-timeout-ms), no retries — but the caller's deadline still holds, and a failure is answered as Envoy answers it (503 UF, …).
    const passthrough = stack(
      [timeoutLayer({ clock: o.clock, deadlines: this.deadlines, timeoutMs: trusted ? (ex) => timeoutFromHeader(ex.headers, RQ_TIMEOUT_HEADER, undefined) : () => undefined }), passthroughLayer({ classify, attemptCount: o.attemptCount ?? true, stamp: () => this.stampPassthrough })],
      (ex, handler) => transportOf(transports, ex.transport).passthrough(ex, handler),
    );
    const upstream = upstreamLayer({ classify, clock: o.clock, attemptCount: o.attemptCount ?? true });
    const upstreamPath = stack([balance, upstream], send);
    const fault = faultLayer({ clock: o.clock, random: o.random, fault: (ex) => route(ex).fault });
    const layers: [string, Layer][] = [
      ['route', routeLayer({ random: o.random, routes: () => this.#snapshot.routes, clusterState: (n) => this.#cluster(n), unknownHosts: () => this.#unknownHosts, passthrough, rateLimits: () => this.#rateLimits, originalPath: o.envoyHeaders ?? true, pathNormalization: o.pathNormalization ?? 'NONE', fault })],
      ['fault', fault],
      [
        'mirror',
        mirrorLayer(
          {
            random: o.random,
            now: () => o.clock.now(),
            mirrors: (ex) => route(ex).mirrors,
            prepare: (copy, m) => {
              const c = m.target.cluster;
              const cs = c === undefined ? undefined : this.#cluster(c.name);
              if (cs === undefined) return false;
              // Counted on its cluster only once sent (claim): a copy dropped before that never ends.
              copy.cluster = cs;
              copy.target = m.target;
              return true;
            },
            claim: (copy) => {
              const cs = copy.cluster as ClusterState;
              if (this.#closing || this.#clusters.get(cs.name) !== cs) return false;
              cs.assign(copy);
              return true;
            },
            send: upstreamPath,
            maxInFlight: o.maxMirrorsInFlight,
            deadlines: this.deadlines,
            timeoutMs: (ex) => route(ex).timeoutMs,
            defaultTimeoutMs: MIRROR_TIMEOUT_MS,
          },
          this.mirrorStats,
          this.#liveMirrors,
        ),
      ],
      // The route's timeout, or the one a trusted app asks for (x-envoy-upstream-rq-timeout-ms; trustEnvoyRequestHeaders).
      // Not one a VirtualService's `headers.request` set: Envoy's router takes the timeouts before it adds the route's headers (router.cc decodeHeaders), and sends such a header on.
      ['timeout', timeoutLayer({ clock: o.clock, deadlines: this.deadlines, timeoutMs: trusted ? (ex) => timeoutFromHeader(ex.headers, RQ_TIMEOUT_HEADER, route(ex).timeoutMs) : (ex) => route(ex).timeoutMs })],
      [
        'retry',
        retryLayer({
          clock: o.clock,
          random: o.random,
          deadlines: this.deadlines,
          policy: (ex) => route(ex).retry,
          budget: (ex) => (ex.cluster as ClusterState).budget,
          // Envoy's RetryBudgetImpl::max(): requests_ + pending_requests_ (calls queued for a connection count).
          activeRequests: (ex) => {
            const l = (ex.cluster as ClusterState).limiter;
            return l.active + l.pending;
          },
          classify,
          maxRetryAfterMs: o.maxRetryAfterMs,
          timeoutHeaders: trusted,
        }),
      ],
      ['balance', balance],
      ['upstream', upstream],
    ];
    this.layerNames = layers.map(([n]) => n);
    const pipeline = stack(
      layers.map(([, l]) => l),
      send,
    );
    // As an Istio sidecar's outbound listener treats the app's requests (external: their
    // router-steering x-envoy-* headers removed) unless told to trust them; their own
    // x-forwarded-client-cert is removed either way (the app's connection is not mTLS).
    this.dispatch = trusted
      ? (ex, handler) => {
          removeAppClientCert(ex.headers, ex.options);
          pipeline(ex, handler);
        }
      : (ex, handler) => {
          cleanInternalHeaders(ex.headers);
          removeAppClientCert(ex.headers, ex.options);
          pipeline(ex, handler);
        };
  }

  /** `meshlet:outlier:ejected` / `:returned`, when someone subscribes. */
  #publishOutlier(cluster: string, e: OutlierEvent): void {
    const workload = this.#o.workload;
    if (e.type === 'ejected') {
      const ch = channels.outlierEjected;
      if (ch.hasSubscribers) {
        ch.publish({ workload, cluster, endpoint: e.host.key, detector: e.detector ?? 'consecutive_5xx', reason: e.reason, untilMs: e.untilMs } satisfies OutlierEjectedMessage);
      }
    } else if (e.type === 'overflow') {
      if (outlierOverflowChannel.hasSubscribers) outlierOverflowChannel.publish({ workload, cluster, endpoint: e.host.key, detector: e.detector ?? 'consecutive_5xx' } satisfies OutlierOverflowMessage);
    } else if (channels.outlierReturned.hasSubscribers) {
      channels.outlierReturned.publish({ workload, cluster, endpoint: e.host.key, reason: e.reason } satisfies OutlierReturnedMessage);
    }
  }

  /** The mesh clock. */
  get clock(): Clock {
    return this.#o.clock;
  }

  /** MeshConfig's `tcpKeepalive` in use (a control plane's, else `createMesh({ tcpKeepalive })`): the PassthroughCluster's, and under a DestinationRule's fields every cluster's. */
  get tcpKeepalive(): TcpKeepalive | undefined {
    return this.#tcpKeepalive;
  }

  /** MeshConfig's `connectTimeout` in use (a control plane's, else `createMesh({ connectTimeoutMs })`), else Istio's 10 s: the PassthroughCluster's, and a cluster's whose DestinationRule sets none. */
  get connectTimeoutMs(): number {
    return this.#connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  }

  /** MeshConfig `pathNormalization` as calls are routed with it. */
  get pathNormalization(): PathNormalization {
    return this.#o.pathNormalization ?? 'NONE';
  }

  /** The snapshot new calls are routed on. */
  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** Per-cluster state by cluster name (made on first use, like a call would). */
  clusterState(name: string): ClusterState | undefined {
    return this.#cluster(name);
  }

  /** The cluster states made so far (clusters that calls, mirrors or explain have used). */
  get clusters(): ReadonlyMap<string, ClusterState> {
    return this.#clusters;
  }

  /** Swaps in a new snapshot: new calls use it; cluster state whose name survives is kept. */
  install(snapshot: Snapshot): void {
    // The mesh's settings first: clusters that survive rebuild their pools under the new connect timeout or keepalive (transports' refresh).
    const mesh = snapshot.meshSettings;
    this.#connectTimeoutMs = mesh?.connectTimeoutMs ?? this.#o.connectTimeoutMs;
    this.#tcpKeepalive = meshKeepalive(mesh, this.#o.tcpKeepalive);
    const mode = mesh?.outboundTrafficPolicy ?? this.#o.outboundTrafficPolicy;
    if (mode !== this.#meshPolicy.mode) this.#meshPolicy = Object.freeze({ mode, egressProxy: undefined, source: '' });
    // Cluster state is made when a call first needs it (see #cluster): a mesh talks to a few of
    // the mesh's services, and a config push must not build pickers and pools for all of them.
    for (const [name, cs] of [...this.#clusters]) {
      const c = snapshot.clusters.get(name);
      if (c !== undefined) {
        cs.update(c);
        for (const t of Object.values(this.#o.transports)) t.refresh?.(cs);
        continue;
      }
      this.#clusters.delete(name);
      this.#retire(cs);
    }
    this.#snapshot = snapshot;
    this.#unknownHosts = snapshot.sidecar?.outboundTrafficPolicy ?? this.#meshPolicy;
    this.#rateLimits = this.#compileRateLimits(snapshot);
  }

  #compileRateLimits(snapshot: Snapshot): OutboundRateLimits | undefined {
    const o = this.#o;
    return compileOutboundRateLimits(snapshot, { clock: o.clock, random: o.random, sourceIp: o.sourceIp, rootNamespace: o.rootNamespace ?? DEFAULT_ROOT_NAMESPACE, previous: this.#rateLimits, workloadName: o.workload?.workloadName, ...(o.rls === undefined ? {} : { rls: o.rls }) });
  }

  /** The outbound local rate limits of the current snapshot (undefined: none can limit anything), with their counters. */
  get rateLimits(): OutboundRateLimits | undefined {
    return this.#rateLimits;
  }

  /** What calls to hosts outside the mesh get now: the applied Sidecar's `outboundTrafficPolicy`, else the mesh's. */
  get unknownHosts(): UnknownHostPolicy {
    return this.#unknownHosts;
  }

  /**
   * A cluster the new snapshot no longer has: its pools drain and close once the calls routed to
   * it have ended — at once when none runs (Envoy drains a removed cluster's connection pools,
   * `ClusterEntry::~ClusterEntry` in cluster_manager_impl.cc) — and begin closing after 30 s at
   * the latest. Until then the state (and through its TLS plans the old snapshot) stays
   * reachable, so a config that changes every few seconds must not keep each one for 30 s. Kept
   * until its pools closed, so that close() still bounds a call that outlives the 30 s.
   */
  #retire(cs: ClusterState): void {
    let closing = false;
    const close = () => {
      if (closing) return;
      closing = true;
      timer.clear();
      void cs.close().finally(() => this.#retired.delete(cs));
    };
    const timer = this.#o.clock.setTimer(close, 30_000);
    this.#retired.set(cs, timer);
    cs.whenIdle(close);
  }

  /** Clusters a snapshot removed whose pools have not closed yet. */
  get retiredClusters(): number {
    return this.#retired.size;
  }

  /** The state of a cluster of the current snapshot, made on first use. */
  #cluster(name: string): ClusterState | undefined {
    let cs = this.#clusters.get(name);
    if (cs !== undefined) return cs;
    const c = this.#snapshot.clusters.get(name);
    if (c === undefined) return undefined;
    cs = new ClusterState(c, this.#clusterContext);
    this.#clusters.set(name, cs);
    return cs;
  }

  /** Stops timers and closes every cluster's pools; calls in flight may finish for `graceMs`. */
  async close(graceMs?: number): Promise<void> {
    this.#closing = true;
    this.#stopBypassWatch?.();
    for (const m of this.#liveMirrors) m.abort();
    this.#liveMirrors.clear();
    this.deadlines.close();
    const retired = [...this.#retired.keys()];
    for (const t of this.#retired.values()) t.clear();
    this.#retired.clear();
    await Promise.all([...this.#clusters.values(), ...retired].map((c) => c.close(graceMs)));
    this.#clusters.clear();
  }
}

/** The mesh's TCP keepalive: the snapshot's when it carries one (`null`: none), else the option's. */
function meshKeepalive(mesh: Snapshot['meshSettings'], option: TcpKeepalive | undefined): TcpKeepalive | undefined {
  const k = mesh?.tcpKeepalive;
  return k === undefined ? option : (k ?? undefined);
}
