/**
 * Sidecar selectors, as Istio's `sidecar.SelectorAnalyzer` checks them, per namespace:
 *
 * - `IST0111` (error): more than one Sidecar without a workload selector (or with one without
 *   labels) in a namespace: which one applies to its workloads is undefined;
 * - `IST0110` (error): a workload selected by more than one Sidecar of its namespace.
 *
 * Istio matches selectors against Pods. meshlet's workloads in config are WorkloadEntries, so
 * `IST0110` is reported for a WorkloadEntry that two Sidecars select. Not reported:
 *
 * - `IST0101`, a selector that matches no Pod: the workloads a Sidecar selects are mostly the
 *   meshlet processes themselves (`createMesh({ labels })`), which are not in config and need not
 *   register anywhere (a pure client never does), so analysis cannot know that none exists. A
 *   finding there would be wrong in the common case (a namespace whose services are
 *   WorkloadEntries, with a Sidecar for the app that calls them), and an error-level finding
 *   refuses config with `analysis: 'blocking'`;
 * - `IST0167`, a Sidecar for an ambient namespace or Pod: meshlet runs in the process and has no
 *   ambient mode (it reads neither Namespaces nor Pods).
 *
 * @module
 */
import { ofKind, type Resource } from '../resource.ts';
import { labelsMatch } from '../workloads.ts';
import type { Analyzer } from './context.ts';

/** `ns/a, ns/b` for the findings' messages. */
function names(sidecars: readonly Resource<'Sidecar'>[]): string {
  return sidecars.map((s) => `${s.metadata.namespace}/${s.metadata.name}`).join(', ');
}

/** The selector's labels, or undefined for a namespace-wide Sidecar (no selector, or no labels). */
function selectorOf(s: Resource<'Sidecar'>): Readonly<Record<string, string>> | undefined {
  const labels = s.spec.workloadSelector?.labels;
  return labels === undefined || Object.keys(labels).length === 0 ? undefined : labels;
}

/** `IST0110` and `IST0111` (see the module). */
export const sidecarSelectorAnalyzer: Analyzer = {
  name: 'sidecar.selectors',
  codes: ['IST0110', 'IST0111'],
  description: 'one namespace-wide Sidecar per namespace, and no workload selected by two Sidecars',
  *analyze(ctx, issues) {
    const sidecars = ofKind(ctx.resources, 'Sidecar');
    if (sidecars.length === 0) return;
    const namespaceWide = new Map<string, Resource<'Sidecar'>[]>();
    const selecting = new Map<string, Resource<'Sidecar'>[]>();
    for (const s of sidecars) {
      const byNs = selectorOf(s) === undefined ? namespaceWide : selecting;
      const list = byNs.get(s.metadata.namespace) ?? [];
      list.push(s);
      byNs.set(s.metadata.namespace, list);
    }
    for (const [ns, list] of namespaceWide) {
      if (list.length < 2) continue;
      for (const s of list) {
        issues.at(
          s,
          s.spec.workloadSelector === undefined ? ['spec'] : ['spec', 'workloadSelector'],
          'error',
          `the Sidecars ${names(list)} have no workload selector: more than one in namespace ${ns} leaves undefined which applies to its workloads; give all but one a workloadSelector`,
          'IST0111',
        );
      }
    }
    // Each Sidecar is reported once, naming every workload it shares (Istio reports one message per Pod).
    const shared = new Map<Resource<'Sidecar'>, { with: Set<Resource<'Sidecar'>>; workloads: string[] }>();
    for (const we of ofKind(ctx.resources, 'WorkloadEntry')) {
      yield;
      const list = selecting.get(we.metadata.namespace);
      if (list === undefined || list.length < 2) continue;
      const labels = we.spec.labels ?? {};
      const matching = list.filter((s) => labelsMatch(selectorOf(s), labels));
      if (matching.length < 2) continue;
      for (const s of matching) {
        const entry = shared.get(s) ?? { with: new Set(), workloads: [] };
        for (const o of matching) if (o !== s) entry.with.add(o);
        entry.workloads.push(we.metadata.name);
        shared.set(s, entry);
      }
    }
    for (const s of sidecars) {
      const entry = shared.get(s);
      if (entry === undefined) continue;
      const others = names([...entry.with]);
      issues.at(
        s,
        ['spec', 'workloadSelector', 'labels'],
        'error',
        `selects the same workloads as ${others} (WorkloadEntry ${entry.workloads.map((w) => `${s.metadata.namespace}/${w}`).join(', ')}): which Sidecar applies to them is undefined; make the selectors disjoint`,
        'IST0110',
      );
    }
  },
};
