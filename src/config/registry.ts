/**
 * The service registry built from ServiceEntries and WorkloadEntries: which services exist,
 * their ports, and their endpoints (with target ports, labels and locality).
 *
 * @module
 */
import { isVisible, resolveHost } from './hosts.ts';
import { byAge, ofKind, type AnyResource, type Resource } from './resource.ts';
import type { ServicePort, WorkloadEntrySpec } from './types/networking.ts';

/** A workload instance behind a service (from `endpoints` or a selected WorkloadEntry). */
export interface Workload {
  /** IP, DNS name or `unix://` path; for resolution NONE it is absent. */
  readonly address: string;
  /** Port name → port on the workload. */
  readonly ports: Readonly<Record<string, number>>;
  readonly labels: Readonly<Record<string, string>>;
  /** `region/zone/subzone`, or ''. */
  readonly locality: string;
  readonly network: string;
  /** Load-balancing weight. @defaultValue 1 */
  readonly weight: number;
  readonly serviceAccount: string;
  /** `WorkloadEntry ns/name`, or `ServiceEntry ns/name endpoints[i]`. */
  readonly origin: string;
}

/** A concrete endpoint of one service port. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly locality: string;
  readonly weight: number;
  readonly origin: string;
  /** `address:port`. */
  readonly key: string;
}

/** A service in the registry. */
export interface Service {
  /** Host name (lower-case; may be a wildcard `*.example.com`). */
  readonly hostname: string;
  /** Namespace of the ServiceEntry that declared it. */
  readonly namespace: string;
  readonly ports: readonly ServicePort[];
  readonly location: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  readonly resolution: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS';
  readonly workloads: readonly Workload[];
  readonly exportTo: readonly string[] | undefined;
  /** `ServiceEntry ns/name`. */
  readonly origin: string;
  readonly resource: Resource<'ServiceEntry'>;
}

function labelsMatch(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true;
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

export { labelsMatch };

function toWorkload(spec: WorkloadEntrySpec, origin: string, fallbackSa = 'default'): Workload {
  return {
    address: spec.address ?? '',
    ports: spec.ports ?? {},
    labels: spec.labels ?? {},
    locality: spec.locality ?? '',
    network: spec.network ?? '',
    weight: spec.weight === undefined || spec.weight === 0 ? 1 : spec.weight,
    serviceAccount: spec.serviceAccount ?? fallbackSa,
    origin,
  };
}

/**
 * The endpoints of `service` for one of its ports. The endpoint port is the workload's port
 * of the same name, else the service port's `targetPort`, else the service port number.
 * For DNS resolution without endpoints the host itself is the endpoint.
 */
export function endpointsFor(service: Service, port: ServicePort): Endpoint[] {
  if (service.resolution === 'NONE' || service.resolution === 'DYNAMIC_DNS') return [];
  // Istio: the host is the endpoint only for a DNS ServiceEntry with neither endpoints nor a workloadSelector.
  const workloads = service.workloads.length === 0 && (service.resolution === 'DNS' || service.resolution === 'DNS_ROUND_ROBIN') && !service.hostname.startsWith('*') && service.resource?.spec.workloadSelector === undefined
    ? [toWorkload({ address: service.hostname }, `${service.origin} (host)`)]
    : service.workloads;
  const out: Endpoint[] = [];
  for (const w of workloads) {
    const p = (port.name !== undefined ? w.ports[port.name] : undefined) ?? port.targetPort ?? port.number;
    out.push({ address: w.address, port: p, labels: w.labels, locality: w.locality, weight: w.weight, origin: w.origin, key: `${w.address}:${p}` });
  }
  return out;
}

/** All services, keyed by host; extra WorkloadEntries (e.g. registered workloads) can be added. */
export class ServiceRegistry {
  /** Services by host, first-declared (oldest) first. */
  readonly byHost: ReadonlyMap<string, readonly Service[]>;
  /** Every service. */
  readonly services: readonly Service[];

  constructor(resources: readonly AnyResource[], extraWorkloads: readonly Resource<'WorkloadEntry'>[] = []) {
    const entries = ofKind(resources, 'WorkloadEntry').concat(extraWorkloads);
    const services: Service[] = [];
    const byHost = new Map<string, Service[]>();
    for (const se of ofKind(resources, 'ServiceEntry').sort(byAge)) {
      const ns = se.metadata.namespace;
      const spec = se.spec;
      let workloads: Workload[];
      if (spec.workloadSelector !== undefined) {
        const sel = spec.workloadSelector.labels ?? {};
        workloads = entries
          .filter((we) => we.metadata.namespace === ns && labelsMatch(sel, we.spec.labels ?? {}))
          .map((we) => toWorkload(we.spec, we.ref));
      } else {
        workloads = (spec.endpoints ?? []).map((ep, i) => toWorkload(ep, `${se.ref} endpoints[${i}]`));
      }
      for (const h of spec.hosts) {
        const svc: Service = {
          hostname: resolveHost(h, ns),
          namespace: ns,
          ports: spec.ports ?? [],
          location: spec.location ?? 'MESH_EXTERNAL',
          resolution: spec.resolution ?? 'NONE',
          workloads,
          exportTo: spec.exportTo,
          origin: se.ref,
          resource: se,
        };
        services.push(svc);
        const list = byHost.get(svc.hostname) ?? [];
        list.push(svc);
        byHost.set(svc.hostname, list);
      }
    }
    this.services = services;
    this.byHost = byHost;
  }

  /** The service for `host` as seen from `clientNamespace` (the oldest visible declaration wins). */
  lookup(hostname: string, clientNamespace?: string): Service | undefined {
    const list = this.byHost.get(hostname);
    if (list === undefined) return undefined;
    if (clientNamespace === undefined) return list[0];
    return list.find((s) => isVisible(s.exportTo, s.namespace, clientNamespace));
  }
}
