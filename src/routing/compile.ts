/**
 * Compiles validated resources into the immutable {@link Snapshot} of one workload: the
 * registry, DestinationRule policies per cluster, and the route table with precompiled
 * matchers and cumulative weights. Pure: same resources and workload → same snapshot.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { mergeDelegates } from '../config/delegation.ts';
import { DestinationRuleIndex, effectivePolicy, type ClientWorkload } from '../config/destination-policy.ts';
import { aliasesFor, hostMatches, isVisible, isWildcard, resolveHost, specificity } from '../config/hosts.ts';
import { endpointsFor, labelsMatch, ServiceRegistry, type Service } from '../config/registry.ts';
import { byAge, type AnyResource, type Resource } from '../config/resource.ts';
import { runNow, runSliced, type Steps } from '../config/steps.ts';
import type { Destination, HTTPMatchRequest, HTTPRoute, ServicePort } from '../config/types/networking.ts';
import { isCatchAllMatch, RequestMatcher } from './request-matcher.ts';
import {
  authorityFromHeaderOps,
  compileDirectResponse,
  compileFault,
  compileHeaderOps,
  compileRedirect,
  compileRetry,
  compileRewrite,
  compileTimeout,
} from './route-policy.ts';
import { describeRoute, RouteTable, type Cluster, type CompiledRoute, type MirrorTarget, type RouteDecision, type RouteTarget, type VirtualHost } from './route-table.ts';

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
  /** Every cluster a route can reach, by name. */
  readonly clusters: ReadonlyMap<string, Cluster>;
}

/**
 * A content hash of resources (kind, namespace, name, spec), stable across processes.
 * @category Snapshot
 */
export function contentVersion(resources: readonly AnyResource[]): string {
  return runNow(contentVersionSteps(resources));
}

/**
 * {@link contentVersion} as {@link Steps}: pauses between resources.
 * @internal
 */
export function* contentVersionSteps(resources: readonly AnyResource[]): Steps<string> {
  const h = createHash('sha256');
  const sorted = [...resources].sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  for (const r of sorted) {
    h.update(JSON.stringify([r.apiVersion, r.ref, r.metadata.labels ?? null, r.metadata.annotations ?? null, r.spec]));
    yield;
  }
  return h.digest('hex').slice(0, 12);
}

const NO_MATCHERS: readonly RequestMatcher[] = Object.freeze([]);
const NO_MIRRORS: readonly MirrorTarget[] = Object.freeze([]);
const ONE_HUNDRED: readonly number[] = Object.freeze([100]);

/** Port protocols that get HTTP routes: Istio's HTTP protocols, HTTPS (meshlet originates TLS), and unset (auto-detected: Istio routes it as HTTP too). */
const HTTP_PROTOCOLS = new Set(['', 'HTTP', 'HTTP2', 'HTTP_PROXY', 'GRPC', 'GRPC-WEB', 'HTTPS']);

class Compiler {
  readonly #registry: ServiceRegistry;
  readonly #client: ClientWorkload;
  readonly #clusters = new Map<string, Cluster>();
  readonly #rules: DestinationRuleIndex;

  constructor(resources: readonly AnyResource[], registry: ServiceRegistry, client: ClientWorkload) {
    this.#rules = new DestinationRuleIndex(resources, client);
    this.#registry = registry;
    this.#client = client;
  }

  get clusters(): ReadonlyMap<string, Cluster> {
    return this.#clusters;
  }

  cluster(service: Service, port: ServicePort, subset: string | undefined): Cluster | string {
    const name = `outbound|${port.number}|${subset ?? ''}|${service.hostname}`;
    const existing = this.#clusters.get(name);
    if (existing !== undefined) return existing;
    const dr = this.#rules.find(service.hostname, service.namespace, this.#client.namespace);
    let endpoints = endpointsFor(service, port);
    if (subset !== undefined) {
      const def = dr?.subsets.get(subset);
      if (def === undefined) {
        return dr === undefined
          ? `subset "${subset}" is not defined: no DestinationRule for ${service.hostname}`
          : `subset "${subset}" is not defined in ${dr.rules.map((r) => r.ref).join(', ')}`;
      }
      endpoints = endpoints.filter((e) => labelsMatch(def.labels, e.labels));
    }
    const policy = effectivePolicy(dr, subset, port.number);
    const c: Cluster = Object.freeze({
      name,
      host: service.hostname,
      port: port.number,
      subset,
      service,
      endpoints: Object.freeze(endpoints),
      policy,
      destinationRule: dr,
      protocol: (port.protocol ?? '').toUpperCase(),
      toString: () => `${name} (${endpoints.length} endpoints${dr ? `, ${dr.rules.map((r) => r.ref).join(', ')}` : ''})`,
    });
    this.#clusters.set(name, c);
    return c;
  }

  target(dest: Destination, weight: number, vsNamespace: string, vhostPort: number | undefined, headers: HTTPRoute['headers']): RouteTarget {
    const host = resolveHost(dest.host, vsNamespace);
    const service = this.#registry.lookup(host, this.#client.namespace);
    let port = dest.port?.number;
    let cluster: Cluster | undefined;
    let missing: string | undefined;
    if (service === undefined) {
      missing = `host ${host} is not in the registry (no visible ServiceEntry or Service)`;
      port ??= vhostPort ?? 80;
    } else {
      const sp = port !== undefined
        ? service.ports.find((p) => p.number === port)
        : service.ports.length === 1
          ? service.ports[0]
          : service.ports.find((p) => p.number === vhostPort);
      if (sp === undefined) {
        port ??= vhostPort ?? 80;
        missing = service.ports.length === 0 ? undefined : `port ${port} is not a port of ${host}`;
        const implicit: ServicePort = { number: port };
        if (missing === undefined) {
          const c = this.cluster(service, implicit, dest.subset);
          if (typeof c === 'string') missing = c;
          else cluster = c;
        }
      } else {
        port = sp.number;
        const c = this.cluster(service, sp, dest.subset);
        if (typeof c === 'string') missing = c;
        else cluster = c;
      }
    }
    return Object.freeze({
      host,
      subset: dest.subset,
      port: port as number,
      weight,
      cluster,
      missing,
      requestHeaders: compileHeaderOps(headers?.request),
      responseHeaders: compileHeaderOps(headers?.response),
      authority: authorityFromHeaderOps(headers?.request),
    });
  }

  /** Compiles one rule for one virtual host, or undefined when no match block applies to this workload/port. */
  route(vs: Resource<'VirtualService'> | undefined, rule: HTTPRoute, index: number, port: number | undefined): { route: CompiledRoute; catchAll: boolean } | undefined {
    const ns = vs?.metadata.namespace ?? this.#client.namespace;
    const vsAppliesToMesh = vs === undefined || vs.spec.gateways === undefined || vs.spec.gateways.length === 0 || vs.spec.gateways.includes('mesh');
    let blocks: HTTPMatchRequest[] | undefined = rule.match;
    if (blocks !== undefined && blocks.length > 0) {
      blocks = blocks.filter((m) => {
        if (m.gateways !== undefined ? !m.gateways.includes('mesh') : !vsAppliesToMesh) return false;
        if (m.sourceLabels !== undefined && !labelsMatch(m.sourceLabels, this.#client.labels)) return false;
        if (m.sourceNamespace !== undefined && m.sourceNamespace !== this.#client.namespace) return false;
        // A block for another port is not generated for this one; on an any-port virtual host,
        // port-specific blocks live in their own per-port virtual hosts instead.
        if (m.port !== undefined && m.port !== port) return false;
        return true;
      });
      if (blocks.length === 0) return undefined;
    }
    // The selector-like fields were decided above; what is left is matched per request.
    const effective = (blocks ?? []).map(({ sourceLabels: _s, sourceNamespace: _n, gateways: _g, port: _p, ...rest }) => rest);
    const catchAll = effective.length === 0 || effective.some((m) => isCatchAllMatch(m));
    // A catch-all block (no conditions, prefix "/", regex ".*") matches every request.
    const matchers = catchAll ? [] : effective.map((m) => new RequestMatcher(m));
    const name = vs === undefined ? 'default' : `${vs.metadata.name}.${rule.name ?? index}`;
    const dests = (rule.route ?? []).filter((d, _i, all) => all.length === 1 || (d.weight ?? 0) > 0);
    const targets = dests.map((d) => this.target(d.destination, dests.length === 1 ? 100 : (d.weight ?? 0), ns, port, d.headers));
    const cumulative: number[] = [];
    let sum = 0;
    for (const t of targets) {
      sum += t.weight;
      cumulative.push(sum);
    }
    const mirrors: MirrorTarget[] = [];
    if (rule.mirror !== undefined) {
      const fraction = rule.mirrorPercentage !== undefined ? rule.mirrorPercentage.value / 100 : rule.mirrorPercent !== undefined ? rule.mirrorPercent / 100 : 1;
      mirrors.push({ target: this.target(rule.mirror, 100, ns, port, undefined), fraction });
    }
    for (const m of rule.mirrors ?? []) {
      mirrors.push({ target: this.target(m.destination, 100, ns, port, undefined), fraction: m.percentage === undefined ? 1 : m.percentage.value / 100 });
    }
    const action = rule.redirect !== undefined ? 'redirect' : rule.directResponse !== undefined ? 'direct-response' : 'forward';
    const decisions: RouteDecision[] = [];
    const route: CompiledRoute = {
      name,
      virtualService: vs?.ref,
      index,
      matchers: Object.freeze(matchers),
      action,
      targets: Object.freeze(targets),
      cumulativeWeights: Object.freeze(cumulative),
      timeoutMs: compileTimeout(rule.timeout),
      retry: compileRetry(rule.retries),
      fault: compileFault(rule.fault),
      mirrors: Object.freeze(mirrors),
      requestHeaders: compileHeaderOps(rule.headers?.request),
      responseHeaders: compileHeaderOps(rule.headers?.response),
      rewrite: compileRewrite(rule.rewrite, authorityFromHeaderOps(rule.headers?.request)),
      redirect: compileRedirect(rule.redirect),
      directResponse: compileDirectResponse(rule.directResponse),
      decisions,
      toString: () => describeRoute(route),
    };
    if (action === 'forward') for (const t of targets) decisions.push(Object.freeze({ route, target: t }));
    else decisions.push(Object.freeze({ route, target: undefined }));
    Object.freeze(decisions);
    return { route: Object.freeze(route), catchAll };
  }

  /** Compiles a VirtualService's rules for one port; Istio stops after the first catch-all. */
  routes(vs: Resource<'VirtualService'>, port: number | undefined): CompiledRoute[] {
    const out: CompiledRoute[] = [];
    const rules = vs.spec.http ?? [];
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i] as HTTPRoute;
      if (rule.delegate !== undefined) continue; // delegation was merged before compiling; a delegate's own delegate is invalid
      const r = this.route(vs, rule, i, port);
      if (r === undefined) continue;
      out.push(r.route);
      if (r.catchAll) break;
    }
    return out;
  }

  /**
   * The route of a service without a VirtualService: everything to the service's port, Istio's
   * default retry policy. The same route as `route()` makes of `{ route: [{ destination: { host,
   * port } }] }` (a test holds them equal), built directly: most services of a mesh have no
   * VirtualService, and every config push compiles one of these per service and port.
   */
  defaultRoute(service: Service, port: ServicePort): CompiledRoute {
    const c = this.cluster(service, port, undefined);
    const target: RouteTarget = Object.freeze({
      host: service.hostname,
      subset: undefined,
      port: port.number,
      weight: 100,
      cluster: typeof c === 'string' ? undefined : c,
      missing: typeof c === 'string' ? c : undefined,
      requestHeaders: undefined,
      responseHeaders: undefined,
      authority: undefined,
    });
    const decisions: RouteDecision[] = [];
    const route: CompiledRoute = {
      name: 'default',
      virtualService: undefined,
      index: 0,
      matchers: NO_MATCHERS,
      action: 'forward',
      targets: Object.freeze([target]),
      cumulativeWeights: ONE_HUNDRED,
      timeoutMs: undefined,
      retry: compileRetry(undefined),
      fault: undefined,
      mirrors: NO_MIRRORS,
      requestHeaders: undefined,
      responseHeaders: undefined,
      rewrite: undefined,
      redirect: undefined,
      directResponse: undefined,
      decisions,
      toString: () => describeRoute(route),
    };
    decisions.push(Object.freeze({ route, target }));
    Object.freeze(decisions);
    return Object.freeze(route);
  }
}

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
 * @category Snapshot
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
  const registry = yield* ServiceRegistry.build(resources, options.extraWorkloads);
  const compiler = new Compiler(resources, registry, wl);
  // Delegate VirtualServices (no hosts) are merged into the rules of the roots that name them.
  const vss = [...mergeDelegates(resources).virtualServices]
    .filter((vs) => isVisible(vs.spec.exportTo, vs.metadata.namespace, wl.namespace))
    .filter((vs) => vs.spec.gateways === undefined || vs.spec.gateways.length === 0 || vs.spec.gateways.includes('mesh') || (vs.spec.http ?? []).some((r) => (r.match ?? []).some((m) => m.gateways?.includes('mesh'))))
    .sort(byAge)
    .map((vs) => ({ vs, hosts: (vs.spec.hosts ?? []).map((h) => resolveHost(h, vs.metadata.namespace)) }));
  const vsIndex = new VirtualServiceIndex(vss);
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
      const routes = vs !== undefined ? compiler.routes(vs, port) : p !== undefined ? [compiler.defaultRoute(svc, p)] : [];
      const names = serviceNames(svc, wl.namespace);
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
      vhosts.push(Object.freeze({ name: port === undefined ? svc.hostname : `${svc.hostname}:${port}`, host: svc.hostname, port, service: svc, virtualService: vs?.ref, routes: Object.freeze(routes), domains: Object.freeze(domains) }));
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
        vhosts.push(Object.freeze({ name: `${h}:${p}`, host: h, port: p, service: undefined, virtualService: vs.ref, routes: Object.freeze(compiler.routes(vs, p)), domains: Object.freeze(names.map((n) => `${n}:${p}`)) }));
      }
      vhosts.push(Object.freeze({ name: h, host: h, port: undefined, service: undefined, virtualService: vs.ref, routes: Object.freeze(compiler.routes(vs, undefined)), domains: Object.freeze(names.flatMap((n) => [n, `${n}:*`])) }));
    }
  }
  const version = options.version ?? (yield* contentVersionSteps(resources));
  return Object.freeze({
    version,
    workload: Object.freeze(wl),
    resources,
    registry,
    routes: yield* RouteTable.build(vhosts),
    clusters: compiler.clusters,
  });
}
