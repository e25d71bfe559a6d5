/**
 * The VirtualServices a workload routes with, as istiod selects and orders them: visible to the
 * workload's namespace and bound to the mesh gateway, ordered by export class then age (which
 * decides conflicts), indexed by host (an exact host beats a wildcard, then the first listed
 * wins), and — under a Sidecar — the ports on which an egress listener routes a VirtualService's
 * hosts that have no service in it.
 *
 * @module
 */
import { mergeDelegates } from '../config/delegation.ts';
import { hostMatches, hostsOverlap, isVisible, isWildcard, resolveHost, specificity } from '../config/hosts.ts';
import { type AnyResource, byAge, type Resource } from '../config/resource.ts';
import { importsPort, listenerFor, type ScopedService, type ScopeListener, type SidecarScope } from '../config/sidecar-scope.ts';
import { isHttpPort, routesHttp } from './http-ports.ts';
import { gatewayParentNamespace, gatewayRouteVirtualServices, usesGatewaySemantics } from '../config/gateway-api/mesh-routes.ts';

/** A VirtualService and its hosts, resolved to full names. */
export interface VsEntry {
  readonly vs: Resource<'VirtualService'>;
  readonly hosts: readonly string[];
}

/**
 * Where a VirtualService comes in the order istiod lists them for a workload of `namespace`
 * (`VirtualServicesForGateway`, `SelectVirtualServices`): 0 exported to its own namespace only
 * (private), 1 exported to the workload's namespace by name, 2 public; the oldest first within each.
 */
function exportClass(vs: Resource<'VirtualService'>, namespace: string): number {
  const exportTo = vs.spec.exportTo;
  if (exportTo === undefined || exportTo.length === 0 || exportTo.includes('*')) return 2;
  const own = vs.metadata.namespace;
  return own === namespace && (exportTo.includes('.') || exportTo.includes(own)) ? 0 : 1;
}


/** 0 for a Gateway API route in the workload's namespace, 1 for any other VirtualService. */
function consumerFirst(vs: Resource<'VirtualService'>, namespace: string): number {
  return usesGatewaySemantics(vs) && vs.metadata.namespace === namespace ? 0 : 1;
}

/**
 * The VirtualServices a workload of `namespace` routes with, in istiod's order: delegates
 * (no hosts) merged into the rules of the roots that name them, those not visible to the
 * namespace or not bound to the `mesh` gateway left out.
 */
export function meshVirtualServices(resources: readonly AnyResource[], namespace: string): VsEntry[] {
  // The VirtualServices users write, then those istiod makes of Gateway API routes (HTTPRoute, GRPCRoute).
  return [...mergeDelegates(resources).virtualServices, ...gatewayRouteVirtualServices(resources)]
    .filter((vs) => isVisible(vs.spec.exportTo, vs.metadata.namespace, namespace))
    // istiod indexes a VirtualService by its top-level gateways only (`getGatewayNames`): a match block naming `mesh` in one bound to gateways alone reaches no sidecar.
    .filter((vs) => vs.spec.gateways === undefined || vs.spec.gateways.length === 0 || vs.spec.gateways.includes('mesh'))
    // A Gateway API route applies to the workloads of its own namespace (consumer route) and, when it is in the Service's namespace (producer route), to every workload (route.go `BuildSidecarVirtualHostWrapper`).
    .filter((vs) => !usesGatewaySemantics(vs) || vs.metadata.namespace === namespace || gatewayParentNamespace(vs) === vs.metadata.namespace)
    // Nor does one for a wildcard host (a ServiceEntry parent's): route.go separateVSHostsAndServices gives it no service under gateway semantics, and BuildSidecarVirtualHostWrapper then builds nothing.
    .filter((vs) => !usesGatewaySemantics(vs) || !(vs.spec.hosts ?? []).some(isWildcard))
    // Within each export class, the consumer's own Gateway API routes come first (`SelectVirtualServices` with PILOT_UNIFIED_SIDECAR_SCOPE): a consumer route overrides the producer's.
    .sort((a, b) => exportClass(a, namespace) - exportClass(b, namespace) || consumerFirst(a, namespace) - consumerFirst(b, namespace) || byAge(a, b))
    .map((vs) => ({ vs, hosts: (vs.spec.hosts ?? []).map((h) => resolveHost(h, vs.metadata.namespace)) }));
}

/** VirtualServices indexed by host; for a host, an exact host beats a wildcard, then the first listed wins (Istio's conflict rule: see {@link exportClass}). */
export class VirtualServiceIndex {
  readonly #exact = new Map<string, Resource<'VirtualService'>>();
  /** Every VirtualService of an exact host, in order (the first is `#exact`'s). */
  readonly #exactAll = new Map<string, Resource<'VirtualService'>[]>();
  readonly #wildcard: { host: string; vs: Resource<'VirtualService'> }[] = [];
  readonly entries: readonly VsEntry[];

  constructor(entries: readonly VsEntry[]) {
    this.entries = entries; // already in istiod's order
    for (const e of entries) {
      for (const h of e.hosts) {
        if (isWildcard(h)) this.#wildcard.push({ host: h, vs: e.vs });
        else {
          if (!this.#exact.has(h)) this.#exact.set(h, e.vs);
          const all = this.#exactAll.get(h);
          if (all === undefined) this.#exactAll.set(h, [e.vs]);
          else if (!all.includes(e.vs)) all.push(e.vs);
        }
      }
    }
    // A stable sort: among equally specific hosts, the first listed wins.
    this.#wildcard.sort((a, b) => specificity(b.host) - specificity(a.host));
  }

  find(host: string): Resource<'VirtualService'> | undefined {
    const exact = this.#exact.get(host);
    if (exact !== undefined) return exact;
    for (const w of this.#wildcard) if (hostMatches(w.host, host)) return w.vs;
    return undefined;
  }

  /**
   * Every VirtualService for `host`, in the order {@link find} prefers them: on a port where the
   * first makes no route (its match blocks name other ports), istiod builds no virtual host from
   * it (`buildSidecarVirtualHostsForVirtualService` returns none) and the next one for the host
   * routes that port — e.g. the VirtualServices of two HTTPRoutes attached to two ports of one Service.
   * That holds between VirtualServices naming the host itself only: istiod ties a service to one
   * wildcard VirtualService, the most specific, and to none when one names the host
   * (`computeWildcardHostVirtualServiceIndex`; `separateVSHostsAndServices` skips the service for any
   * other wildcard VirtualService), so a port no VirtualService routes goes to the service itself.
   */
  findAll(host: string): readonly Resource<'VirtualService'>[] {
    const exact = this.#exactAll.get(host);
    if (exact !== undefined) return exact;
    for (const w of this.#wildcard) if (hostMatches(w.host, host)) return [w.vs];
    return [];
  }
}

/**
 * Under a Sidecar, the ports on which listener `l` routes a VirtualService's hosts that have no
 * service in the listener (istiod's `BuildSidecarOutboundVirtualHosts`, once per route port):
 * the listener's HTTP ports — its own port, or (port-less) the HTTP ports of its services that no
 * listener with a port takes — and of those only port 80 (`separateVSHostsAndServices`' port-80
 * virtual host) and the ports where another host of the VirtualService names a service the
 * listener imports on that port (`selectVirtualServices` drops the VirtualService elsewhere). An
 * `HTTP_PROXY` listener (istiod's route port 0) keeps a VirtualService naming any of its services.
 */
export function vsOnlyPorts(scope: SidecarScope, l: ScopeListener): (entry: VsEntry) => readonly number[] {
  const proxy = l.port !== undefined && !l.matchPort;
  const ports = new Set<number>();
  if (l.port !== undefined) {
    if (routesHttp(l)) ports.add(l.port);
  }
  else for (const s of l.services.values()) for (const p of s.service.ports) if (isHttpPort(p) && importsPort(s, p.number) && listenerFor(scope, p.number) === l) ports.add(p.number);
  const services = [...l.services.values()];
  const wildcards = services.filter((s) => isWildcard(s.service.hostname));
  const on = (s: ScopedService, port: number) => proxy || (importsPort(s, port) && s.service.ports.some((p) => p.number === port && isHttpPort(p)));
  const namesService = (h: string, port: number): boolean => {
    if (isWildcard(h)) return services.some((s) => on(s, port) && hostsOverlap(h, s.service.hostname));
    const exact = l.services.get(h);
    return (exact !== undefined && on(exact, port)) || wildcards.some((s) => on(s, port) && hostMatches(s.service.hostname, h));
  };
  const memo = new Map<VsEntry, readonly number[]>();
  return (entry) => {
    let out = memo.get(entry);
    if (out === undefined) {
      out = [...ports].filter((p) => (p === 80 && !proxy) || entry.hosts.some((h) => namesService(h, p)));
      memo.set(entry, out);
    }
    return out;
  };
}

/**
 * Whether wildcard VirtualService host `h` matches a service listener `l` routes on `port` (an
 * `HTTP_PROXY` listener: on any port). istiod then routes the services it matches with the
 * VirtualService and gives the wildcard itself no virtual host on that port
 * (`separateVSHostsAndServices`: a wildcard is a non-registry host only when no service matches it).
 */
export function wildcardMatchesService(l: ScopeListener, h: string, port: number): boolean {
  const proxy = l.port !== undefined && !l.matchPort;
  for (const s of l.services.values()) {
    if (!hostsOverlap(h, s.service.hostname)) continue;
    if (proxy || (importsPort(s, port) && s.service.ports.some((p) => p.number === port))) return true;
  }
  return false;
}
