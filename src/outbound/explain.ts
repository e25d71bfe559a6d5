/**
 * `mesh.explain(request)`: how a request would be routed and treated, without sending it —
 * like `istioctl x describe` and `proxy-config` for one request.
 *
 * @module
 */
import { formatDuration } from '../config/duration.ts';
import { describeTcpKeepalive, type TcpKeepalive } from '../routing/cluster-settings.ts';
import { whyNotInMesh } from '../config/host-lookup.ts';
import { whyOutOfScope } from '../config/sidecar-scope.ts';
import { normalizeHeaderObject } from '../core/headers.ts';
import { normalizePath } from '../core/path-normalization.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import type { Headers } from '../core/exchange.ts';
import { type RequestHead, routingAuthority } from '../routing/request-head.ts';
import { describeRoute, type CompiledRoute, NO_ROUTE, type RouteDecision, type RouteTarget } from '../routing/route-table.ts';
import type { Snapshot } from '../routing/compile.ts';
import { type FaultPolicy, retryToString } from '../routing/route-policy.ts';
import type { ClusterState } from './cluster-state.ts';
import type { Outbound } from './pipeline.ts';

/**
 * The request to explain.
 * @category Mesh
 */
export interface ExplainRequest {
  /** Full URL, e.g. `http://reviews:9080/reviews/1`. */
  readonly url: string;
  /**
   * `DELETE`, `GET`, `HEAD`, `OPTIONS`, `POST` and `PUT` in any case are taken upper-cased, as
   * `mesh.fetch` sends them (the Fetch standard's method normalization); other methods as given.
   * @defaultValue 'GET'
   */
  readonly method?: string | undefined;
  readonly headers?: Readonly<Record<string, string | readonly string[]>> | undefined;
}

const FETCH_NORMALIZED = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
/** The method as `fetch` puts it on the wire. */
function wireMethod(m: string): string {
  const up = m.toUpperCase();
  return FETCH_NORMALIZED.has(up) ? up : m;
}

/**
 * An endpoint as the data plane sees it now.
 * @category Mesh
 */
export interface ExplainedEndpoint {
  readonly endpoint: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly locality: string;
  readonly inFlight: number;
  readonly ejected: boolean;
  /** Why it is ejected and until when (ms from now), when it is. */
  readonly ejection: string | undefined;
  /** The TLS a call to it would use and why (`ISTIO_MUTUAL [sni …] — auto-mTLS: …`, `plaintext — …`). */
  readonly tls?: string;
  /** Multi-network: this endpoint is the east-west gateway of another network, for these endpoints there (`gateway of network2 (Service ns/name) for 10.1.0.5:8080`). */
  readonly gateway?: string;
}

/** Says which TLS a call would use to an endpoint (the transport decides; explain only asks). */
export type TlsExplainer = (cs: ClusterState, endpoint: ClusterState['cluster']['endpoints'][number] | undefined, scheme: string) => string;

/**
 * One candidate destination.
 * @category Mesh
 */
export interface ExplainedTarget {
  readonly destination: string;
  /** Share of traffic, percent. */
  readonly sharePercent: number;
  readonly cluster: string | undefined;
  /** Why the cluster is missing (503 NC), when it is. */
  readonly missing: string | undefined;
  readonly loadBalancer: string | undefined;
  /**
   * The pool's requests now against its limits, and the connect timeout new connections get (the
   * DestinationRule's `tcp.connectTimeout`, else the mesh's `connectTimeoutMs`):
   * `active 0/∞, pending 0/∞, overflows 0, connect timeout 10s`; for ALLOW_ANY's
   * `PassthroughCluster` (a `passthrough` outcome's one target), `no limits, connect timeout 10s`
   * with the mesh's connect timeout. Either ends with `, TCP keepalive (idle 300s)` when new
   * connections get one (the DestinationRule's `tcp.tcpKeepalive` over MeshConfig's `tcpKeepalive`).
   */
  readonly connectionPool: string | undefined;
  readonly outlierDetection: string | undefined;
  /**
   * The destination's cap on concurrent retries: its DestinationRule `retryBudget` with how many
   * retries it allows now, or `connectionPool.http.maxRetries` (`maxRetries unlimited (2^32-1), 0 active`).
   */
  readonly retryBudget?: string;
  readonly endpoints: readonly ExplainedEndpoint[];
  /** Why endpoints of the service were left out (`internalTrafficPolicy: Local`), when some may have been. */
  readonly endpointFilter?: string;
  /** Multi-network (a network has a gateway): this workload's network and which endpoints go through which gateway. */
  readonly network?: string;
  /** A passthrough cluster (no endpoints): the TLS calls to the original destination use. */
  readonly tls?: string;
  /**
   * A `resolution: DNS` cluster (STRICT_DNS): each name its endpoints stand for, with the
   * addresses of its last answer (`db.example.com → 10.0.0.1, 10.0.0.2`) or `resolving`.
   */
  readonly dns?: readonly string[];
}

/**
 * The explanation.
 * @category Mesh
 */
export interface Explanation {
  /**
   * `routed`, `no-route` (404 NR), `passthrough` (host outside the mesh, or outside the Sidecar's
   * egress, with ALLOW_ANY), `registry-only` (the same with REGISTRY_ONLY: 502), `redirect`,
   * `direct-response`, `invalid-path` (a call to a mesh host whose path the MeshConfig
   * `pathNormalization` cannot normalize, such as one with `%00`: 400, as Envoy's connection
   * manager answers before routing). A Sidecar's `egressProxy` makes such calls `routed` (virtual
   * host `allow_any`).
   */
  readonly outcome: 'routed' | 'no-route' | 'passthrough' | 'registry-only' | 'redirect' | 'direct-response' | 'invalid-path';
  /** For `invalid-path`: the answer the call gets and why. */
  readonly refusal?: string;
  /** The Sidecar that applies to this workload (`Sidecar namespace/name`), if one does. */
  readonly sidecar?: string;
  /** For a host the applied Sidecar leaves out: which of its egress hosts do (or that the host is in no registry). */
  readonly scope?: string;
  /**
   * For `passthrough` and `registry-only` without a Sidecar: why the host matched no service — the
   * service it names is on other ports (`reviews.default.svc.cluster.local is in the mesh on port
   * 9080 (HTTP), not 8080`), or no service has that name (with the nearest names, for a typo).
   */
  readonly notInMesh?: string;
  /** For `passthrough` and `registry-only`, and the egress proxy route: where the outboundTrafficPolicy comes from (`Sidecar ns/name`, or `mesh`). */
  readonly outboundTrafficPolicy?: string;
  readonly virtualHost: string | undefined;
  /** The rule that matched, with its match blocks and policies. */
  readonly route: string | undefined;
  /** Rules tried before it, which did not match. */
  readonly skipped: readonly string[];
  readonly retry: string | undefined;
  readonly timeout: string | undefined;
  readonly fault: string | undefined;
  readonly mirrors: readonly string[];
  /** The destinations with their shares; for `passthrough`, ALLOW_ANY's `PassthroughCluster` to the address the URL names. */
  readonly targets: readonly ExplainedTarget[];
  /**
   * The outbound local rate limit filters (EnvoyFilters for SIDECAR_OUTBOUND) that look at the
   * call, each with the buckets it would take a token from; absent when none applies.
   */
  readonly rateLimits?: readonly string[];
  /** Prints the explanation on a few lines. */
  toString(): string;
}

/** Envoy's name for the cluster of calls to hosts outside the mesh under ALLOW_ANY. */
const PASSTHROUGH_CLUSTER = 'PassthroughCluster';

function endpointsOf(cs: ClusterState | undefined, now: number, tls: TlsExplainer | undefined, scheme: string): ExplainedEndpoint[] {
  if (cs === undefined) return [];
  return cs.hostSet.hosts.map((h) => ({
    ...(tls === undefined ? {} : { tls: tls(cs, h.endpoint, scheme) }),
    endpoint: h.key,
    ...(h.endpoint.gateway === undefined ? {} : { gateway: `east-west gateway of network ${h.endpoint.gateway.network} (${h.endpoint.gateway.origin}) for ${h.endpoint.gateway.endpoints.join(', ')}` }),
    labels: h.endpoint.labels,
    locality: h.endpoint.locality,
    inFlight: h.active,
    ejected: h.ejected,
    ejection: h.ejected ? `${h.ejectReason}; returns in ${Math.max(0, Math.round(h.ejectedUntil - now))} ms` : undefined,
  }));
}

/** `text` naming where the mesh's defaultHttpRetryPolicy came from (the control plane's MeshConfig), when the route takes it and that is known. */
function retryFrom(text: string, route: CompiledRoute, snapshot: Snapshot): string {
  const origin = route.retry.meshDefault === true ? snapshot.meshSettings?.origin?.defaultHttpRetryPolicy : undefined;
  return origin === undefined ? text : text.replace('(mesh defaultHttpRetryPolicy)', `(mesh defaultHttpRetryPolicy, from ${origin})`);
}

function target(o: Outbound, t: RouteTarget, total: number, now: number, tls: TlsExplainer | undefined, scheme: string): ExplainedTarget {
  const cs = t.cluster === undefined ? undefined : o.clusterState(t.cluster.name);
  // Where a mesh-wide connect timeout came from (the control plane's MeshConfig), when the DestinationRule sets none.
  const ctoFrom = cs === undefined || cs.cluster.settings.connectionPool.connectTimeoutDeclared ? undefined : o.snapshot.meshSettings?.origin?.connectTimeout;
  return {
    destination: `${t.host}:${t.port}${t.subset === undefined ? '' : ` subset ${t.subset}`}`,
    sharePercent: total === 0 ? 100 : Math.round((10000 * t.weight) / total) / 100,
    cluster: t.cluster?.name,
    missing: t.missing,
    loadBalancer: cs?.picker.toString(),
    connectionPool: cs === undefined ? undefined : `${cs.limiter.toString()}, connect timeout ${formatDuration(cs.connectTimeoutMs)}${ctoFrom === undefined ? '' : ` (${ctoFrom})`}${keepaliveText(cs.tcpKeepalive)}`,
    outlierDetection: cs?.detector?.toString(),
    ...(cs === undefined ? {} : { retryBudget: cs.budget.describe(cs.limiter.active + cs.limiter.pending) }),
    endpoints: endpointsOf(cs, now, tls, scheme),
    ...(t.cluster?.endpointFilter === undefined ? {} : { endpointFilter: t.cluster.endpointFilter }),
    ...(t.cluster?.networkFilter === undefined ? {} : { network: t.cluster.networkFilter }),
    ...(tls !== undefined && cs !== undefined && cs.hostSet.hosts.length === 0 && cs.passthrough ? { tls: tls(cs, undefined, scheme) } : {}),
    ...(cs === undefined || cs.dnsTargets.size === 0 ? {} : { dns: [...cs.dnsTargets.values()].map(String) }),
  };
}

/** `, TCP keepalive (…)` when the connections get one (a DestinationRule's over MeshConfig's), else ''. */
function keepaliveText(k: TcpKeepalive | undefined): string {
  return k === undefined ? '' : `, ${describeTcpKeepalive(k)}`;
}

/**
 * ALLOW_ANY's PassthroughCluster as a call to `u` gets it: the address the URL names, no limits,
 * and the mesh's connect timeout, as istiod builds it (pilot/pkg/networking/core/cluster_builder.go
 * `buildDefaultPassthroughCluster`: ORIGINAL_DST, `ConnectTimeout: Mesh.ConnectTimeout`, the
 * default circuit-breaker thresholds at their maximum, MeshConfig's `tcpKeepalive` through
 * applyConnectionPool) and as the mesh's transports connect.
 */
function passthroughTarget(o: Outbound, u: URL): ExplainedTarget {
  const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
  return {
    destination: `${u.hostname}:${port}`,
    sharePercent: 100,
    cluster: PASSTHROUGH_CLUSTER,
    missing: undefined,
    loadBalancer: 'ORIGINAL_DST (the address the URL names)',
    connectionPool: `no limits, connect timeout ${formatDuration(o.connectTimeoutMs)}${keepaliveText(o.tcpKeepalive)}`,
    outlierDetection: undefined,
    endpoints: [],
  };
}

/** `delay 100ms @50%, abort 503 @20%`: only the parts the rule sets (an abort alone is not a 0 ms delay). */
function faultText(f: FaultPolicy): string {
  const parts: string[] = [];
  if (f.delayMs !== undefined) parts.push(`delay ${f.delayMs}ms @${f.delayFraction * 100}%`);
  const status = f.abortHttpStatus ?? f.abortGrpcStatus;
  if (status !== undefined) parts.push(`abort ${status} @${f.abortFraction * 100}%`);
  return parts.length === 0 ? 'none (the fault sets no delay and no abort status)' : parts.join(', ');
}

function print(e: Omit<Explanation, 'toString'>): string {
  const lines = [`${e.outcome}${e.virtualHost ? ` via virtual host ${e.virtualHost}` : ''}`];
  if (e.refusal !== undefined) lines.push(`  refused: ${e.refusal}`);
  if (e.sidecar !== undefined) lines.push(`  sidecar: ${e.sidecar}`);
  if (e.scope !== undefined) lines.push(`  out of scope: ${e.scope}`);
  if (e.notInMesh !== undefined) lines.push(`  not in the mesh: ${e.notInMesh}`);
  if (e.outboundTrafficPolicy !== undefined) lines.push(`  outboundTrafficPolicy: ${e.outboundTrafficPolicy}`);
  for (const s of e.skipped) lines.push(`  skipped: ${s.split('\n')[0]}`);
  if (e.route) lines.push(`  matched: ${e.route.replace(/\n/g, '\n  ')}`);
  for (const r of e.rateLimits ?? []) lines.push(`  rate limit: ${r}`);
  for (const t of e.targets) {
    lines.push(`  → ${t.destination} ${t.sharePercent}%${t.cluster ? ` [${t.cluster}]` : ` [missing: ${t.missing}]`}`);
    if (t.loadBalancer) lines.push(`      lb: ${t.loadBalancer}`);
    if (t.connectionPool) lines.push(`      pool: ${t.connectionPool}`);
    if (t.retryBudget) lines.push(`      retries: ${t.retryBudget}`);
    if (t.outlierDetection) lines.push(`      ${t.outlierDetection}`);
    if (t.tls) lines.push(`      tls: ${t.tls}`);
    for (const d of t.dns ?? []) lines.push(`      dns: ${d}`);
    if (t.endpointFilter) lines.push(`      endpoints: ${t.endpointFilter}${t.endpoints.length === 0 ? ' — none there (503 UH)' : ''}`);
    if (t.network) lines.push(`      network: ${t.network}`);
    for (const ep of t.endpoints) {
      lines.push(`      ${ep.endpoint} ${JSON.stringify(ep.labels)}${ep.locality ? ` ${ep.locality}` : ''} in-flight ${ep.inFlight}${ep.ejected ? ` EJECTED: ${ep.ejection}` : ''}`);
      if (ep.gateway) lines.push(`        via: ${ep.gateway}`);
      if (ep.tls) lines.push(`        tls: ${ep.tls}`);
    }
  }
  return lines.join('\n');
}

/** Explains `req` against the outbound state. */
export function explain(o: Outbound, req: ExplainRequest, tls?: TlsExplainer): Explanation {
  if (req === null || typeof req !== 'object' || typeof req.url !== 'string') {
    throw new InvalidArgumentError(`mesh.explain: expects a request { url, method?, headers? }, got ${typeof req === 'string' ? `the string ${JSON.stringify(req)} (write { url: ${JSON.stringify(req)} })` : req === null ? 'null' : typeof req === 'object' ? 'an object without a string url' : typeof req}`);
  }
  let u: URL;
  try {
    u = new URL(req.url);
  } catch {
    throw new InvalidArgumentError(`mesh.explain: url ${JSON.stringify(req.url)} is not an absolute URL (e.g. http://reviews:9080/)`);
  }
  const headers: Headers = normalizeHeaderObject(req.headers ?? {});
  const requestTarget = `${u.pathname}${u.search}`;
  const normalized = normalizePath(requestTarget, o.pathNormalization);
  const head: RequestHead = {
    method: wireMethod(req.method ?? 'GET'),
    scheme: u.protocol.slice(0, -1),
    authority: typeof headers.host === 'string' ? headers.host : u.host,
    // Routed as a call is: its path normalized first (a path that cannot be is left as it is here).
    path: normalized ?? requestTarget,
    headers,
    urlAuthority: u.host,
  };
  const now = o.clock.now();
  const snapshot = o.snapshot;
  const routes = snapshot.routes;
  const vhost = routes.virtualHost(routingAuthority(head), head.scheme);
  const applied = snapshot.sidecar;
  const sidecar = applied === undefined ? {} : { sidecar: applied.ref };
  const base = { ...sidecar, retry: undefined, timeout: undefined, fault: undefined, mirrors: [], targets: [], skipped: [] as string[], route: undefined };
  let e: Omit<Explanation, 'toString'>;
  let matchedDecision: RouteDecision | undefined;
  const policy = o.unknownHosts;
  const egressProxy = vhost === undefined ? policy.egressProxy?.route : undefined;
  // Why no virtual host serves the call: the Sidecar leaves the host out, or it is not in the mesh (passthrough, registry-only or the egress proxy alike).
  let unknown: { scope?: string; notInMesh?: string } = {};
  if (vhost === undefined) {
    const colon = head.authority.lastIndexOf(':');
    const hasPort = colon > -1 && !head.authority.endsWith(']');
    const named = hasPort ? head.authority.slice(0, colon) : head.authority;
    // An IPv6 address without its brackets, as the registry holds addresses (`[::1]` is `::1`).
    const host = named.startsWith('[') && named.endsWith(']') ? named.slice(1, -1) : named;
    const port = hasPort ? Number(head.authority.slice(colon + 1)) : head.scheme === 'https' ? 443 : 80;
    const elsewhere = routedElsewhere(snapshot, host);
    const scope = applied === undefined ? undefined : withNote(whyOutOfScope(applied.scope, snapshot.registry, host, port), elsewhere);
    const notInMesh = applied === undefined ? withNote(whyNotInMesh(snapshot.registry, snapshot.workload.namespace, host, port), elsewhere) : undefined;
    unknown = { ...(scope === undefined ? {} : { scope }), ...(notInMesh === undefined ? {} : { notInMesh }) };
  }
  if (vhost !== undefined && normalized === undefined) {
    // The route layer refuses it (a host outside the mesh keeps its path and is passed through).
    e = { ...base, outcome: 'invalid-path', virtualHost: vhost.name, refusal: `400: path ${JSON.stringify(requestTarget)} cannot be normalized (pathNormalization ${o.pathNormalization})` };
  } else if (vhost === undefined && egressProxy === undefined) {
    e = {
      ...base,
      ...unknown,
      outboundTrafficPolicy: `${policy.mode} (${policy.source === '' ? (snapshot.meshSettings?.origin?.outboundTrafficPolicy ?? 'the mesh’s') : policy.source})`,
      outcome: policy.mode === 'REGISTRY_ONLY' ? 'registry-only' : 'passthrough',
      virtualHost: undefined,
      targets: policy.mode === 'REGISTRY_ONLY' ? [] : [passthroughTarget(o, u)],
    };
  } else {
    const scratch = { queryStart: head.path.indexOf('?'), query: undefined };
    const skipped: string[] = [];
    let matched: CompiledRoute | undefined = egressProxy;
    if (egressProxy !== undefined) matchedDecision = policy.egressProxy;
    for (const r of vhost?.routes ?? []) {
      if (r.matchers.length === 0 || r.matchers.some((m) => m.matches(head, scratch))) {
        matched = r;
        break;
      }
      skipped.push(describeRoute(r));
    }
    if (matched !== undefined && matched !== egressProxy) matchedDecision = matched.decisions[0];
    const vhostName = vhost?.name ?? 'allow_any';
    const via = egressProxy === undefined ? {} : { outboundTrafficPolicy: `${policy.mode} with egressProxy (${policy.source})` };
    if (matched === undefined) e = { ...base, skipped, outcome: 'no-route', virtualHost: vhostName };
    else {
      const total = matched.cumulativeWeights[matched.cumulativeWeights.length - 1] ?? 0;
      const f = matched.fault;
      e = {
        ...sidecar,
        ...unknown,
        ...via,
        outcome: matched.action === 'forward' ? 'routed' : matched.action,
        virtualHost: vhostName,
        route: retryFrom(describeRoute(matched), matched, snapshot),
        skipped,
        retry: matched.action === 'forward' ? retryFrom(retryToString(matched.retry), matched, snapshot) : undefined,
        timeout: matched.timeoutMs === undefined ? 'none (Istio default)' : `${matched.timeoutMs}ms`,
        fault: f === undefined ? undefined : faultText(f),
        mirrors: matched.mirrors.map((m) => `${m.target.host}:${m.target.port}${m.target.subset ? ` subset ${m.target.subset}` : ''} @${m.fraction * 100}%`),
        targets: matched.targets.map((t) => target(o, t, total, now, tls, head.scheme)),
      };
    }
  }
  const limits = o.rateLimits;
  if (limits !== undefined) {
    const matched = e.outcome === 'no-route' ? NO_ROUTE : vhost === undefined && egressProxy === undefined ? undefined : matchedDecision;
    const lines = limits.explain({ ...head, urlAuthority: u.host, protocol: 'http1', headers }, routes, matched, () => policy);
    if (lines.length > 0) e = { ...e, rateLimits: lines };
  }
  const done = e;
  return { ...done, toString: () => print(done) };
}

/**
 * For a host with no service that a VirtualService routes on other ports: which, and why not this
 * one (istiod routes such a host only on port 80, or beside a service its VirtualService names).
 */
function routedElsewhere(snapshot: Snapshot, host: string): string | undefined {
  const h = host.toLowerCase();
  const on = snapshot.routes.virtualHosts.filter((v) => v.service === undefined && v.port !== undefined && v.domains.includes(`${h}:${v.port}`));
  const first = on[0];
  if (first === undefined) return undefined;
  const ports = on.map((v) => v.port).join(', ');
  return `${first.virtualService ?? 'a VirtualService'} routes ${host} on port${on.length === 1 ? '' : 's'} ${ports} only: a host with no service behind it is routed, as istiod routes it, only on port 80 or on the ports of the services its VirtualService also names`;
}

function withNote(reason: string | undefined, note: string | undefined): string | undefined {
  return reason === undefined || note === undefined ? reason : `${reason}; ${note}`;
}
