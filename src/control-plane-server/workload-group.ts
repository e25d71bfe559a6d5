/**
 * WorkloadGroup auto-registration, as istiod's (`pilot/pkg/autoregistration`
 * `workloadEntryFromGroup`): a registering workload gets a WorkloadEntry made from the
 * template of the WorkloadGroup it names (or, by default, the group named like its service):
 *
 * - labels: the template's, then the group's `metadata.labels`, then the workload's own;
 * - ports: the template's, then the workload's own (meshlet workloads name their ports);
 * - address: the workload's (never the template's);
 * - network, locality and weight: the workload's when it gives them, else the template's;
 * - serviceAccount: the template's;
 * - metadata: the labels above, and the annotations `istio.io/autoRegistrationGroup: <group>`
 *   plus the group's `metadata.annotations`, and `proxy.istio.io/health-checks-enabled: "true"`
 *   when the group has a `probe` and the workload said it runs it (`healthChecks: true` in its
 *   request) and reports its health, see {@link healthCondition}.
 *
 * @module
 */
import type { Resource } from '../config/resource.ts';
import type { WireResource } from '../control-plane/protocol.ts';
import type { WorkloadEntrySpec } from '../config/types/networking.ts';
import { HEALTH_CHECKS_ANNOTATION } from '../config/workloads.ts';

/** Istio's annotation naming the group an auto-registered WorkloadEntry came from. */
export const AUTO_REGISTRATION_GROUP_ANNOTATION = 'istio.io/autoRegistrationGroup';

/** What the registering workload says about itself. */
export interface RegisteringWorkload {
  readonly address: string;
  readonly ports: Readonly<Record<string, number>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly locality?: string;
  readonly network?: string;
  readonly weight?: number;
}

/** The WorkloadGroup `name` in `namespace`, if the config has it. */
export function findGroup(resources: readonly { kind: string }[], namespace: string, name: string): Resource<'WorkloadGroup'> | undefined {
  for (const r of resources) {
    const g = r as Resource<'WorkloadGroup'>;
    if (g.kind === 'WorkloadGroup' && g.metadata.namespace === namespace && g.metadata.name === name) return g;
  }
  return undefined;
}

/** Merges maps left to right, later ones winning (Istio's `mergeLabels`). */
function merge<V>(...maps: (Readonly<Record<string, V>> | undefined)[]): Record<string, V> {
  const out: Record<string, V> = {};
  for (const m of maps) {
    if (m === undefined) continue;
    for (const k of Object.keys(m)) Object.defineProperty(out, k, { value: m[k], enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The spec, labels and annotations of the WorkloadEntry a workload registering through `group` gets. */
export function entryFromGroup(group: Resource<'WorkloadGroup'>, w: RegisteringWorkload, runsProbe: boolean): { spec: WorkloadEntrySpec; labels: Record<string, string>; annotations: Record<string, string> } {
  const t = group.spec.template;
  const labels = merge(t.labels, group.spec.metadata?.labels, w.labels);
  const spec: WorkloadEntrySpec = { address: w.address, ports: merge(t.ports, w.ports), labels };
  const network = w.network ?? t.network;
  const locality = w.locality ?? t.locality;
  const weight = w.weight ?? t.weight;
  if (network !== undefined && network !== '') spec.network = network;
  if (locality !== undefined && locality !== '') spec.locality = locality;
  if (weight !== undefined) spec.weight = weight;
  if (t.serviceAccount !== undefined && t.serviceAccount !== '') spec.serviceAccount = t.serviceAccount;
  const annotations = merge({ [AUTO_REGISTRATION_GROUP_ANNOTATION]: group.metadata.name }, group.spec.metadata?.annotations);
  // istiod marks the entry health-checked only when the registering proxy's own config has a
  // readiness probe (pilot/pkg/autoregistration/controller.go workloadEntryFromGroup,
  // `proxy.Metadata.ProxyConfig.ReadinessProbe != nil`): a health-checked entry is no endpoint
  // until the probe reports it healthy, so a client that never reports must not get one.
  if (group.spec.probe !== undefined && runsProbe) annotations[HEALTH_CHECKS_ANNOTATION] = 'true';
  return { spec, labels, annotations };
}

/** A `Healthy` status condition as istiod writes it. */
export interface HealthCondition {
  readonly type: 'Healthy';
  readonly status: 'True' | 'False';
  readonly lastProbeTime: string;
  readonly lastTransitionTime: string;
  readonly message?: string;
}

/**
 * The condition istiod writes for a health event (`autoregistration/internal/health`
 * `transformHealthEvent`): type `Healthy`, status `True` or `False` with the probe's error as
 * `message`, and both times now (the agent reports transitions only).
 */
export function healthCondition(healthy: boolean, message: string | undefined, now: Date): HealthCondition {
  const at = now.toISOString();
  return { type: 'Healthy', status: healthy ? 'True' : 'False', lastProbeTime: at, lastTransitionTime: at, ...(healthy || message === undefined || message === '' ? {} : { message }) };
}

/** The entry with `condition` replacing its condition of the same type, or added last (istio `updateCondition`). */
export function withCondition(entry: WireResource, condition: HealthCondition): WireResource {
  const old = (entry.status as { conditions?: unknown } | undefined)?.conditions;
  const conditions = Array.isArray(old) ? [...(old as { type?: unknown }[])] : [];
  const i = conditions.findIndex((c) => c?.type === condition.type);
  if (i >= 0) conditions[i] = condition;
  else conditions.push(condition);
  return { ...entry, status: { ...(entry.status as object | undefined), conditions } };
}
