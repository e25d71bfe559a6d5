/**
 * The route compiler of one snapshot: route rules into compiled routes with their matchers and
 * weighted targets (each destination's cluster comes from the {@link ClusterCompiler}), and the record of what each virtual host's routes looked up (so a
 * later compile can tell whether they are still right, see {@link CompileCache}).
 *
 * @module
 */
import { compileCors } from './cors.ts';
import type { ClientWorkload } from '../config/destination-policy.ts';
import { resolveHost } from '../config/hosts.ts';
import { labelsMatch, type ServiceRegistry, type Service } from '../config/registry.ts';
import { preferredService, type SidecarScope } from '../config/sidecar-scope.ts';
import type { Resource } from '../config/resource.ts';
import type { Destination, HTTPMatchRequest, HTTPRewrite, HTTPRoute, ServicePort } from '../config/types/networking.ts';
import { usesGatewaySemantics } from '../config/gateway-api/mesh-routes.ts';
import type { ClusterCompiler } from './cluster-compiler.ts';
import { type Lookup, type Resolved, sameResolved } from './compile-cache.ts';
import { isCatchAllMatch, RequestMatcher } from './request-matcher.ts';
import {
  authorityFromHeaderOps,
  compileDirectResponse,
  compileFault,
  compileHeaderOps,
  mergeDestinationOps,
  percentFraction,
  compileRedirect,
  compileRetry,
  compileRewrite,
  compileTimeout,
  retryWithoutHashPolicy,
  type RetryPolicy,
} from './route-policy.ts';
import { describeRoute, type Cluster, type CompiledRoute, type MirrorTarget, type RouteDecision, type RouteTarget } from './route-table.ts';

const NO_MATCHERS: readonly RequestMatcher[] = Object.freeze([]);
const NO_MIRRORS: readonly MirrorTarget[] = Object.freeze([]);
const ONE_HUNDRED: readonly number[] = Object.freeze([100]);

/** The target of an egressProxy whose host is a short name, which istiod does not resolve: a cluster no service has. */
function asWritten(dest: Destination, namespace: string): RouteTarget {
  const port = dest.port?.number ?? 0;
  return Object.freeze({
    host: dest.host,
    subset: dest.subset,
    port,
    weight: 100,
    cluster: undefined,
    missing: `egressProxy host ${dest.host} is used as written, as istiod does (cluster outbound|${port}|${dest.subset ?? ''}|${dest.host}), and no service has that host: write its full name (${resolveHost(dest.host, namespace)})`,
    requestHeaders: undefined,
    responseHeaders: undefined,
    authority: undefined,
  });
}

/** Compiles routes for one workload from one registry; their clusters come from a {@link ClusterCompiler}. */
export class Compiler {
  readonly #registry: ServiceRegistry;
  readonly #client: ClientWorkload;
  readonly #clusters: ClusterCompiler;
  /** The applied Sidecar's scope: destinations resolve among its services and ports only. */
  readonly #scope: SidecarScope | undefined;
  /** The mesh's `defaultHttpRetryPolicy`, compiled; undefined: Istio's default policy. */
  readonly #defaultRetry: RetryPolicy | undefined;
  /** The lookups made while compiling one virtual host (see {@link Compiler.recording}). */
  #lookups: Lookup[] | undefined;

  constructor(registry: ServiceRegistry, client: ClientWorkload, clusters: ClusterCompiler, scope?: SidecarScope, defaultRetry?: RetryPolicy) {
    this.#defaultRetry = defaultRetry;
    this.#registry = registry;
    this.#client = client;
    this.#clusters = clusters;
    this.#scope = scope;
  }

  /** Runs `fn` and says which lookups it made (what a virtual host's routes depend on). */
  recording<T>(fn: () => T): { value: T; lookups: Lookup[] } {
    const outer = this.#lookups;
    const lookups: Lookup[] = [];
    this.#lookups = lookups;
    try {
      return { value: fn(), lookups };
    } finally {
      this.#lookups = outer;
    }
  }

  /** Whether every lookup would find the same now (then what was made from them can be reused). */
  unchanged(lookups: readonly Lookup[]): boolean {
    for (const l of lookups) {
      if ('dest' in l) {
        if (!sameResolved(this.#resolve(l.dest, l.namespace, l.vhostPort), l.resolved)) return false;
      } else if (this.cluster(l.service, l.port, undefined) !== l.result) return false;
    }
    return true;
  }

  cluster(service: Service, port: ServicePort, subset: string | undefined): Cluster | string {
    return this.#clusters.cluster(service, port, subset);
  }

  target(dest: Destination, weight: number, vsNamespace: string, vhostPort: number | undefined, headers: HTTPRoute['headers']): RouteTarget {
    const resolved = this.#resolve(dest, vsNamespace, vhostPort);
    this.#lookups?.push({ dest, namespace: vsNamespace, vhostPort, resolved });
    const { host, port, cluster, missing } = resolved;
    return Object.freeze({
      host,
      subset: dest.subset,
      port,
      weight,
      cluster,
      missing,
      requestHeaders: compileHeaderOps(headers?.request),
      responseHeaders: compileHeaderOps(headers?.response),
      authority: authorityFromHeaderOps(headers?.request),
    });
  }

  /** Where a destination leads: its service, port and cluster (or why it is missing). */
  #resolve(dest: Destination, vsNamespace: string, vhostPort: number | undefined): Resolved {
    const host = resolveHost(dest.host, vsNamespace);
    const scope = this.#scope;
    const scoped = scope?.services.get(host);
    const service = scope === undefined ? preferredService(this.#registry, host, this.#client.namespace) : scoped?.service;
    let port = dest.port?.number;
    let cluster: Cluster | undefined;
    let missing: string | undefined;
    if (service === undefined) {
      missing = scope !== undefined && this.#registry.lookup(host, this.#client.namespace) !== undefined
        ? `host ${host} is outside the egress hosts of ${scope.sidecar.ref}`
        : `host ${host} is not in the registry (no visible ServiceEntry or Service)`;
      port ??= vhostPort ?? 80;
    } else {
      // A Sidecar's listener with a port imports only that port of a service (istiod trims the service's ports).
      const ports = scoped?.ports === undefined ? service.ports : service.ports.filter((p) => scoped.ports?.has(p.number));
      const sp = port !== undefined
        ? ports.find((p) => p.number === port)
        : ports.length === 1
          ? ports[0]
          : ports.find((p) => p.number === vhostPort);
      if (sp === undefined && ports !== service.ports && service.ports.some((p) => p.number === (port ?? vhostPort))) {
        port ??= vhostPort as number;
        missing = `port ${port} of ${host} is outside the egress of ${scope?.sidecar.ref} (its listener imports ${[...(scoped?.ports ?? [])].join(', ')})`;
      } else if (sp === undefined) {
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
    return { host, service, port: port as number, cluster, missing };
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
    // A route made from a Gateway API route (route.go `UseGatewaySemantics`): path-separated prefixes, 500 for a missing backend.
    const gateway = vs !== undefined && usesGatewaySemantics(vs);
    const matchers = catchAll ? [] : effective.map((m) => new RequestMatcher(m, gateway));
    const name = vs === undefined ? 'default' : `${vs.metadata.name}.${rule.name ?? index}`;
    // istiod names an Envoy route after the rule, plus the block's name; collapsed to one catch-all, the first catch-all block's.
    const catchAllBlock = catchAll ? effective.find((m) => isCatchAllMatch(m)) : undefined;
    const envoyName = vs === undefined ? 'default' : catchAllBlock?.name === undefined || catchAllBlock.name === '' ? (rule.name ?? '') : `${rule.name ?? ''}.${catchAllBlock.name}`;
    const dests = (rule.route ?? []).filter((d, _i, all) => all.length === 1 || (d.weight ?? 0) > 0);
    let targets = dests.map((d) => this.target(d.destination, dests.length === 1 ? 100 : (d.weight ?? 0), ns, port, d.headers));
    let requestHeaders = compileHeaderOps(rule.headers?.request);
    let responseHeaders = compileHeaderOps(rule.headers?.response);
    // istiod makes weighted clusters of more than one destination (even when all but one weigh 0);
    // one destination's header operations join the route's lists.
    const weightedClusters = (rule.route ?? []).length > 1;
    const only = targets[0];
    if (!weightedClusters && only !== undefined && (only.requestHeaders !== undefined || only.responseHeaders !== undefined)) {
      requestHeaders = mergeDestinationOps(requestHeaders, only.requestHeaders);
      responseHeaders = mergeDestinationOps(responseHeaders, only.responseHeaders);
      targets = [Object.freeze({ ...only, requestHeaders: undefined, responseHeaders: undefined })];
    }
    const cumulative: number[] = [];
    let sum = 0;
    for (const t of targets) {
      sum += t.weight;
      cumulative.push(sum);
    }
    const mirrors: MirrorTarget[] = [];
    if (rule.mirror !== undefined) {
      const fraction = rule.mirrorPercentage !== undefined ? percentFraction(rule.mirrorPercentage) : rule.mirrorPercent !== undefined ? rule.mirrorPercent / 100 : 1;
      mirrors.push({ target: this.target(rule.mirror, 100, ns, port, undefined), fraction });
    }
    for (const m of rule.mirrors ?? []) {
      mirrors.push({ target: this.target(m.destination, 100, ns, port, undefined), fraction: m.percentage === undefined ? 1 : percentFraction(m.percentage) });
    }
    const action = rule.redirect !== undefined ? 'redirect' : rule.directResponse !== undefined ? 'direct-response' : 'forward';
    const decisions: RouteDecision[] = [];
    const route: CompiledRoute = {
      name,
      virtualService: vs?.ref,
      envoyName,
      index,
      matchers: Object.freeze(matchers),
      action,
      targets: Object.freeze(targets),
      cumulativeWeights: Object.freeze(cumulative),
      timeoutMs: compileTimeout(rule.timeout),
      // Weighted clusters: istiod converts the policy without the hash policy (route.go), tried hosts stay avoided.
      retry: weightedClusters ? retryWithoutHashPolicy(compileRetry(rule.retries, this.#defaultRetry)) : compileRetry(rule.retries, this.#defaultRetry),
      fault: compileFault(rule.fault),
      mirrors: Object.freeze(mirrors),
      requestHeaders,
      responseHeaders,
      ...(weightedClusters ? { weightedClusters } : {}),
      rewrite: compileRewrite(gateway ? gatewayRewrite(rule.rewrite, effective[0]) : rule.rewrite, authorityFromHeaderOps(rule.headers?.request)),
      redirect: compileRedirect(rule.redirect),
      directResponse: compileDirectResponse(rule.directResponse),
      cors: compileCors(rule.corsPolicy),
      clusterNotFoundStatus: gateway ? 500 : undefined,
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
   * The route calls to hosts outside the registry take when a Sidecar's `outboundTrafficPolicy`
   * names an `egressProxy` (ALLOW_ANY): Istio's `allow_any` virtual host with the egress proxy's
   * cluster in place of PassthroughCluster — no retries, no timeout, the Host header kept.
   * istiod names that cluster from the host as written (`GetDestinationCluster` without a
   * service), so a short name (`egw`) is no service's host: its cluster is missing (503 NC).
   */
  egressRoute(dest: Destination, namespace: string): CompiledRoute {
    const target = dest.host.includes('.') ? this.target(dest, 100, namespace, undefined, undefined) : asWritten(dest, namespace);
    return singleTargetRoute('allow_any', target, compileRetry({ attempts: 0 }));
  }

  /**
   * The route of a service without a VirtualService: everything to the service's port, with the
   * mesh's default retry policy (istiod's BuildDefaultHTTPOutboundRoute: `defaultHttpRetryPolicy`,
   * else Istio's), its previous-hosts predicate kept under consistent hashing (`retryWithoutHashPolicy`).
   * Otherwise the same route as `route()` makes of `{ route: [{ destination: { host, port } }] }`
   * (a test holds them equal), built directly: most services of a mesh have no VirtualService,
   * and every config push compiles one of these per service and port.
   */
  defaultRoute(service: Service, port: ServicePort): CompiledRoute {
    const c = this.cluster(service, port, undefined);
    this.#lookups?.push({ service, port, result: c });
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
    return singleTargetRoute('default', target, retryWithoutHashPolicy(compileRetry(undefined, this.#defaultRetry)));
  }
}

/**
 * A Gateway API route's rewrite of the whole prefix to `/` (ReplacePrefixMatch `/`): istiod makes
 * it a regex rewrite that drops the matched prefix and the `/` after it (route.go
 * `applyHTTPRouteDestination`: `^<prefix>(/?)(.*)` → `/\2`), so `/api/v1` under prefix `/api`
 * becomes `/v1`, not `//v1`. Istio builds one match per Gateway API route, so the first block is it.
 */
function gatewayRewrite(r: HTTPRewrite | undefined, block: HTTPMatchRequest | undefined): HTTPRewrite | undefined {
  if (r?.uri !== '/') return r;
  const prefix = block?.uri?.prefix !== undefined && block.uri.prefix !== '/' ? block.uri.prefix.replace(/\/$/, '') : '';
  const { uri: _u, ...rest } = r;
  return { ...rest, uriRegexRewrite: { match: `^${quoteMeta(prefix)}(/?)(.*)`, rewrite: '/\\2' } };
}

/** Go's `regexp.QuoteMeta`. */
function quoteMeta(s: string): string {
  return s.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

/** A route that forwards everything to one target (no matchers, rewrites, faults or mirrors). */
function singleTargetRoute(name: string, target: RouteTarget, retry: CompiledRoute['retry']): CompiledRoute {
  const decisions: RouteDecision[] = [];
  const route: CompiledRoute = {
    name,
    virtualService: undefined,
    envoyName: name,
    index: 0,
    matchers: NO_MATCHERS,
    action: 'forward',
    targets: Object.freeze([target]),
    cumulativeWeights: ONE_HUNDRED,
    timeoutMs: undefined,
    retry,
    fault: undefined,
    mirrors: NO_MIRRORS,
    requestHeaders: undefined,
    responseHeaders: undefined,
    rewrite: undefined,
    redirect: undefined,
    directResponse: undefined,
    cors: undefined,
    decisions,
    toString: () => describeRoute(route),
  };
  decisions.push(Object.freeze({ route, target }));
  Object.freeze(decisions);
  return Object.freeze(route);
}
