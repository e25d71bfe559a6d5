/**
 * What every analyzer shares: the resources by kind, the service registry, and helpers for
 * walking VirtualService destinations and for reasoning about `exportTo` scopes.
 *
 * @module
 */
import { DestinationRuleIndex } from '../destination-policy.ts';
import { hostMatches, hostsOverlap, isVisible, isWildcard, resolveHost, specificity } from '../hosts.ts';
import type { FieldPath, IssueList } from '../issues.ts';
import type { Steps } from '../steps.ts';
import { type RegistryCache, ServiceRegistry, type Service } from '../registry.ts';
import { ofKind, type AnyResource, type Resource } from '../resource.ts';
import type { Destination, HTTPMirrorPolicy, HTTPRoute, HTTPRouteDestination, RouteDestination } from '../types/networking.ts';

/** The inputs of one analysis run, computed once and shared by every analyzer. */
export interface AnalysisContext {
  /** Every validated resource, in load order. */
  readonly resources: readonly AnyResource[];
  /** Services from the ServiceEntries and WorkloadEntries in `resources`. */
  readonly registry: ServiceRegistry;
  /** VirtualServices, in load order. */
  readonly virtualServices: readonly Resource<'VirtualService'>[];
  /** DestinationRules, in load order. */
  readonly destinationRules: readonly Resource<'DestinationRule'>[];
  /** The services whose host is a wildcard (`*.example.com`), in registry order: the only ones another host can fall under. */
  readonly wildcardServices: readonly Service[];
  /** The services whose host overlaps `host` (either covers the other), in registry order; indexed, so analysis stays linear. */
  servicesOverlapping(host: string): readonly Service[];
  /** DestinationRules whose (resolved) host pattern matches `host`; indexed, so analysis stays linear. */
  rulesMatching(host: string): readonly Resource<'DestinationRule'>[];
  /** The DestinationRule lookup as seen by workloads (with no labels) in `namespace`; cached per namespace. */
  ruleIndexFor(namespace: string): DestinationRuleIndex;
}

/** One analyzer: a named check that reports findings under fixed codes. */
export interface Analyzer {
  /** Short name, e.g. `virtualservice.destinations`. */
  readonly name: string;
  /** The codes it can report. */
  readonly codes: readonly string[];
  /** One line saying what it checks. */
  readonly description: string;
  /** Runs the check and adds findings to `issues`, pausing between resources (run it with `runNow` or `runSliced`). */
  analyze(ctx: AnalysisContext, issues: IssueList): Steps<void>;
}

/** Builds the shared inputs for an analysis run. */
export function* createContext(resources: readonly AnyResource[], registryCache?: RegistryCache): Steps<AnalysisContext> {
  const destinationRules = ofKind(resources, 'DestinationRule');
  const exact = new Map<string, Resource<'DestinationRule'>[]>();
  const wildcard: { host: string; rule: Resource<'DestinationRule'> }[] = [];
  for (const dr of destinationRules) {
    const host = resolveHost(dr.spec.host, dr.metadata.namespace);
    if (host.startsWith('*')) wildcard.push({ host, rule: dr });
    else exact.set(host, [...(exact.get(host) ?? []), dr]);
  }
  const indexes = new Map<string, DestinationRuleIndex>();
  const registry = yield* ServiceRegistry.build(resources, [], registryCache);
  const position = new Map<Service, number>();
  for (const [i, s] of registry.services.entries()) position.set(s, i);
  const wildcardServices = registry.services.filter((s) => isWildcard(s.hostname));
  return {
    resources,
    registry,
    wildcardServices,
    servicesOverlapping(host) {
      // A wildcard host can cover any service: look at all of them (wildcard rules are few).
      if (isWildcard(host)) return registry.services.filter((s) => hostsOverlap(host, s.hostname));
      // A concrete host overlaps the services declaring it and the wildcard services covering it.
      const out = [...(registry.byHost.get(host) ?? []), ...wildcardServices.filter((s) => s.hostname !== host && hostMatches(s.hostname, host))];
      return out.sort((a, b) => (position.get(a) as number) - (position.get(b) as number));
    },
    virtualServices: ofKind(resources, 'VirtualService'),
    destinationRules,
    rulesMatching(host) {
      const out = [...(exact.get(host) ?? [])];
      for (const w of wildcard) if (hostMatches(w.host, host)) out.push(w.rule);
      if (host.startsWith('*')) {
        for (const [h, rules] of exact) if (hostMatches(host, h) || hostMatches(h, host)) out.push(...rules);
      }
      return out.sort((a, b) => a.order - b.order);
    },
    ruleIndexFor(namespace) {
      let index = indexes.get(namespace);
      if (index === undefined) {
        index = new DestinationRuleIndex(destinationRules, { namespace, labels: {} });
        indexes.set(namespace, index);
      }
      return index;
    },
  };
}

/** A destination written in a VirtualService, with the path of the `Destination` object. */
export interface DestinationRef {
  readonly destination: Destination;
  /** Path of the `Destination` object, e.g. `spec.http[1].route[0].destination` or `spec.http[0].mirror`. */
  readonly path: FieldPath;
  /** Whether traffic is routed there or only mirrored. */
  readonly role: 'route' | 'mirror';
}

/** Every destination of a VirtualService: HTTP routes, `mirror`, `mirrors[]`, and TCP/TLS routes. */
export function destinationsOf(vs: Resource<'VirtualService'>): DestinationRef[] {
  const out: DestinationRef[] = [];
  const add = (destination: Destination, path: FieldPath, role: DestinationRef['role']) => {
    out.push({ destination, path, role });
  };
  const http = vs.spec.http ?? [];
  for (let i = 0; i < http.length; i++) {
    const rule = http[i] as HTTPRoute;
    const routes = rule.route ?? [];
    for (let j = 0; j < routes.length; j++) add((routes[j] as HTTPRouteDestination).destination, ['spec', 'http', i, 'route', j, 'destination'], 'route');
    if (rule.mirror !== undefined) add(rule.mirror, ['spec', 'http', i, 'mirror'], 'mirror');
    const mirrors = rule.mirrors ?? [];
    for (let j = 0; j < mirrors.length; j++) add((mirrors[j] as HTTPMirrorPolicy).destination, ['spec', 'http', i, 'mirrors', j, 'destination'], 'mirror');
  }
  for (const section of ['tcp', 'tls'] as const) {
    const rules = vs.spec[section] ?? [];
    for (let i = 0; i < rules.length; i++) {
      const routes = rules[i]?.route ?? [];
      for (let j = 0; j < routes.length; j++) add((routes[j] as RouteDestination).destination, ['spec', section, i, 'route', j, 'destination'], 'route');
    }
  }
  return out;
}

/**
 * True if the VirtualService applies to sidecars (what meshlet is): `gateways` empty or
 * containing `mesh`, as istiod indexes it (`getGatewayNames`: a match block naming `mesh` in a
 * VirtualService bound to gateways alone reaches no sidecar), as the route compiler decides.
 */
export function appliesToMesh(vs: Resource<'VirtualService'>): boolean {
  const gw = vs.spec.gateways;
  return gw === undefined || gw.length === 0 || gw.includes('mesh');
}

/** The namespaces a resource is visible to: `'all'`, or a set of names (empty for `~`). */
export type ExportScope = 'all' | ReadonlySet<string>;

/** The scope of an `exportTo` list of a resource in `namespace` (unset or empty means all). */
export function exportScope(exportTo: readonly string[] | undefined, namespace: string): ExportScope {
  if (exportTo === undefined || exportTo.length === 0 || exportTo.includes('*')) return 'all';
  const out = new Set<string>();
  for (const e of exportTo) {
    if (e === '.') out.add(namespace);
    else if (e !== '~') out.add(e);
  }
  return out;
}

/** The namespaces two scopes share: `'all'`, or the (possibly empty) set of names. */
export function scopeOverlap(a: ExportScope, b: ExportScope): ExportScope {
  if (a === 'all') return b;
  if (b === 'all') return a;
  return new Set([...a].filter((ns) => b.has(ns)));
}

/** True if the scope contains no namespace at all. */
export function scopeIsEmpty(s: ExportScope): boolean {
  return s !== 'all' && s.size === 0;
}

/** The result of resolving a destination host against the registry. */
export interface ServiceLookup {
  /** The service, when one declares the host and is visible where the referrer is. */
  readonly service?: Service;
  /** A service declaring the host that is hidden from the referrer by `exportTo`. */
  readonly hidden?: Service;
}

/**
 * The namespaces where a resource that refers to a host is used, for checking that the host is
 * visible there, as Istio's analyzers decide (`GetDestinationHost`): the namespaces of its
 * `exportTo` (`.` is its own namespace; `*` asks for a host exported everywhere), or its own
 * namespace when `exportTo` is unset.
 */
function usedIn(exportTo: readonly string[] | undefined, namespace: string): readonly string[] {
  if (exportTo === undefined || exportTo.length === 0) return [namespace];
  return exportTo.map((e) => (e === '.' ? namespace : e));
}

/** Whether a service is visible in `namespace` (`*`: visible in every namespace). */
function visibleIn(s: Service, namespace: string): boolean {
  if (namespace === '*') return exportScope(s.exportTo, s.namespace) === 'all';
  if (namespace === '~') return false;
  return isVisible(s.exportTo, s.namespace, namespace);
}

/**
 * Finds the service for a resolved `host` referenced by a resource in `namespace` with
 * `exportTo`: an exact declaration first, then the most specific wildcard ServiceEntry host.
 * A service counts as found when it is exported to every namespace, or to one of the namespaces
 * where the referring resource is used (its `exportTo`, or its own namespace when unset), as
 * Istio's analyzers decide: a VirtualService exported only to `bogus` routes nothing in its own
 * namespace, and its destination must be visible in `bogus`.
 */
export function findService(ctx: Pick<AnalysisContext, 'registry' | 'wildcardServices'>, host: string, namespace: string, exportTo?: readonly string[]): ServiceLookup {
  const where = usedIn(exportTo, namespace);
  const seen = (s: Service) => exportScope(s.exportTo, s.namespace) === 'all' || where.some((ns) => visibleIn(s, ns));
  const exact = ctx.registry.byHost.get(host) ?? [];
  // Only a wildcard service can cover another host; the others were looked up by host above.
  const wild = ctx.wildcardServices
    .filter((s) => s.hostname !== host && hostMatches(s.hostname, host))
    .sort((a, b) => specificity(b.hostname) - specificity(a.hostname));
  const candidates = [...exact, ...wild];
  const service = candidates.find(seen);
  if (service !== undefined) return { service };
  return candidates.length > 0 ? { hidden: candidates[0] } : {};
}
