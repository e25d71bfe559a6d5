/**
 * Which EnvoyFilters apply to a workload, in istiod's order (`PushContext.EnvoyFilters`).
 *
 * @module
 */
import type { AnyResource, Resource } from '../../config/resource.ts';
import { labelsMatch } from '../../config/workloads.ts';

/** What selects EnvoyFilters for a workload. */
export interface EnvoyFilterWorkload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** The EnvoyFilters that apply to the workload, in istiod's order. */
export function selectEnvoyFilters(resources: readonly AnyResource[], workload: EnvoyFilterWorkload, rootNamespace: string): Resource<'EnvoyFilter'>[] {
  const picked = resources.filter((r): r is Resource<'EnvoyFilter'> & AnyResource => {
    if (r.kind !== 'EnvoyFilter') return false;
    const ns = r.metadata.namespace;
    if (ns !== rootNamespace && ns !== workload.namespace) return false;
    if ((r.spec.targetRefs?.length ?? 0) > 0) return false;
    const sel = r.spec.workloadSelector;
    return sel === undefined || labelsMatch(sel.labels ?? {}, workload.labels);
  });
  return picked.sort((a, b) => {
    const pa = a.spec.priority ?? 0;
    const pb = b.spec.priority ?? 0;
    if (pa !== pb) return pa - pb;
    const na = a.metadata.namespace;
    const nb = b.metadata.namespace;
    if (na !== nb && (na === rootNamespace || nb === rootNamespace)) return na === rootNamespace ? -1 : 1;
    // Go's zero time (no creationTimestamp) is the earliest.
    const ta = a.metadata.creationTimestamp === undefined ? 0 : Date.parse(a.metadata.creationTimestamp);
    const tb = b.metadata.creationTimestamp === undefined ? 0 : Date.parse(b.metadata.creationTimestamp);
    if (ta !== tb) return ta - tb;
    const ka = `${a.metadata.name}.${na}`;
    const kb = `${b.metadata.name}.${nb}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

