/**
 * Istio's `Sidecar` applied as istiod applies it to a sidecar proxy: which Sidecar a workload
 * gets, and the egress scope it makes — the services, ports and VirtualServices the workload
 * can reach. Pure; the route compiler (`src/routing/compile.ts`) builds the snapshot from it.
 *
 * - Selection ({@link selectSidecar}) is istiod's `getSidecarScope`: a Sidecar of the workload's
 *   namespace whose `workloadSelector` matches its labels (the oldest when several do), else the
 *   namespace's selector-less one (the oldest), else the root namespace's selector-less one.
 * - The scope ({@link buildSidecarScope}) is `convertToSidecarScope` (pilot/pkg/model/sidecar.go):
 *   each egress listener imports the services its `hosts` (`namespace/dnsName`) name, trimmed to
 *   the listener's port when it has one, and the VirtualServices whose hosts they name; the
 *   services those VirtualServices route or mirror to are added too (a listener with a port keeps
 *   only that port of them), so the clusters the routes need exist. A Sidecar in the root
 *   namespace applies to other namespaces with `.` meaning the workload's namespace, as istiod
 *   converts it once per namespace.
 *
 * @module
 */
import { candidateNames, whyNotInMesh } from './host-lookup.ts';
import { hostMatches, hostsOverlap, isVisible, isWildcard, resolveHost } from './hosts.ts';
import type { Service, ServiceAlias, ServiceRegistry } from './registry.ts';
import { type AnyResource, byAge, DEFAULT_ROOT_NAMESPACE, type Resource } from './resource.ts';
import type { Destination, VirtualServiceSpec } from './types/networking.ts';
import type { IstioEgressListener } from './types/sidecar.ts';
import { labelsMatch } from './workloads.ts';

/**
 * The Sidecar that applies to a workload (istiod's `getSidecarScope`), or undefined (no Sidecar:
 * the default scope, every visible service).
 */
export function selectSidecar(resources: readonly AnyResource[], namespace: string, labels: Readonly<Record<string, string>>, rootNamespace = DEFAULT_ROOT_NAMESPACE): Resource<'Sidecar'> | undefined {
  const sidecars = resources.filter((r): r is Resource<'Sidecar'> => r.kind === 'Sidecar');
  if (sidecars.length === 0) return undefined;
  sidecars.sort(byAge);
  let namespaceDefault: Resource<'Sidecar'> | undefined;
  for (const s of sidecars) {
    if (s.metadata.namespace !== namespace) continue;
    const selector = s.spec.workloadSelector;
    if (selector === undefined) namespaceDefault ??= s;
    else if (labelsMatch(selector.labels ?? {}, labels)) return s;
  }
  if (namespaceDefault !== undefined) return namespaceDefault;
  return sidecars.find((s) => s.metadata.namespace === rootNamespace && s.spec.workloadSelector === undefined);
}

/**
 * The hosts an egress listener names in one namespace (istiod's `hostClassification`).
 * @category Snapshot
 */
export interface EgressHostSet {
  /** Exact dnsNames (a map lookup). */
  readonly exact: ReadonlySet<string>;
  /** Every dnsName, exact and wildcard. */
  readonly all: readonly string[];
  /** dnsNames of `~ns/dnsName` entries: left out even when another entry names them. */
  readonly excluded: readonly string[];
}

/**
 * Parses egress `hosts` (`namespace/dnsName`) by namespace, as `convertIstioListenerToWrapper`:
 * `.` is `configNamespace`, `*` any namespace, a `~` prefix excludes (`~/host` any namespace);
 * an entry without exactly one `/` is ignored (istiod logs it; validation rejects it).
 */
export function parseEgressHosts(hosts: readonly string[], configNamespace: string): Map<string, EgressHostSet> {
  const out = new Map<string, { exact: Set<string>; all: string[]; excluded: string[] }>();
  for (const h of hosts) {
    const slash = h.indexOf('/');
    if (slash === -1 || h.indexOf('/', slash + 1) !== -1) continue;
    let ns = h.slice(0, slash);
    const name = h.slice(slash + 1).toLowerCase();
    const excluded = ns.startsWith('~');
    if (excluded) ns = ns.slice(1) === '' ? '*' : ns.slice(1);
    if (ns === '.') ns = configNamespace;
    let set = out.get(ns);
    if (set === undefined) {
      set = { exact: new Set(), all: [], excluded: [] };
      out.set(ns, set);
    }
    if (excluded) set.excluded.push(name);
    else {
      if (!isWildcard(name)) set.exact.add(name);
      set.all.push(name);
    }
  }
  return out;
}

/** Whether the set names service host `host` (`hostClassification.Matches`). */
export function egressMatches(set: EgressHostSet, host: string): boolean {
  if (set.exact.has(host)) return true;
  const wild = isWildcard(host);
  for (const imported of set.all) {
    if (!wild && !isWildcard(imported)) continue;
    if (hostMatches(imported, host)) return true;
  }
  return false;
}

/** Whether the set names VirtualService host `host` (`VSMatches`, without Gateway API semantics: the hosts may overlap either way). */
export function egressMatchesVirtualService(set: EgressHostSet, host: string): boolean {
  if (set.exact.has(host)) return true;
  const wild = isWildcard(host);
  for (const imported of set.all) {
    if (!wild && !isWildcard(imported)) continue;
    if (hostsOverlap(host, imported)) return true;
  }
  return false;
}

/** Whether a `~` entry of the set excludes `host` (`hostClassification.Excluded`). */
export function egressExcludes(set: EgressHostSet | undefined, host: string): boolean {
  return set?.excluded.some((e) => hostMatches(e, host)) === true;
}

/**
 * A service as a scope has it: the ports and aliases (ExternalName names) it imports.
 * @category Snapshot
 */
export interface ScopedService {
  readonly service: Service;
  /** The ports imported; undefined: every port. */
  readonly ports: ReadonlySet<number> | undefined;
  /** The aliases (ExternalName Services) whose names the egress hosts name too. */
  readonly aliases: readonly ServiceAlias[];
}

/**
 * A VirtualService with its hosts resolved (as the compiler lists them).
 * @category Snapshot
 */
export interface ScopeVirtualService {
  readonly vs: Resource<'VirtualService'>;
  readonly hosts: readonly string[];
}

/**
 * One egress listener of the applied Sidecar, with what it imports (`IstioEgressListenerWrapper`).
 * @category Snapshot
 */
export interface ScopeListener {
  /** The listener's port; undefined: the catch-all listener (every port); 0: a Unix domain socket listener (see {@link ScopeListener.socket}). */
  readonly port: number | undefined;
  /**
   * A Unix domain socket listener (`port.number: 0`, `bind: unix://…`): istiod matches it by its
   * bind only, never by a port, so it serves no IP port here (meshlet opens no listener); its
   * services still join the scope (destinations of the routes resolve among them).
   */
  readonly socket: boolean;
  /** The protocol its port declares, upper-cased (`HTTP`, `TCP`, …; '' without a port): istiod builds the listener of that port with it. */
  readonly protocol: string;
  /** Whether it imports only its port of the services (a port, and not HTTP_PROXY: `needsPortMatch`). */
  readonly matchPort: boolean;
  /** The hosts as written. */
  readonly hosts: readonly string[];
  readonly byNamespace: ReadonlyMap<string, EgressHostSet>;
  /** The services its hosts import, by host name. */
  readonly services: ReadonlyMap<string, ScopedService>;
  /** The VirtualServices its hosts select, in istiod's order (exported to their own namespace only, to the namespace, public; the oldest first within each). */
  readonly virtualServices: readonly ScopeVirtualService[];
}

/**
 * What a Sidecar lets one workload reach (`SidecarScope`).
 * @category Snapshot
 */
export interface SidecarScope {
  readonly sidecar: Resource<'Sidecar'>;
  /** The namespace it was converted for (the workload's: `.` in the hosts means it). */
  readonly namespace: string;
  readonly listeners: readonly ScopeListener[];
  /**
   * Every service in scope, by host name: the listeners' services (ports merged) and those the
   * selected VirtualServices route and mirror to. Destinations resolve here (the clusters).
   */
  readonly services: ReadonlyMap<string, ScopedService>;
}

/** The listener whose routes serve `port` (`GetEgressListenerForRDS`): the first with that port, or the first without one (never a Unix socket listener). */
export function listenerFor(scope: SidecarScope, port: number | undefined): ScopeListener | undefined {
  for (const l of scope.listeners) if (l.port === undefined || (l.port === port && !l.socket)) return l;
  return undefined;
}

/** Whether `port` (undefined: a service without ports) of a scoped service is imported. */
export function importsPort(s: ScopedService, port: number | undefined): boolean {
  return s.ports === undefined || (port !== undefined && s.ports.has(port));
}

const isKube = (s: Service): boolean => s.resource.kind === 'Service';

/**
 * Converts the Sidecar applying to a workload of `namespace` into its scope, over the registry
 * and the VirtualServices visible to the workload (`vss`, in istiod's order).
 */
export function buildSidecarScope(sidecar: Resource<'Sidecar'>, namespace: string, registry: ServiceRegistry, vss: readonly ScopeVirtualService[]): SidecarScope {
  const egress: IstioEgressListener[] = sidecar.spec.egress !== undefined && sidecar.spec.egress.length > 0 ? sidecar.spec.egress : [{ hosts: ['*/*'] }];
  const candidates = registry.services.filter((s) => isVisible(s.exportTo, s.namespace, namespace));
  const listeners = egress.map((e) => convertListener(e, namespace, registry, candidates, vss));
  const union = new Map<string, ScopedService>();
  for (const l of listeners) {
    for (const s of l.services.values()) appendService(union, s);
    // Services the listener's VirtualServices route to: never in place of one the hosts name.
    for (const { vs } of l.virtualServices) {
      for (const [host, ports] of destinationsOf(vs.spec, vs.metadata.namespace, namespace)) {
        const decls = registry.byHost.get(host);
        if (decls === undefined) continue;
        const svc = decls.find((d) => d.namespace === namespace) ?? pickBestVisible(decls, namespace);
        if (svc === undefined) continue;
        const scoped = l.matchPort && l.port !== undefined ? onListenerPort(svc, l.port) : onVirtualServicePorts(svc, ports);
        if (scoped !== undefined) appendService(union, scoped);
      }
    }
  }
  return Object.freeze({ sidecar, namespace, listeners: Object.freeze(listeners), services: union });
}

/** A listener with a port imports only that port, except an HTTP_PROXY one (`needsPortMatch`). */
function matchPort(protocol: string | undefined): boolean {
  return (protocol ?? '').toUpperCase() !== 'HTTP_PROXY';
}

function convertListener(e: IstioEgressListener, namespace: string, registry: ServiceRegistry, candidates: readonly Service[], vss: readonly ScopeVirtualService[]): ScopeListener {
  // Only a listener without a port is the catch-all; one with port 0 is a Unix socket (`GetEgressListenerForRDS`).
  const socket = e.port !== undefined && (e.port.number ?? 0) === 0;
  const port = e.port === undefined ? undefined : (e.port.number ?? 0);
  const portMatch = port !== undefined && port !== 0 && matchPort(e.port?.protocol);
  const byNamespace = parseEgressHosts(e.hosts ?? [], namespace);
  const wild = byNamespace.get('*');
  const imported: ScopedService[] = [];
  for (const s of candidates) {
    const nsHosts = byNamespace.get(s.namespace);
    if (egressExcludes(nsHosts, s.hostname) || egressExcludes(wild, s.hostname)) continue;
    const m = (nsHosts !== undefined ? matching(nsHosts, s, portMatch ? port : undefined) : undefined) ?? (wild !== undefined ? matching(wild, s, portMatch ? port : undefined) : undefined);
    if (m !== undefined) imported.push(m);
  }
  // One namespace per host name: the workload's, else a Kubernetes Service over a ServiceEntry, else the oldest (istiod's UnifiedSidecarScoping).
  const services = new Map<string, ScopedService>();
  for (const x of imported) {
    const h = x.service.hostname;
    const ex = services.get(h);
    if (ex === undefined || better(x.service, ex.service, namespace, registry)) services.set(h, x);
  }
  const virtualServices: ScopeVirtualService[] = [];
  for (const entry of vss) {
    const vsNs = entry.vs.metadata.namespace;
    const nsHosts = byNamespace.get(vsNs);
    const selects = (set: EgressHostSet) => entry.hosts.some((h) => egressMatchesVirtualService(set, h) && !egressExcludes(nsHosts, h) && !egressExcludes(wild, h));
    if ((nsHosts !== undefined && selects(nsHosts)) || (wild !== undefined && selects(wild))) virtualServices.push(entry);
  }
  return Object.freeze({ port, socket, protocol: (e.port?.protocol ?? '').toUpperCase(), matchPort: portMatch, hosts: Object.freeze([...(e.hosts ?? [])]), byNamespace, services, virtualServices: Object.freeze(virtualServices) });
}

/**
 * The declaration of `hostname` a workload of `namespace` uses without a Sidecar: istiod's
 * default scope is a Sidecar importing every host of every namespace (`convertToSidecarScope(nil)`), so the same rule as a
 * listener's — the workload's namespace's, else a Kubernetes Service over a ServiceEntry, else
 * the oldest — among the declarations visible to the namespace.
 */
export function preferredService(registry: ServiceRegistry, hostname: string, namespace: string): Service | undefined {
  const decls = registry.byHost.get(hostname);
  if (decls === undefined) return undefined;
  let best: Service | undefined;
  for (const d of decls) {
    if (!isVisible(d.exportTo, d.namespace, namespace)) continue;
    if (best === undefined || better(d, best, namespace, registry)) best = d;
  }
  return best;
}

/**
 * Whether `a` should replace `b` (another declaration of the same host) in a listener: the
 * workload's namespace's, else a Kubernetes Service, else the one the registry lists first (in one
 * namespace a Kubernetes Service before a ServiceEntry, else the oldest) — whatever order they come in.
 */
function better(a: Service, b: Service, namespace: string, registry: ServiceRegistry): boolean {
  if ((a.namespace === namespace) !== (b.namespace === namespace)) return a.namespace === namespace;
  if (isKube(a) !== isKube(b)) return isKube(a);
  const order = registry.byHost.get(a.hostname) ?? [];
  return order.indexOf(a) < order.indexOf(b);
}

/** `matchingService` + `matchingAliasService`: the service as the set imports it, or undefined. */
function matching(set: EgressHostSet, s: Service, port: number | undefined): ScopedService | undefined {
  if (!egressMatches(set, s.hostname)) return undefined;
  const onPort = port === undefined ? { service: s, ports: undefined, aliases: s.aliases } : onListenerPort(s, port);
  if (onPort === undefined) return undefined;
  const aliases = s.aliases.filter((a) => egressMatches(set, a.hostname));
  return aliases.length === s.aliases.length ? onPort : { ...onPort, aliases };
}

/** `serviceMatchingListenerPort`: the service on the listener's port, or undefined when it has no such port. */
function onListenerPort(s: Service, port: number): ScopedService | undefined {
  if (!s.ports.some((p) => p.number === port)) return undefined;
  return { service: s, ports: new Set([port]), aliases: s.aliases };
}

/** `serviceMatchingVirtualServicePorts`: the ports the routes name (0: some destination names none, so every port). */
function onVirtualServicePorts(s: Service, ports: ReadonlySet<number>): ScopedService | undefined {
  if (ports.size === 0 || ports.has(0)) return { service: s, ports: undefined, aliases: s.aliases };
  const found = s.ports.filter((p) => ports.has(p.number)).map((p) => p.number);
  if (found.length === s.ports.length) return { service: s, ports: undefined, aliases: s.aliases };
  if (found.length > 0) return { service: s, ports: new Set(found), aliases: s.aliases };
  return undefined;
}

/** `pickBestVisibleNamespace`: a visible Kubernetes Service, else the oldest visible declaration. */
function pickBestVisible(decls: readonly Service[], namespace: string): Service | undefined {
  const visible = decls.filter((d) => isVisible(d.exportTo, d.namespace, namespace));
  return visible.find(isKube) ?? visible[0];
}

/** `appendSidecarServices`: adds to the scope; the same service's ports merge; a Kubernetes Service displaces a ServiceEntry of its host, never the reverse. */
function appendService(union: Map<string, ScopedService>, s: ScopedService): void {
  const h = s.service.hostname;
  const ex = union.get(h);
  if (ex === undefined) {
    union.set(h, s);
    return;
  }
  if (ex.service === s.service) {
    const ports = ex.ports === undefined || s.ports === undefined ? undefined : new Set([...ex.ports, ...s.ports]);
    const aliases = ex.aliases === s.aliases ? ex.aliases : [...ex.aliases, ...s.aliases.filter((a) => !ex.aliases.includes(a))];
    union.set(h, { service: ex.service, ports, aliases });
    return;
  }
  if (!isKube(ex.service) && isKube(s.service)) union.set(h, s);
}

/**
 * The hosts a VirtualService routes, mirrors or forwards to, with the ports named (0: a
 * destination without a port), leaving out HTTP rules whose `sourceNamespace` matches never
 * name `namespace` (`virtualServiceDestinationsFilteredBySourceNamespace`).
 */
export function destinationsOf(spec: VirtualServiceSpec, vsNamespace: string, namespace: string): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  const add = (d: Destination | undefined) => {
    if (d === undefined) return;
    const h = resolveHost(d.host, vsNamespace);
    let set = out.get(h);
    if (set === undefined) {
      set = new Set();
      out.set(h, set);
    }
    set.add(d.port?.number ?? 0);
  };
  for (const rule of spec.http ?? []) {
    let matched = true;
    for (const m of rule.match ?? []) {
      if (m.sourceNamespace !== undefined && m.sourceNamespace !== '') {
        if (m.sourceNamespace === namespace) {
          matched = true;
          break;
        }
        matched = false;
      }
    }
    if (!matched) continue;
    for (const r of rule.route ?? []) add(r.destination);
    add(rule.mirror);
    for (const m of rule.mirrors ?? []) add(m.destination);
  }
  for (const t of spec.tcp ?? []) for (const r of t.route ?? []) add(r.destination);
  for (const t of spec.tls ?? []) for (const r of t.route ?? []) add(r.destination);
  return out;
}

/** The full names a name written in a URL can stand for in `namespace` (Kubernetes DNS search paths). */
/**
 * Why a call to `host:port` from a workload of the scope's namespace finds no route under the
 * scope: its egress hosts leave the service out, or its listener for that port does, or the host
 * is in no registry at all. Undefined when the scope imports it (the reason lies elsewhere).
 */
export function whyOutOfScope(scope: SidecarScope, registry: ServiceRegistry, host: string, port: number | undefined): string | undefined {
  const listener = listenerFor(scope, port);
  const hosts = (l: ScopeListener | undefined) => (l === undefined ? 'none' : l.hosts.join(', '));
  for (const name of candidateNames(host, scope.namespace)) {
    const svc = registry.lookup(name, scope.namespace);
    if (svc === undefined) continue;
    if (listener === undefined) return `${scope.sidecar.ref} has no egress listener for port ${port ?? '(none)'} (its listeners: ${scope.listeners.map((l) => (l.socket ? 'a Unix socket' : (l.port ?? 'any port'))).join(', ')})`;
    const imported = listener.services.get(name);
    if (imported !== undefined && importsPort(imported, port)) return undefined;
    const where = `${name} (namespace ${svc.namespace}) is not in the egress hosts of ${scope.sidecar.ref}${listener.port === undefined ? '' : `'s listener for port ${listener.port}`} (${hosts(listener)})`;
    const other = scope.listeners.find((l) => l !== listener && l.services.has(name));
    if (other !== undefined) return `${where}; its ${other.socket ? 'Unix socket listener' : `listener for ${other.port === undefined ? 'other ports' : `port ${other.port}`}`} imports it`;
    if (scope.services.has(name)) return `${where}; only the VirtualServices that route to it reach it`;
    return where;
  }
  return whyNotInMesh(registry, scope.namespace, host, port);
}
