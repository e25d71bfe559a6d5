/**
 * Kubernetes Services in the registry, as Istio's Kubernetes registry converts them
 * (`pilot/pkg/serviceregistry/kube/conversion.go` `ConvertService`, and the controller's
 * handling of WorkloadEntries selected by a Service):
 *
 * - host `<name>.<namespace>.svc.cluster.local`, location MESH_INTERNAL, visibility from the
 *   `networking.istio.io/exportTo` annotation;
 * - each port's protocol from `appProtocol`, else the port name (see `protocol.ts`); a port
 *   without one is auto-detected by Istio and routed as HTTP by meshlet;
 * - the `selector` picks WorkloadEntries (and registered workloads) of the same namespace that
 *   have an IP address and labels (a Service without a selector selects nothing; Istio would
 *   read its hand-made Endpoints, which meshlet skips);
 * - the endpoint port is the workload's port named by a named `targetPort` (a workload without
 *   it is not an endpoint), else the workload's port of the service port's name, else the
 *   numeric `targetPort` (Kubernetes defaults it to `port`);
 * - `clusterIP: None` (headless): no load balancing — a call goes to the address it names
 *   (Istio's PASSTHROUGH resolution), and any subdomain of the Service's names (`web-0.web`)
 *   reaches it;
 * - `type: ExternalName`: an alias. When the `externalName` host is in the registry (a
 *   ServiceEntry or another Service), the alias's names reach that service, as Istio does.
 *   Otherwise, if the Service has ports, it becomes a DNS service (MESH_EXTERNAL) whose endpoint
 *   is the `externalName` host, which is what Kubernetes DNS (a CNAME) gives a pod and what
 *   Istio did before aliases; without ports it is left out (calls pass through).
 *
 * @module
 */
import { isIP } from 'node:net';
import { DEFAULT_DOMAIN, EXPORT_TO_ANNOTATION, parseExportTo } from './hosts.ts';
import { AUTO_PROTOCOL, convertProtocol } from './protocol.ts';
import type { Resource } from './resource.ts';
import type { ServicePort } from './types/networking.ts';
import { labelsMatch, type Workload } from './workloads.ts';

/** The host of a Kubernetes Service: `<name>.<namespace>.svc.cluster.local`. */
export function kubeServiceHost(name: string, namespace: string, domain = DEFAULT_DOMAIN): string {
  return `${name}.${namespace}.svc.${domain}`;
}

/** What the registry needs of a Kubernetes Service. */
export interface KubeServiceParts {
  readonly hostname: string;
  readonly ports: readonly ServicePort[];
  /** Service port number → workload port name, for ports whose `targetPort` is a name. */
  readonly targetPortNames: ReadonlyMap<number, string>;
  readonly exportTo: readonly string[] | undefined;
  readonly headless: boolean;
  /** For `type: ExternalName`: the host it stands for (lower-case, no trailing dot). */
  readonly externalName: string | undefined;
}

/** Converts the parts of a Service that do not depend on other resources. */
export function kubeServiceParts(svc: Resource<'Service'>): KubeServiceParts {
  const spec = svc.spec;
  const ports: ServicePort[] = [];
  const targetPortNames = new Map<number, string>();
  for (const p of spec.ports ?? []) {
    const name = p.name === undefined || p.name === '' ? undefined : p.name;
    const protocol = convertProtocol(p.port, name, p.protocol, p.appProtocol);
    const port: { number: number; name?: string; protocol?: string; targetPort?: number } = { number: p.port };
    if (name !== undefined) port.name = name;
    if (protocol !== AUTO_PROTOCOL) port.protocol = protocol;
    if (typeof p.targetPort === 'number' && p.targetPort > 0) port.targetPort = p.targetPort;
    else if (typeof p.targetPort === 'string' && p.targetPort !== '') targetPortNames.set(p.port, p.targetPort);
    ports.push(port);
  }
  const external = spec.type === 'ExternalName' && spec.externalName !== undefined && spec.externalName !== '' ? spec.externalName.toLowerCase().replace(/\.$/, '') : undefined;
  return {
    hostname: kubeServiceHost(svc.metadata.name, svc.metadata.namespace),
    ports,
    targetPortNames,
    exportTo: parseExportTo(svc.metadata.annotations?.[EXPORT_TO_ANNOTATION]),
    headless: spec.clusterIP === 'None',
    externalName: external,
  };
}

/** A WorkloadEntry with its registry workload, computed once per registry. */
export interface WorkloadCandidate {
  readonly entry: Resource<'WorkloadEntry'>;
  readonly workload: Workload;
}

/**
 * The workloads a Service's selector picks among the candidates of its namespace: an IP address
 * (Istio does not give Kubernetes Services WorkloadEntries with host names or unix sockets),
 * labels, and labels that match a non-empty selector.
 */
export function selectedWorkloads(svc: Resource<'Service'>, sameNamespace: readonly WorkloadCandidate[]): Workload[] {
  const selector = svc.spec.selector;
  if (selector === undefined || Object.keys(selector).length === 0) return [];
  const out: Workload[] = [];
  for (const { entry, workload } of sameNamespace) {
    if (isIP(entry.spec.address ?? '') === 0) continue;
    if (Object.keys(entry.spec.labels ?? {}).length === 0) continue;
    if (labelsMatch(selector, workload.labels)) out.push(workload);
  }
  return out;
}

/**
 * Resolves ExternalName aliases as Istio's `resolveServiceAliases` does: an alias of an alias
 * is followed to the last host; a loop resolves to nothing (Kubernetes DNS answers NXDOMAIN).
 * Returns alias host → final host.
 */
export function resolveAliases(rawAliases: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [alias, first] of rawAliases) {
    let target = first;
    const seen = new Set([alias, target]);
    let loop = false;
    for (let next = rawAliases.get(target); next !== undefined; next = rawAliases.get(target)) {
      if (seen.has(next)) {
        loop = true;
        break;
      }
      seen.add(next);
      target = next;
    }
    if (!loop) out.set(alias, target);
  }
  return out;
}
