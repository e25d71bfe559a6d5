/**
 * Local rate limits on outbound calls: Envoy's local rate limit filter as EnvoyFilters with
 * context `SIDECAR_OUTBOUND` (or none) put it in a sidecar's outbound HTTP connection managers —
 * the shared engine (`policies/rate-limit/envoy-filters.ts`, `run-filters.ts`) read as istiod
 * builds outbound listeners and routes:
 *
 * - **Filters** (`HTTP_FILTER`): every outbound HTTP listener has them; a listener match fits the
 *   listener of the port the call goes to (`0.0.0.0_<port>`: `portNumber` is the destination
 *   port), its HTTP filter chain (`transportProtocol` `raw_buffer`, no `destinationPort`) and the
 *   HTTP connection manager.
 * - **Routes** (`HTTP_ROUTE` / `VIRTUAL_HOST` MERGE): the route configuration is named after the
 *   port (`"9080"`), virtual hosts `<host>:<port>` (with the service's domains), or `allow_any`
 *   (calls to hosts outside the mesh with ALLOW_ANY, passthrough or to the egress proxy) and
 *   `block_all` (REGISTRY_ONLY; a direct response); routes are named after the VirtualService
 *   rule (`<rule name>` or `<rule name>.<match name>`), `default` without a VirtualService,
 *   `allow_any` / `block_all`. A call that matches no route (404 NR) has no per-route config.
 *
 * The filter runs before the router, so once per call and before retries: the route layer asks
 * {@link OutboundRateLimits.check} right after the route is chosen, before it answers anything
 * itself (no route, redirect, direct response, missing cluster, REGISTRY_ONLY). Buckets are per
 * outbound listener (port) for a filter's own config, per route or virtual host for theirs,
 * and kept across config reloads when their settings do not change.
 *
 * Descriptors on this side: `remote_address` is the workload's own address (the app is the
 * downstream; the last `x-forwarded-for` address when the app sends one), `source_cluster`
 * `<app label>.<namespace>` (else the workload name's), `destination_cluster` the route's cluster (`outbound|9080|v1|reviews…`,
 * `PassthroughCluster`; none for redirects and direct responses). The app's source port is not
 * known (`source.port` is 0) and the connection from the app is plaintext (`connection.mtls`
 * false, no peer certificate).
 *
 * @module
 */
import type { Clock, Random } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import type { Exchange, Headers, ResponseHeaderOps } from '../core/exchange.ts';
import type { RateLimitRequest, RateLimitSite } from '../policies/rate-limit/descriptors.ts';
import { type ActiveFilter, type FilterSite, RateLimitFilters, serviceCluster } from '../policies/rate-limit/envoy-filters.ts';
import type { LocalRateLimiter } from '../policies/rate-limit/local-rate-limiter.ts';
import type { RateLimitServiceClient } from '../policies/rate-limit/rls-client.ts';
import { type RateLimitRefusal, RateLimitRunner, type RateLimitStats, type RunNotes } from '../policies/rate-limit/run-filters.ts';
import type { Snapshot, UnknownHostPolicy } from '../routing/compile.ts';
import { connectPort, type RequestHead, routingAuthority } from '../routing/request-head.ts';
import type { MatchScratch } from '../routing/request-matcher.ts';
import { type CompiledRoute, envoyRouteName, NO_ROUTE, type RouteDecision, type RouteTable, type VirtualHost } from '../routing/route-table.ts';
import { CATCH_ALL_DOMAINS, HTTP_ACTION, type OutboundRouteSite, outboundListenerFits, outboundRouteFits, sidecarDomains, siteExists, siteKeys } from './rate-limit-sites.ts';

/** Options of {@link compileOutboundRateLimits}. */
export interface OutboundRateLimitOptions {
  readonly clock: Clock;
  readonly random: Random;
  /** This workload's address (the `remote_address` of its calls). */
  readonly sourceIp: string;
  /** The mesh's root namespace (mesh-wide EnvoyFilters). */
  readonly rootNamespace: string;
  /** The workload's name (`source_cluster` without an app label). @defaultValue the snapshot workload's service */
  readonly workloadName?: string;
  /** The workload's namespace. @defaultValue the snapshot workload's */
  readonly namespace?: string;
  /** The new config's route table: sites of the config before that it no longer has are not carried over. */
  readonly routes?: RouteTable;
  /** The limits of the config before; their buckets are kept where their settings did not change. */
  readonly previous?: OutboundRateLimits;
  /** Calls the rate limit services of global rate limit filters. @defaultValue none: every call fails */
  readonly rls?: RateLimitServiceClient;
}

/** What the rate limits read of a call (an {@link Exchange}, or a request `mesh.explain` describes). */
export interface OutboundCall extends RequestHead {
  /** The authority of the URL: the port the call connects to. */
  readonly urlAuthority: string;
  readonly protocol: string;
  readonly headers: Headers;
}

/** How many sites (port, virtual host, route) a config's limits remember and carry over at most. */
export const MAX_SITES = 4096;

const scratch: MatchScratch = { queryStart: -1, query: undefined };

/** The match block of `route` that accepted the call (0 when the route has one block or none). */
function blockOf(route: CompiledRoute, ex: OutboundCall): number {
  const ms = route.matchers;
  if (ms.length < 2) return 0;
  scratch.queryStart = ex.path.indexOf('?');
  scratch.query = undefined;
  for (let i = 0; i < ms.length; i++) if (ms[i]?.matches(ex, scratch)) return i;
  return 0;
}

function clusterOf(d: RouteDecision): string | undefined {
  const t = d.target;
  if (t === undefined) return undefined;
  return t.cluster?.name ?? `outbound|${t.port}|${t.subset ?? ''}|${t.host}`;
}

/** What the descriptor actions read of an outbound call. */
class CallView implements RateLimitRequest {
  readonly #ex: OutboundCall;
  readonly remoteAddress: string;
  readonly localPort: number;
  readonly remotePort = 0;
  readonly peer = undefined;

  constructor(ex: OutboundCall, remoteAddress: string, localPort: number) {
    this.#ex = ex;
    this.remoteAddress = remoteAddress;
    this.localPort = localPort;
  }
  get protocol(): string {
    return this.#ex.protocol;
  }
  get method(): string {
    return this.#ex.method;
  }
  get scheme(): string {
    return this.#ex.scheme;
  }
  get authority(): string {
    return this.#ex.authority;
  }
  get path(): string {
    return this.#ex.path;
  }
  get headers(): Headers {
    return this.#ex.headers;
  }
}

/**
 * The outbound local rate limits of one snapshot.
 * @category Mesh
 */
export class OutboundRateLimits {
  readonly #filters: RateLimitFilters;
  readonly #runner: RateLimitRunner;
  readonly #sourceCluster: string;
  readonly #sourceIp: string;
  /** The workload's namespace (short names of services in it are domains of their virtual hosts). */
  readonly #namespace: string;
  /** Active filters by port (when no route patch applies, the filters depend on the listener only). */
  readonly #byPort = new Map<number, readonly ActiveFilter[]>();
  /** Active filters by port, virtual host and route. */
  readonly #byRoute = new Map<string, readonly ActiveFilter[]>();
  /** The sites calls have reached, for the next config's limits to build their limiters up front. */
  readonly #sites = new Map<string, OutboundRouteSite>();
  readonly #notes: RunNotes = { xHeaders: undefined, headersChanged: false };
  /** Whether the outbound listener of a port has a rate limit filter (none: its calls skip the route site). */
  readonly #portHasFilters = new Map<number, boolean>();

  /** Use {@link compileOutboundRateLimits}. */
  constructor(filters: RateLimitFilters, sourceCluster: string, o: OutboundRateLimitOptions) {
    this.#filters = filters;
    this.#sourceCluster = sourceCluster;
    this.#sourceIp = o.sourceIp;
    this.#namespace = o.namespace ?? 'default';
    this.#runner = new RateLimitRunner(o.random, o.rls, o.previous === undefined ? undefined : o.previous.#runner);
    // Envoy's cluster is there before the first call: the services are made ready now, not by it.
    o.rls?.warm(filters.globalTargets);
    // Keep the buckets calls used under the config before (a limiter is taken over when it is
    // made) — for the sites the new config still has: a route or virtual host it dropped takes
    // its buckets with it.
    const previous = o.previous === undefined ? undefined : o.previous.#sites;
    if (previous !== undefined && previous.size > 0) {
      const still = o.routes === undefined ? undefined : siteKeys(o.routes);
      for (const [key, s] of previous) {
        if (still !== undefined && !siteExists(still, s)) continue;
        this.#filters.active(this.#site(s));
        this.#remember(key, s);
      }
    }
  }

  /** Records a site calls reached, the oldest forgotten beyond {@link MAX_SITES}. */
  #remember(key: string, s: OutboundRouteSite): void {
    this.#sites.delete(key);
    this.#sites.set(key, s);
    if (this.#sites.size > MAX_SITES) this.#sites.delete(this.#sites.keys().next().value as string);
  }

  /** The active filters of a call's listener and route. */
  filtersFor(s: OutboundRouteSite): readonly ActiveFilter[] {
    const byPort = !this.#filters.hasRoutePatches;
    const key = `${s.port}\u0000${s.vhost}\u0000${s.route ?? '\u0001'}\u0000${s.action}\u0000${s.routeId ?? ''}`;
    let f = byPort ? this.#byPort.get(s.port) : this.#byRoute.get(key);
    if (f === undefined) {
      f = this.#filters.active(this.#site(s));
      const cache = byPort ? this.#byPort : this.#byRoute;
      // Calls to ever new ports (hosts outside the mesh) would grow it without end.
      if (cache.size >= MAX_SITES) cache.clear();
      if (byPort) this.#byPort.set(s.port, f);
      else this.#byRoute.set(key, f);
      this.#remember(key, s);
    }
    return f;
  }

  #hasFilters(port: number): boolean {
    let has = this.#portHasFilters.get(port);
    if (has === undefined) {
      has = this.#filters.hasFilters({ listenerFits: (m) => outboundListenerFits(m, port) });
      if (this.#portHasFilters.size >= MAX_SITES) this.#portHasFilters.clear();
      this.#portHasFilters.set(port, has);
    }
    return has;
  }

  #site(s: OutboundRouteSite): FilterSite {
    const vhostKey = `out|${s.port}|${s.vhost}`;
    return {
      listenerFits: (m) => outboundListenerFits(m, s.port),
      routeFits: (m, applyTo) => outboundRouteFits(m, s, applyTo),
      listenerKey: `out|${s.port}`,
      vhostKey,
      routeKey: `${vhostKey}|${s.route ?? ''}|${s.action}|${s.routeId ?? ''}`,
      routeLabel: `route ${s.route === '' ? '(unnamed)' : s.route} of virtual host ${s.vhost} in route configuration ${s.port}`,
      vhostLabel: `virtual host ${s.vhost} in route configuration ${s.port}`,
      routeEntry: s.route !== undefined && s.action === 'ROUTE',
    };
  }

  /**
   * Where a call goes, as the outbound route configuration names it: `d` is the routing decision
   * (undefined for a host outside the mesh, which `unknownHosts` decides), made on `table` for the
   * call's authority.
   */
  routeSite(ex: OutboundCall, table: RouteTable, d: RouteDecision | typeof NO_ROUTE | undefined, unknownHosts: () => UnknownHostPolicy): OutboundRouteSite {
    const port = connectPort(ex.urlAuthority, ex.scheme);
    if (d === undefined) {
      const policy = unknownHosts();
      if (policy.mode === 'REGISTRY_ONLY') return { port, vhost: 'block_all', domains: CATCH_ALL_DOMAINS, route: 'block_all', action: 'DIRECT_RESPONSE', cluster: undefined };
      const egress = policy.egressProxy;
      return { port, vhost: 'allow_any', domains: CATCH_ALL_DOMAINS, route: 'allow_any', action: 'ROUTE', cluster: egress === undefined ? 'PassthroughCluster' : clusterOf(egress) };
    }
    const vhost: VirtualHost | undefined = table.virtualHost(routingAuthority(ex), ex.scheme);
    const vhostName = vhost === undefined ? 'allow_any' : `${vhost.host}:${vhost.port ?? port}`;
    const domains = vhost === undefined ? CATCH_ALL_DOMAINS : sidecarDomains(vhost, this.#namespace);
    if (d === NO_ROUTE) return { port, vhost: vhostName, domains, route: undefined, action: 'ROUTE', cluster: undefined };
    const route = d.route;
    const block = blockOf(route, ex);
    return {
      port,
      vhost: vhostName,
      domains,
      route: envoyRouteName(route, block),
      routeId: `${route.virtualService ?? ''}#${route.index}#${block}`,
      action: HTTP_ACTION[route.action],
      cluster: route.action === 'forward' ? clusterOf(d) : undefined,
    };
  }

  /**
   * Decides a call before it is routed on: the refusal, or undefined to let it go on (with
   * shadow-mode request headers and `x-ratelimit-*` response headers added to the call).
   */
  check(ex: Exchange, table: RouteTable, d: RouteDecision | typeof NO_ROUTE | undefined, unknownHosts: () => UnknownHostPolicy, signal?: AbortSignal): RateLimitRefusal | undefined | Promise<RateLimitRefusal | undefined> {
    let s: OutboundRouteSite | undefined;
    if (this.#filters.hasRoutePatches && !this.#hasFilters(connectPort(ex.urlAuthority, ex.scheme))) return undefined;
    // Without route patches, the filters depend on the port only: the route is looked at only when a descriptor needs its cluster.
    let filters = this.#filters.hasRoutePatches ? undefined : this.#byPort.get(connectPort(ex.urlAuthority, ex.scheme));
    if (filters === undefined) {
      s = this.routeSite(ex, table, d, unknownHosts);
      filters = this.filtersFor(s);
    }
    if (filters.length === 0) return undefined;
    const notes = this.#notes;
    const site = (): RateLimitSite => {
      s ??= this.routeSite(ex, table, d, unknownHosts);
      return { sourceCluster: this.#sourceCluster, destinationCluster: s.cluster };
    };
    const r = this.#runner.run(filters, new CallView(ex, this.#sourceIp, connectPort(ex.urlAuthority, ex.scheme)), site, notes, undefined, signal);
    if (r instanceof Promise) {
      // A global filter asked its rate limit service (the call waits for the answer, as Envoy's filter chain does).
      return r.then((v) => {
        if (v.refusal === undefined && v.notes.xHeaders !== undefined) addResponseOps(ex, setAll(v.notes.xHeaders));
        return v.refusal;
      });
    }
    if (r === undefined && notes.xHeaders !== undefined) addResponseOps(ex, setAll(notes.xHeaders));
    return r;
  }

  /**
   * What the filters would do with a call, drawing nothing and touching no bucket (for
   * `mesh.explain`): one line per active filter, with the buckets the call would take from.
   */
  explain(call: OutboundCall, table: RouteTable, d: RouteDecision | typeof NO_ROUTE | undefined, unknownHosts: () => UnknownHostPolicy): string[] {
    const s = this.routeSite(call, table, d, unknownHosts);
    const view = new CallView(call, this.#sourceIp, s.port);
    const site: RateLimitSite = { sourceCluster: this.#sourceCluster, destinationCluster: s.cluster };
    return this.filtersFor(s).map((f) => {
      const g = f.global;
      if (g !== undefined) {
        const d = f.descriptors?.build(view, site) ?? [];
        if (d.length === 0) return `${f.name} from ${f.source}: global, no descriptor for this call: the rate limit service is not asked`;
        return `${f.name} from ${f.source}: global, asks the rate limit service ${g.target} (domain ${g.domain}) about ${d.map((x) => x.map((e) => `${e.key}=${e.value}`).join(',')).join('; ')}; over the limit ${g.rateLimitedStatus}, service unreachable ${g.failureModeDeny ? g.statusOnError : 'allowed'}`;
      }
      const m = f.limiter.match(f.descriptors?.build(view, site) ?? []);
      const buckets = [
        ...m.descriptors.map((x) => `descriptor ${x.entries.map((e) => `${e.key}=${e.value}`).join(',')}${x.wildcard ? ' (a bucket per value)' : ''}: ${bucketText(x.bucket)}`),
        ...(m.defaultBucket === undefined ? [] : [`default: ${bucketText(m.defaultBucket)}`]),
      ];
      const c = f.config;
      const enforced = percent(c.filterEnforced);
      const then = enforced === 0 ? 'not enforced (shadow mode)' : `else ${c.status} local_rate_limited${enforced < 100 ? ` for ${enforced}% of them` : ''}`;
      return `${f.name} from ${f.source}: ${percent(c.filterEnabled)}% of calls looked at; ${buckets.length === 0 ? 'no bucket for this call' : `takes a token from ${buckets.join('; ')}`}, ${then}`;
    });
  }

  /** Whether a global rate limit filter applies: a call may wait for its rate limit service (the route layer then lets the caller's leaving cancel it). */
  get asksServices(): boolean {
    return this.#filters.hasGlobal;
  }

  /** Envoy-style counters per `stat_prefix` (`enabled`, `ok`, `rate_limited`, `enforced`). */
  get stats(): ReadonlyMap<string, Readonly<RateLimitStats>> {
    return this.#runner.stats;
  }

  /** `<app label>.<namespace>`, else `<workload name>.<namespace>` (`source_cluster`). */
  get sourceCluster(): string {
    return this.#sourceCluster;
  }

  /** @internal The limiters, for the next config's limits to keep. */
  get limiters(): ReadonlyMap<string, LocalRateLimiter> {
    return this.#filters.limiters;
  }

  toString(): string {
    const lines = [`outbound local rate limits (${this.#sourceCluster})`];
    for (const [port, filters] of this.#byPort) for (const f of filters) lines.push(`  port ${port}: ${f.name} from ${f.source}: ${f.limiter}`);
    for (const [key, filters] of this.#byRoute) {
      const [port, vhost, route] = key.split('\u0000');
      for (const f of filters) lines.push(`  port ${port} ${vhost} route ${route === '\u0001' ? '(none)' : route}: ${f.name} from ${f.source}: ${f.limiter}`);
    }
    return lines.join('\n');
  }
}

function percent(f: { readonly numerator: number; readonly denominator: number } | undefined): number {
  return f === undefined ? 0 : Math.min(100, (f.numerator / f.denominator) * 100);
}

function bucketText(b: { readonly maxTokens: number; readonly tokensPerFill: number; readonly fillIntervalMs: number }): string {
  return `${b.tokensPerFill} per ${b.fillIntervalMs}ms, max ${b.maxTokens}`;
}

/** Adds response header operations to a call (after those it has). */
export function addResponseOps(ex: Exchange, ops: ResponseHeaderOps): void {
  if (ex.responseOps === undefined) ex.responseOps = [ops];
  else ex.responseOps.push(ops);
}

/** Header operations that set every header of `headers`. */
function setAll(headers: Readonly<Record<string, string>>): ResponseHeaderOps {
  return { set: Object.entries(headers), add: [], remove: [] };
}

/**
 * Fails a call its rate limit refused, as Envoy's local reply: the refusal's status (429) and
 * gRPC status, body `local_rate_limited`, flag `RL`, `response_headers_to_add`.
 */
export function refuseCall(ex: Exchange, refusal: RateLimitRefusal, after?: ResponseHeaderOps): void {
  addResponseOps(ex, setAll(refusal.headers));
  // The CORS filter's headers, on the refusal too (it runs after in the encoding path).
  if (after !== undefined) addResponseOps(ex, after);
  ex.fail(new MeshletError('MESHLET_ERR_RATE_LIMITED', refusal.reason, { ...ex.errorContext(), httpStatus: refusal.status, grpcStatus: refusal.grpcStatus, flags: refusal.flag, body: refusal.body }));
}

/**
 * Compiles the outbound local rate limits of a snapshot (its EnvoyFilters for SIDECAR_OUTBOUND or
 * any context that select its workload); undefined when none can limit anything, so calls pay
 * nothing for them.
 */
export function compileOutboundRateLimits(snapshot: Snapshot, o: OutboundRateLimitOptions): OutboundRateLimits | undefined {
  const w = snapshot.workload;
  const filters = new RateLimitFilters(snapshot.resources, w, o.rootNamespace, 'outbound', o.clock, o.previous?.limiters);
  if (!filters.canLimit) return undefined;
  return new OutboundRateLimits(filters, serviceCluster(w.labels, w.namespace, o.workloadName ?? w.service), { ...o, namespace: o.namespace ?? w.namespace, routes: o.routes ?? snapshot.routes });
}
