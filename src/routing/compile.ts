/**
 * Compiles validated resources into the immutable {@link Snapshot} of one workload, composing
 * one compiler per concern:
 * - the registry (`ServiceRegistry.build`);
 * - the VirtualServices, selected, ordered and indexed by host as istiod does
 *   (`virtual-services.ts`);
 * - the applied Sidecar's egress scope (`src/config/sidecar-scope.ts`): the services, ports and
 *   VirtualServices its egress listeners import (each service port routed with its listener's
 *   VirtualServices), and its outboundTrafficPolicy for the hosts it leaves out; without a
 *   Sidecar, istiod's default scope (one listener importing every visible host), compiled by the
 *   same code. Scoping is all here: the request path only finds fewer virtual hosts;
 * - routes ({@link Compiler}): virtual hosts, rules with precompiled matchers and cumulative
 *   weights, into the route table;
 * - clusters ({@link ClusterCompiler}): every cluster a route reaches, with its endpoints and its
 *   DestinationRule policy compiled into `ClusterSettings` (`cluster-settings.ts`);
 * - inbound ({@link InboundSection}): a placeholder; the server side still builds its admission
 *   phases from the resources (see there).
 * Pure: same resources and workload → same snapshot.
 *
 * @module
 */
import { contentVersion, contentVersionSteps } from '../config/version.ts';
import { aliasesFor, isWildcard } from '../config/hosts.ts';
import { ServiceRegistry, type Service, type ServiceAlias } from '../config/registry.ts';
import { buildSidecarScope, importsPort, listenerFor, type ScopeListener, type ScopeVirtualService, selectSidecar, type SidecarScope } from '../config/sidecar-scope.ts';
import { DEFAULT_ROOT_NAMESPACE, type AnyResource, type Kind, ofKind, type Resource } from '../config/resource.ts';
import { runNow, runSliced, type Steps } from '../config/steps.ts';
import type { ServicePort } from '../config/types/networking.ts';
import { NetworkTopology } from '../config/network-topology.ts';
import { ClusterCompiler } from './cluster-compiler.ts';
import { Compiler } from './compiler.ts';
import { compileMeshDefaultRetry } from './route-policy.ts';
import { isHttpPort, routesHttp } from './http-ports.ts';
import { RouteTable, type Cluster, type CompiledRoute, type RouteDecision, type VirtualHost } from './route-table.ts';
import { meshVirtualServices, VirtualServiceIndex, type VsEntry, vsOnlyPorts, wildcardMatchesService } from './virtual-services.ts';

/**
 * The workload a snapshot is compiled for.
 * @category Snapshot
 */
export interface WorkloadInfo {
  /** Service name (short). */
  readonly service: string;
  /** @defaultValue 'default' */
  readonly namespace?: string | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
}

import type { CompileOptions, MeshWideSettings } from './compile-options.ts';

export type { CompileOptions, MeshWideSettings };

/**
 * The immutable compiled config of one workload.
 * @category Snapshot
 */
export interface Snapshot {
  /** Content version (hash of the resources) or the version given. */
  readonly version: string;
  readonly workload: Required<WorkloadInfo>;
  readonly resources: readonly AnyResource[];
  readonly registry: ServiceRegistry;
  readonly routes: RouteTable;
  /** Every cluster a route can reach, by name, each with its compiled {@link Cluster.settings}. */
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** The server side's part of the config (not compiled into the snapshot yet: see {@link InboundSection}). */
  readonly inbound: InboundSection;
  /** The Sidecar that applies to this workload and the egress scope it makes; undefined: none (every visible service). */
  readonly sidecar: AppliedSidecar | undefined;
  /**
   * The east-west gateway host names this compile used (multi-network; sorted): the mesh resolves
   * them and compiles again when their addresses change. Empty without any.
   */
  readonly gatewayHostnames: readonly string[];
  /** The mesh-wide settings it was compiled with ({@link CompileOptions.meshSettings}); absent: the mesh's options apply. */
  readonly meshSettings?: MeshWideSettings | undefined;
}

/**
 * What a snapshot does with calls to hosts outside the registry (or outside the Sidecar's egress).
 * @category Snapshot
 */
export interface UnknownHostPolicy {
  /** `ALLOW_ANY`: pass through (or to the egress proxy); `REGISTRY_ONLY`: 502 (Istio's BlackHoleCluster). */
  readonly mode: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** With ALLOW_ANY and an `egressProxy`: the route such calls take to it (Istio's `allow_any` virtual host). */
  readonly egressProxy: RouteDecision | undefined;
  /** Where the policy comes from (`Sidecar ns/name`). */
  readonly source: string;
}

/**
 * The Sidecar applied to a workload: its egress scope (what the workload can reach) and its
 * outbound traffic policy.
 * @category Snapshot
 */
export interface AppliedSidecar {
  /** `Sidecar namespace/name`. */
  readonly ref: string;
  /** The services, ports and VirtualServices its egress listeners import. */
  readonly scope: SidecarScope;
  /** Its `outboundTrafficPolicy`; undefined: it sets none, the mesh's applies. */
  readonly outboundTrafficPolicy: UnknownHostPolicy | undefined;
}

/** The kinds the server side (inbound) reads. */
export const INBOUND_KINDS = Object.freeze(['PeerAuthentication', 'RequestAuthentication', 'AuthorizationPolicy', 'EnvoyFilter'] as const satisfies readonly Kind[]);

/**
 * The inbound part of a snapshot: a placeholder. The server side's admission phases (JWT,
 * authorization, local rate limit) are compiled per config by `InboundPolicies.compile`
 * (`src/inbound/policies.ts`) from these resources, with state that outlives a config (fetched
 * key sets, rate-limit buckets); PeerAuthentication is composed by the servers
 * (`src/adapters/server/inbound-tls.ts`) and applied to each connection. When inbound
 * policy compiles into the snapshot, it takes this slot.
 * @category Snapshot
 */
export interface InboundSection {
  /** False: nothing inbound is compiled into the snapshot yet. */
  readonly compiled: false;
  /** The PeerAuthentication, RequestAuthentication, AuthorizationPolicy and EnvoyFilter resources, in config order (for every workload: selection happens when the phases are built). */
  readonly resources: readonly AnyResource[];
}


/** The names a workload in `clientNamespace` reaches `svc` by: its host's, and those of the ExternalName Services aliasing it. */
function serviceNames(svc: Service, clientNamespace: string, aliases: readonly ServiceAlias[]): string[] {
  // Each host name also as an absolute name with a trailing dot (istiod's GenerateAltVirtualHosts,
  // PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN on by default) — the host only, never its short names:
  // Envoy matches domains as written (istiod sets no strip_trailing_host_dot), so `reviews.` is no domain.
  if (isWildcard(svc.hostname)) return [svc.hostname, `${svc.hostname}.`];
  const names = aliasesFor(svc.hostname, clientNamespace);
  names.push(`${svc.hostname}.`);
  for (const a of aliases) names.push(...aliasesFor(a.hostname, clientNamespace), `${a.hostname}.`);
  return names;
}

/**
 * Compiles validated resources into the snapshot of one workload.
 * @example
 * const snap = compileSnapshot(resources, { service: 'productpage', namespace: 'default', labels: { version: 'v1' } });
 * snap.routes.route({ method: 'GET', scheme: 'http', authority: 'reviews:9080', path: '/reviews/1', headers: {} }, toDraw(Math.random()));
 * @category Snapshot
 */
export function compileSnapshot(resources: readonly AnyResource[], workload: WorkloadInfo, options: CompileOptions = {}): Snapshot {
  return runNow(compileSteps(resources, workload, options));
}

/**
 * {@link compileSnapshot} in slices that give the event loop a turn every few milliseconds
 * (meshes compile large configs while they serve requests).
 * @internal
 */
export function compileSnapshotAsync(resources: readonly AnyResource[], workload: WorkloadInfo, options: CompileOptions = {}): Promise<Snapshot> {
  return runSliced(compileSteps(resources, workload, options));
}

/**
 * {@link compileSnapshot} as {@link Steps}: pauses between services.
 * @internal
 */
export function* compileSteps(resources: readonly AnyResource[], workload: WorkloadInfo, options: CompileOptions = {}): Steps<Snapshot> {
  const wl = { service: workload.service, namespace: workload.namespace ?? 'default', labels: workload.labels ?? {} };
  const cache = options.cache;
  const registry = yield* ServiceRegistry.build(resources, options.extraWorkloads, cache?.registry);
  const topology = options.networks === undefined ? undefined : new NetworkTopology(options.networks, registry.services);
  // Clusters made under other networks (gateways, this workload's network) are not reused; with a
  // gateway, nor ones made under other PeerAuthentications (they decide which remote endpoints are mTLS).
  const defaultRetry = options.defaultHttpRetryPolicy;
  cache?.begin(JSON.stringify([wl.service, wl.namespace, wl.labels, topology?.key ?? null, topology?.enabled === true ? peerAuthenticationsKey(resources) : null, defaultRetry ?? null]));
  // VirtualServices in istiod's order (delegates merged into their roots).
  const vss = meshVirtualServices(resources, wl.namespace);
  // The Sidecar that applies, and what its egress listeners import (istiod's SidecarScope).
  const rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const sidecar = selectSidecar(resources, wl.namespace, wl.labels, rootNamespace);
  // Without one, istiod's default scope: a Sidecar importing `*/*` (convertToSidecarScope(nil)),
  // so both cases are decided by the same code below.
  const scope = sidecar === undefined ? defaultSidecarScope(wl.namespace, registry, vss) : buildSidecarScope(sidecar, wl.namespace, registry, vss);
  const clusters = new ClusterCompiler(resources, wl, rootNamespace, cache, topology);
  // The default scope imports every visible service: destinations resolve as the registry has them.
  const compiler = new Compiler(registry, wl, clusters, sidecar === undefined ? undefined : scope, defaultRetry === undefined ? undefined : compileMeshDefaultRetry(defaultRetry));
  // Each egress listener routes with the VirtualServices it selects.
  const listenerIndexes = new Map<ScopeListener, VirtualServiceIndex>(scope.listeners.map((l) => [l, new VirtualServiceIndex(l.virtualServices)]));
  // The ports on which each listener routes the hosts of its VirtualServices that have no service in it.
  const vsOnlyPortsOf = new Map<ScopeListener, (entry: VsEntry) => readonly number[]>(scope.listeners.filter((l) => !l.socket).map((l) => [l, vsOnlyPorts(scope, l)]));
  // Names a VirtualService claims for a host no service declares (e.g. `test.default`, taken
  // literally): Istio leaves them out of the services' generated names, so they reach the
  // VirtualService rather than the service whose short form they also are — on the ports the
  // VirtualService routes that host on.
  const claimed = new Map<string, Set<number>>();
  const claim = (entries: readonly VsEntry[], index: VirtualServiceIndex, portsOf: (entry: VsEntry) => readonly number[]) => {
    for (const entry of entries) {
      for (const h of entry.hosts) {
        if (isWildcard(h) || registry.byHost.has(h) || index.find(h) !== entry.vs) continue;
        const ports = portsOf(entry);
        if (ports.length === 0) continue;
        for (const n of aliasesFor(h, wl.namespace)) {
          const set = claimed.get(n) ?? new Set<number>();
          for (const p of ports) set.add(p);
          claimed.set(n, set);
        }
      }
    }
  };
  const claimedOn = (name: string, port: number | undefined): boolean => {
    const ports = claimed.get(name);
    return ports !== undefined && (port === undefined || ports.has(port));
  };
  for (const [l, portsOf] of vsOnlyPortsOf) claim(l.virtualServices, listenerIndexes.get(l) as VirtualServiceIndex, portsOf);
  /** The virtual host `name`: last compile's when made from the same things and its lookups find the same now, else made. */
  const vhost = (name: string, service: Service | undefined, vs: Resource<'VirtualService'> | undefined, domains: readonly string[], make: () => VirtualHost): VirtualHost => {
    const prior = cache?.priorVhost(name, service, vs);
    // The domains depend on which names other VirtualServices claim, so they are compared too.
    if (prior !== undefined && sameStrings(prior.vhost.domains, domains) && compiler.unchanged(prior.lookups)) {
      cache?.keepVhost(name, prior);
      return prior.vhost;
    }
    const { value, lookups } = compiler.recording(make);
    cache?.keepVhost(name, { service, vs, lookups, vhost: value });
    return value;
  };
  const vhosts: VirtualHost[] = [];
  const covered = new Set<string>();
  /** The virtual hosts of one service's ports (`aliases`: the ExternalName Services whose names reach it). */
  const serviceVhosts = (svc: Service, ports: readonly (ServicePort | undefined)[], candidates: readonly Resource<'VirtualService'>[], aliases: readonly ServiceAlias[]) => {
    const vs = candidates[0];
    for (const p of ports) {
      const port = p?.number;
      const name = port === undefined ? svc.hostname : `${svc.hostname}:${port}`;
      const names = serviceNames(svc, wl.namespace, aliases).filter((n) => n === svc.hostname || !claimedOn(n, port));
      const domains: string[] = [];
      for (const n of names) {
        if (port === undefined) domains.push(n, `${n}:*`);
        else {
          domains.push(`${n}:${port}`);
          // A portless name is a port-80 call: not the service's when a VirtualService takes the name on 80.
          if (port === 80 || (svc.ports.length === 1 && !claimedOn(n, 80))) domains.push(n);
        }
      }
      // A headless Service is also reached through its subdomains (`web-0.web`), as Istio adds `*.<domain>`.
      if (svc.headless === true) for (const n of names) domains.push(`*.${n}`);
      const make = () => {
          // A VirtualService none of whose rules applies to this workload and port (their match
          // blocks name other ports, other sourceLabels or sourceNamespaces) makes no routes, and
          // istiod then takes the next VirtualService for the host, or gives the service its
          // default route on that port, as if it had no VirtualService (BuildSidecarVirtualHostWrapper): not a 404.
          let routes: CompiledRoute[] = [];
          let routedBy: Resource<'VirtualService'> | undefined;
          for (const c of candidates) {
            routes = compiler.routes(c, port);
            if (routes.length > 0) {
              routedBy = c;
              break;
            }
          }
          if (routedBy === undefined && p !== undefined) routes = [compiler.defaultRoute(svc, p)];
          return Object.freeze({ name, host: svc.hostname, port, service: svc, virtualService: routedBy?.ref, routes: Object.freeze(routes), domains: Object.freeze(domains) });
      };
      // The cache knows one VirtualService per virtual host: with more candidates, made afresh.
      vhosts.push(candidates.length > 1 ? make() : vhost(name, svc, vs, domains, make));
    }
    covered.add(svc.hostname);
  };
  // A service port gets a virtual host when the egress listener of that port (the one with the
  // port, else the catch-all) imports it, routed by that listener's VirtualServices.
  for (const l of scope.listeners) {
    for (const scoped of l.services.values()) {
      yield;
      const svc = scoped.service;
      // A Kubernetes Service without ports (headless) gets no listener in Istio: calls pass through.
      if (svc.ports.length === 0 && svc.resource.kind === 'Service') continue;
      const ports: (ServicePort | undefined)[] = svc.ports.length > 0
        ? svc.ports.filter((p) => isHttpPort(p) && importsPort(scoped, p.number) && listenerFor(scope, p.number) === l && routesHttp(l))
        : listenerFor(scope, undefined) === l ? [undefined] : [];
      if (ports.length > 0) serviceVhosts(svc, ports, listenerIndexes.get(l)?.findAll(svc.hostname) ?? [], scoped.aliases);
    }
  }
  // VirtualService hosts with no service behind them still get routes.
  const named = new Set<string>();
  /** The virtual host of VirtualService host `h` on `port`. */
  const vsOnlyVhost = (h: string, vs: Resource<'VirtualService'>, port: number, domains: readonly string[]) => {
    const name = `${h}:${port}`;
    const made = vhost(name, undefined, vs, domains, () => Object.freeze({ name, host: h, port, service: undefined, virtualService: vs.ref, routes: Object.freeze(compiler.routes(vs, port)), domains: Object.freeze([...domains]) }));
    // No rule for this workload and port: istiod builds no virtual host, so the call is outside the mesh (passthrough), not a 404.
    if (made.routes.length > 0) vhosts.push(made);
  };
  // So do hosts of services the listener does not import (istiod makes their virtual hosts from
  // the VirtualService; the services it routes to are in scope) — but only on the ports
  // `vsOnlyPorts` gives, as istiod builds each port's routes: port 80, or beside a service
  // another host of the VirtualService names (BuildSidecarOutboundVirtualHosts).
  for (const [l, portsOf] of vsOnlyPortsOf) {
    const index = listenerIndexes.get(l) as VirtualServiceIndex;
    for (const entry of l.virtualServices) {
      yield;
      const ports = portsOf(entry);
      if (ports.length === 0) continue;
      for (const h of entry.hosts) {
        // A host with a service the listener imports has that service's virtual hosts, or none (not HTTP).
        if (covered.has(h) || l.services.has(h) || index.find(h) !== entry.vs) continue;
        const names = isWildcard(h) ? [h] : aliasesFor(h, wl.namespace);
        for (const p of ports) {
          if (named.has(`${h}:${p}`) || (isWildcard(h) && wildcardMatchesService(l, h, p))) continue;
          named.add(`${h}:${p}`);
          vsOnlyVhost(h, entry.vs, p, p === 80 ? names.flatMap((n) => [n, `${n}:80`]) : names.map((n) => `${n}:${p}`));
        }
      }
    }
  }
  const applied = sidecar === undefined ? undefined : appliedSidecar(sidecar, scope, compiler);
  const version = options.version ?? (yield* contentVersionSteps(resources, cache));
  const routes = yield* RouteTable.build(vhosts);
  cache?.end();
  return Object.freeze({
    version,
    workload: Object.freeze(wl),
    resources,
    registry,
    routes,
    clusters: clusters.clusters,
    inbound: inboundSection(resources),
    sidecar: applied,
    gatewayHostnames: topology?.hostnames ?? NO_NAMES,
    ...(options.meshSettings === undefined ? {} : { meshSettings: Object.freeze({ ...options.meshSettings }) }),
  });
}

const NO_NAMES: readonly string[] = Object.freeze([]);

/**
 * The scope of a workload no Sidecar applies to: istiod's default scope, `convertToSidecarScope`
 * with no Sidecar (push_context.go `getSidecarScope`): one port-less egress listener importing
 * every host of every namespace (`initSidecarScopeInternalIndexes`). Its Sidecar is a stand-in
 * named `default-sidecar` as istiod names it, without outboundTrafficPolicy.
 */
function defaultSidecarScope(namespace: string, registry: ServiceRegistry, vss: readonly ScopeVirtualService[]): SidecarScope {
  const standIn: Resource<'Sidecar'> = Object.freeze({
    apiVersion: 'networking.istio.io/v1',
    kind: 'Sidecar',
    metadata: Object.freeze({ name: 'default-sidecar', namespace }),
    spec: Object.freeze({ egress: [{ hosts: ['*/*'] }] }),
    source: Object.freeze({ file: '<default>' }),
    ref: `default Sidecar scope of namespace ${namespace} (no Sidecar applies)`,
    order: -1,
  });
  return buildSidecarScope(standIn, namespace, registry, vss);
}

/** The applied Sidecar: its scope and its `outboundTrafficPolicy` (the proto's default mode is REGISTRY_ONLY; an egressProxy applies with ALLOW_ANY). */
function appliedSidecar(sidecar: Resource<'Sidecar'>, scope: SidecarScope, compiler: Compiler): AppliedSidecar {
  const otp = sidecar.spec.outboundTrafficPolicy;
  let policy: UnknownHostPolicy | undefined;
  if (otp !== undefined) {
    const mode = otp.mode ?? 'REGISTRY_ONLY';
    const proxy = mode === 'ALLOW_ANY' && otp.egressProxy !== undefined ? compiler.egressRoute(otp.egressProxy, scope.namespace).decisions[0] : undefined;
    policy = Object.freeze({ mode, egressProxy: proxy, source: sidecar.ref });
  }
  return Object.freeze({ ref: sidecar.ref, scope, outboundTrafficPolicy: policy });
}

export { contentVersion };

const INBOUND = new Set<string>(INBOUND_KINDS);

/** The inbound placeholder: the resources the server side compiles its phases from. */
function inboundSection(resources: readonly AnyResource[]): InboundSection {
  return Object.freeze({ compiled: false, resources: Object.freeze(resources.filter((r) => INBOUND.has(r.kind))) });
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What the PeerAuthentications of `resources` say (a multi-network compile's endpoints depend on it). */
function peerAuthenticationsKey(resources: readonly AnyResource[]): unknown[] {
  return ofKind(resources, 'PeerAuthentication').map((r) => [r.metadata.namespace ?? null, r.metadata.name, r.metadata.creationTimestamp ?? null, r.spec]);
}
