/**
 * The machine-readable views `meshlet routes -o json`, `meshlet explain -o json` and a mesh's
 * admin endpoint (`/config_dump`) give of compiled routes, virtual hosts and clusters: plain
 * data, every field present (null when it does not apply), so scripts can rely on the shape
 * documented in docs/cli.md. Clusters are viewed from the snapshot alone (their compiled
 * settings): no data-plane state is built.
 *
 * @module
 */
import type { LocalityLoadBalancerSetting } from '../config/types/destination-rule.ts';
import { HostState } from './balancer/host.ts';
import { clusterLocalityPlan } from './balancer/picker.ts';
import {
  type ClusterSettings,
  describeConnectionPool,
  describeLoadBalancer,
  describeOutlierDetection,
  describeRetryBudget,
  describeTls,
  AUTO_MTLS_TEXT,
  effectiveConnectTimeoutMs,
  effectiveTcpKeepalive,
  type TcpKeepalive,
} from './cluster-settings.ts';
import type { AppliedSidecar } from './compile.ts';
import type { CompiledRoute, Cluster, RouteTarget, VirtualHost } from './route-table.ts';
import { describeRoute } from './route-table.ts';
import { retryToString } from './route-policy.ts';

const percentOf = (weight: number, total: number): number => (total === 0 ? 100 : Math.round((10000 * weight) / total) / 100);

/** One weighted destination of a rule. */
export function destinationView(t: RouteTarget, total: number) {
  return {
    host: t.host,
    port: t.port,
    subset: t.subset ?? null,
    weight: t.weight,
    percent: percentOf(t.weight, total),
    cluster: t.cluster?.name ?? null,
    /** Why the cluster does not exist (the request would get 503 NC). */
    missing: t.missing ?? null,
  };
}

/** One compiled HTTP rule with its policies. */
export function routeView(r: CompiledRoute) {
  const total = r.cumulativeWeights[r.cumulativeWeights.length - 1] ?? 0;
  const f = r.fault;
  const forward = r.action === 'forward';
  return {
    name: r.name,
    virtualService: r.virtualService ?? null,
    /** Index of the rule in the VirtualService's `spec.http` (null for the default route). */
    index: r.virtualService === undefined ? null : r.index,
    /** The match blocks (ORed), one text each; empty: every request. */
    match: r.matchers.map(String),
    action: r.action,
    destinations: r.targets.map((t) => destinationView(t, total)),
    timeoutMs: r.timeoutMs ?? null,
    retries: forward
      ? {
          attempts: r.retry.attempts,
          perTryTimeoutMs: r.retry.perTryTimeoutMs ?? null,
          retryOn: [...r.retry.retryOn],
          retriableStatusCodes: [...r.retry.retriableStatusCodes],
          istioDefault: r.retry.isDefault && r.retry.meshDefault !== true,
          /** The route has no `retries`: the mesh's `defaultHttpRetryPolicy` applies. */
          meshDefault: r.retry.isDefault && r.retry.meshDefault === true,
          text: retryToString(r.retry),
        }
      : null,
    fault:
      f === undefined
        ? null
        : {
            delay: f.delayMs === undefined ? null : { fixedDelayMs: f.delayMs, percent: f.delayFraction * 100 },
            abort: f.abortHttpStatus === undefined && f.abortGrpcStatus === undefined ? null : { httpStatus: f.abortHttpStatus ?? null, grpcStatus: f.abortGrpcStatus ?? null, percent: f.abortFraction * 100 },
          },
    mirrors: r.mirrors.map((m) => ({ host: m.target.host, port: m.target.port, subset: m.target.subset ?? null, percent: m.fraction * 100, cluster: m.target.cluster?.name ?? null })),
    redirect: r.redirect === undefined ? null : { ...r.redirect },
    directResponse: r.directResponse === undefined ? null : { status: r.directResponse.status, body: r.directResponse.body?.toString('utf8') ?? null },
    /** The rule as `meshlet routes` prints it. */
    text: describeRoute(r),
  };
}

/** A virtual host: a service port (or a VirtualService-only host) and its rules in order. */
export function virtualHostView(vh: VirtualHost) {
  return {
    name: vh.name,
    host: vh.host,
    port: vh.port ?? null,
    virtualService: vh.virtualService ?? null,
    domains: [...vh.domains],
    routes: vh.routes.map(routeView),
  };
}

/** The client side of a cluster view: the workload's labels and locality (locality load balancing). */
export interface ClusterClient {
  readonly labels: Readonly<Record<string, string>>;
  /** `region/zone/subzone`, or ''. */
  readonly locality: string;
  /** MeshConfig's `localityLbSetting` (`--mesh-config`), for clusters whose DestinationRule and Service set none. */
  readonly meshLocality?: LocalityLoadBalancerSetting | undefined;
  /** MeshConfig's `connectTimeout` (`--mesh-config`, `createMesh({ connectTimeoutMs })`), for clusters whose DestinationRule sets none; undefined: Istio's 10 s. */
  readonly meshConnectTimeoutMs?: number | undefined;
  /** MeshConfig's `tcpKeepalive` (`--mesh-config`, `createMesh({ tcpKeepalive })`), under the fields a DestinationRule's `tcp.tcpKeepalive` sets. */
  readonly meshTcpKeepalive?: TcpKeepalive | undefined;
}

/**
 * The priority tiers locality load balancing makes of a cluster's endpoints for this client
 * (`locality failover from us-east/a/1: P0 1, P1 2`), '' when locality plays no part. Planned
 * from the snapshot's endpoints as a picker would plan them; no picker is built.
 */
export function localityPlan(c: Cluster, client: ClusterClient): string {
  const hosts = c.endpoints.map((e) => new HostState(e));
  return clusterLocalityPlan(hosts, c.settings.loadBalancer, { locality: client.locality, labels: client.labels, outlierDetection: c.settings.outlierDetection !== undefined, meshLocality: client.meshLocality }).description;
}

/**
 * A cluster's compiled settings as plain data (every field present, null when it does not apply);
 * `meshConnectTimeoutMs`: MeshConfig's `connectTimeout`, the connect timeout of a cluster whose
 * DestinationRule sets none; `meshTcpKeepalive`: MeshConfig's `tcpKeepalive`, under the rule's fields.
 */
export function clusterSettingsView(s: ClusterSettings, meshConnectTimeoutMs?: number, meshTcpKeepalive?: TcpKeepalive) {
  const lb = s.loadBalancer;
  const od = s.outlierDetection;
  const pool = s.connectionPool;
  const keepalive = effectiveTcpKeepalive(pool, meshTcpKeepalive);
  return {
    loadBalancer: {
      kind: lb.kind,
      tableSize: lb.tableSize ?? null,
      hashKey: lb.hashKey === undefined ? null : { ...lb.hashKey, ...(lb.hashKey.from === 'cookie' ? { generate: lb.hashKey.generate === undefined ? null : { ...lb.hashKey.generate, maxAgeS: lb.hashKey.generate.maxAgeS ?? null, path: lb.hashKey.generate.path ?? null } } : {}) },
      slowStart: lb.slowStart === undefined ? null : { ...lb.slowStart },
      locality: lb.locality === undefined ? null : structuredClone(lb.locality),
    },
    connectionPool: {
      ...pool.limits,
      connectTimeoutMs: effectiveConnectTimeoutMs(pool, meshConnectTimeoutMs),
      idleTimeoutMs: pool.idleTimeoutMs ?? null,
      maxRequestsPerConnection: pool.maxRequestsPerConnection ?? null,
      maxConnectionDurationMs: pool.maxConnectionDurationMs ?? null,
      maxConcurrentStreams: pool.maxConcurrentStreams,
      tcpKeepalive: keepalive === undefined ? null : { timeMs: keepalive.timeMs ?? null, intervalMs: keepalive.intervalMs ?? null, probes: keepalive.probes ?? null },
      http2KeepAlive: pool.http2KeepAlive === undefined ? null : { ...pool.http2KeepAlive },
    },
    outlierDetection:
      od === undefined
        ? null
        : {
            consecutive5xx: od.consecutive5xx,
            consecutiveGateway: od.consecutiveGateway,
            consecutiveLocalOrigin: od.consecutiveLocalOrigin,
            splitLocalOrigin: od.splitLocalOrigin,
            intervalMs: od.intervalMs,
            baseEjectionMs: od.baseEjectionMs,
            maxEjectionMs: od.maxEjectionMs,
            maxEjectionPercent: od.maxEjectionPercent,
            errorCodes: od.errorCodes === undefined ? null : [...od.errorCodes],
          },
    retryBudget: { percent: s.retryBudget.percent ?? null, minRetryConcurrency: s.retryBudget.minRetryConcurrency, maxRetries: s.retryBudget.maxRetries },
    tls:
      s.tls === undefined
        ? null
        : Object.fromEntries(Object.entries(s.tls).map(([k, v]) => [k, v === undefined ? null : Array.isArray(v) ? [...v] : v])),
    h2: s.h2,
    passthrough: s.passthrough,
  };
}

/** One line per concern of a cluster's compiled settings, as `meshlet routes` prints them (`lb: …`, `pool: …`). */
export function clusterSettingsLines(c: Cluster, client: ClusterClient): string[] {
  const s = c.settings;
  const plan = localityPlan(c, client);
  const lines = [`lb: ${describeLoadBalancer(s.loadBalancer)}${plan === '' ? '' : `; ${plan}`}${s.passthrough ? '; passthrough to the original address' : ''}`];
  lines.push(`pool: ${describeConnectionPool(s.connectionPool, s.h2, client.meshConnectTimeoutMs, client.meshTcpKeepalive)}; retries: ${describeRetryBudget(s.retryBudget)}`);
  if (s.outlierDetection !== undefined) lines.push(`outlier detection: ${describeOutlierDetection(s.outlierDetection)}`);
  lines.push(`tls: ${s.tls !== undefined ? describeTls(s.tls) : s.passthrough || c.service.location === 'MESH_EXTERNAL' ? 'plaintext (no DestinationRule tls; auto-mTLS does not apply to external or passthrough destinations)' : AUTO_MTLS_TEXT}`);
  if (c.networkFilter !== undefined) lines.push(`network: ${c.networkFilter}`);
  return lines;
}

/** A cluster: its endpoints, the DestinationRule policy in effect and its compiled settings (from the snapshot alone). */
export function clusterView(c: Cluster, client: ClusterClient) {
  const s = c.settings;
  const plan = localityPlan(c, client);
  return {
    name: c.name,
    host: c.host,
    port: c.port,
    subset: c.subset ?? null,
    protocol: c.protocol,
    destinationRules: c.destinationRule?.rules.map((r) => r.ref) ?? [],
    /** The effective DestinationRule traffic policy (top level, port and subset merged), in Istio's fields. */
    trafficPolicy: c.policy,
    /** The compiled settings, one text each (as the text output prints them). */
    loadBalancer: describeLoadBalancer(s.loadBalancer),
    localityPlan: plan === '' ? null : plan,
    connectionPool: describeConnectionPool(s.connectionPool, s.h2, client.meshConnectTimeoutMs, client.meshTcpKeepalive),
    retryBudget: describeRetryBudget(s.retryBudget),
    outlierDetection: s.outlierDetection === undefined ? null : describeOutlierDetection(s.outlierDetection),
    tls: s.tls === undefined ? null : describeTls(s.tls),
    /** The compiled settings as data. */
    settings: clusterSettingsView(s, client.meshConnectTimeoutMs, client.meshTcpKeepalive),
    /** Multi-network: this workload's network and the endpoints reached through gateways (null when no network has a gateway). */
    network: c.networkFilter ?? null,
    endpoints: c.endpoints.map((e) => ({ endpoint: e.key, address: e.address, port: e.port, labels: { ...e.labels }, locality: e.locality, weight: e.weight, gateway: e.gateway === undefined ? null : { network: e.gateway.network, origin: e.gateway.origin, endpoints: [...e.gateway.endpoints] } })),
  };
}

/** The applied Sidecar: its egress listeners and outbound traffic policy (null: none applies). */
export function sidecarView(s: AppliedSidecar | undefined) {
  if (s === undefined) return null;
  const proxy = s.outboundTrafficPolicy?.egressProxy?.target;
  return {
    name: s.ref.replace(/^Sidecar /, ''),
    egress: s.scope.listeners.map((l) => ({ port: l.port ?? null, hosts: [...l.hosts] })),
    outboundTrafficPolicy: s.outboundTrafficPolicy?.mode ?? null,
    egressProxy: proxy === undefined ? null : `${proxy.host}:${proxy.port}${proxy.subset === undefined ? '' : ` subset ${proxy.subset}`}${proxy.cluster === undefined ? ` (missing: ${proxy.missing})` : ''}`,
  };
}
