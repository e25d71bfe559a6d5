/**
 * The service registry built from ServiceEntries, Kubernetes Services and WorkloadEntries:
 * which services exist, their ports, and their endpoints (with target ports, labels and
 * locality).
 *
 * @module
 */
import { formatHostPort } from '../core/host-port.ts';
import { isVisible, resolveHost } from './hosts.ts';
import { kubeServiceParts, resolveAliases, selectedWorkloads, type WorkloadCandidate } from './registry-kube.ts';
import { byAge, ofKind, type AnyResource, type Resource } from './resource.ts';
import { runNow, type Steps } from './steps.ts';
import type { ServicePort } from './types/networking.ts';
import { labelsMatch, toWorkload, type Workload, workloadEntryHealthy, workloadEntryName, workloadPort } from './workloads.ts';

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
  /** The workload's service account: its identity (`spiffe://…/ns/<namespace>/sa/<account>`). */
  readonly serviceAccount: string;
  /** The namespace the workload runs in (its service's). */
  readonly namespace: string;
  /** Istio's workload name of the instance (see {@link Workload.name}). */
  readonly workloadName: string;
  /** `address:port`. */
  readonly key: string;
  /**
   * The DNS name this endpoint's address was resolved from (a `resolution: DNS` endpoint, one
   * host per address of the name's answer, as Envoy's STRICT_DNS cluster); undefined otherwise.
   */
  readonly hostname?: string;
  /**
   * Set on an east-west gateway standing for endpoints on another network (multi-network: the
   * gateway routes the mTLS connection by its SNI to one of them); undefined for a workload.
   */
  readonly gateway?: EndpointGateway;
}

/**
 * What a gateway endpoint stands for (see {@link Endpoint.gateway}).
 * @category Snapshot
 */
export interface EndpointGateway {
  /** The network it leads into. */
  readonly network: string;
  /** Where the gateway came from: `meshNetworks networks.<name>.gateways[i]`, `Service ns/name`. */
  readonly origin: string;
  /** The endpoints (`address:port`) on that network it stands for. */
  readonly endpoints: readonly string[];
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
    ? [toWorkload({ address: service.hostname }, `${service.origin} (host)`, service.resource.metadata.name)]
    : service.workloads;
  const named = service.targetPortNames?.get(port.number);
  const out: Endpoint[] = [];
  for (const w of workloads) {
    const p = named !== undefined ? workloadPort(w, named) : (workloadPort(w, port.name) ?? port.targetPort ?? port.number);
    if (p === undefined) continue;
    out.push({ address: w.address, port: p, labels: w.labels, locality: w.locality, weight: w.weight, origin: w.origin, serviceAccount: w.serviceAccount, namespace: service.namespace, workloadName: w.name, key: formatHostPort(w.address, p) });
  }
  return out;
}

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

/** A service made last time, and what it was made from. */
interface MadeService {
  /** What the service depends on besides its declaring resource: its host's position, selected workloads, aliases. */
  readonly inputs: readonly unknown[];
  readonly service: Service;
}

const sameInputs = (a: readonly unknown[], b: readonly unknown[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * What one registry build leaves for the next, so the services of unchanged resources are the
 * same objects (compiles then reuse what they made from them; analysis makes fewer objects).
 * A service is reused only when everything it is made from is identical: its declaring resource
 * (the same object), the host's position in it, the workloads it selects (the same WorkloadEntry
 * objects) and the ExternalName aliases that name it. Holds the last build only.
 * @internal
 */
export class RegistryCache {
  #workloads = new Map<Resource<'WorkloadEntry'>, Workload>();
  #services = new Map<AnyResource, MadeService[]>();
  #nextWorkloads = new Map<Resource<'WorkloadEntry'>, Workload>();
  #nextServices = new Map<AnyResource, MadeService[]>();

  /** The registry workload of a WorkloadEntry (the same object while the entry is). */
  workload(entry: Resource<'WorkloadEntry'>): Workload {
    const w = this.#nextWorkloads.get(entry) ?? this.#workloads.get(entry) ?? toWorkload(entry.spec, entry.ref, workloadEntryName(entry.metadata.name, entry.spec.labels, entry.metadata.annotations));
    this.#nextWorkloads.set(entry, w);
    return w;
  }

  /** The service `index` of `resource` made from `inputs`: the one made last time if they are the same, else `make()`. */
  service(resource: AnyResource, index: number, inputs: readonly unknown[], make: () => Service): Service {
    const prior = this.#services.get(resource)?.[index];
    const service = prior !== undefined && sameInputs(prior.inputs, inputs) ? prior.service : make();
    const list = this.#nextServices.get(resource) ?? [];
    list[index] = { inputs, service };
    this.#nextServices.set(resource, list);
    return service;
  }

  /** Ends a build: what it did not use is forgotten. */
  end(): void {
    this.#workloads = this.#nextWorkloads;
    this.#services = this.#nextServices;
    this.#nextWorkloads = new Map();
    this.#nextServices = new Map();
  }
}

type Declared = Resource<'ServiceEntry'> | Resource<'Service'>;

function* buildRegistry(resources: readonly AnyResource[], extraWorkloads: readonly Resource<'WorkloadEntry'>[], cache: RegistryCache = new RegistryCache()): Steps<Built> {
  // Each WorkloadEntry becomes a workload once (labels augmented), indexed by namespace.
  const byNamespace = new Map<string, WorkloadCandidate[]>();
  for (const entry of ofKind(resources, 'WorkloadEntry').concat(extraWorkloads)) {
    // istiod drops an unhealthy health-checked WorkloadEntry before any service selects it (serviceentry controller, isHealthy).
    if (!workloadEntryHealthy(entry.metadata.annotations, entry.status)) continue;
    const list = byNamespace.get(entry.metadata.namespace) ?? [];
    list.push({ entry, workload: cache.workload(entry) });
    byNamespace.set(entry.metadata.namespace, list);
    yield;
  }
  const declared: Declared[] = [...ofKind(resources, 'ServiceEntry'), ...ofKind(resources, 'Service')].sort(byAge);
  // The hosts declared by something other than an ExternalName Service, and the ExternalName
  // Services: an alias of a declared host names that service; any other is a DNS service of its own.
  const parts = new Map<Resource<'Service'>, ReturnType<typeof kubeServiceParts>>();
  const concrete = new Set<string>();
  const externalNames: { svc: Resource<'Service'>; parts: ReturnType<typeof kubeServiceParts> }[] = [];
  for (const r of declared) {
    if (r.kind === 'Service') {
      const svc = r as Resource<'Service'>;
      const p = kubeServiceParts(svc);
      parts.set(svc, p);
      if (svc.spec.type === 'ExternalName') {
        if (p.externalName !== undefined) externalNames.push({ svc, parts: p });
      } else concrete.add(p.hostname);
    } else for (const h of (r as Resource<'ServiceEntry'>).spec.hosts) concrete.add(resolveHost(h, r.metadata.namespace));
  }
  const resolved = resolveAliases(new Map(externalNames.map(({ parts: p }) => [p.hostname, p.externalName as string])));
  const aliasesOf = new Map<string, ServiceAlias[]>();
  const dnsAliases: { svc: Resource<'Service'>; parts: ReturnType<typeof kubeServiceParts>; target: string }[] = [];
  for (const { svc, parts: p } of externalNames) {
    const target = resolved.get(p.hostname);
    if (target === undefined) continue; // an alias loop: Kubernetes DNS answers NXDOMAIN
    if (concrete.has(target)) aliasesOf.set(target, [...(aliasesOf.get(target) ?? []), { hostname: p.hostname, namespace: svc.metadata.namespace }]);
    else if (p.ports.length > 0) dnsAliases.push({ svc, parts: p, target });
  }
  const services: Service[] = [];
  const byHost = new Map<string, Service[]>();
  const add = (svc: Service) => {
    services.push(svc);
    const list = byHost.get(svc.hostname) ?? [];
    list.push(svc);
    byHost.set(svc.hostname, list);
  };
  const aliasInputs = (host: string): readonly unknown[] => (aliasesOf.get(host) ?? []).flatMap((a) => [a.hostname, a.namespace]);
  for (const r of declared) {
    yield;
    if (r.kind === 'Service') {
      const svc = r as Resource<'Service'>;
      if (svc.spec.type === 'ExternalName') continue;
      const p = parts.get(svc) as ReturnType<typeof kubeServiceParts>;
      const workloads = selectedWorkloads(svc, byNamespace.get(svc.metadata.namespace) ?? []);
      add(
        cache.service(svc, 0, [...workloads, '|', ...aliasInputs(p.hostname)], () => ({
          hostname: p.hostname,
          namespace: svc.metadata.namespace,
          ports: p.ports,
          location: 'MESH_INTERNAL',
          resolution: p.headless ? 'NONE' : 'STATIC',
          workloads,
          exportTo: p.exportTo,
          origin: svc.ref,
          resource: svc,
          targetPortNames: p.targetPortNames,
          headless: p.headless,
          aliases: aliasesOf.get(p.hostname) ?? [],
        })),
      );
      continue;
    }
    const se = r as Resource<'ServiceEntry'>;
    const ns = se.metadata.namespace;
    const spec = se.spec;
    let workloads: Workload[] | undefined;
    if (spec.workloadSelector !== undefined) {
      const sel = spec.workloadSelector.labels ?? {};
      workloads = (byNamespace.get(ns) ?? []).filter((c) => labelsMatch(sel, c.workload.labels)).map((c) => c.workload);
    }
    let fromEndpoints: Workload[] | undefined;
    const endpointWorkloads = (): Workload[] => {
      fromEndpoints ??= (spec.endpoints ?? []).map((ep, i) => toWorkload(ep, `${se.ref} endpoints[${i}]`, workloadEntryName(`${se.metadata.name}-${i}`, ep.labels)));
      return fromEndpoints;
    };
    spec.hosts.forEach((h, i) => {
      const hostname = resolveHost(h, ns);
      add(
        cache.service(se, i, [...(workloads ?? []), '|', ...aliasInputs(hostname)], () => ({
          hostname,
          namespace: ns,
          ports: spec.ports ?? [],
          location: spec.location ?? 'MESH_EXTERNAL',
          resolution: spec.resolution ?? 'NONE',
          workloads: workloads ?? endpointWorkloads(),
          exportTo: spec.exportTo,
          origin: se.ref,
          resource: se,
          aliases: aliasesOf.get(hostname) ?? [],
        })),
      );
    });
  }
  for (const { svc, parts: p, target } of dnsAliases) {
    add(
      cache.service(svc, 0, [target], () => ({
        hostname: p.hostname,
        namespace: svc.metadata.namespace,
        // The DNS name answers on the Service's ports (a CNAME keeps the port; targetPort has no meaning here).
        ports: p.ports.map(({ targetPort: _t, ...port }) => port),
        location: 'MESH_EXTERNAL',
        resolution: 'DNS',
        workloads: [toWorkload({ address: target }, `${svc.ref} (externalName ${target})`, '')],
        exportTo: p.exportTo,
        origin: svc.ref,
        resource: svc,
        aliases: [],
      })),
    );
  }
  for (const [host, list] of byHost) if (list.length > 1) byHost.set(host, precedence(list));
  cache.end();
  return { services, byHost };
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
   * The registry as {@link Steps}: pauses between resources (for large configs built in slices);
   * `cache` keeps the services of unchanged resources from one build to the next.
   * @internal
   */
  static *build(resources: readonly AnyResource[], extraWorkloads: readonly Resource<'WorkloadEntry'>[] = [], cache?: RegistryCache): Steps<ServiceRegistry> {
    const built = yield* buildRegistry(resources, extraWorkloads, cache);
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
