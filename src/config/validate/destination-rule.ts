/**
 * Validation of `DestinationRuleSpec`, following Istio's `ValidateDestinationRule`: the host,
 * subsets (DNS-1123 names, unique, valid labels), one TrafficPolicy validator for every
 * level, `exportTo` and the workload selector.
 *
 * @module
 */
import type { LabelSelector } from '../types/common.ts';
import type { DestinationRuleSpec, Subset } from '../types/networking.ts';
import { checkDnsLabel, host, labels, labelSelector } from './common.ts';
import { exportToList } from './shared-networking.ts';
import { fail, list, obj, req, strWith, warn, type Validator } from './schema.ts';
import { trafficPolicy } from './traffic-policy.ts';

const subset = obj<Subset>({
  name: req(strWith(checkDnsLabel)),
  labels,
  trafficPolicy,
});

/** DestinationRule's `workloadSelector` is Istio's `type.v1beta1.WorkloadSelector` (`matchLabels`). */
const drWorkloadSelector: Validator<LabelSelector> = (v, path, ctx) => {
  const sel = labelSelector(v, path, ctx);
  if (sel !== undefined && (sel.matchLabels === undefined || Object.keys(sel.matchLabels).length === 0)) {
    warn(ctx, path, 'has no matchLabels, so it selects every workload in the namespace');
  }
  return sel;
};

/** Validates a DestinationRuleSpec. */
export const destinationRuleSpec: Validator<DestinationRuleSpec> = obj<DestinationRuleSpec>(
  {
    host: req(host),
    trafficPolicy,
    subsets: list(subset),
    exportTo: exportToList({ allowNone: false }),
    workloadSelector: drWorkloadSelector,
  },
  {
    check: (dr, path, ctx, raw) => {
      // Duplicate subset names (Istio: "duplicate subset names"); read from the raw list so indexes match the file.
      if (Array.isArray(raw.subsets)) {
        const seen = new Map<string, number>();
        raw.subsets.forEach((s: unknown, i) => {
          const name = (s as { name?: unknown } | null)?.name;
          if (typeof name !== 'string') return;
          const first = seen.get(name);
          if (first === undefined) seen.set(name, i);
          else fail(ctx, [...path, 'subsets', i, 'name'], `duplicate subset name "${name}" (first defined at subsets[${first}])`);
        });
      }
      // A rule scoped to workloads may only be visible in its own namespace.
      if (dr.workloadSelector !== undefined && dr.exportTo !== undefined && dr.exportTo.length > 0) {
        const own = dr.exportTo.every((e) => e === '.' || e === ctx.namespace);
        if (!own) fail(ctx, [...path, 'exportTo'], 'a DestinationRule with a workloadSelector can only be exported to its own namespace (".")');
      }
    },
  },
);
