/**
 * The service ports that reach a workload's local ports: the Kubernetes Services whose selector
 * and the ServiceEntries whose `workloadSelector` select it (in its namespace), with each port's
 * `targetPort` resolved (a name through the workload's named ports). The server side's policies
 * key on them: local rate limit virtual hosts (`inbound|http|<service port>`) and the inbound
 * connection pool's DestinationRule port.
 *
 * @module
 */
import { resolveHost } from '../config/hosts.ts';
import { convertProtocol } from '../config/protocol.ts';
import { kubeServiceHost } from '../config/registry-kube.ts';
import type { AnyResource } from '../config/resource.ts';
import { labelsMatch } from '../config/workloads.ts';

/** A service port reaching a local port. */
export interface InboundService {
  readonly host: string;
  readonly namespace: string;
  readonly servicePort: number;
  /** The port speaks HTTP/2 or gRPC to the app. */
  readonly h2: boolean;
}

/** The workload as the lookup needs it. */
export interface InboundWorkload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Its named ports, for Services whose `targetPort` is a name. @defaultValue {} */
  readonly ports?: Readonly<Record<string, number>>;
}

/** Protocols that speak HTTP/2 to the app. */
export const H2_PROTOCOLS: ReadonlySet<string> = new Set(['HTTP2', 'GRPC']);

/** The services that select the workload, by the local port they reach, oldest first. */
export function inboundServices(resources: readonly AnyResource[], workload: InboundWorkload): Map<number, InboundService[]> {
  const out = new Map<number, InboundService[]>();
  const add = (local: number | undefined, s: InboundService) => {
    if (local === undefined) return;
    const list = out.get(local) ?? [];
    list.push(s);
    out.set(local, list);
  };
  // istiod's order of a workload's service targets (pilot/pkg/model/context.go SetServiceTargets):
  // oldest creationTimestamp first (none counts as the zero time, first), then by host — a
  // ServiceEntry counts once per host.
  const targets: { readonly r: AnyResource; readonly host: string; readonly at: number }[] = [];
  for (const r of resources) {
    if (r.metadata.namespace !== workload.namespace) continue;
    const at = r.metadata.creationTimestamp === undefined ? 0 : Date.parse(r.metadata.creationTimestamp) || 0;
    if (r.kind === 'Service') {
      const sel = r.spec.selector;
      if (sel === undefined || Object.keys(sel).length === 0 || !labelsMatch(sel, workload.labels)) continue;
      targets.push({ r, host: kubeServiceHost(r.metadata.name, r.metadata.namespace), at });
    } else if (r.kind === 'ServiceEntry') {
      const sel = r.spec.workloadSelector?.labels;
      if (sel === undefined || !labelsMatch(sel, workload.labels)) continue;
      for (const h of r.spec.hosts) targets.push({ r, host: resolveHost(h, r.metadata.namespace), at });
    }
  }
  targets.sort((a, b) => a.at - b.at || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  for (const { r, host } of targets) {
    if (r.kind === 'Service') {
      for (const p of r.spec.ports ?? []) {
        const t = p.targetPort;
        const h2 = H2_PROTOCOLS.has(convertProtocol(p.port, p.name, p.protocol, p.appProtocol));
        add(t === undefined ? p.port : typeof t === 'number' ? t : /^\d+$/.test(t) ? Number(t) : workload.ports?.[t], { host, namespace: r.metadata.namespace, servicePort: p.port, h2 });
      }
    } else if (r.kind === 'ServiceEntry') {
      for (const p of r.spec.ports ?? []) {
        const h2 = H2_PROTOCOLS.has(convertProtocol(p.number, p.name, undefined, p.protocol?.toLowerCase()));
        add(p.targetPort ?? p.number, { host, namespace: r.metadata.namespace, servicePort: p.number, h2 });
      }
    }
  }
  return out;
}
