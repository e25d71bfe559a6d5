/**
 * Compiles validated resources into the immutable {@link Snapshot} of one workload, composing
 * one compiler per concern:
 * - the registry (`ServiceRegistry.build`);
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
import { mergeDelegates } from '../config/delegation.ts';
import { aliasesFor, hostMatches, isVisible, isWildcard, resolveHost, specificity } from '../config/hosts.ts';
import { ServiceRegistry, type Service } from '../config/registry.ts';
import { byAge, type AnyResource, type Kind, type Resource } from '../config/resource.ts';
import { runNow, runSliced, type Steps } from '../config/steps.ts';
import type { ServicePort } from '../config/types/networking.ts';
import { ClusterCompiler } from './cluster-compiler.ts';
import type { CompileCache } from './compile-cache.ts';
import { Compiler } from './compiler.ts';
import { RouteTable, type Cluster, type VirtualHost } from './route-table.ts';

/**
 * The workload a snapshot is compiled for.
 * @category Snapshot
 */
export interface WorkloadInfo {
  /** Service name (short). */
  readonly service: string;
  /** @defaultValue 'default' */
  readonly namespace?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/**
 * Options for {@link compileSnapshot}.
 * @category Snapshot
 */
export interface CompileOptions {
  /** Version label; defaults to a hash of the resources' content. */
  readonly version?: string;
  /** Extra WorkloadEntries (registered workloads) to add to the registry. */
  readonly extraWorkloads?: readonly Resource<'WorkloadEntry'>[];
  /** @internal What the previous compile for this workload made, reused where unchanged (see {@link CompileCache}). */
  readonly cache?: CompileCache;
}

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


/** Port protocols that get HTTP routes: Istio's HTTP protocols, HTTPS (meshlet originates TLS), and unset (auto-detected: Istio routes it as HTTP too). */
const HTTP_PROTOCOLS = new Set(['', 'HTTP', 'HTTP2', 'HTTP_PROXY', 'GRPC', 'GRPC-WEB', 'HTTPS']);

/** The names a workload in `clientNamespace` reaches `svc` by: its host's, and those of the ExternalName Services aliasing it. */
function serviceNames(svc: Service, clientNamespace: string): string[] {
  if (isWildcard(svc.hostname)) return [svc.hostname];
  const names = aliasesFor(svc.hostname, clientNamespace);
  for (const a of svc.aliases) names.push(...aliasesFor(a.hostname, clientNamespace));
  return names;
}

interface VsEntry {
  readonly vs: Resource<'VirtualService'>;
  readonly hosts: readonly string[];
}

/** VirtualServices indexed by host; for a host, an exact host beats a wildcard, then the oldest wins (Istio's conflict rule). */
class VirtualServiceIndex {
  readonly #exact = new Map<string, Resource<'VirtualService'>>();
  readonly #wildcard: { host: string; vs: Resource<'VirtualService'> }[] = [];
  readonly entries: readonly VsEntry[];

  constructor(entries: readonly VsEntry[]) {
    this.entries = entries; // already sorted oldest first
    for (const e of entries) {
      for (const h of e.hosts) {
        if (isWildcard(h)) this.#wildcard.push({ host: h, vs: e.vs });
        else if (!this.#exact.has(h)) this.#exact.set(h, e.vs);
      }
    }
    this.#wildcard.sort((a, b) => specificity(b.host) - specificity(a.host) || byAge(a.vs, b.vs));
  }

  find(host: string): Resource<'VirtualService'> | undefined {
    const exact = this.#exact.get(host);
    if (exact !== undefined) return exact;
    for (const w of this.#wildcard) if (hostMatches(w.host, host)) return w.vs;
    return undefined;
  }
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
  cache?.begin(JSON.stringify([wl.service, wl.namespace, wl.labels]));
  const registry = yield* ServiceRegistry.build(resources, options.extraWorkloads, cache?.registry);
  const clusters = new ClusterCompiler(resources, wl, cache);
  const compiler = new Compiler(registry, wl, clusters);
  // Delegate VirtualServices (no hosts) are merged into the rules of the roots that name them.
  const vss = [...mergeDelegates(resources).virtualServices]
    .filter((vs) => isVisible(vs.spec.exportTo, vs.metadata.namespace, wl.namespace))
    .filter((vs) => vs.spec.gateways === undefined || vs.spec.gateways.length === 0 || vs.spec.gateways.includes('mesh') || (vs.spec.http ?? []).some((r) => (r.match ?? []).some((m) => m.gateways?.includes('mesh'))))
    .sort(byAge)
    .map((vs) => ({ vs, hosts: (vs.spec.hosts ?? []).map((h) => resolveHost(h, vs.metadata.namespace)) }));
  const vsIndex = new VirtualServiceIndex(vss);
  // Names a VirtualService claims for a host no service declares (e.g. `test.default`, taken
  // literally): Istio leaves them out of the services' generated names, so they reach the
  // VirtualService rather than the service whose short form they also are.
  const claimed = new Set<string>();
  for (const { vs, hosts } of vss) {
    for (const h of hosts) if (!isWildcard(h) && !registry.byHost.has(h) && vsIndex.find(h) === vs) for (const n of aliasesFor(h, wl.namespace)) claimed.add(n);
  }
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
  const visibleServices = registry.services.filter((s) => registry.lookup(s.hostname, wl.namespace) === s);
  for (const svc of visibleServices) {
    yield;
    // A Kubernetes Service without ports (headless) gets no listener in Istio: calls pass through.
    if (svc.ports.length === 0 && svc.resource.kind === 'Service') continue;
    const vs = vsIndex.find(svc.hostname);
    const ports: (ServicePort | undefined)[] = svc.ports.length > 0 ? svc.ports.filter((p) => HTTP_PROTOCOLS.has((p.protocol ?? '').toUpperCase())) : [undefined];
    for (const p of ports) {
      const port = p?.number;
      const name = port === undefined ? svc.hostname : `${svc.hostname}:${port}`;
      const names = serviceNames(svc, wl.namespace).filter((n) => n === svc.hostname || !claimed.has(n));
      const domains: string[] = [];
      for (const n of names) {
        if (port === undefined) domains.push(n, `${n}:*`);
        else {
          domains.push(`${n}:${port}`);
          if (port === 80 || svc.ports.length === 1) domains.push(n);
        }
      }
      // A headless Service is also reached through its subdomains (`web-0.web`), as Istio adds `*.<domain>`.
      if (svc.headless === true) for (const n of names) domains.push(`*.${n}`);
      vhosts.push(
        vhost(name, svc, vs, domains, () => {
          const routes = vs !== undefined ? compiler.routes(vs, port) : p !== undefined ? [compiler.defaultRoute(svc, p)] : [];
          return Object.freeze({ name, host: svc.hostname, port, service: svc, virtualService: vs?.ref, routes: Object.freeze(routes), domains: Object.freeze(domains) });
        }),
      );
    }
    covered.add(svc.hostname);
  }
  // VirtualService hosts with no service behind them still get routes (any port), as sidecars do.
  for (const { vs, hosts } of vss) {
    yield;
    for (const h of hosts) {
      if (covered.has(h) || registry.byHost.has(h)) continue;
      if (vsIndex.find(h) !== vs) continue;
      covered.add(h);
      const names = isWildcard(h) ? [h] : aliasesFor(h, wl.namespace);
      const matchPorts = new Set<number>();
      for (const rule of vs.spec.http ?? []) for (const m of rule.match ?? []) if (m.port !== undefined) matchPorts.add(m.port);
      for (const p of matchPorts) {
        const name = `${h}:${p}`;
        const domains = names.map((n) => `${n}:${p}`);
        vhosts.push(vhost(name, undefined, vs, domains, () => Object.freeze({ name, host: h, port: p, service: undefined, virtualService: vs.ref, routes: Object.freeze(compiler.routes(vs, p)), domains: Object.freeze(domains) })));
      }
      const domains = names.flatMap((n) => [n, `${n}:*`]);
      vhosts.push(vhost(h, undefined, vs, domains, () => Object.freeze({ name: h, host: h, port: undefined, service: undefined, virtualService: vs.ref, routes: Object.freeze(compiler.routes(vs, undefined)), domains: Object.freeze(domains) })));
    }
  }
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
  });
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
