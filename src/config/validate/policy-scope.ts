/**
 * The scope fields shared by PeerAuthentication, RequestAuthentication, AuthorizationPolicy
 * and Telemetry: `selector` (`matchLabels`) and the Gateway-API style `targetRef` /
 * `targetRefs`, which meshlet accepts with a warning (they address gateways and waypoints,
 * which meshlet is not).
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { LabelSelector, PolicyTargetReference } from '../types/common.ts';
import { labelSelector, targetRef } from './common.ts';
import { fail, list, unsupported, warn, type Ctx, type FieldSpec, type Validator } from './schema.ts';

/** Why `targetRef` / `targetRefs` are not supported. */
export const TARGET_REF_WHY = 'meshlet runs inside workloads; use selector';

/** What a policy may target, as Istio's `allowedTargetRefs`: `group/Kind` (the core group is ""). */
const ALLOWED_TARGETS = ['/Service', 'networking.istio.io/ServiceEntry', 'gateway.networking.k8s.io/Gateway', 'gateway.networking.k8s.io/GatewayClass'];

/** A policy target reference, checked as Istio's `validatePolicyTargetReference`. */
const policyTargetRef: Validator<PolicyTargetReference> = (v, path, ctx) => {
  const ref = targetRef(v, path, ctx);
  if (ref === undefined) return undefined;
  if (ref.namespace !== undefined && ref.namespace !== '') {
    fail(ctx, [...path, 'namespace'], 'must not be set: cross-namespace references are not supported (Istio)');
  }
  const group = ref.group === undefined || ref.group === 'core' ? '' : ref.group;
  if (!ALLOWED_TARGETS.includes(`${group}/${ref.kind}`)) {
    fail(ctx, path, `targetRef must be to one of ${ALLOWED_TARGETS.map((t) => (t.startsWith('/') ? `core${t}` : t)).join(', ')}; got ${group === '' ? 'core' : group}/${ref.kind}`);
  }
  return ref;
};

/** Field declarations for `selector`, `targetRef` and `targetRefs`, to spread into an `obj` schema. */
export const scopeFields: {
  readonly selector: Validator<LabelSelector>;
  readonly targetRef: FieldSpec<PolicyTargetReference>;
  readonly targetRefs: FieldSpec<PolicyTargetReference[]>;
} = {
  selector: labelSelector,
  targetRef: unsupported(policyTargetRef, TARGET_REF_WHY),
  targetRefs: unsupported(list(policyTargetRef), TARGET_REF_WHY),
};

/** True when a raw field holds something (not absent, not null). */
export function isSet(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/** True when a raw field holds a non-empty list, or a non-list value (already reported as a type error). */
export function hasItems(v: unknown): boolean {
  return isSet(v) && !(Array.isArray(v) && v.length === 0);
}

/** True when the raw selector has at least one label. */
export function selectorHasLabels(raw: Record<string, unknown>): boolean {
  const sel = raw.selector;
  if (typeof sel !== 'object' || sel === null) return false;
  const labels = (sel as Record<string, unknown>).matchLabels;
  return typeof labels === 'object' && labels !== null && Object.keys(labels).length > 0;
}

/**
 * Cross-field scope rules, as Istio's `validateOneOfSelectorType` and
 * `validateWorkloadSelector`: at most one of `selector`, `targetRef`, `targetRefs`
 * (an empty `targetRefs` counts as unset); a selector without labels is a warning,
 * because it selects every workload in the namespace.
 */
export function checkScope(raw: Record<string, unknown>, path: FieldPath, ctx: Ctx): void {
  const set: string[] = [];
  if (isSet(raw.selector)) set.push('selector');
  if (isSet(raw.targetRef)) set.push('targetRef');
  if (hasItems(raw.targetRefs)) set.push('targetRefs');
  if (set.length > 1) fail(ctx, path, `only one of selector, targetRef, targetRefs may be set, got ${set.join(' and ')}`);
  if (isSet(raw.selector) && typeof raw.selector === 'object' && !selectorHasLabels(raw)) {
    warn(ctx, [...path, 'selector'], 'selector has no matchLabels, so it selects every workload in the namespace (Istio: "workload selector specified without labels")');
  }
}
