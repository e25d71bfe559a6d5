/**
 * The service registry built from ServiceEntries, Kubernetes Services and WorkloadEntries:
 * which services exist, their ports, and their endpoints (with target ports, labels and
 * locality).
 *
 * @module
 */
import { isVisible, resolveHost } from './hosts.ts';
import { kubeServiceParts, resolveAliases, selectedWorkloads, type WorkloadCandidate } from './registry-kube.ts';
import { byAge, ofKind, type AnyResource, type Resource } from './resource.ts';
import { runNow, type Steps } from './steps.ts';
import type { ServicePort } from './types/networking.ts';
import { labelsMatch, toWorkload, type Workload, workloadPort } from './workloads.ts';

export { labelsMatch, type Workload };

/**
 * A concrete endpoint of one service port.
 * @category Snapshot
 */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
  /** The workload's labels with Istio's topology labels (see {@link Workload.labels}). */
  readonly labels: Readonly<Record<string, string>>;
  readonly locality: string;
  readonly weight: number;
  readonly origin: string;
  /** `address:port`. */
  readonly key: string;
}

/**
 * Another name of a service: an ExternalName Kubernetes Service that stands for it.
 * @category Snapshot
 */
export interface ServiceAlias {
  readonly hostname: string;
  /** The alias Service's namespace (its short name works there). */
  readonly namespace: string;
}

/**
 * A service in the registry.
 * @category Snapshot
 */
export interface Service {
  /** Host name (lower-case; may be a wildcard `*.example.com`). */
  readonly hostname: string;
  /** Namespace of the ServiceEntry or Service that declared it. */
  readonly namespace: string;
  readonly ports: readonly ServicePort[];
  readonly location: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  readonly resolution: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS';
  readonly workloads: readonly Workload[];
  readonly exportTo: readonly string[] | undefined;
  /** `ServiceEntry ns/name` or `Service ns/name`. */
  readonly origin: string;
  readonly resource: Resource<'ServiceEntry'> | Resource<'Service'>;
  /** Kubernetes Services: service port number → workload port name, for ports whose `targetPort` is a name. */
  readonly targetPortNames?: ReadonlyMap<number, string>;
  /** A headless Kubernetes Service (`clusterIP: None`): any subdomain of its names reaches it too. */
  readonly headless?: boolean;
  /** ExternalName Services that stand for this service: their names reach it too. */
  readonly aliases: readonly ServiceAlias[];
}

/**
 * The endpoints of `service` for one of its ports. The endpoint port is the workload's port
 * of the same name, else the service port's `targetPort`, else the service port number; for a
 * Kubernetes Service whose `targetPort` is a name, the workload's port of that name (workloads
 * without it are not endpoints of that port). For DNS resolution without endpoints the host
 * itself is the endpoint.
 */
export function endpointsFor(service: Service, port: ServicePort): Endpoint[] {
  if (service.resolution === 'NONE' || service.resolution === 'DYNAMIC_DNS') return [];
  // Istio: the host is the endpoint only for a DNS ServiceEntry with neither endpoints nor a workloadSelector.
  const workloads = service.workloads.length === 0 && (service.resolution === 'DNS' || service.resolution === 'DNS_ROUND_ROBIN') && !service.hostname.startsWith('*') && (service.resource.kind !== 'ServiceEntry' || service.resource.spec.workloadSelector === undefined)
    ? [toWorkload({ address: service.hostname }, `${service.origin} (host)`)]
    : service.workloads;
  const named = service.targetPortNames?.get(port.number);
  const out: Endpoint[] = [];
  for (const w of workloads) {
    const p = named !== undefined ? workloadPort(w, named) : (workloadPort(w, port.name) ?? port.targetPort ?? port.number);
    if (p === undefined) continue;
    out.push({ address: w.address, port: p, labels: w.labels, locality: w.locality, weight: w.weight, origin: w.origin, key: `${w.address}:${p}` });
  }
  return out;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The order of the declarations of one host, as Istio's `initServiceRegistry` keeps them: the
 * oldest first, except that within one namespace a Kubernetes Service takes the place of any
 * ServiceEntry declaring the same host (so a ServiceEntry cannot "squat" a Service's name).
 */
function precedence<S extends Service>(list: S[]): S[] {
  const sorted = [...list].sort((a, b) => byAge(a.resource, b.resource));
  const kubeByNs = new Map<string, S>();
  for (const s of sorted) if (s.resource.kind === 'Service' && !kubeByNs.has(s.namespace)) kubeByNs.set(s.namespace, s);
  if (kubeByNs.size === 0) return sorted;
  const out: S[] = [];
  const placed = new Set<S>();
  for (const s of sorted) {
    const kube = kubeByNs.get(s.namespace);
    const next = kube !== undefined && !placed.has(kube) ? kube : s;
    if (!placed.has(next)) {
      out.push(next);
      placed.add(next);
    }
    if (next !== s && !placed.has(s)) {
      out.push(s);
      placed.add(s);
    }
  }
  return out;
}

/** What a registry holds, built step by step (see {@link ServiceRegistry.build}). */
interface Built {
  readonly services: readonly Service[];
  readonly byHost: ReadonlyMap<string, readonly Service[]>;
}

function* buildRegistry(resources: readonly AnyResource[], extraWorkloads: readonly Resource<'WorkloadEntry'>[]): Steps<Built> {
  // Each WorkloadEntry becomes a workload once (labels augmented), indexed by namespace.
  const byNamespace = new Map<string, WorkloadCandidate[]>();
  for (const entry of ofKind(resources, 'WorkloadEntry').concat(extraWorkloads)) {
    const list = byNamespace.get(entry.metadata.namespace) ?? [];
    list.push({ entry, workload: toWorkload(entry.spec, entry.ref) });
    byNamespace.set(entry.metadata.namespace, list);
    yield;
  }
  const services: Mutable<Service>[] = [];
  const byHost = new Map<string, Mutable<Service>[]>();
  const add = (svc: Mutable<Service>) => {
    services.push(svc);
    const list = byHost.get(svc.hostname) ?? [];
    list.push(svc);
    byHost.set(svc.hostname, list);
  };
  const externalNames: { svc: Resource<'Service'>; parts: ReturnType<typeof kubeServiceParts> }[] = [];
  const declared: (Resource<'ServiceEntry'> | Resource<'Service'>)[] = [...ofKind(resources, 'ServiceEntry'), ...ofKind(resources, 'Service')].sort(byAge);
  for (const r of declared) {
    yield;
    if (r.kind === 'Service') {
      const svc = r as Resource<'Service'>;
      const parts = kubeServiceParts(svc);
      if (svc.spec.type === 'ExternalName') {
        if (parts.externalName !== undefined) externalNames.push({ svc, parts });
        continue;
      }
      add({
        hostname: parts.hostname,
        namespace: svc.metadata.namespace,
        ports: parts.ports,
        location: 'MESH_INTERNAL',
        resolution: parts.headless ? 'NONE' : 'STATIC',
        workloads: selectedWorkloads(svc, byNamespace.get(svc.metadata.namespace) ?? []),
        exportTo: parts.exportTo,
        origin: svc.ref,
        resource: svc,
        targetPortNames: parts.targetPortNames,
        headless: parts.headless,
        aliases: [],
      });
      continue;
    }
    const se = r as Resource<'ServiceEntry'>;
    const ns = se.metadata.namespace;
    const spec = se.spec;
    let workloads: Workload[];
    if (spec.workloadSelector !== undefined) {
      const sel = spec.workloadSelector.labels ?? {};
      workloads = (byNamespace.get(ns) ?? []).filter((c) => labelsMatch(sel, c.workload.labels)).map((c) => c.workload);
    } else {
      workloads = (spec.endpoints ?? []).map((ep, i) => toWorkload(ep, `${se.ref} endpoints[${i}]`));
    }
    for (const h of spec.hosts) {
      add({
        hostname: resolveHost(h, ns),
        namespace: ns,
        ports: spec.ports ?? [],
        location: spec.location ?? 'MESH_EXTERNAL',
        resolution: spec.resolution ?? 'NONE',
        workloads,
        exportTo: spec.exportTo,
        origin: se.ref,
        resource: se,
        aliases: [],
      });
    }
  }
  addExternalNames(externalNames, byHost, add);
  for (const [host, list] of byHost) if (list.length > 1) byHost.set(host, precedence(list));
  return { services, byHost };
}

/** ExternalName Services: aliases of services in the registry, else DNS services to their `externalName`. */
function addExternalNames(
  externalNames: readonly { svc: Resource<'Service'>; parts: ReturnType<typeof kubeServiceParts> }[],
  byHost: ReadonlyMap<string, Mutable<Service>[]>,
  add: (svc: Mutable<Service>) => void,
): void {
  const resolved = resolveAliases(new Map(externalNames.map(({ parts }) => [parts.hostname, parts.externalName as string])));
  for (const { svc, parts } of externalNames) {
    const target = resolved.get(parts.hostname);
    if (target === undefined) continue; // an alias loop: Kubernetes DNS answers NXDOMAIN
    const concrete = byHost.get(target);
    if (concrete !== undefined) {
      for (const s of concrete) s.aliases = [...s.aliases, { hostname: parts.hostname, namespace: svc.metadata.namespace }];
      continue;
    }
    if (parts.ports.length === 0) continue;
    add({
      hostname: parts.hostname,
      namespace: svc.metadata.namespace,
      // The DNS name answers on the Service's ports (a CNAME keeps the port; targetPort has no meaning here).
      ports: parts.ports.map(({ targetPort: _t, ...p }) => p),
      location: 'MESH_EXTERNAL',
      resolution: 'DNS',
      workloads: [toWorkload({ address: target }, `${svc.ref} (externalName ${target})`)],
      exportTo: parts.exportTo,
      origin: svc.ref,
      resource: svc,
      aliases: [],
    });
  }
}

/**
 * All services, keyed by host; extra WorkloadEntries (e.g. registered workloads) can be added.
 * @category Snapshot
 */
export class ServiceRegistry {
  /** Services by host, first-declared (oldest) first. */
  readonly byHost: ReadonlyMap<string, readonly Service[]>;
  /** Every service. */
  readonly services: readonly Service[];

  /** @param built internal: what {@link ServiceRegistry.build} made. */
  constructor(resources: readonly AnyResource[], extraWorkloads: readonly Resource<'WorkloadEntry'>[] = [], built?: Built) {
    const b = built ?? runNow(buildRegistry(resources, extraWorkloads));
    this.services = b.services;
    this.byHost = b.byHost;
  }

  /**
   * The registry as {@link Steps}: pauses between resources (for large configs built in slices).
   * @internal
   */
  static *build(resources: readonly AnyResource[], extraWorkloads: readonly Resource<'WorkloadEntry'>[] = []): Steps<ServiceRegistry> {
    const built = yield* buildRegistry(resources, extraWorkloads);
    return new ServiceRegistry(resources, extraWorkloads, built);
  }

  /** The service for `host` as seen from `clientNamespace` (the oldest visible declaration wins). */
  lookup(hostname: string, clientNamespace?: string): Service | undefined {
    const list = this.byHost.get(hostname);
    if (list === undefined) return undefined;
    if (clientNamespace === undefined) return list[0];
    return list.find((s) => isVisible(s.exportTo, s.namespace, clientNamespace));
  }
}
