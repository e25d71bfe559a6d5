/**
 * Which local rate limits apply to a workload's inbound requests, worked out as istiod builds a
 * sidecar's inbound listener from EnvoyFilters:
 *
 * - **Selection** (`PushContext.EnvoyFilters`): EnvoyFilters of the root namespace (mesh-wide)
 *   and of the workload's namespace whose `workloadSelector` labels are a subset of the
 *   workload's (no selector: every workload there); an EnvoyFilter with `targetRefs` addresses
 *   gateways and waypoints and never a sidecar. Ordered by `priority`, then root namespace
 *   first, then creation time, then `name.namespace`; patches apply in that order.
 * - **Context**: patches for `SIDECAR_INBOUND` or any context (`ANY`, or no match).
 * - **Filters** (`HTTP_FILTER` INSERT_*): per inbound port (the listener's filter chain for the
 *   workload port the request arrived on), those whose listener match fits: `portNumber` or
 *   `filterChain.destinationPort` the local port, `name` `virtualInbound`, the network filter
 *   the HTTP connection manager, `transportProtocol` `tls` (mTLS) or `raw_buffer`.
 * - **Routes** (`HTTP_ROUTE` / `VIRTUAL_HOST` MERGE): an inbound port has one route configuration
 *   `inbound|<port>||`, one virtual host `inbound|http|<service port>` (domains `*`), one route
 *   `default` whose action is ROUTE. Merges add per-filter configs (a later one for the same
 *   filter name replaces an earlier) and append rate limits.
 *
 * The result per port is a list of active filters, each with its config resolved as Envoy does
 * (route's per-filter config, else the virtual host's, else the filter's own), its token
 * buckets and its descriptor builder.
 *
 * @module
 */
import type { Clock } from '../core/clock.ts';
import type { AnyResource, Resource } from '../config/resource.ts';
import type { ListenerMatch, RouteConfigurationMatch } from '../config/types/envoy-filter.ts';
import type { LocalRateLimitSettings, RateLimitFilterPatch, RateLimitPolicySettings, RateLimitRoutePatch } from '../config/types/local-rate-limit.ts';
import { inboundServices } from './inbound-services.ts';
import { rateLimitPatches } from '../config/validate/envoy-filter.ts';
import { labelsMatch } from '../config/workloads.ts';
import { DescriptorBuilder } from '../policies/rate-limit/descriptors.ts';
import { LocalRateLimiter } from '../policies/rate-limit/local-rate-limiter.ts';

/**
 * The workload whose inbound requests are limited.
 * @category Inbound
 */
export interface RateLimitWorkload {
  /** Its service (short name); `source_cluster` is `<service>.<namespace>`. */
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Its named ports, for Services whose `targetPort` is a name. @defaultValue {} */
  readonly ports?: Readonly<Record<string, number>>;
  /**
   * The service ports that reach each local port (virtual hosts are named after them:
   * `inbound|http|<service port>`). By default worked out from the Services and ServiceEntries
   * (with a `workloadSelector`) in `resources` that select the workload; a local port no service
   * reaches is taken as its own service port.
   */
  readonly servicePorts?: ReadonlyMap<number, readonly number[]>;
}

const HCM = 'envoy.filters.network.http_connection_manager';
const ROUTER = 'envoy.filters.http.router';

/** An HTTP_FILTER patch in application order. */
interface FilterPatchRef {
  readonly patch: RateLimitFilterPatch;
  /** `EnvoyFilter ns/name configPatches[i]`. */
  readonly source: string;
}

interface RoutePatchRef {
  readonly patch: RateLimitRoutePatch;
  readonly source: string;
}

/** One rate limit filter as it runs for requests on one port. */
export interface ActiveFilter {
  /** HTTP filter name. */
  readonly name: string;
  /** Where its config comes from: `EnvoyFilter ns/name configPatches[i]` (and the level). */
  readonly source: string;
  readonly config: LocalRateLimitSettings;
  readonly limiter: LocalRateLimiter;
  /** Undefined when the config has no descriptors (no need to compute the request's). */
  readonly descriptors: DescriptorBuilder | undefined;
}

/** The EnvoyFilters that apply to the workload, in istiod's order. */
export function selectEnvoyFilters(resources: readonly AnyResource[], workload: RateLimitWorkload, rootNamespace: string): Resource<'EnvoyFilter'>[] {
  const picked = resources.filter((r): r is Resource<'EnvoyFilter'> & AnyResource => {
    if (r.kind !== 'EnvoyFilter') return false;
    const ns = r.metadata.namespace;
    if (ns !== rootNamespace && ns !== workload.namespace) return false;
    if ((r.spec.targetRefs?.length ?? 0) > 0) return false;
    const sel = r.spec.workloadSelector;
    return sel === undefined || labelsMatch(sel.labels ?? {}, workload.labels);
  });
  return picked.sort((a, b) => {
    const pa = a.spec.priority ?? 0;
    const pb = b.spec.priority ?? 0;
    if (pa !== pb) return pa - pb;
    const na = a.metadata.namespace;
    const nb = b.metadata.namespace;
    if (na !== nb && (na === rootNamespace || nb === rootNamespace)) return na === rootNamespace ? -1 : 1;
    // Go's zero time (no creationTimestamp) is the earliest.
    const ta = a.metadata.creationTimestamp === undefined ? 0 : Date.parse(a.metadata.creationTimestamp);
    const tb = b.metadata.creationTimestamp === undefined ? 0 : Date.parse(b.metadata.creationTimestamp);
    if (ta !== tb) return ta - tb;
    const ka = `${a.metadata.name}.${na}`;
    const kb = `${b.metadata.name}.${nb}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

/** Service port(s) reaching each local port, from the Services and ServiceEntries that select the workload. */
export function inboundServicePorts(resources: readonly AnyResource[], workload: RateLimitWorkload): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const [local, services] of inboundServices(resources, workload)) out.set(local, [...new Set(services.map((s) => s.servicePort))]);
  return out;
}

function inboundContext(c: string): boolean {
  return c === 'ANY' || c === 'SIDECAR_INBOUND';
}

/** Whether an HTTP_FILTER patch's listener match fits the inbound filter chain of `port` (`tls`: an mTLS connection). */
function listenerFits(m: ListenerMatch | undefined, port: number, tls: boolean): boolean {
  if (m === undefined) return true;
  if (m.name !== undefined && m.name !== '' && m.name !== 'virtualInbound') return false;
  if (m.portNumber !== undefined && m.portNumber !== 0 && m.portNumber !== port) return false;
  const fc = m.filterChain;
  if (fc === undefined) return true;
  if (fc.destinationPort !== undefined && fc.destinationPort !== 0 && fc.destinationPort !== port) return false;
  if (fc.transportProtocol !== undefined && fc.transportProtocol !== '' && fc.transportProtocol !== (tls ? 'tls' : 'raw_buffer')) return false;
  const f = fc.filter;
  if (f?.name !== undefined && f.name !== '' && f.name !== HCM) return false;
  return true;
}

/** Whether a route patch's routeConfiguration match fits the inbound route of `port`. */
function routeFits(m: RouteConfigurationMatch | undefined, port: number, servicePorts: readonly number[], applyTo: 'HTTP_ROUTE' | 'VIRTUAL_HOST'): boolean {
  if (m === undefined) return true;
  if (m.name !== undefined && m.name !== '' && m.name !== `inbound|${port}||`) return false;
  if (m.portNumber !== undefined && m.portNumber !== 0 && m.portNumber !== port) return false;
  const vh = m.vhost;
  if (vh === undefined) return true;
  if (vh.name !== undefined && vh.name !== '' && !servicePorts.some((sp) => vh.name === `inbound|http|${sp}`)) return false;
  if (vh.domainName !== undefined && vh.domainName !== '' && vh.domainName !== '*') return false;
  if (applyTo === 'VIRTUAL_HOST' || vh.route === undefined) return true;
  const r = vh.route;
  if (r.name !== undefined && r.name !== '' && r.name !== 'default') return false;
  return r.action === undefined || r.action === 'ANY' || r.action === 'ROUTE';
}

/** A route or virtual host after the merges. */
interface Merged {
  readonly perFilter: Map<string, { config: LocalRateLimitSettings; source: string }>;
  readonly rateLimits: RateLimitPolicySettings[];
  includeVh: boolean | undefined;
}

function merge(into: Merged, ref: RoutePatchRef): void {
  for (const [name, config] of ref.patch.perFilterConfig) into.perFilter.set(name, { config, source: ref.source });
  into.rateLimits.push(...ref.patch.rateLimits);
  if (ref.patch.includeVhRateLimits !== undefined) into.includeVh = ref.patch.includeVhRateLimits;
}

/** The rate limits feeding a filter's descriptors: its own, else the route's and the virtual host's as `vh_rate_limits` says. */
function policiesFor(config: LocalRateLimitSettings, route: Merged, vhost: Merged): readonly RateLimitPolicySettings[] {
  if (config.rateLimits.length > 0) return config.rateLimits;
  const mode = route.includeVh === true ? 'INCLUDE' : config.vhRateLimits;
  if (mode === 'IGNORE') return route.rateLimits;
  if (mode === 'INCLUDE') return [...route.rateLimits, ...vhost.rateLimits];
  return route.rateLimits.length > 0 ? route.rateLimits : vhost.rateLimits;
}

/**
 * The local rate limits that apply to one workload, compiled; {@link CompiledRateLimits.forPort}
 * gives the active filters of an inbound port.
 */
export class CompiledRateLimits {
  readonly #filters: readonly FilterPatchRef[];
  readonly #routes: readonly RoutePatchRef[];
  readonly #vhosts: readonly RoutePatchRef[];
  readonly #workload: RateLimitWorkload;
  readonly #servicePorts: ReadonlyMap<number, readonly number[]>;
  readonly #clock: Clock;
  /** Limiters by identity: filter instance, route or virtual host of a port, and filter name. */
  readonly #limiters = new Map<string, LocalRateLimiter>();
  readonly #previous: ReadonlyMap<string, LocalRateLimiter>;

  constructor(resources: readonly AnyResource[], workload: RateLimitWorkload, rootNamespace: string, clock: Clock, previous: ReadonlyMap<string, LocalRateLimiter> = new Map()) {
    const filters: FilterPatchRef[] = [];
    const routes: RoutePatchRef[] = [];
    const vhosts: RoutePatchRef[] = [];
    for (const ef of selectEnvoyFilters(resources, workload, rootNamespace)) {
      rateLimitPatches(ef.spec).forEach((patch, i) => {
        if (!inboundContext(patch.context)) return;
        const source = `${ef.ref} configPatches[${i}]`;
        if (patch.applyTo === 'HTTP_FILTER') filters.push({ patch, source });
        else if (patch.applyTo === 'HTTP_ROUTE') routes.push({ patch, source });
        else vhosts.push({ patch, source });
      });
    }
    this.#filters = filters;
    this.#routes = routes;
    this.#vhosts = vhosts;
    this.#workload = workload;
    this.#servicePorts = workload.servicePorts ?? inboundServicePorts(resources, workload);
    this.#clock = clock;
    this.#previous = previous;
  }

  /**
   * Whether a rate limit filter applies to the workload's inbound side that can limit anything:
   * one enabled for some requests, by its own config or by a route's or virtual host's config
   * for its name (a filter with no `filter_enabled` is enabled for 0% of requests).
   */
  get canLimit(): boolean {
    const enabled = (c: LocalRateLimitSettings) => c.filterEnabled !== undefined && c.filterEnabled.numerator > 0;
    if (this.#filters.some((f) => enabled(f.patch.config))) return true;
    const names = new Set(this.#filters.map((f) => f.patch.filterName));
    return [...this.#routes, ...this.#vhosts].some((r) => [...r.patch.perFilterConfig].some(([name, c]) => names.has(name) && enabled(c)));
  }

  /** The local ports the workload's services reach (known before any request). */
  get knownPorts(): number[] {
    return [...this.#servicePorts.keys()];
  }

  /** The limiters built so far, by identity (kept across config reloads when their buckets are unchanged). */
  get limiters(): ReadonlyMap<string, LocalRateLimiter> {
    return this.#limiters;
  }

  /** `<service>.<namespace>`. */
  get sourceCluster(): string {
    return `${this.#workload.service}.${this.#workload.namespace}`;
  }

  #limiter(key: string, config: LocalRateLimitSettings): LocalRateLimiter {
    let l = this.#limiters.get(key);
    if (l === undefined) {
      l = new LocalRateLimiter(config, this.#clock, this.#previous.get(key));
      this.#limiters.set(key, l);
    }
    return l;
  }

  /** The filter chain's rate limit filters for `port`, in order (Istio's insertion rules, among the rate limit filters). */
  #chain(port: number, tls: boolean): FilterPatchRef[] {
    const chain: FilterPatchRef[] = [];
    for (const ref of this.#filters) {
      const p = ref.patch;
      if (!listenerFits(p.listener, port, tls)) continue;
      const sub = p.listener?.filterChain?.filter?.subFilter?.name;
      if (p.operation === 'INSERT_FIRST' || (p.operation === 'INSERT_BEFORE' && (sub === undefined || sub === ''))) {
        chain.unshift(ref);
        continue;
      }
      if (sub === undefined || sub === '') {
        chain.push(ref); // INSERT_AFTER without a filter match: appended
        continue;
      }
      const at = chain.findIndex((c) => c.patch.filterName === sub);
      if (at !== -1) chain.splice(p.operation === 'INSERT_BEFORE' ? at : at + 1, 0, ref);
      else if (!(p.operation === 'INSERT_AFTER' && sub === ROUTER)) chain.push(ref); // after the router, Envoy never runs it
    }
    return chain;
  }

  /** The active rate limit filters for requests arriving on local `port` (over mTLS when `tls`). */
  forPort(port: number, tls: boolean): ActiveFilter[] {
    const servicePorts = this.#servicePorts.get(port) ?? [port];
    const route: Merged = { perFilter: new Map(), rateLimits: [], includeVh: undefined };
    const vhost: Merged = { perFilter: new Map(), rateLimits: [], includeVh: undefined };
    for (const ref of this.#vhosts) if (routeFits(ref.patch.routeConfiguration, port, servicePorts, 'VIRTUAL_HOST')) merge(vhost, ref);
    for (const ref of this.#routes) if (routeFits(ref.patch.routeConfiguration, port, servicePorts, 'HTTP_ROUTE')) merge(route, ref);
    const out: ActiveFilter[] = [];
    for (const ref of this.#chain(port, tls)) {
      const name = ref.patch.filterName;
      const r = route.perFilter.get(name);
      const v = r === undefined ? vhost.perFilter.get(name) : undefined;
      const config = r?.config ?? v?.config ?? ref.patch.config;
      const enabled = config.filterEnabled;
      if (enabled === undefined || enabled.numerator === 0) continue; // Envoy: enabled for 0% of requests
      const key = r !== undefined ? `route|${port}|${name}` : v !== undefined ? `vhost|${port}|${name}` : `filter|${ref.source}|${port}`;
      const source = r !== undefined ? `${r.source} (route inbound|${port}||)` : v !== undefined ? `${v.source} (virtual host)` : ref.source;
      const limiter = this.#limiter(key, config);
      const policies = limiter.hasDescriptors ? policiesFor(config, route, vhost) : [];
      const builder = policies.length > 0 ? new DescriptorBuilder(policies, config.stage) : undefined;
      out.push({ name, source, config, limiter, descriptors: builder === undefined || builder.empty ? undefined : builder });
    }
    return out;
  }
}
