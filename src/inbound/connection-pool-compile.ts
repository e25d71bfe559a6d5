/**
 * Which `connectionPool` applies to each inbound port of a workload, worked out as istiod builds
 * a sidecar's inbound clusters (`buildInboundCluster`, `SidecarScope.InboundConnectionPoolForPort`):
 * the DestinationRule of the workload's own service (without a `workloadSelector`; port-level
 * settings by the service port reaching the local port), overridden by the Sidecar's `ingress`
 * listener for the port or its `inboundConnectionPool`; and the limiters enforcing them, per port
 * and protocol, handed from one config to the next.
 *
 * @module
 */
import { DestinationRuleIndex, effectivePolicy } from '../config/destination-policy.ts';
import { kubeServiceHost } from '../config/registry-kube.ts';
import { type AnyResource, DEFAULT_ROOT_NAMESPACE, type Resource } from '../config/resource.ts';
import { H2_PROTOCOLS, type InboundService, inboundServices } from './inbound-services.ts';
import type { ConnectionPoolSettings } from '../config/types/networking.ts';
import { selectSidecar } from '../config/sidecar-scope.ts';
import { type PoolLimits, poolLimits, RequestLimiter, UNLIMITED } from '../policies/limits.ts';

/**
 * The workload whose inbound requests are limited.
 * @category Inbound
 */
export interface InboundPoolWorkload {
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Its named ports, for Services whose `targetPort` is a name. @defaultValue {} */
  readonly ports?: Readonly<Record<string, number>>;
}

/**
 * The connection pool that applies to one inbound port, and where it comes from.
 * @category Inbound
 */
export interface InboundPortPool {
  /** The local port. */
  readonly port: number;
  /** `inbound|<port>||`. */
  readonly cluster: string;
  /** The service whose DestinationRule was looked up (host), and its port reaching `port`. */
  readonly service: { readonly host: string; readonly port: number };
  /** True when the service port speaks HTTP/2 or gRPC to the app (the limit is then `http2MaxRequests` alone). */
  readonly h2: boolean;
  /** The settings in force, undefined when none (unlimited). */
  readonly settings: ConnectionPoolSettings | undefined;
  /** Where they come from: `Sidecar ns/name ingress[i]`, `Sidecar ns/name inboundConnectionPool`, `DestinationRule ns/name portLevelSettings (port 80)`, `DestinationRule ns/name`; undefined when none. */
  readonly source: string | undefined;
}

function limited(pool: ConnectionPoolSettings | undefined): boolean {
  if (pool === undefined) return false;
  const l = poolLimits(pool, false);
  // Only a limit on requests in flight can refuse or hold one: a pending limit alone never applies.
  return l.maxActive !== UNLIMITED;
}

/**
 * The counters of one inbound pool: its requests in flight and waiting, its overflows so far,
 * and its limits (2^32−1: unlimited).
 * @category Server
 */
export interface InboundPoolCounters {
  /** `inbound|<port>||`. */
  readonly cluster: string;
  /** `grpc`: gRPC requests (limited by `http2MaxRequests`); `http1`: the others. */
  readonly protocol: 'http1' | 'grpc';
  readonly active: number;
  readonly pending: number;
  readonly overflows: number;
  readonly maxActive: number;
  readonly maxPending: number;
}

/**
 * The connection pools of one workload's inbound ports, compiled from one config; limiters are
 * made per port and protocol when first needed, and taken over from the config before.
 */
export class CompiledInboundPools {
  readonly #workload: InboundPoolWorkload;
  readonly #services: Map<number, InboundService[]>;
  readonly #rules: DestinationRuleIndex;
  readonly #sidecar: Resource<'Sidecar'> | undefined;
  readonly #ports = new Map<number, InboundPortPool>();
  /** Limiters by `<port>|h2` / `<port>|h1`; only for limited ports. */
  readonly #limiters = new Map<string, RequestLimiter | undefined>();
  /**
   * Shared by this object and the ones before: every limiter they made (kept so that requests in
   * in flight stay counted), and the newest of them, whose limits alone the limiters take.
   */
  readonly #shared: { latest: CompiledInboundPools; readonly all: Map<string, RequestLimiter> };
  /** Whether some setting that can apply limits anything (else no phase is built). */
  readonly canLimit: boolean;

  constructor(resources: readonly AnyResource[], workload: InboundPoolWorkload, rootNamespace: string = DEFAULT_ROOT_NAMESPACE, previous?: CompiledInboundPools) {
    this.#workload = workload;
    this.#services = inboundServices(resources, workload);
    // For inbound traffic Istio uses the DestinationRule without a workloadSelector (`SidecarScope.DestinationRule`, TrafficDirectionInbound).
    this.#rules = new DestinationRuleIndex(resources, { namespace: workload.namespace, labels: workload.labels }, rootNamespace, { inbound: true });
    this.#sidecar = selectSidecar(resources, workload.namespace, workload.labels, rootNamespace);
    this.#shared = previous === undefined ? { latest: this, all: new Map() } : previous.#shared;
    this.#shared.latest = this;
    const sc = this.#sidecar?.spec;
    let can = limited(sc?.inboundConnectionPool) || (sc?.ingress ?? []).some((l) => limited(l.connectionPool));
    if (!can) {
      // A port no service reaches is the workload's own service's.
      const hosts = [...[...this.#services.values()].flat(), this.#ownService(0)];
      for (const s of hosts) {
        const tp = this.#rules.find(s.host, s.namespace, workload.namespace)?.trafficPolicy;
        if (limited(tp?.connectionPool) || (tp?.portLevelSettings ?? []).some((p) => limited(p.connectionPool))) can = true;
      }
    }
    this.canLimit = can;
    // Limiters of the config before: the new limits (unlimited when none applies any more) take effect now, waiters they make room for go on.
    for (const [key, l] of this.#shared.all) {
      const [port, proto] = key.split('|');
      l.setLimits(this.#limitsOf(this.forPort(Number(port)), proto === 'h2'));
    }
  }

  /** The counters of every pool requests have used (kept across reloads), by port. */
  counters(): InboundPoolCounters[] {
    return [...this.#shared.all]
      .map(([key, l]) => {
        const [port, proto] = key.split('|');
        return { cluster: `inbound|${port}||`, protocol: proto === 'h2' ? ('grpc' as const) : ('http1' as const), active: l.active, pending: l.pending, overflows: l.overflows, maxActive: l.limits.maxActive, maxPending: l.limits.maxPending };
      })
      .sort((a, b) => (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : a.protocol < b.protocol ? -1 : 1));
  }

  /** `inbound|8080|| http1: active 1/1, pending 0/1, overflows 0; …` (the pools requests have used). */
  toString(): string {
    const f = (n: number) => (n === UNLIMITED ? '∞' : String(n));
    const list = this.counters().map((c) => `${c.cluster} ${c.protocol}: active ${c.active}/${f(c.maxActive)}, pending ${c.pending}/${f(c.maxPending)}, overflows ${c.overflows}`);
    return list.length === 0 ? 'no inbound pool used yet' : list.join('; ');
  }

  /** The workload's own service (its Kubernetes name), for a port no Service or ServiceEntry reaches. */
  #ownService(port: number): InboundService {
    const w = this.#workload;
    return { host: kubeServiceHost(w.service, w.namespace), namespace: w.namespace, servicePort: port, h2: false };
  }

  /** The pool that applies to local `port` (and why). */
  forPort(port: number): InboundPortPool {
    let p = this.#ports.get(port);
    if (p === undefined) {
      p = this.#resolve(port);
      this.#ports.set(port, p);
    }
    return p;
  }

  #resolve(port: number): InboundPortPool {
    // Istio: the first service reaching the port ("the choice of inbound cluster is arbitrary" with several).
    const svc = this.#services.get(port)?.[0] ?? this.#ownService(port);
    const cluster = `inbound|${port}||`;
    const service = { host: svc.host, port: svc.servicePort };
    const sc = this.#sidecar;
    const ingress = sc?.spec.ingress ?? [];
    // An ingress listener for the port says its protocol too.
    const listener = ingress.find((l) => l.port?.number === port);
    const h2 = svc.h2 || H2_PROTOCOLS.has((listener?.port?.protocol ?? '').toUpperCase());
    if (sc !== undefined) {
      const i = ingress.findIndex((l) => l.port?.number === port && l.connectionPool !== undefined);
      if (i !== -1) return { port, cluster, service, h2, settings: ingress[i]?.connectionPool, source: `Sidecar ${sc.metadata.namespace}/${sc.metadata.name} ingress[${i}] (port ${port})` };
      const all = sc.spec.inboundConnectionPool;
      if (all !== undefined) return { port, cluster, service, h2, settings: all, source: `Sidecar ${sc.metadata.namespace}/${sc.metadata.name} inboundConnectionPool` };
    }
    const rule = this.#rules.find(svc.host, svc.namespace, this.#workload.namespace);
    const pool = effectivePolicy(rule, undefined, svc.servicePort).connectionPool;
    if (pool === undefined || rule === undefined) return { port, cluster, service, h2, settings: undefined, source: undefined };
    const first = rule.rules[0] as Resource<'DestinationRule'>;
    const portLevel = rule.trafficPolicy?.portLevelSettings?.some((p) => p.port?.number === svc.servicePort) === true;
    return { port, cluster, service, h2, settings: pool, source: `DestinationRule ${first.metadata.namespace}/${first.metadata.name}${portLevel ? ` portLevelSettings (port ${svc.servicePort})` : ''}` };
  }

  #limitsOf(p: InboundPortPool, h2: boolean): PoolLimits {
    return poolLimits(p.settings, h2 || p.h2);
  }

  /** The limits for requests on `port` (`h2`: a gRPC request). */
  limitsFor(port: number, h2: boolean): PoolLimits {
    return this.#limitsOf(this.forPort(port), h2);
  }

  /** The limiter of `port` for gRPC (`h2`) or HTTP/1.1 requests; undefined when nothing limits them. */
  limiter(port: number, h2: boolean): RequestLimiter | undefined {
    const key = h2 ? `${port}|h2` : `${port}|h1`;
    if (this.#limiters.has(key)) return this.#limiters.get(key);
    const limits = this.limitsFor(port, h2);
    let l: RequestLimiter | undefined;
    if (limits.maxActive !== UNLIMITED) {
      // A request judged under an older config (it waited on an earlier phase across a reload)
      // counts on the same limiter, under the newest config's limits: an older config never sets them.
      const { latest, all } = this.#shared;
      const now = latest === this ? limits : latest.limitsFor(port, h2);
      l = all.get(key);
      if (l === undefined) {
        l = new RequestLimiter(now);
        all.set(key, l);
      } else if (latest === this) l.setLimits(limits);
    }
    this.#limiters.set(key, l);
    return l;
  }
}

