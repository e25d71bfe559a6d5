/**
 * The compiled, immutable route table of one workload: virtual hosts by every name the
 * workload can use for them, their ordered routes, weighted destinations and clusters. The
 * lookup ({@link RouteTable.route}) allocates nothing for exact/prefix/header matching.
 *
 * @module
 */
import type { CorsRule } from './cors.ts';
import type { MergedDestinationRule } from '../config/destination-policy.ts';
import type { ClusterSettings } from './cluster-settings.ts';
import type { Endpoint, Service } from '../config/registry.ts';
import type { TrafficPolicy } from '../config/types/networking.ts';
import { runNow, type Steps } from '../config/steps.ts';
import { portColon, type RequestHead, routingAuthority } from './request-head.ts';
import type { MatchScratch, RequestMatcher } from './request-matcher.ts';
import type {
  DirectResponsePolicy,
  FaultPolicy,
  HeaderOps,
  RedirectPolicy,
  RetryPolicy,
  RewritePolicy,
} from './route-policy.ts';
import { retryToString } from './route-policy.ts';

/**
 * An upstream cluster: a service port and subset, with its endpoints and effective policy.
 * @category Snapshot
 */
export interface Cluster {
  /** Istio's name: `outbound|9080|v1|reviews.default.svc.cluster.local`. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly subset: string | undefined;
  readonly service: Service;
  /** The endpoints (subset labels applied). */
  readonly endpoints: readonly Endpoint[];
  /** The effective traffic policy (DR, port-level, subset, subset-port merged block by block), in Istio's fields. */
  readonly policy: TrafficPolicy;
  /** That policy compiled: what the data plane builds the cluster's state from (defaults applied). */
  readonly settings: ClusterSettings;
  /** The DestinationRule(s) that gave the policy, if any. */
  readonly destinationRule: MergedDestinationRule | undefined;
  /** Protocol of the service port (upper-case, e.g. `HTTP`, `GRPC`), or '' when not declared. */
  readonly protocol: string;
  /** Why endpoints of the service were left out (`internalTrafficPolicy: Local`), when some may have been. */
  readonly endpointFilter?: string;
  /**
   * Multi-network (a network gateway known): this workload's network and which endpoints are
   * reached through which east-west gateway, or left out (see `routing/network-filter.ts`).
   */
  readonly networkFilter?: string;
  toString(): string;
}

/**
 * One weighted destination of a route.
 * @category Snapshot
 */
export interface RouteTarget {
  readonly host: string;
  readonly subset: string | undefined;
  readonly port: number;
  readonly weight: number;
  /** The cluster, or undefined when it does not exist (unknown host or subset → 503 NC). */
  readonly cluster: Cluster | undefined;
  /** Why the cluster is missing, when it is. */
  readonly missing: string | undefined;
  /** Destination-level header operations. */
  readonly requestHeaders: HeaderOps | undefined;
  readonly responseHeaders: HeaderOps | undefined;
  /** Destination-level host rewrite (applies only when the route has none). */
  readonly authority: string | undefined;
}

/**
 * A mirror destination.
 * @category Snapshot
 */
export interface MirrorTarget {
  readonly target: RouteTarget;
  /** Fraction of requests mirrored, in [0, 1]. */
  readonly fraction: number;
}

/**
 * What a route does.
 * @category Snapshot
 */
export type RouteAction = 'forward' | 'redirect' | 'direct-response';

/**
 * The result of a lookup: the route, and for `forward` the chosen destination. Preallocated.
 * @category Snapshot
 */
export interface RouteDecision {
  readonly route: CompiledRoute;
  readonly target: RouteTarget | undefined;
}

/**
 * One compiled HTTP rule.
 * @category Snapshot
 */
export interface CompiledRoute {
  /** `vsName.ruleName` (or `default` for the implicit route of a service without a VirtualService). */
  readonly name: string;
  /** `VirtualService ns/name`, or undefined for the implicit route. */
  readonly virtualService: string | undefined;
  /**
   * The name istiod gives the Envoy route (what an EnvoyFilter's `vhost.route.name` matches): the
   * rule's `name` ('' when it has none), `default` for the implicit route, `allow_any` for the
   * egress proxy route. A match block's `name` is appended per block (`rule.block`): see
   * `envoyRouteName`. Undefined on routes built elsewhere (read as {@link CompiledRoute.name}).
   */
  readonly envoyName?: string;
  /** Index of the rule in `spec.http`. */
  readonly index: number;
  /** @internal Match blocks, ORed; empty = every request (each prints itself with `String()`). */
  readonly matchers: readonly RequestMatcher[];
  readonly action: RouteAction;
  readonly targets: readonly RouteTarget[];
  /** Cumulative weights of `targets` (last = total). */
  readonly cumulativeWeights: readonly number[];
  readonly timeoutMs: number | undefined;
  readonly retry: RetryPolicy;
  readonly fault: FaultPolicy | undefined;
  readonly mirrors: readonly MirrorTarget[];
  readonly requestHeaders: HeaderOps | undefined;
  readonly responseHeaders: HeaderOps | undefined;
  /**
   * The rule has more than one destination: istiod makes them Envoy weighted clusters, whose
   * header operations run before the route's (WeightedClusterEntry::finalizeRequestHeaders and
   * finalizeResponseHeaders), so the route's `set` and `remove` win over a destination's. With one
   * destination istiod appends the destination's operations to the route's own lists
   * (route.go processDestination); the compiler does the same.
   */
  readonly weightedClusters?: boolean;
  readonly rewrite: RewritePolicy | undefined;
  readonly redirect: RedirectPolicy | undefined;
  readonly directResponse: DirectResponsePolicy | undefined;
  /** The route's `corsPolicy`, undefined when it has none. */
  readonly cors: CorsRule | undefined;
  /**
   * The status a call gets when the target's cluster does not exist: 500 on routes made from a
   * Gateway API route (istiod sets Envoy's `cluster_not_found_response_code` to 500 for them),
   * otherwise Envoy's default 503 (undefined).
   */
  readonly clusterNotFoundStatus?: number | undefined;
  /** One preallocated decision per target (one with no target for redirect/direct response). */
  readonly decisions: readonly RouteDecision[];
  toString(): string;
}

/**
 * The Envoy route name of the request's match of `route` (istiod: `<rule name>.<match name>` for
 * a named match block, else the rule's name); `block` is the index of the block that matched.
 */
export function envoyRouteName(route: CompiledRoute, block: number): string {
  const base = route.envoyName ?? route.name;
  const m = route.matchers[block];
  return m?.name === undefined || m.name === '' ? base : `${base}.${m.name}`;
}

/**
 * A virtual host: one service port (or a VirtualService-only host) and its ordered routes.
 * @category Snapshot
 */
export interface VirtualHost {
  /** `host:port`, or `host` when any port applies. */
  readonly name: string;
  readonly host: string;
  readonly port: number | undefined;
  readonly service: Service | undefined;
  /** The VirtualService that routes it, if any. */
  readonly virtualService: string | undefined;
  readonly routes: readonly CompiledRoute[];
  /** The names the workload can use to reach it (`reviews`, `reviews:9080`, …). */
  readonly domains: readonly string[];
}

/**
 * Returned when the host is known but no rule matched (Envoy 404, flag NR).
 * @category Snapshot
 */
export const NO_ROUTE: unique symbol = Symbol('meshlet.noRoute');

/** Largest draw {@link pickTarget} expects: draws are integers in [0, 2^30), which V8 never boxes. */
export const MAX_DRAW = 0x40000000;

/**
 * Turns a random number in [0, 1) into a draw for {@link RouteTable.route}.
 * @category Snapshot
 */
export function toDraw(random: number): number {
  return (random * MAX_DRAW) | 0;
}

/**
 * Picks a target by weight. `draw` is a uniform integer in [0, 2^30) (see {@link toDraw}):
 * an integer rather than a float so passing it never allocates.
 */
export function pickTarget(route: CompiledRoute, draw: number): RouteDecision {
  const d = route.decisions;
  if (d.length === 1) return d[0] as RouteDecision;
  const cw = route.cumulativeWeights;
  const x = draw % (cw[cw.length - 1] as number);
  for (let i = 0; i < cw.length; i++) if (x < (cw[i] as number)) return d[i] as RouteDecision;
  return d[d.length - 1] as RouteDecision;
}

function describeTarget(t: RouteTarget, total: number): string {
  const share = total > 0 ? ` ${((100 * t.weight) / total).toFixed(t.weight * 100 % total === 0 ? 0 : 1)}%` : '';
  const cluster = t.cluster === undefined ? ` [missing: ${t.missing}]` : ` (${t.cluster.endpoints.length} endpoint${t.cluster.endpoints.length === 1 ? '' : 's'})`;
  return `${t.host}:${t.port}${t.subset === undefined ? '' : `|${t.subset}`}${share}${cluster}`;
}

/** Prints a route on one or a few lines. */
export function describeRoute(r: CompiledRoute): string {
  const match = r.matchers.length === 0 ? 'any request' : r.matchers.map(String).join(' OR ');
  let action: string;
  if (r.action === 'redirect') action = `redirect ${r.redirect?.redirectCode} to ${r.redirect?.authority ?? ''}${r.redirect?.uri ?? r.redirect?.prefixRewrite ?? ''}`;
  else if (r.action === 'direct-response') action = `respond ${r.directResponse?.status}`;
  else {
    const total = r.cumulativeWeights[r.cumulativeWeights.length - 1] ?? 0;
    action = `→ ${r.targets.map((t) => describeTarget(t, total)).join(', ')}`;
  }
  const extras: string[] = [];
  if (r.timeoutMs !== undefined) extras.push(`timeout ${r.timeoutMs}ms`);
  if (r.action === 'forward') extras.push(retryToString(r.retry));
  if (r.fault !== undefined) {
    if (r.fault.delayMs !== undefined) extras.push(`fault delay ${r.fault.delayMs}ms @${(r.fault.delayFraction * 100).toFixed(2)}%`);
    if (r.fault.abortHttpStatus !== undefined || r.fault.abortGrpcStatus !== undefined) {
      extras.push(`fault abort ${r.fault.abortHttpStatus ?? r.fault.abortGrpcStatus} @${(r.fault.abortFraction * 100).toFixed(2)}%`);
    }
  }
  for (const m of r.mirrors) extras.push(`mirror ${m.target.host}:${m.target.port}${m.target.subset ? `|${m.target.subset}` : ''} @${(m.fraction * 100).toFixed(2)}%`);
  if (r.rewrite?.uriPrefix !== undefined) extras.push(`rewrite uri ${r.rewrite.uriPrefix}`);
  if (r.rewrite?.uriRegex !== undefined) extras.push(`rewrite uri regex ${r.rewrite.uriRegex.source} → ${r.rewrite.uriRegexReplacement}`);
  if (r.rewrite?.authority !== undefined) extras.push(`rewrite authority ${r.rewrite.authority}`);
  return `${r.name}: ${match} ${action}${extras.length ? `\n      ${extras.join('; ')}` : ''}`;
}

interface Built {
  readonly byDomain: ReadonlyMap<string, VirtualHost>;
  readonly wildcards: readonly { readonly suffix: string; readonly port: number | undefined; readonly vhost: VirtualHost }[];
  readonly virtualHosts: readonly VirtualHost[];
}

/** Orders virtual hosts by name as `localeCompare` does, with one collator instead of one per comparison. */
const byName = new Intl.Collator();

function* buildTable(vhosts: readonly VirtualHost[]): Steps<Built> {
  const byDomain = new Map<string, VirtualHost>();
  const wildcards: { suffix: string; port: number | undefined; vhost: VirtualHost }[] = [];
  for (let i = 0; i < vhosts.length; i++) {
    const v = vhosts[i] as VirtualHost;
    for (const d of v.domains) {
      // The port of a wildcard domain is checked against v.port; the suffix is the host part.
      if (d.startsWith('*')) wildcards.push({ suffix: d.slice(1).replace(/:(\d+|\*)$/, ''), port: v.port, vhost: v });
      else if (!byDomain.has(d)) byDomain.set(d, v);
    }
    if (i % 256 === 255) yield;
  }
  wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  yield;
  const virtualHosts = [...vhosts].sort((a, b) => byName.compare(a.name, b.name));
  return { byDomain, wildcards, virtualHosts };
}

/**
 * The lookup structure: virtual hosts by every name a workload may use.
 * @category Snapshot
 */
export class RouteTable {
  readonly #byDomain: ReadonlyMap<string, VirtualHost>;
  readonly #wildcards: readonly { readonly suffix: string; readonly port: number | undefined; readonly vhost: VirtualHost }[];
  /** Every virtual host, sorted by name. */
  readonly virtualHosts: readonly VirtualHost[];

  /** @param built internal: what {@link RouteTable.build} made. */
  constructor(vhosts: readonly VirtualHost[], built?: Built) {
    const b = built ?? runNow(buildTable(vhosts));
    this.#byDomain = b.byDomain;
    this.#wildcards = b.wildcards;
    this.virtualHosts = b.virtualHosts;
  }

  /**
   * The table as {@link Steps}: pauses every few hundred virtual hosts (for large configs built in slices).
   * @internal
   */
  static *build(vhosts: readonly VirtualHost[]): Steps<RouteTable> {
    return new RouteTable(vhosts, yield* buildTable(vhosts));
  }

  /** Finds the virtual host for an authority (`reviews:9080`, `reviews`, `api.example.com`). */
  virtualHost(authority: string, scheme = 'http'): VirtualHost | undefined {
    // A portless name is the service's port-80 (or only) virtual host; an `https://` call without
    // a port connects to 443, so its port-443 virtual host comes first (the slow path).
    if (scheme === 'https' && portColon(authority) === -1) return this.#slowVirtualHost(authority, scheme);
    const direct = this.#byDomain.get(authority);
    if (direct !== undefined) return direct;
    return this.#slowVirtualHost(authority, scheme);
  }

  #slowVirtualHost(authority: string, scheme: string): VirtualHost | undefined {
    const a = authority.toLowerCase();
    let host = a;
    let port: number | undefined;
    const colon = a.lastIndexOf(':');
    if (colon !== -1 && !a.endsWith(']')) {
      host = a.slice(0, colon);
      port = Number(a.slice(colon + 1));
    }
    // A trailing dot is kept: as Envoy's domain match, an absolute name (`reviews.default.svc.cluster.local.`) is found only
    // as a domain of its own (the compiler adds a service's host names so, as istiod does; `reviews.` is none).
    const defaultPort = scheme === 'https' ? 443 : 80;
    const p = port ?? defaultPort;
    const hit = this.#byDomain.get(`${host}:${p}`) ?? (port === undefined || port === defaultPort ? this.#byDomain.get(host) : undefined) ?? this.#byDomain.get(`${host}:*`);
    if (hit !== undefined) return hit;
    for (const w of this.#wildcards) {
      // `*.example.com` needs a label before the suffix; a partial wildcard (`*foo.com`) covers `foo.com` itself too.
      if (host.endsWith(w.suffix) && (host.length > w.suffix.length || !w.suffix.startsWith('.')) && (w.port === undefined || w.port === p)) return w.vhost;
    }
    return undefined;
  }

  /**
   * Routes a request: returns the decision (route and weighted target, preallocated),
   * {@link NO_ROUTE} when the host is known but no rule matches, or `undefined` when the host
   * is not in the mesh (the caller passes it through or rejects it, per outbound traffic policy).
   * `draw`, a uniform integer in [0, 2^30) (see {@link toDraw}), picks among weighted targets.
   */
  route(head: RequestHead, draw: number): RouteDecision | typeof NO_ROUTE | undefined {
    const vhost = this.virtualHost(routingAuthority(head), head.scheme);
    if (vhost === undefined) return undefined;
    const route = matchRoute(vhost, head);
    return route === undefined ? NO_ROUTE : pickTarget(route, draw);
  }
}

// Reused for every lookup: matching is synchronous, so one scratch object is enough and the
// hot path allocates nothing.
const scratch: MatchScratch = { queryStart: -1, query: undefined };

/** First route of the virtual host whose match blocks (any of them) accept the request. */
export function matchRoute(vhost: VirtualHost, head: RequestHead): CompiledRoute | undefined {
  scratch.queryStart = head.path.indexOf('?');
  scratch.query = undefined;
  const routes = vhost.routes;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i] as CompiledRoute;
    const ms = r.matchers;
    if (ms.length === 0) return r;
    for (let j = 0; j < ms.length; j++) if ((ms[j] as RequestMatcher).matches(head, scratch)) return r;
  }
  return undefined;
}
