/**
 * Which Telemetry resources apply to a workload, in the order istiod applies them
 * (`pilot/pkg/model/telemetry.go` `applicableTelemetries`): the root namespace's selector-less
 * one, then the workload namespace's selector-less one, then every Telemetry of the workload's
 * namespace whose `selector.matchLabels` the workload's labels include, oldest first. Later
 * entries override earlier ones; how each section (tracing, metrics, access logging) merges is
 * its own module's business.
 *
 * Only the first selector-less Telemetry of a namespace counts (istiod takes the oldest); the
 * others are reported. `targetRef(s)` Telemetries apply to gateways and waypoints, not to a
 * workload, and are reported as ignored.
 *
 * @module
 */
import { byAge, type AnyResource, type Resource } from '../config/resource.ts';
import type { TelemetrySpec } from '../config/types/telemetry.ts';

/** The workload a selection is for. */
export interface TelemetryWorkload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** One Telemetry that applies, with where it applies from. */
export interface AppliedTelemetry {
  /** `namespace/name`. */
  readonly ref: string;
  /** `root`: mesh-wide; `namespace`: the workload's namespace; `workload`: a selector that matched. */
  readonly level: 'root' | 'namespace' | 'workload';
  readonly spec: TelemetrySpec;
}

/** What a selection found worth saying (ignored resources). */
export interface TelemetrySelectionFinding {
  readonly level: 'info' | 'warning';
  /** `namespace/name`. */
  readonly resource: string;
  readonly message: string;
}

/** The Telemetries that apply to `workload`, least specific first, and what was ignored. */
export interface TelemetrySelection {
  readonly applied: readonly AppliedTelemetry[];
  readonly findings: readonly TelemetrySelectionFinding[];
}

function refOf(r: Resource<'Telemetry'>): string {
  return `${r.metadata.namespace}/${r.metadata.name}`;
}

function hasTargetRefs(spec: TelemetrySpec): boolean {
  return spec.targetRef !== undefined || (spec.targetRefs?.length ?? 0) > 0;
}

function isNamespaceWide(spec: TelemetrySpec): boolean {
  return Object.keys(spec.selector?.matchLabels ?? {}).length === 0 && !hasTargetRefs(spec);
}

function selects(matchLabels: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k of Object.keys(matchLabels)) {
    if (!Object.hasOwn(labels, k) || labels[k] !== matchLabels[k]) return false;
  }
  return true;
}

/**
 * The Telemetry resources that apply to `workload` (see the module comment for the order).
 * @param rootNamespace MeshConfig `rootNamespace` (`istio-system` by default).
 */
export function selectTelemetry(resources: readonly (AnyResource | Resource)[], workload: TelemetryWorkload, rootNamespace: string): TelemetrySelection {
  const all = resources.filter((r): r is Resource<'Telemetry'> => r.kind === 'Telemetry').sort(byAge);
  const applied: AppliedTelemetry[] = [];
  const findings: TelemetrySelectionFinding[] = [];
  const namespaces = workload.namespace === rootNamespace ? [rootNamespace] : [rootNamespace, workload.namespace];
  for (const ns of namespaces) {
    let wide: Resource<'Telemetry'> | undefined;
    for (const r of all) {
      if (r.metadata.namespace !== ns || !isNamespaceWide(r.spec)) continue;
      if (wide === undefined) wide = r;
      else findings.push({ level: 'warning', resource: refOf(r), message: `more than one Telemetry without a selector in namespace ${ns}: only the oldest, ${refOf(wide)}, applies (as in Istio)` });
    }
    if (wide !== undefined) applied.push({ ref: refOf(wide), level: ns === rootNamespace && ns !== workload.namespace ? 'root' : 'namespace', spec: wide.spec });
  }
  for (const r of all) {
    if (r.metadata.namespace !== workload.namespace) continue;
    if (hasTargetRefs(r.spec)) {
      findings.push({ level: 'info', resource: refOf(r), message: 'targetRef/targetRefs Telemetries apply to gateways and waypoints, not to a sidecar workload; ignored (Istio ignores it too)' });
      continue;
    }
    const labels = r.spec.selector?.matchLabels;
    if (labels === undefined || Object.keys(labels).length === 0) continue;
    if (selects(labels, workload.labels)) applied.push({ ref: refOf(r), level: 'workload', spec: r.spec });
  }
  return { applied, findings };
}
