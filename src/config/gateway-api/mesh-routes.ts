/**
 * HTTPRoutes and GRPCRoutes attached to Services (GAMMA mesh routing) as the VirtualServices
 * istiod generates for them (pilot/pkg/config/kube/gateway/route_collections.go:
 * `HTTPRouteCollection`, `mergeHTTPRoutes`; conversion.go: `sortHTTPRoutes`): for each Service
 * parent, one VirtualService per route namespace, parent port and Service host, bound to `mesh`,
 * with the routes of every HTTPRoute and GRPCRoute of that key merged (oldest route first) and
 * sorted by Gateway API precedence. They carry istiod's `internal.istio.io/route-semantics:
 * gateway` annotation, which the route compiler reads for Gateway API semantics.
 *
 * @module
 */
import { IssueList } from '../issues.ts';
import { type AnyResource, ofKind, type Resource } from '../resource.ts';
import { kubeServiceHost } from '../registry-kube.ts';
import type { HTTPRoute as IstioRoute, HTTPMatchRequest } from '../types/networking.ts';
import { type ConvertContext, convertRule, DEFAULT_HTTP_RULES } from './convert.ts';
import type { GatewayGRPCRouteMatch, GatewayHTTPRouteMatch, GatewayParentReference, GatewayRouteSpec } from './types.ts';

/** istiod's annotation naming the routes a generated VirtualService was made of. */
export const PARENTS_ANNOTATION = 'internal.istio.io/parents';
/** istiod's annotation marking a VirtualService made from a Gateway API route. */
export const ROUTE_SEMANTICS_ANNOTATION = 'internal.istio.io/route-semantics';

/** meshlet's annotation on a generated VirtualService: the namespace of the Service or ServiceEntry the route is attached to. */
export const PARENT_NAMESPACE_ANNOTATION = 'meshlet.io/parent-namespace';

/** The namespace of the Service (or ServiceEntry) a generated VirtualService routes. */
export function gatewayParentNamespace(vs: Resource<'VirtualService'>): string | undefined {
  return vs.metadata.annotations?.[PARENT_NAMESPACE_ANNOTATION];
}

/** True for a VirtualService istiod (or meshlet) generated from a Gateway API route. */
export function usesGatewaySemantics(vs: Resource<'VirtualService'>): boolean {
  return vs.metadata.annotations?.[ROUTE_SEMANTICS_ANNOTATION] === 'gateway';
}

/** Which kind of parent a parentRef names (`NormalizeReference` with Gateway as the default). */
export function parentKind(ref: { group?: string | undefined; kind?: string | undefined }): 'Service' | 'ServiceEntry' | 'Gateway' | 'other' {
  const group = ref.group ?? 'gateway.networking.k8s.io';
  const kind = ref.kind ?? 'Gateway';
  if ((group === '' || group === 'core') && kind === 'Service') return 'Service';
  if (group === 'networking.istio.io' && kind === 'ServiceEntry') return 'ServiceEntry';
  if (group === 'gateway.networking.k8s.io' && (kind === 'Gateway' || kind === 'ListenerSet')) return 'Gateway';
  return 'other';
}

/** The versions of each route kind meshlet reads (those the Gateway API has served). */
const ROUTE_VERSIONS: Readonly<Record<string, readonly string[]>> = {
  HTTPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1', 'gateway.networking.k8s.io/v1alpha2'],
  GRPCRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1alpha2'],
};

/**
 * `HTTPRoute` or `GRPCRoute` when a document is one of those with at least one Service or
 * ServiceEntry parent (mesh routing, which meshlet applies); undefined for every other document
 * (routes attached only to Gateways are skipped like other Gateway API resources).
 */
export function gatewayRouteKind(raw: Record<string, unknown>, apiVersion: string, kind: string): 'HTTPRoute' | 'GRPCRoute' | undefined {
  if (kind !== 'HTTPRoute' && kind !== 'GRPCRoute') return undefined;
  if (!(ROUTE_VERSIONS[kind] as readonly string[]).includes(apiVersion)) return undefined;
  const spec = raw.spec as { parentRefs?: unknown } | undefined;
  const refs = Array.isArray(spec?.parentRefs) ? (spec.parentRefs as unknown[]) : [];
  const mesh = refs.some((r) => {
    if (typeof r !== 'object' || r === null) return false;
    const { group, kind: k } = r as { group?: unknown; kind?: unknown };
    const p = parentKind({ group: typeof group === 'string' ? group : undefined, kind: typeof k === 'string' ? k : undefined });
    return p === 'Service' || p === 'ServiceEntry';
  });
  return mesh ? kind : undefined;
}

/** An HTTPRoute or GRPCRoute meshlet applies (one with a Service or ServiceEntry parent). */
export type GatewayRoute = Resource<'HTTPRoute'> | Resource<'GRPCRoute'>;

interface Base {
  readonly key: string;
  readonly route: GatewayRoute;
  readonly http: IstioRoute[];
  readonly parentNamespace: string;
  /** istiod's name for this route's VirtualService before merging, `<route>~<n>~<gateway>` (n counts the route's VirtualServices). */
  readonly name: string;
}

/** `getURIRank`: exact 3, prefix 2, regex 1, none -1. */
function uriRank(m: HTTPMatchRequest): number {
  return m.uri?.exact !== undefined ? 3 : m.uri?.prefix !== undefined ? 2 : m.uri?.regex !== undefined ? 1 : -1;
}

function uriLength(m: HTTPMatchRequest): number {
  return (m.uri?.exact ?? m.uri?.prefix ?? m.uri?.regex ?? '').length;
}

/** `sortHTTPRoutes`: Gateway API precedence, stable (JavaScript's sort is). */
export function sortHttpRoutes(routes: IstioRoute[]): void {
  routes.sort((a, b) => {
    const ma = a.match?.[0];
    const mb = b.match?.[0];
    if (ma === undefined) return mb === undefined ? 0 : 1;
    if (mb === undefined) return -1;
    const ra = uriRank(ma);
    const rb = uriRank(mb);
    if (ra !== rb) return rb - ra;
    const la = uriLength(ma);
    const lb = uriLength(mb);
    if (la !== lb) return lb - la;
    if ((ma.method === undefined) !== (mb.method === undefined)) return ma.method !== undefined ? -1 : 1;
    const ha = Object.keys(ma.headers ?? {}).length;
    const hb = Object.keys(mb.headers ?? {}).length;
    if (ha !== hb) return hb - ha;
    return Object.keys(mb.queryParams ?? {}).length - Object.keys(ma.queryParams ?? {}).length;
  });
}

/**
 * `sortRoutesByCreationTime`: oldest first, then namespace, then the generated name
 * `<route>~<n>~mesh` (so `reviews-canary` comes before `reviews`: `-` sorts before `~`); routes
 * without a time count as the oldest, as Go's zero time.
 */
function byCreation(a: Base, b: Base): number {
  const ta = a.route.metadata.creationTimestamp === undefined ? 0 : Date.parse(a.route.metadata.creationTimestamp);
  const tb = b.route.metadata.creationTimestamp === undefined ? 0 : Date.parse(b.route.metadata.creationTimestamp);
  if (ta !== tb) return ta - tb;
  if (a.route.metadata.namespace !== b.route.metadata.namespace) return a.route.metadata.namespace < b.route.metadata.namespace ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** `augmentPortMatch`: every match (or a match of its own) limited to the parent's port. */
function withPort(routes: readonly IstioRoute[], port: number): IstioRoute[] {
  return routes.map((r) => ({ ...r, match: r.match === undefined || r.match.length === 0 ? [{ port }] : r.match.map((m) => ({ ...m, port })) }));
}

/**
 * The VirtualServices of `routes` for mesh parents, given the validated resources (for the
 * Services and ServiceEntries routes attach to and route to). Problems istiod reports in a
 * route's status are warnings here.
 */
export function routeVirtualServices(resources: readonly AnyResource[], issues: IssueList = new IssueList(), crdDefaults = true): Resource<'VirtualService'>[] {
  const routes = resources.filter((r): r is GatewayRoute & AnyResource => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute');
  if (routes.length === 0) return [];
  const services = new Set(ofKind(resources, 'Service').map((s) => `${s.metadata.namespace}/${s.metadata.name}`));
  const entries = new Map(ofKind(resources, 'ServiceEntry').map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s] as const));
  const hosts = new Set<string>([
    ...ofKind(resources, 'Service').map((s) => kubeServiceHost(s.metadata.name, s.metadata.namespace)),
    ...[...entries.values()].flatMap((s) => s.spec.hosts ?? []),
  ]);
  const bases: Base[] = [];
  for (const route of routes) {
    const subject = { source: route.source, ref: route.ref };
    const warn = (path: readonly (string | number)[], message: string) => issues.at(subject, path, 'warning', message, 'MESHLET0004');
    const ctx: ConvertContext = { namespace: route.metadata.namespace, serviceExists: (k) => services.has(k), hostExists: (h) => hosts.has(h), warn, crdDefaults };
    let converted: IstioRoute[] | undefined;
    let count = 0;
    const rules = () => {
      const spec = route.spec as GatewayRouteSpec<GatewayHTTPRouteMatch | GatewayGRPCRouteMatch>;
      converted ??= (spec.rules ?? (route.kind === 'HTTPRoute' && crdDefaults ? DEFAULT_HTTP_RULES : [])).flatMap((rule, i) => convertRule(route.kind, route.metadata.name, rule, i, ctx));
      return converted;
    };
    (route.spec.parentRefs ?? []).forEach((p: GatewayParentReference, i: number) => {
      const kind = parentKind(p);
      const ns = p.namespace ?? route.metadata.namespace;
      const at = ['spec', 'parentRefs', i];
      if (kind === 'Gateway') {
        warn(at, `not applied: Gateway ${ns}/${p.name} is a gateway parent and meshlet is not a gateway (the route's Service parents apply)`);
        return;
      }
      if (kind === 'other') {
        warn(at, `not applied: parent of group "${p.group ?? ''}" kind "${p.kind ?? ''}" is not a Service, ServiceEntry or Gateway (istiod ignores it)`);
        return;
      }
      let vsHosts: readonly string[];
      if (kind === 'Service') {
        if (!services.has(`${ns}/${p.name}`)) {
          warn(at, `not applied: parent Service ${ns}/${p.name} not found (istiod: Accepted=False); declare the Service`);
          return;
        }
        vsHosts = [kubeServiceHost(p.name, ns)];
      } else {
        const se = entries.get(`${ns}/${p.name}`);
        if (se === undefined) {
          warn(at, `not applied: parent ServiceEntry ${ns}/${p.name} not found (istiod: Accepted=False)`);
          return;
        }
        vsHosts = se.spec.hosts ?? [];
        // istiod makes the VirtualService, but gives a gateway-semantics VirtualService's wildcard host no service (route.go separateVSHostsAndServices) and builds no virtual host without one: it never routes (see meshVirtualServices).
        for (const h of vsHosts) if (h.startsWith('*')) warn(at, `not applied for host ${h} of ServiceEntry ${ns}/${p.name}: istiod does not apply a route to a wildcard ServiceEntry host`);
      }
      let http = rules();
      let key = route.metadata.namespace;
      if (p.port !== undefined) {
        http = withPort(http, p.port);
        key += `/${p.port}`;
      }
      if (http.length === 0) return;
      for (const h of vsHosts) bases.push({ key: `${key}/${h}`, route, http, parentNamespace: ns, name: `${route.metadata.name}~${count++}~mesh` });
    });
    if ((route.spec.hostnames ?? []).length > 0 && (route.spec.parentRefs ?? []).some((p: GatewayParentReference) => parentKind(p) === 'Service' || parentKind(p) === 'ServiceEntry')) {
      issues.at(subject, ['spec', 'hostnames'], 'info', 'hostnames do not apply to Service parents: istiod routes calls to the parent Service\'s own host', 'MESHLET0004');
    }
  }
  const byKey = new Map<string, Base[]>();
  for (const b of bases) {
    const list = byKey.get(b.key);
    if (list === undefined) byKey.set(b.key, [b]);
    else list.push(b);
  }
  const out: Resource<'VirtualService'>[] = [];
  for (const [key, list] of byKey) {
    list.sort(byCreation);
    const first = list[0] as Base;
    const http = list.flatMap((b) => b.http);
    sortHttpRoutes(http);
    const name = key.replaceAll('/', '~');
    const host = key.slice(key.lastIndexOf('/') + 1);
    const parents = [...new Set(list.map((b) => `${b.route.kind}/${b.route.metadata.name}.${b.route.metadata.namespace}`))].join(',');
    const ns = first.route.metadata.namespace;
    const metadata = {
      name,
      namespace: ns,
      annotations: { [PARENTS_ANNOTATION]: parents, [ROUTE_SEMANTICS_ANNOTATION]: 'gateway', [PARENT_NAMESPACE_ANNOTATION]: first.parentNamespace },
      ...(first.route.metadata.creationTimestamp === undefined ? {} : { creationTimestamp: first.route.metadata.creationTimestamp }),
    };
    out.push({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata,
      spec: { hosts: [host], gateways: ['mesh'], http: structuredClone(http) },
      source: first.route.source,
      ref: `VirtualService ${ns}/${name} (from ${parents})`,
      // Its place is its oldest route's: where Istio compares ages, the route's age is the VirtualService's.
      order: first.route.order,
    });
  }
  return out;
}

const cache = new WeakMap<readonly AnyResource[], readonly Resource<'VirtualService'>[]>();

/**
 * The VirtualServices made of the HTTPRoutes and GRPCRoutes among `resources`, computed once per
 * resource set (what the route compiler adds to the VirtualServices users write).
 */
export function gatewayRouteVirtualServices(resources: readonly AnyResource[]): readonly Resource<'VirtualService'>[] {
  let out = cache.get(resources);
  if (out === undefined) {
    out = Object.freeze(routeVirtualServices(resources));
    cache.set(resources, out);
  }
  return out;
}
