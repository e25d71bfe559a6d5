/**
 * The cluster compiler's output: a cluster's effective DestinationRule policy (top level,
 * port-level, subset and subset-port merged by `effectivePolicy`) resolved once per config into
 * the values the data plane runs with — the load balancer, the connection-pool limits and
 * connection settings, outlier detection, the retry budget — with Istio's and Envoy's defaults
 * applied, plus the TLS settings as declared. Immutable plain data: the data plane builds a
 * cluster's state from it (`ClusterState`), and `meshlet routes` prints it without building
 * any state.
 *
 * @module
 */
import { durationMs, formatDuration } from '../config/duration.ts';
import type { Service } from '../config/registry.ts';
import type { ClientTLSSettings, ConnectionPoolSettings, RetryBudget as RetryBudgetSettings } from '../config/types/destination-rule.ts';
import type { TrafficPolicy } from '../config/types/networking.ts';
import { type HashKeyPolicy, type ResolvedLoadBalancer, resolveLoadBalancer } from './balancer/lb-settings.ts';
import { trafficDistributionOf } from '../config/traffic-distribution.ts';
import { describeSlowStart } from './balancer/warmup.ts';
import { type ResolvedOutlierSettings, resolveOutlierSettings } from './outlier-settings.ts';

/** Istio's default for every connection-pool threshold (Envoy's max uint32). */
export const UNLIMITED = 0xffffffff;
/** Istio's default `maxRetries` threshold: 2^32 − 1 (Istio raises Envoy's default of 3). */
export const DEFAULT_MAX_RETRIES = 4_294_967_295;
/** Default `retryBudget.percent` (per the Istio API). */
export const DEFAULT_BUDGET_PERCENT = 20;
/** Default `retryBudget.minRetryConcurrency`. */
export const DEFAULT_MIN_RETRY_CONCURRENCY = 3;
/** Istio's default MeshConfig `connectTimeout`: the connect timeout of clusters whose DestinationRule sets no `connectionPool.tcp.connectTimeout`. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Envoy's default `max_concurrent_streams` towards an HTTP/2 upstream, as meshlet applies it. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 100;

/** The thresholds a cluster's pool enforces. */
export interface PoolLimits {
  /** Requests in flight: `maxRequests`, and for HTTP/1.1 also `maxConnections` (each request holds a connection). */
  readonly maxActive: number;
  /** `http2MaxRequests` (Envoy's `max_requests`): a hard cap — a request beyond it overflows, it never waits. */
  readonly maxRequests: number;
  readonly maxPending: number;
  readonly maxConnections: number;
  readonly maxRetries: number;
}

/** Istio treats 0 as unset for these fields (see reference §1.2). */
function limit(v: number | undefined): number {
  return v === undefined || v === 0 ? UNLIMITED : v;
}

/** The limits of a connection pool (`h2`: the upstream speaks HTTP/2, where requests share connections). */
export function poolLimits(pool: ConnectionPoolSettings | undefined, h2: boolean): PoolLimits {
  const maxConnections = limit(pool?.tcp?.maxConnections);
  const maxRequests = limit(pool?.http?.http2MaxRequests);
  return Object.freeze({
    maxActive: h2 ? maxRequests : Math.min(maxRequests, maxConnections),
    maxRequests,
    maxPending: limit(pool?.http?.http1MaxPendingRequests),
    maxConnections,
    maxRetries: limit(pool?.http?.maxRetries),
  });
}

/** TCP keepalive settings (Envoy's `tcp_keepalive`, whole seconds): an unset field leaves the platform's value. */
export interface TcpKeepalive {
  /** Idle time before the first probe. */
  readonly timeMs: number | undefined;
  /** Time between probes. */
  readonly intervalMs: number | undefined;
  /** Unanswered probes before the connection is dropped. */
  readonly probes: number | undefined;
}

/** `connectionPool` resolved: the limits the pool enforces and how connections are made and kept. */
export interface ResolvedConnectionPool {
  readonly limits: PoolLimits;
  /**
   * `tcp.connectTimeout`, else Istio's default MeshConfig `connectTimeout` (10 s). What a cluster
   * runs with is `effectiveConnectTimeoutMs` (cluster-settings.ts): the mesh's `connectTimeoutMs` in the place of
   * the default when the rule sets none ({@link connectTimeoutDeclared}).
   */
  readonly connectTimeoutMs: number;
  /** The DestinationRule sets `tcp.connectTimeout` (it wins over the mesh's `connectTimeoutMs`). */
  readonly connectTimeoutDeclared: boolean;
  /** `http.idleTimeout`, else `tcp.idleTimeout`; undefined (or not positive): the transport's own keep-alive defaults. */
  readonly idleTimeoutMs: number | undefined;
  /** `http.maxRequestsPerConnection` when positive; undefined: unlimited. */
  readonly maxRequestsPerConnection: number | undefined;
  /** `tcp.maxConnectionDuration` when positive: a connection this old takes no new requests and closes once its requests end; undefined: no limit. */
  readonly maxConnectionDurationMs: number | undefined;
  /** `http.maxConcurrentStreams` (default 100), used when the upstream speaks HTTP/2. */
  readonly maxConcurrentStreams: number;
  /** `tcp.tcpKeepalive`: TCP keepalive on the cluster's connections; undefined when not set (each transport keeps its own default). */
  readonly tcpKeepalive: TcpKeepalive | undefined;
  /** `http.http2KeepAlive`: HTTP/2 PINGs every `intervalMs`, the connection dropped when one is not answered within `timeoutMs`. */
  readonly http2KeepAlive: { readonly intervalMs: number; readonly timeoutMs: number } | undefined;
}

/** `retryBudget` (and the `maxRetries` threshold it replaces) resolved. */
export interface ResolvedRetryBudget {
  /** `retryBudget.percent` (default 20; an explicit 0 is kept); undefined: no budget, `maxRetries` applies. */
  readonly percent: number | undefined;
  /** `retryBudget.minRetryConcurrency` (default 3; 0 means the default). */
  readonly minRetryConcurrency: number;
  /** `connectionPool.http.maxRetries` (0 or unset: 2^32 − 1); ignored when a budget is set. */
  readonly maxRetries: number;
}

/**
 * Resolves `retryBudget` the way Envoy's `RetryBudgetImpl` reads it: `percent` defaults to 20
 * (an explicit 0 is kept: only `minRetryConcurrency` applies), `minRetryConcurrency` to 3 (0 or
 * unset means the default, as Istio does); `maxRetries` 0 or less means 2^32 − 1.
 */
export function resolveRetryBudget(settings: RetryBudgetSettings | undefined, maxRetries: number = DEFAULT_MAX_RETRIES): ResolvedRetryBudget {
  let percent: number | undefined;
  let minRetryConcurrency = DEFAULT_MIN_RETRY_CONCURRENCY;
  if (settings !== undefined) {
    const p = settings.percent;
    percent = p === undefined || !Number.isFinite(p) ? DEFAULT_BUDGET_PERCENT : Math.min(100, Math.max(0, p));
    const m = settings.minRetryConcurrency;
    if (m !== undefined && m > 0) minRetryConcurrency = Math.floor(m);
  }
  return Object.freeze({ percent, minRetryConcurrency, maxRetries: maxRetries > 0 ? Math.floor(maxRetries) : DEFAULT_MAX_RETRIES });
}

/**
 * The DestinationRule `tls` block of a cluster (top level, port level, subset and subset port
 * merged), as declared. The undici transport applies it: `DISABLE` plaintext, `SIMPLE` / `MUTUAL`
 * TLS origination with the files named here (read once per config), `ISTIO_MUTUAL` the mesh's
 * own certificate; without a block, auto-mTLS decides per endpoint (see `outbound/tls-decision.ts`).
 */
export interface DeclaredTls {
  readonly mode: NonNullable<ClientTLSSettings['mode']> | undefined;
  readonly sni: string | undefined;
  readonly subjectAltNames: readonly string[];
  readonly credentialName: string | undefined;
  readonly caCertificates: string | undefined;
  readonly clientCertificate: string | undefined;
  readonly privateKey: string | undefined;
  readonly caCrl: string | undefined;
  readonly insecureSkipVerify: boolean | undefined;
  /** The transport applies it (kept for tools that read the field). */
  readonly applied: true;
}

/**
 * A cluster's compiled settings: everything its data-plane state is built from.
 * @category Snapshot
 */
export interface ClusterSettings {
  readonly loadBalancer: ResolvedLoadBalancer;
  readonly connectionPool: ResolvedConnectionPool;
  /** Undefined: the cluster has no outlier detection. */
  readonly outlierDetection: ResolvedOutlierSettings | undefined;
  readonly retryBudget: ResolvedRetryBudget;
  /** Undefined: no `tls` block applies. */
  readonly tls: DeclaredTls | undefined;
  /**
   * The mesh's HTTP calls (fetch, undici) reach the upstream over HTTP/2: port protocol HTTP2, GRPC
   * or GRPC-WEB, or `h2UpgradePolicy: UPGRADE` — unless `useClientProtocol` keeps the protocol
   * those clients speak, HTTP/1.1 (gRPC calls are HTTP/2 either way).
   */
  readonly h2: boolean;
  /** Calls go to the request's original address instead of a picked endpoint (`PASSTHROUGH`, resolution NONE or DYNAMIC_DNS). */
  readonly passthrough: boolean;
}

/** What `meshlet routes` says of a cluster without a DestinationRule `tls` block. */
export const AUTO_MTLS_TEXT = 'auto-mTLS: mTLS to endpoints labelled security.istio.io/tlsMode=istio whose PeerAuthentication is not DISABLE (when this workload has a certificate), plaintext to the others';

const H2_PROTOCOLS = new Set(['HTTP2', 'GRPC', 'GRPC-WEB']);

function declaredTls(t: ClientTLSSettings): DeclaredTls {
  return Object.freeze({
    mode: t.mode,
    sni: t.sni,
    subjectAltNames: Object.freeze([...(t.subjectAltNames ?? [])]),
    credentialName: t.credentialName,
    caCertificates: t.caCertificates,
    clientCertificate: t.clientCertificate,
    privateKey: t.privateKey,
    caCrl: t.caCrl,
    insecureSkipVerify: t.insecureSkipVerify,
    applied: true,
  });
}

function connectionPool(pool: ConnectionPoolSettings | undefined, h2: boolean): ResolvedConnectionPool {
  const idle = durationMs(pool?.http?.idleTimeout) ?? durationMs(pool?.tcp?.idleTimeout);
  const perConn = pool?.http?.maxRequestsPerConnection;
  const maxAge = durationMs(pool?.tcp?.maxConnectionDuration);
  const connect = durationMs(pool?.tcp?.connectTimeout);
  return Object.freeze({
    limits: poolLimits(pool, h2),
    connectTimeoutMs: connect ?? DEFAULT_CONNECT_TIMEOUT_MS,
    connectTimeoutDeclared: connect !== undefined,
    idleTimeoutMs: idle !== undefined && idle > 0 ? idle : undefined,
    maxRequestsPerConnection: perConn !== undefined && perConn > 0 ? perConn : undefined,
    maxConnectionDurationMs: maxAge !== undefined && maxAge > 0 ? maxAge : undefined,
    maxConcurrentStreams: pool?.http?.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
    tcpKeepalive: tcpKeepalive(pool?.tcp?.tcpKeepalive),
    http2KeepAlive: http2KeepAlive(pool?.http?.http2KeepAlive),
  });
}

/** Istio sends whole seconds (`keepalive_time`, `keepalive_interval`); 0 or unset leaves the platform's value. */
function tcpKeepalive(k: { time?: string; interval?: string; probes?: number } | undefined): TcpKeepalive | undefined {
  if (k === undefined) return undefined;
  return wholeSecondsKeepalive(durationMs(k.time), durationMs(k.interval), k.probes);
}

/** Keepalive as istiod writes it (cluster.go setKeepAliveSettings): times in whole seconds, a 0 (under 1 s) or unset field left out, probes only when positive. */
export function wholeSecondsKeepalive(timeMs: number | undefined, intervalMs: number | undefined, probes: number | undefined): TcpKeepalive {
  const seconds = (ms: number | undefined): number | undefined => (ms !== undefined && ms >= 1000 ? Math.floor(ms / 1000) * 1000 : undefined);
  return Object.freeze({ timeMs: seconds(timeMs), intervalMs: seconds(intervalMs), probes: probes !== undefined && probes > 0 ? probes : undefined });
}

/**
 * The TCP keepalive a cluster's connections get, as istiod builds it (pilot/pkg/networking/core/
 * cluster.go `applyTCPKeepalive`): MeshConfig's `tcpKeepalive` (`mesh`) first, then each field the
 * DestinationRule's `tcp.tcpKeepalive` sets over it; undefined when neither is set (no keepalive
 * from the mesh: each transport's own default). The data plane and every view read it here.
 */
export function effectiveTcpKeepalive(p: ResolvedConnectionPool, mesh: TcpKeepalive | undefined): TcpKeepalive | undefined {
  const own = p.tcpKeepalive;
  if (mesh === undefined || own === undefined) return own ?? mesh;
  return Object.freeze({ timeMs: own.timeMs ?? mesh.timeMs, intervalMs: own.intervalMs ?? mesh.intervalMs, probes: own.probes ?? mesh.probes });
}

/** Istio requires both; a zero interval sends no PINGs (Envoy). */
function http2KeepAlive(k: { interval?: string; timeout?: string } | undefined): ResolvedConnectionPool['http2KeepAlive'] {
  const intervalMs = durationMs(k?.interval);
  const timeoutMs = durationMs(k?.timeout);
  if (intervalMs === undefined || timeoutMs === undefined || intervalMs <= 0) return undefined;
  return Object.freeze({ intervalMs, timeoutMs });
}

/**
 * Compiles the settings of one cluster from its effective traffic policy (per-port and subset
 * overrides already merged), its service and its port's protocol (upper-case, '' when unset).
 * Pure: the same inputs give equal settings.
 */
export function compileClusterSettings(policy: TrafficPolicy, service: Service, protocol: string): ClusterSettings {
  const lb = policy.loadBalancer;
  // The pool's limits follow the upstream protocol the port declares (gRPC calls are HTTP/2 whatever the rule says).
  const h2Port = H2_PROTOCOLS.has(protocol) || policy.connectionPool?.http?.h2UpgradePolicy === 'UPGRADE';
  const pool = connectionPool(policy.connectionPool, h2Port);
  // useClientProtocol (Envoy's use_downstream_protocol_config): the mesh's HTTP clients speak HTTP/1.1, so their calls stay HTTP/1.1.
  const h2 = h2Port && policy.connectionPool?.http?.useClientProtocol !== true;
  const od = policy.outlierDetection;
  return Object.freeze({
    loadBalancer: resolveLoadBalancer(lb, endpointsTiered(service) ? trafficDistributionOf(service.resource) : undefined),
    connectionPool: pool,
    outlierDetection: od === undefined ? undefined : resolveOutlierSettings(od),
    retryBudget: resolveRetryBudget(policy.retryBudget, pool.limits.maxRetries),
    tls: policy.tls === undefined ? undefined : declaredTls(policy.tls),
    h2,
    passthrough: lb?.simple === 'PASSTHROUGH' || service.resolution === 'NONE' || service.resolution === 'DYNAMIC_DNS',
  });
}

/**
 * Whether istiod tiers the cluster's endpoints: an EDS cluster, and since Istio 1.30 a DNS one
 * (resolution DNS, DNS_ROUND_ROBIN: cluster.go wraps its endpoints for failoverPriority, 225ab8ff1fc).
 * A passthrough one (NONE, DYNAMIC_DNS) has no endpoints, so a traffic distribution does nothing there.
 */
function endpointsTiered(service: Service): boolean {
  return service.resolution !== 'NONE' && service.resolution !== 'DYNAMIC_DNS';
}

const count = (n: number): string => (n === UNLIMITED ? '∞' : String(n));

function hashKeyText(k: HashKeyPolicy): string {
  switch (k.from) {
    case 'header':
      return `header ${k.name}`;
    case 'source-ip':
      return 'source IP';
    case 'query':
      return `query ${k.name}`;
    case 'cookie': {
      const g = k.generate;
      if (g === undefined) return `cookie ${k.name}`;
      return `cookie ${k.name} (generated${g.maxAgeS === undefined ? ', session' : `, max-age ${g.maxAgeS}s`}${g.path === undefined ? '' : `, path ${g.path}`})`;
    }
    default:
      return 'no key (random)';
  }
}

/** `RING_HASH (ring of 1024, hash on header x-user)`, `LEAST_REQUEST (warmup 30s …)`, locality setting included. */
export function describeLoadBalancer(lb: ResolvedLoadBalancer): string {
  const parts: string[] = [];
  if (lb.kind === 'RING_HASH') parts.push(`min ring ${lb.tableSize}`);
  if (lb.kind === 'MAGLEV') parts.push(`table ${lb.tableSize}`);
  if (lb.hashKey !== undefined) parts.push(`hash on ${hashKeyText(lb.hashKey)}`);
  if (lb.slowStart !== undefined) parts.push(describeSlowStart(lb.slowStart));
  const l = lb.locality;
  if (l?.enabled === false) parts.push('locality off');
  else if (l !== undefined) {
    if ((l.distribute ?? []).length > 0) parts.push(`locality distribute (${l.distribute?.length} rule${l.distribute?.length === 1 ? '' : 's'})`);
    if ((l.failover ?? []).length > 0) parts.push(`locality failover ${l.failover?.map((f) => `${f.from ?? '*'}→${f.to ?? '*'}`).join(', ')}`);
    if ((l.failoverPriority ?? []).length > 0) parts.push(`${lb.trafficDistribution === undefined ? '' : `trafficDistribution ${lb.trafficDistribution}: `}failoverPriority ${l.failoverPriority?.join(', ')}`);
  }
  return parts.length === 0 ? lb.kind : `${lb.kind} (${parts.join(', ')})`;
}

/**
 * The connect timeout a cluster runs with, as istiod writes each cluster's `connect_timeout`: the
 * DestinationRule's `tcp.connectTimeout`, else MeshConfig's `connectTimeout` (`meshMs`: the mesh's
 * `connectTimeoutMs`), else Istio's default 10 s. The data plane and every view read it here.
 */
export function effectiveConnectTimeoutMs(p: ResolvedConnectionPool, meshMs: number | undefined): number {
  return p.connectTimeoutDeclared ? p.connectTimeoutMs : (meshMs ?? p.connectTimeoutMs);
}

/**
 * `active ∞, pending ∞, connections ∞, connect timeout 10s, HTTP/1.1`; `meshConnectTimeoutMs`:
 * MeshConfig's `connectTimeout`, shown for a cluster whose DestinationRule sets none;
 * `meshTcpKeepalive`: MeshConfig's `tcpKeepalive`, under the DestinationRule's fields.
 */
export function describeConnectionPool(p: ResolvedConnectionPool, h2: boolean, meshConnectTimeoutMs?: number, meshTcpKeepalive?: TcpKeepalive): string {
  const l = p.limits;
  const parts = [`active ${count(l.maxActive)}`, `pending ${count(l.maxPending)}`, `connections ${count(l.maxConnections)}`, `connect timeout ${formatDuration(effectiveConnectTimeoutMs(p, meshConnectTimeoutMs))}`];
  if (p.idleTimeoutMs !== undefined) parts.push(`idle timeout ${formatDuration(p.idleTimeoutMs)}`);
  if (p.maxRequestsPerConnection !== undefined) parts.push(`${p.maxRequestsPerConnection} requests per connection`);
  if (p.maxConnectionDurationMs !== undefined) parts.push(`connections retired after ${formatDuration(p.maxConnectionDurationMs)}`);
  parts.push(h2 ? `HTTP/2, ${p.maxConcurrentStreams} streams per connection` : 'HTTP/1.1');
  const k = effectiveTcpKeepalive(p, meshTcpKeepalive);
  if (k !== undefined) parts.push(describeTcpKeepalive(k));
  if (h2 && p.http2KeepAlive !== undefined) parts.push(`PING every ${formatDuration(p.http2KeepAlive.intervalMs)}, timeout ${formatDuration(p.http2KeepAlive.timeoutMs)}`);
  return parts.join(', ');
}

/** `TCP keepalive (idle 30s, interval 5s, 3 probes)`; `platform defaults` for the fields not set. */
export function describeTcpKeepalive(k: TcpKeepalive): string {
  const set = [k.timeMs === undefined ? '' : `idle ${formatDuration(k.timeMs)}`, k.intervalMs === undefined ? '' : `interval ${formatDuration(k.intervalMs)}`, k.probes === undefined ? '' : `${k.probes} probes`].filter((x) => x !== '');
  return `TCP keepalive (${set.length === 0 ? 'platform defaults' : set.join(', ')})`;
}

/** `maxRetries ∞` or `retry budget 20% of active requests, min 3`. */
export function describeRetryBudget(b: ResolvedRetryBudget): string {
  return b.percent === undefined ? `maxRetries ${count(b.maxRetries)}` : `retry budget ${b.percent}% of active requests, min ${b.minRetryConcurrency}`;
}

/** `consecutive 5xx 5, gateway off, interval 10s, base ejection 30s, max ejection 10%`. */
export function describeOutlierDetection(s: ResolvedOutlierSettings): string {
  const n = (v: number) => (v === 0 ? 'off' : String(v));
  const parts = [`consecutive 5xx ${n(s.consecutive5xx)}`, `gateway ${n(s.consecutiveGateway)}`];
  if (s.splitLocalOrigin) parts.push(`local origin ${s.consecutiveLocalOrigin}`);
  parts.push(`interval ${formatDuration(s.intervalMs)}`, `base ejection ${formatDuration(s.baseEjectionMs)}`, `max ejection ${s.maxEjectionPercent}%`);
  if (s.errorCodes !== undefined) parts.push(`error codes ${[...s.errorCodes].join(',')}`);
  return parts.join(', ');
}

/** `SIMPLE, sni x, SANs a,b`; a block without a mode is DISABLE (the enum's zero value). */
export function describeTls(t: DeclaredTls): string {
  const parts = [t.mode ?? 'DISABLE (mode unset)'];
  if (t.sni !== undefined) parts.push(`sni ${t.sni}`);
  if (t.subjectAltNames.length > 0) parts.push(`SANs ${t.subjectAltNames.join(',')}`);
  if (t.credentialName !== undefined) parts.push(`credential ${t.credentialName}`);
  if (t.caCertificates !== undefined) parts.push(`CA ${t.caCertificates}`);
  if (t.clientCertificate !== undefined) parts.push(`cert ${t.clientCertificate}`);
  if (t.privateKey !== undefined) parts.push(`key ${t.privateKey}`);
  if (t.caCrl !== undefined) parts.push(`CRL ${t.caCrl}`);
  if (t.insecureSkipVerify === true) parts.push('insecureSkipVerify');
  if (t.mode === 'ISTIO_MUTUAL') parts.push("the mesh's certificate");
  if (t.credentialName !== undefined && t.credentialName !== '' && (t.mode === 'SIMPLE' || t.mode === 'MUTUAL')) parts.push('calls fail: credentialName cannot be resolved without Kubernetes');
  return parts.join(', ');
}
