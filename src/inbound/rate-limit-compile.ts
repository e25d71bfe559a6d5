/**
 * Which local rate limits apply to a workload's inbound requests: the shared engine
 * ({@link RateLimitFilters}) read as istiod builds a sidecar's inbound listener.
 *
 * - **Context**: patches for `SIDECAR_INBOUND` or any context (`ANY`, or no match).
 * - **Filters** (`HTTP_FILTER` INSERT_*): per inbound port (the listener's filter chain for the
 *   workload port the request arrived on), those whose listener match fits: `portNumber` or
 *   `filterChain.destinationPort` the local port, `name` `virtualInbound`, the network filter
 *   the HTTP connection manager, `transportProtocol` `tls` (mTLS) or `raw_buffer`.
 * - **Routes** (`HTTP_ROUTE` / `VIRTUAL_HOST` MERGE): an inbound port has one route configuration
 *   `inbound|<port>||`, one virtual host `inbound|http|<service port>` (domains `*`), one route
 *   `default` whose action is ROUTE.
 *
 * @module
 */
import type { Clock } from '../core/clock.ts';
import type { AnyResource } from '../config/resource.ts';
import type { ListenerMatch, RouteConfigurationMatch } from '../config/types/envoy-filter.ts';
import { type ActiveFilter, type AdmissionGate, type FilterSite, HCM, RateLimitFilters, serviceCluster } from '../policies/rate-limit/envoy-filters.ts';
import type { LocalRateLimiter } from '../policies/rate-limit/local-rate-limiter.ts';
import type { HttpChainOptions } from '../config/validate/envoy-filter-chain.ts';
import type { Resource } from '../config/resource.ts';
import { selectPolicies } from '../security/authz/compile.ts';
import { selectRequestAuthentications } from '../security/jwt/compile.ts';
import { inboundServices } from './inbound-services.ts';

export type { ActiveFilter } from '../policies/rate-limit/envoy-filters.ts';

/**
 * The workload whose inbound requests are limited.
 * @category Inbound
 */
export interface RateLimitWorkload {
  /** Its service (short name). */
  readonly service: string;
  /** Its workload name: `source_cluster` is `<app label>.<namespace>`, else `<workload name>.<namespace>`. @defaultValue `service` */
  readonly workloadName?: string;
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

/** Service port(s) reaching each local port, from the Services and ServiceEntries that select the workload. */
export function inboundServicePorts(resources: readonly AnyResource[], workload: RateLimitWorkload): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const [local, services] of inboundServices(resources, workload)) out.set(local, [...new Set(services.map((s) => s.servicePort))]);
  return out;
}

/**
 * Which of istiod's conditional inbound HTTP filters the workload's inbound chain has: the authz
 * CUSTOM pair, the JWT filter (a RequestAuthentication with JWT rules), the RBAC filter (ALLOW,
 * DENY or AUDIT AuthorizationPolicies).
 */
export function inboundChainOptions(resources: readonly AnyResource[], workload: RateLimitWorkload, rootNamespace: string): HttpChainOptions {
  const policies = selectPolicies(resources as Resource[], workload, rootNamespace, []);
  const ras = selectRequestAuthentications(
    resources.filter((r): r is Resource<'RequestAuthentication'> & AnyResource => r.kind === 'RequestAuthentication'),
    workload,
    rootNamespace,
  );
  const actions = new Set(policies.filter((p) => p.spec.action !== 'CUSTOM').map((p) => p.spec.action ?? 'ALLOW'));
  return {
    custom: policies.some((p) => p.spec.action === 'CUSTOM'),
    jwt: ras.some((r) => (r.spec.jwtRules?.length ?? 0) > 0),
    rbac: actions.size > 0,
    rbacFilters: actions.size,
  };
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

/**
 * The local rate limits that apply to one workload's inbound side, compiled;
 * {@link CompiledRateLimits.forPort} gives the active filters of an inbound port.
 */
export class CompiledRateLimits {
  readonly #filters: RateLimitFilters;
  readonly #workload: RateLimitWorkload;
  readonly #servicePorts: ReadonlyMap<number, readonly number[]>;

  constructor(resources: readonly AnyResource[], workload: RateLimitWorkload, rootNamespace: string, clock: Clock, previous: ReadonlyMap<string, LocalRateLimiter> = new Map()) {
    this.#filters = new RateLimitFilters(resources, workload, rootNamespace, 'inbound', clock, previous, inboundChainOptions(resources, workload, rootNamespace));
    this.#workload = workload;
    this.#servicePorts = workload.servicePorts ?? inboundServicePorts(resources, workload);
  }

  /** Whether a rate limit filter applies to the workload's inbound side that can limit anything. */
  get canLimit(): boolean {
    return this.#filters.canLimit;
  }

  /** The `host:port` of each rate limit service a global filter asks. */
  get globalTargets(): string[] {
    return this.#filters.globalTargets;
  }

  /** The local ports the workload's services reach (known before any request). */
  get knownPorts(): number[] {
    return [...this.#servicePorts.keys()];
  }

  /** The limiters built so far, by identity (kept across config reloads when their buckets are unchanged). */
  get limiters(): ReadonlyMap<string, LocalRateLimiter> {
    return this.#filters.limiters;
  }

  /** The sidecar's service cluster: `<app label>.<namespace>`, else `<workload name>.<namespace>`. */
  get sourceCluster(): string {
    const w = this.#workload;
    return serviceCluster(w.labels, w.namespace, w.workloadName ?? w.service);
  }

  /**
   * Where in the chain the filters of any inbound port sit (the first of Istio's admission filters
   * after them; undefined: after them all). A listener match reads only the port and whether the
   * connection is mTLS, so the ports the matches name and one port none names, each plaintext and
   * mTLS, cover every chain.
   */
  gates(): Set<AdmissionGate | undefined> {
    const out = new Set<AdmissionGate | undefined>();
    for (const port of [...this.#filters.listenerPorts, -1]) {
      for (const tls of [false, true]) for (const g of this.#filters.gates({ listenerFits: (m) => listenerFits(m, port, tls) })) out.add(g);
    }
    return out;
  }

  /** Patches that put a filter between two of Istio's RBAC filters (run after authorization instead), found so far. */
  get betweenRbac(): readonly string[] {
    return this.#filters.betweenRbac;
  }

  /** The active rate limit filters for requests arriving on local `port` (over mTLS when `tls`). */
  forPort(port: number, tls: boolean): ActiveFilter[] {
    const servicePorts = this.#servicePorts.get(port) ?? [port];
    const site: FilterSite = {
      listenerFits: (m) => listenerFits(m, port, tls),
      routeFits: (m, applyTo) => routeFits(m, port, servicePorts, applyTo),
      listenerKey: String(port),
      vhostKey: String(port),
      routeKey: String(port),
      routeLabel: `route inbound|${port}||`,
      vhostLabel: 'virtual host',
      routeEntry: true,
    };
    return this.#filters.active(site);
  }
}
