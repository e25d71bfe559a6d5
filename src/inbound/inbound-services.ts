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
import { type AnyResource, byAge } from '../config/resource.ts';
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
  const selecting = resources.filter((r) => r.metadata.namespace === workload.namespace && (r.kind === 'Service' || r.kind === 'ServiceEntry')).sort(byAge);
  for (const r of selecting) {
    if (r.kind === 'Service') {
      const sel = r.spec.selector;
      if (sel === undefined || Object.keys(sel).length === 0 || !labelsMatch(sel, workload.labels)) continue;
      const host = kubeServiceHost(r.metadata.name, r.metadata.namespace);
      for (const p of r.spec.ports ?? []) {
        const t = p.targetPort;
        const h2 = H2_PROTOCOLS.has(convertProtocol(p.port, p.name, p.protocol, p.appProtocol));
        add(t === undefined ? p.port : typeof t === 'number' ? t : /^\d+$/.test(t) ? Number(t) : workload.ports?.[t], { host, namespace: r.metadata.namespace, servicePort: p.port, h2 });
      }
    } else if (r.kind === 'ServiceEntry') {
      const sel = r.spec.workloadSelector?.labels;
      if (sel === undefined || !labelsMatch(sel, workload.labels)) continue;
      const host = resolveHost(r.spec.hosts[0] ?? '', r.metadata.namespace);
      for (const p of r.spec.ports ?? []) {
        const h2 = H2_PROTOCOLS.has(convertProtocol(p.number, p.name, undefined, p.protocol?.toLowerCase()));
        add(p.targetPort ?? p.number, { host, namespace: r.metadata.namespace, servicePort: p.number, h2 });
      }
    }
  }
  return out;
}
