/**
 * The local rate limit filters one workload runs on one side (inbound or outbound), worked out as
 * istiod builds a sidecar's listeners and routes from EnvoyFilters. One engine for both sides:
 * each side only says how a patch's `listener` and `routeConfiguration` matches read for the
 * request at hand (a {@link FilterSite}).
 *
 * - **Selection** (`PushContext.EnvoyFilters`): EnvoyFilters of the root namespace (mesh-wide)
 *   and of the workload's namespace whose `workloadSelector` labels are a subset of the
 *   workload's (no selector: every workload there); an EnvoyFilter with `targetRefs` addresses
 *   gateways and waypoints and never a sidecar. Ordered by `priority`, then root namespace
 *   first, then creation time, then `name.namespace`; patches apply in that order.
 * - **Context**: `SIDECAR_INBOUND` or `SIDECAR_OUTBOUND` for its side, or any context (`ANY`, or
 *   no match) for both (Istio's `patchContextMatch`).
 * - **Filters** (`HTTP_FILTER` INSERT_*): those whose listener match fits the site's listener,
 *   ordered by Istio's insertion rules among the rate limit filters.
 * - **Routes** (`HTTP_ROUTE` / `VIRTUAL_HOST` MERGE): those whose route configuration match fits
 *   the site's route; merges add per-filter configs (a later one for the same filter name
 *   replaces an earlier) and append rate limits.
 *
 * A filter's config is Envoy's most specific: the route's `typed_per_filter_config` for its name,
 * else the virtual host's, else the filter's own. Limiters (the buckets) are made once per
 * identity (filter instance of a listener, route, virtual host) and kept across config reloads
 * when their settings do not change (`previous`).
 *
 * @module
 */
import type { Clock } from '../../core/clock.ts';
import type { AnyResource } from '../../config/resource.ts';
import type { ListenerMatch, RouteConfigurationMatch } from '../../config/types/envoy-filter.ts';
import type { LocalRateLimitSettings, RateLimitFilterPatch, RateLimitPolicySettings, RateLimitRoutePatch } from '../../config/types/local-rate-limit.ts';
import { type HttpChainOptions, istioHttpFilterChain, ROUTER } from '../../config/validate/envoy-filter-chain.ts';
import { rateLimitPatches } from '../../config/validate/envoy-filter.ts';
import type { GlobalRateLimitPerRoute, GlobalRateLimitSettings } from '../../config/types/local-rate-limit.ts';
import { DescriptorBuilder } from './descriptors.ts';
import { type EnvoyFilterWorkload, selectEnvoyFilters } from './select-envoy-filters.ts';
import { LocalRateLimiter } from './local-rate-limiter.ts';

/** Which side of the workload the filters run on. */
export type RateLimitDirection = 'inbound' | 'outbound';

export type { EnvoyFilterWorkload } from './select-envoy-filters.ts';

export { ROUTER };
export { selectEnvoyFilters };

/** The HTTP connection manager's name (a listener match's network filter). */
export const HCM = 'envoy.filters.network.http_connection_manager';

/** An HTTP_FILTER patch in application order. */
export interface FilterPatchRef {
  readonly patch: RateLimitFilterPatch;
  /** `EnvoyFilter ns/name configPatches[i]`. */
  readonly source: string;
}

/** An HTTP_ROUTE or VIRTUAL_HOST patch in application order. */
export interface RoutePatchRef {
  readonly patch: RateLimitRoutePatch;
  readonly source: string;
}

/** One rate limit filter as it runs for requests of one site. */
export interface ActiveFilter {
  /** HTTP filter name. */
  readonly name: string;
  /** Where its config comes from: `EnvoyFilter ns/name configPatches[i]` (and the level). */
  readonly source: string;
  readonly config: LocalRateLimitSettings;
  readonly limiter: LocalRateLimiter;
  /** Undefined when the config has no descriptors (no need to compute the request's). */
  readonly descriptors: DescriptorBuilder | undefined;
  /**
   * The first of Istio's inbound admission filters that comes after it in the chain — `ext_authz`
   * (AuthorizationPolicy CUSTOM, with the RBAC filter istiod puts just before it), `jwt_authn`
   * (RequestAuthentication), `rbac` (ALLOW / DENY / AUDIT) — or undefined when none does (after
   * them all, as `INSERT_BEFORE envoy.filters.http.router` puts it; always on the outbound side).
   * Envoy runs the filter there: a request it refuses never reaches those filters, and one they
   * refuse later has already taken its token.
   */
  readonly gate: AdmissionGate | undefined;
  /** Set for a global rate limit filter (`envoy.filters.http.ratelimit`): the service it asks (`limiter` then has no buckets). */
  readonly global?: GlobalRateLimitSettings;
}

/** Istio's inbound admission filters, in their order (a rate limit filter's {@link ActiveFilter.gate}). */
export type AdmissionGate = 'ext_authz' | 'jwt_authn' | 'rbac';

const EXT_AUTHZ = 'envoy.filters.http.ext_authz';
const JWT_AUTHN = 'envoy.filters.http.jwt_authn';
const RBAC = 'envoy.filters.http.rbac';

/** One of Istio's own filters in a chain, and the admission filter it is (or is part of). */
interface IstioFilter {
  readonly istio: string;
  readonly gate: AdmissionGate | undefined;
}

/**
 * Istio's chain as {@link IstioFilter}s: the RBAC filter istiod puts right before `ext_authz`
 * (CUSTOM's shadow rules, which only mark the requests to send to the authorizer) belongs to
 * `ext_authz`; the other one is the ALLOW / DENY / AUDIT `rbac`.
 */
function gated(chain: readonly string[]): IstioFilter[] {
  return chain.map((istio, i) => ({
    istio,
    gate: istio === EXT_AUTHZ || (istio === RBAC && chain[i + 1] === EXT_AUTHZ) ? 'ext_authz' : istio === JWT_AUTHN ? 'jwt_authn' : istio === RBAC ? 'rbac' : undefined,
  }));
}

/**
 * Where a request meets the filters, as the EnvoyFilter matches see it: the listener's filter
 * chain, and the route configuration, virtual host and route it takes (none: no per-route config).
 */
export interface FilterSite {
  /** Whether an HTTP_FILTER patch's `listener` match fits the filter chain. */
  listenerFits(m: ListenerMatch | undefined): boolean;
  /** Whether a route patch's `routeConfiguration` match fits the request's virtual host (and, for `HTTP_ROUTE`, its route). */
  routeFits(m: RouteConfigurationMatch | undefined, applyTo: 'HTTP_ROUTE' | 'VIRTUAL_HOST'): boolean;
  /** Identity of the filter chain (a filter's buckets are per chain, as Envoy has one filter instance per listener). */
  readonly listenerKey: string;
  /** Identity of the virtual host (its per-filter config has its own buckets). */
  readonly vhostKey: string;
  /** Identity of the route. */
  readonly routeKey: string;
  /** How the route and the virtual host are named in `source` texts (`route inbound|80||`, `virtual host`). */
  readonly routeLabel: string;
  readonly vhostLabel: string;
  /**
   * Whether the request takes a route that forwards (Envoy's `routeEntry()`): only then do the
   * route's and virtual host's `rate_limits` build descriptors (not for a redirect, a direct
   * response, or no route; the filter's own `rate_limits` always do).
   */
  readonly routeEntry: boolean;
  /** Whether the listener's port is a GRPC-Web one (istiod adds the gRPC-Web filter). @defaultValue false */
  readonly grpcWeb?: boolean;
}

/**
 * The sidecar's service cluster (Envoy's `local_info.clusterName()`, the `source_cluster` of
 * descriptors), as istio-agent's bootstrap names it (`serviceClusterOrDefault`): the app label
 * (`app`, else `app.kubernetes.io/name`, else `service.istio.io/canonical-name`) dot namespace,
 * else the workload name dot namespace.
 */
export function serviceCluster(labels: Readonly<Record<string, string>>, namespace: string, workloadName: string): string {
  const app = labels.app ?? labels['app.kubernetes.io/name'] ?? labels['service.istio.io/canonical-name'];
  if (app !== undefined) return `${app}.${namespace}`;
  return `${workloadName === '' ? 'istio-proxy' : workloadName}.${namespace}`;
}

/** Whether a patch of `context` applies on `direction` (Istio: the context itself, or ANY). */
export function contextApplies(context: string, direction: RateLimitDirection): boolean {
  return context === 'ANY' || context === (direction === 'inbound' ? 'SIDECAR_INBOUND' : 'SIDECAR_OUTBOUND');
}

/** A route or virtual host after the merges. */
interface Merged {
  readonly perFilter: Map<string, { config: LocalRateLimitSettings; source: string }>;
  readonly perRouteGlobal: Map<string, GlobalRateLimitPerRoute>;
  readonly rateLimits: RateLimitPolicySettings[];
  includeVh: boolean | undefined;
}

function merge(into: Merged, ref: RoutePatchRef): void {
  for (const [name, config] of ref.patch.perFilterConfig) into.perFilter.set(name, { config, source: ref.source });
  for (const [name, config] of ref.patch.perRouteGlobal) into.perRouteGlobal.set(name, config);
  into.rateLimits.push(...ref.patch.rateLimits);
  if (ref.patch.includeVhRateLimits !== undefined) into.includeVh = ref.patch.includeVhRateLimits;
}

/** The rate limits feeding a filter's descriptors: its own, else the route's and the virtual host's as `vh_rate_limits` says. */
function policiesFor(config: LocalRateLimitSettings, route: Merged, vhost: Merged, routeEntry: boolean): readonly RateLimitPolicySettings[] {
  // Envoy ignores the stage of a filter's (or a per-route config's) own rate limits: they always apply.
  if (config.rateLimits.length > 0) return config.rateLimits.map((p) => (p.stage === config.stage ? p : { ...p, stage: config.stage }));
  // Envoy's populateDescriptors: nothing without a route entry (redirects, direct responses).
  if (!routeEntry) return [];
  const mode = route.includeVh === true ? 'INCLUDE' : config.vhRateLimits;
  if (mode === 'IGNORE') return route.rateLimits;
  if (mode === 'INCLUDE') return [...route.rateLimits, ...vhost.rateLimits];
  return route.rateLimits.length > 0 ? route.rateLimits : vhost.rateLimits;
}

const enabled = (c: LocalRateLimitSettings) => c.filterEnabled !== undefined && c.filterEnabled.numerator > 0;

/**
 * The local rate limit patches that apply to one side of a workload, compiled:
 * {@link RateLimitFilters.active} gives the active filters of a site.
 */
export class RateLimitFilters {
  readonly #filters: readonly FilterPatchRef[];
  readonly #routes: readonly RoutePatchRef[];
  readonly #vhosts: readonly RoutePatchRef[];
  readonly #clock: Clock;
  /** Limiters by identity: filter instance of a listener, route or virtual host, and filter name. */
  readonly #limiters = new Map<string, LocalRateLimiter>();
  readonly #previous: ReadonlyMap<string, LocalRateLimiter>;
  readonly #betweenRbac = new Set<string>();
  /** Istio's own HTTP filters of the side's connection managers (without, with the gRPC-Web filter). */
  readonly #istioChain: readonly [readonly IstioFilter[], readonly IstioFilter[]];

  /**
   * `chain`: which of istiod's conditional HTTP filters the side's chain has (on the inbound side,
   * those of the policies that apply to the workload).
   */
  constructor(
    resources: readonly AnyResource[],
    workload: EnvoyFilterWorkload,
    rootNamespace: string,
    direction: RateLimitDirection,
    clock: Clock,
    previous: ReadonlyMap<string, LocalRateLimiter> = new Map(),
    chain: HttpChainOptions = {},
  ) {
    const filters: FilterPatchRef[] = [];
    const routes: RoutePatchRef[] = [];
    const vhosts: RoutePatchRef[] = [];
    for (const ef of selectEnvoyFilters(resources, workload, rootNamespace)) {
      rateLimitPatches(ef.spec).forEach((patch, i) => {
        if (!contextApplies(patch.context, direction)) return;
        const source = `${ef.ref} configPatches[${i}]`;
        if (patch.applyTo === 'HTTP_FILTER') filters.push({ patch, source });
        else if (patch.applyTo === 'HTTP_ROUTE') routes.push({ patch, source });
        else vhosts.push({ patch, source });
      });
    }
    this.#filters = filters;
    this.#routes = routes;
    this.#vhosts = vhosts;
    this.#clock = clock;
    this.#previous = previous;
    this.#istioChain = [gated(istioHttpFilterChain(direction, { ...chain, grpcWeb: false })), gated(istioHttpFilterChain(direction, { ...chain, grpcWeb: true }))];
  }

  /**
   * Whether a rate limit filter applies that can limit anything: one enabled for some requests,
   * by its own config or by a route's or virtual host's config for its name (a filter with no
   * `filter_enabled` is enabled for 0% of requests).
   */
  get canLimit(): boolean {
    if (this.#filters.some((f) => enabled(f.patch.config))) return true;
    const names = new Set(this.#filters.map((f) => f.patch.filterName));
    return [...this.#routes, ...this.#vhosts].some((r) => [...r.patch.perFilterConfig].some(([name, c]) => names.has(name) && enabled(c)));
  }

  /** Whether a global rate limit filter applies (its calls may wait for a rate limit service). */
  get hasGlobal(): boolean {
    return this.#filters.some((f) => f.patch.global !== undefined);
  }

  /** The `host:port` of each rate limit service a global filter asks. */
  get globalTargets(): string[] {
    return [...new Set(this.#filters.flatMap((f) => (f.patch.global === undefined ? [] : [f.patch.global.target])))];
  }

  /** Whether route or virtual host patches apply (else a site's filters depend on its listener only). */
  get hasRoutePatches(): boolean {
    return this.#routes.length > 0 || this.#vhosts.length > 0;
  }

  /** The limiters built so far, by identity (kept across config reloads when their buckets are unchanged). */
  get limiters(): ReadonlyMap<string, LocalRateLimiter> {
    return this.#limiters;
  }

  #limiter(key: string, config: LocalRateLimitSettings): LocalRateLimiter {
    let l = this.#limiters.get(key);
    if (l === undefined) {
      l = new LocalRateLimiter(config, this.#clock, this.#previous.get(key));
      this.#limiters.set(key, l);
    }
    return l;
  }

  /**
   * The filter chain's rate limit filters, in order: each inserted into Istio's own chain as
   * istiod's `patchHTTPFilter` does, so their order among themselves, and their places among
   * Istio's admission filters, are Envoy's.
   */
  #chain(site: Pick<FilterSite, 'listenerFits' | 'grpcWeb'>): FilterPatchRef[] {
    return this.#placed(site).map((p) => p.ref);
  }

  /** {@link #chain}, each filter with the first of Istio's admission filters after it. */
  #placed(site: Pick<FilterSite, 'listenerFits' | 'grpcWeb'>): { ref: FilterPatchRef; gate: AdmissionGate | undefined }[] {
    const chain: (FilterPatchRef | IstioFilter)[] = [...this.#istioChain[site.grpcWeb === true ? 1 : 0]];
    const nameOf = (c: FilterPatchRef | IstioFilter) => ('istio' in c ? c.istio : c.patch.filterName);
    for (const ref of this.#filters) {
      const p = ref.patch;
      if (!site.listenerFits(p.listener)) continue;
      const sub = p.listener?.filterChain?.filter?.subFilter?.name;
      // listener_patch.go patchHTTPFilters: INSERT_FIRST, and INSERT_BEFORE without a sub-filter
      // match ("same as insert in the beginning"), put the filter at the front.
      if (p.operation === 'INSERT_FIRST' || (p.operation === 'INSERT_BEFORE' && (sub === undefined || sub === ''))) {
        chain.unshift(ref);
        continue;
      }
      // INSERT_AFTER without a filter match: istiod appends it after the router, and Envoy rejects
      // the listener (validation refuses it; skipped here defensively).
      if (sub === undefined || sub === '') continue;
      // insertBeforeFunc / insertAfterFunc: next to the first filter of that name; none: istiod inserts nothing.
      const at = chain.findIndex((c) => nameOf(c) === sub);
      if (at === -1) continue;
      if (p.operation === 'INSERT_BEFORE') chain.splice(at, 0, ref);
      // After the router: Envoy rejects the listener (refused by validation).
      else if (nameOf(chain[at] as FilterPatchRef | IstioFilter) !== ROUTER) chain.splice(at + 1, 0, ref);
    }
    const out: { ref: FilterPatchRef; gate: AdmissionGate | undefined }[] = [];
    let gate: AdmissionGate | undefined;
    for (let i = chain.length - 1; i >= 0; i--) {
      const c = chain[i] as FilterPatchRef | IstioFilter;
      if ('istio' in c) gate = c.gate ?? gate;
      else out.push({ ref: c, gate });
    }
    out.reverse();
    // Between two of the RBAC filters istiod builds per action (AUDIT, DENY, ALLOW): meshlet judges
    // them in one step, and runs the filter after it (noted, for a warning).
    const firstRbac = chain.findIndex((c) => 'istio' in c && c.gate === 'rbac');
    if (firstRbac !== -1) {
      for (const p of out) {
        if (p.gate === 'rbac' && chain.indexOf(p.ref) > firstRbac) {
          p.gate = undefined;
          this.#betweenRbac.add(p.ref.source);
        }
      }
    }
    return out;
  }

  /** Patches that put a filter between two of Istio's RBAC filters, which meshlet runs after authorization instead. */
  get betweenRbac(): readonly string[] {
    return [...this.#betweenRbac];
  }

  /** The admission gates the filters of a listener's chain sit before (undefined: after them all), with or without a route's config enabling them. */
  gates(listener: Pick<FilterSite, 'listenerFits' | 'grpcWeb'>): Set<AdmissionGate | undefined> {
    return new Set(this.#placed(listener).map((p) => p.gate));
  }

  /** The port numbers the filters' listener matches name (`portNumber`, `filterChain.destinationPort`): every other port fits them alike. */
  get listenerPorts(): number[] {
    const ports = new Set<number>();
    for (const { patch } of this.#filters) {
      const m = patch.listener;
      if (m?.portNumber !== undefined && m.portNumber !== 0) ports.add(m.portNumber);
      const d = m?.filterChain?.destinationPort;
      if (d !== undefined && d !== 0) ports.add(d);
    }
    return [...ports];
  }

  /** Whether any rate limit filter sits in the chain of a listener (else no route of it has any). */
  hasFilters(listener: Pick<FilterSite, 'listenerFits' | 'grpcWeb'>): boolean {
    return this.#chain(listener).length > 0;
  }

  /** The active rate limit filters of a site, in order (those enabled for 0% of requests left out). */
  active(site: FilterSite): ActiveFilter[] {
    const chain = this.#placed(site);
    if (chain.length === 0) return [];
    const route: Merged = { perFilter: new Map(), perRouteGlobal: new Map(), rateLimits: [], includeVh: undefined };
    const vhost: Merged = { perFilter: new Map(), perRouteGlobal: new Map(), rateLimits: [], includeVh: undefined };
    for (const ref of this.#vhosts) if (site.routeFits(ref.patch.routeConfiguration, 'VIRTUAL_HOST')) merge(vhost, ref);
    for (const ref of this.#routes) if (site.routeFits(ref.patch.routeConfiguration, 'HTTP_ROUTE')) merge(route, ref);
    const out: ActiveFilter[] = [];
    for (const { ref, gate } of chain) {
      const name = ref.patch.filterName;
      let global = ref.patch.global;
      if (global !== undefined) {
        // Envoy's global filter: no buckets; no call without a route entry (populateRateLimitDescriptors returns first: a
        // redirect, a direct response, no route). Its descriptors: the most specific RateLimitPerRoute's rate_limits (the
        // route's, else the virtual host's), else its own, else the route's and virtual host's as vh_rate_limits says.
        const pr = route.perRouteGlobal.get(name) ?? vhost.perRouteGlobal.get(name);
        const own = pr !== undefined && pr.rateLimits.length > 0 ? pr.rateLimits : ref.patch.config.rateLimits;
        const config = { ...ref.patch.config, vhRateLimits: pr?.vhRateLimits ?? 'OVERRIDE', rateLimits: own };
        const policies = site.routeEntry ? policiesFor(config, route, vhost, true) : [];
        const builder = policies.length > 0 ? new DescriptorBuilder(policies, global.stage, true) : undefined;
        if (pr?.domain !== undefined) global = { ...global, domain: pr.domain };
        const limiter = this.#limiter(`global|${ref.source}`, ref.patch.config);
        out.push({ name, source: ref.source, config: ref.patch.config, limiter, descriptors: builder === undefined || builder.empty ? undefined : builder, gate, global });
        continue;
      }
      const r = route.perFilter.get(name);
      const v = r === undefined ? vhost.perFilter.get(name) : undefined;
      const config = r?.config ?? v?.config ?? ref.patch.config;
      if (!enabled(config)) continue; // Envoy: enabled for 0% of requests
      const key = r !== undefined ? `route|${site.routeKey}|${name}` : v !== undefined ? `vhost|${site.vhostKey}|${name}` : `filter|${ref.source}|${site.listenerKey}`;
      const source = r !== undefined ? `${r.source} (${site.routeLabel})` : v !== undefined ? `${v.source} (${site.vhostLabel})` : ref.source;
      const limiter = this.#limiter(key, config);
      const policies = limiter.hasDescriptors ? policiesFor(config, route, vhost, site.routeEntry) : [];
      const builder = policies.length > 0 ? new DescriptorBuilder(policies, config.stage) : undefined;
      out.push({ name, source, config, limiter, descriptors: builder === undefined || builder.empty ? undefined : builder, gate });
    }
    return out;
  }
}
