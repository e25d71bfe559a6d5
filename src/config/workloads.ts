/**
 * Workload instances as the registry keeps them: a WorkloadEntry (standalone, a ServiceEntry
 * endpoint, or a registered workload) with Istio's derived locality and topology labels.
 *
 * @module
 */
import type { LoadBalancerIngress, ResourceStatus } from './resource.ts';
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

/** `proxy.istio.io/health-checks-enabled`: the WorkloadEntry's health comes from its `Healthy` status condition. */
export const HEALTH_CHECKS_ANNOTATION = 'proxy.istio.io/health-checks-enabled';

/** Go's `strconv.ParseBool` true values (istiod's `parseHealthAnnotation`; anything else is false). */
const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);

/** Whether a WorkloadEntry's health is checked (`proxy.istio.io/health-checks-enabled` parses as true). */
export function healthChecked(annotations: Readonly<Record<string, string>> | undefined): boolean {
  return annotations !== undefined && Object.hasOwn(annotations, HEALTH_CHECKS_ANNOTATION) && GO_TRUE.has(annotations[HEALTH_CHECKS_ANNOTATION] as string);
}

/**
 * istiod's `isHealthy` for a WorkloadEntry: one without health checks is healthy; one with them
 * is healthy only when its first `Healthy` condition is `True` — none, or one neither `True` nor
 * `False`, counts as unhealthy ("treated as unhealthy until we prove they are healthy by probe success").
 * An unhealthy entry is no endpoint of any service (`PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS`, on by default).
 */
export function workloadEntryHealthy(annotations: Readonly<Record<string, string>> | undefined, status: ResourceStatus | undefined): boolean {
  if (!healthChecked(annotations)) return true;
  return status?.conditions.find((c) => c.type === 'Healthy')?.status === 'True';
}

/** The conditions of a raw `status` (entries without a string `type` are skipped; a non-string `status` reads as ''). */
export function readStatus(raw: unknown): ResourceStatus | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const list = (raw as { conditions?: unknown }).conditions;
  if (!Array.isArray(list)) return undefined;
  const conditions: { type: string; status: string }[] = [];
  for (const c of list) {
    if (typeof c !== 'object' || c === null) continue;
    const { type, status } = c as { type?: unknown; status?: unknown };
    if (typeof type === 'string') conditions.push({ type, status: typeof status === 'string' ? status : '' });
  }
  return { conditions };
}

/**
 * The status meshlet keeps for a resource of `kind`: a WorkloadEntry's conditions, a Service's
 * `loadBalancer.ingress` addresses when it has any (an east-west gateway's: istiod reads them as
 * the Service's external addresses), nothing for other kinds — so a Service without ingress
 * addresses keeps no status, and its content version is what it was.
 */
export function keptStatus(kind: unknown, raw: unknown): ResourceStatus | undefined {
  if (kind === 'WorkloadEntry') return readStatus(raw);
  if (kind !== 'Service' || typeof raw !== 'object' || raw === null) return undefined;
  const lb = (raw as { loadBalancer?: unknown }).loadBalancer;
  const list = typeof lb === 'object' && lb !== null ? (lb as { ingress?: unknown }).ingress : undefined;
  if (!Array.isArray(list)) return undefined;
  const ingress: LoadBalancerIngress[] = [];
  for (const e of list) {
    if (typeof e !== 'object' || e === null) continue;
    const { ip, hostname } = e as { ip?: unknown; hostname?: unknown };
    const kept = { ...(typeof ip === 'string' && ip !== '' ? { ip } : {}), ...(typeof hostname === 'string' && hostname !== '' ? { hostname } : {}) };
    if (kept.ip !== undefined || kept.hostname !== undefined) ingress.push(kept);
  }
  return ingress.length === 0 ? undefined : { conditions: [], loadBalancer: { ingress } };
}
