/**
 * Which WorkloadEntries (configured or registered) a workload may see: the endpoints of the
 * services visible to its namespace. A WorkloadEntry is only ever used as the endpoint of a
 * Kubernetes Service (`selector`) or a ServiceEntry (`workloadSelector`) of its own namespace, so
 * a workload is sent the entries that such a service visible to it selects, as istiod sends a
 * proxy the endpoints of the clusters it has, and no others. The matching is the registry's own
 * (config/registry.ts): the entry's labels with Istio's topology labels added; a Service selects
 * only entries with an IP address and labels.
 *
 * @module
 */
import { isIP } from 'node:net';
import { EXPORT_TO_ANNOTATION, isVisible, parseExportTo } from '../config/hosts.ts';
import type { AnyResource, Resource } from '../config/resource.ts';
import type { WorkloadEntrySpec } from '../config/types/networking.ts';
import { labelsMatch, toWorkload } from '../config/workloads.ts';

/** Whether a Service (its `networking.istio.io/exportTo` annotation) or ServiceEntry (`exportTo`) is visible to `clientNamespace`. */
export function isVisibleService(r: AnyResource, clientNamespace: string): boolean {
  const ns = r.metadata.namespace;
  if (r.kind === 'Service') return isVisible(parseExportTo(r.metadata.annotations?.[EXPORT_TO_ANNOTATION]), ns, clientNamespace);
  return isVisible((r.spec as { exportTo?: string[] }).exportTo, ns, clientNamespace);
}

/** One selecting service: its namespace and selector. */
interface Selector {
  readonly kind: 'Service' | 'ServiceEntry';
  readonly labels: Readonly<Record<string, string>>;
}

/** An entry as stored or sent: namespace and spec are what selection looks at. */
export interface EntryLike {
  readonly metadata: { readonly namespace?: string };
  readonly spec: unknown;
}

/** The selectors of the services visible to one namespace, by the namespace of the service. */
export class VisibleSelection {
  readonly #byNamespace = new Map<string, Selector[]>();
  /** A canonical text of every selector: two selections with the same key select the same entries. */
  readonly key: string;

  constructor(resources: readonly AnyResource[], clientNamespace: string) {
    const parts: string[] = [];
    for (const r of resources) {
      let sel: Selector | undefined;
      if (r.kind === 'Service') {
        const svc = r as Resource<'Service'>;
        const selector = svc.spec.selector;
        if (svc.spec.type === 'ExternalName' || selector === undefined || Object.keys(selector).length === 0) continue;
        sel = { kind: 'Service', labels: selector };
      } else if (r.kind === 'ServiceEntry') {
        const ws = (r as Resource<'ServiceEntry'>).spec.workloadSelector;
        if (ws === undefined) continue;
        sel = { kind: 'ServiceEntry', labels: ws.labels ?? {} };
      } else continue;
      if (!isVisibleService(r, clientNamespace)) continue;
      const ns = r.metadata.namespace;
      const list = this.#byNamespace.get(ns) ?? [];
      list.push(sel);
      this.#byNamespace.set(ns, list);
      parts.push(JSON.stringify([ns, sel.kind, Object.entries(sel.labels).sort()]));
    }
    this.key = parts.sort().join('\n');
  }

  /** Whether a service visible to the namespace selects `entry`. */
  selects(entry: EntryLike): boolean {
    const list = this.#byNamespace.get(entry.metadata.namespace ?? 'default');
    if (list === undefined) return false;
    const spec = (entry.spec ?? {}) as WorkloadEntrySpec;
    const own = spec.labels ?? {};
    const labels = toWorkload(spec, '', '').labels;
    for (const s of list) {
      if (s.kind === 'Service' && (isIP(spec.address ?? '') === 0 || Object.keys(own).length === 0)) continue;
      if (labelsMatch(s.labels, labels)) return true;
    }
    return false;
  }
}
