/**
 * Workload instances as the registry keeps them: a WorkloadEntry (standalone, a ServiceEntry
 * endpoint, or a registered workload) with Istio's derived locality and topology labels.
 *
 * @module
 */
import { augmentLabels, workloadLocality } from './topology.ts';
import type { WorkloadEntrySpec } from './types/networking.ts';

/** A workload instance behind a service (from `endpoints` or a selected WorkloadEntry). */
export interface Workload {
  /** IP, DNS name or `unix://` path; for resolution NONE it is absent. */
  readonly address: string;
  /** Port name → port on the workload. */
  readonly ports: Readonly<Record<string, number>>;
  /**
   * The workload's labels plus the topology labels Istio adds (`topology.kubernetes.io/region`,
   * `…/zone`, `topology.istio.io/subzone`, `…/cluster`, `…/network`); subsets match on these.
   */
  readonly labels: Readonly<Record<string, string>>;
  /** `region/zone/subzone`, or ''. */
  readonly locality: string;
  readonly network: string;
  /** Load-balancing weight. @defaultValue 1 */
  readonly weight: number;
  readonly serviceAccount: string;
  /**
   * Istio's workload name of the instance (`destination_workload` of the calls that reach it
   * when the answer carries no peer metadata), as istiod's `labels.WorkloadNameFromWorkloadEntry`
   * names it: the WorkloadGroup of an auto-registered entry, else the
   * `service.istio.io/workload-name` label, else the entry's name; '' for a host name standing for
   * itself (an ExternalName target).
   */
  readonly name: string;
  /** `WorkloadEntry ns/name`, or `ServiceEntry ns/name endpoints[i]`. */
  readonly origin: string;
}

/** `service.istio.io/workload-name`: a WorkloadEntry's workload name, when set. */
const WORKLOAD_NAME_LABEL = 'service.istio.io/workload-name';
/** `istio.io/autoRegistrationGroup`: the WorkloadGroup a WorkloadEntry was registered through. */
const AUTO_REGISTRATION_GROUP = 'istio.io/autoRegistrationGroup';

/**
 * The workload name of a WorkloadEntry, as istiod names its endpoint (`labels.WorkloadNameFromWorkloadEntry`,
 * "which will appear in metric label"): the WorkloadGroup of an auto-registered entry (annotation
 * `istio.io/autoRegistrationGroup`), else the `service.istio.io/workload-name` label, else the
 * entry's name — for a ServiceEntry's inline endpoint `<serviceentry>-<index>`.
 */
export function workloadEntryName(name: string, labels: Readonly<Record<string, string>> | undefined, annotations?: Readonly<Record<string, string>>): string {
  if (annotations !== undefined && Object.hasOwn(annotations, AUTO_REGISTRATION_GROUP)) return annotations[AUTO_REGISTRATION_GROUP] as string;
  if (labels !== undefined && Object.hasOwn(labels, WORKLOAD_NAME_LABEL)) return labels[WORKLOAD_NAME_LABEL] as string;
  return name;
}

/** Whether every key of `selector` has the same value in `labels` (an absent selector selects everything). */
export function labelsMatch(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true;
  for (const k in selector) if (!Object.hasOwn(labels, k) || labels[k] !== selector[k]) return false;
  return true;
}

/** The workload of a WorkloadEntry spec named `name` (its workload name): defaults filled in, locality and topology labels derived as Istio does. */
export function toWorkload(spec: WorkloadEntrySpec, origin: string, name: string, fallbackSa = 'default'): Workload {
  const own = spec.labels ?? {};
  const locality = workloadLocality(spec.locality, own);
  const network = spec.network ?? '';
  return {
    address: spec.address ?? '',
    ports: spec.ports ?? {},
    labels: augmentLabels(own, locality, network),
    locality,
    network,
    weight: spec.weight === undefined || spec.weight === 0 ? 1 : spec.weight,
    serviceAccount: spec.serviceAccount ?? fallbackSa,
    name,
    origin,
  };
}

/** A workload's port of this name, if it has one (own keys only: names come from config). */
export function workloadPort(w: Workload, name: string | undefined): number | undefined {
  return name !== undefined && Object.hasOwn(w.ports, name) ? w.ports[name] : undefined;
}
