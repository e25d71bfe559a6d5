/**
 * Annotations Istio's validation reads on every kind (`validateMetadata`): `istio.io/dry-run`
 * is allowed on AuthorizationPolicy only, with a boolean value and action ALLOW or DENY; the
 * internal `internal.istio.io/…` annotations that Istio reserves for itself are refused.
 *
 * @module
 */
import type { Kind } from '../resource.ts';
import { fail, metadataValue, type Ctx } from './schema.ts';

/** The dry-run annotation. */
export const DRY_RUN = 'istio.io/dry-run';

/** Internal annotations Istio refuses on user resources. */
const INTERNAL = ['internal.istio.io/webhook-always-reject', 'internal.istio.io/parent-namespace', 'internal.istio.io/parents'];

/** Go's `strconv.ParseBool` spellings. */
const GO_BOOLS = ['1', 't', 'T', 'TRUE', 'true', 'True', '0', 'f', 'F', 'FALSE', 'false', 'False'];

/** Checks the annotations of a resource of `kind` whose raw spec is `spec` (Istio kinds only: Istio validates only its own). */
export function checkAnnotations(kind: Kind, apiVersion: string, spec: unknown, ctx: Ctx): void {
  if (!apiVersion.includes('istio.io/')) return;
  const path = ['metadata', 'annotations'];
  const dryRun = metadataValue(ctx, 'annotations', DRY_RUN);
  if (dryRun !== undefined) {
    if (kind !== 'AuthorizationPolicy') {
      fail(ctx, [...path, DRY_RUN], `${DRY_RUN} is supported on AuthorizationPolicy only; remove the annotation`);
    } else {
      const action = typeof spec === 'object' && spec !== null ? (spec as { action?: unknown }).action : undefined;
      if (action !== undefined && action !== null && action !== 'ALLOW' && action !== 'DENY') {
        fail(ctx, [...path, DRY_RUN], `${DRY_RUN} works with action ALLOW or DENY only, not ${String(action)}`);
      } else if (!GO_BOOLS.includes(dryRun)) {
        fail(ctx, [...path, DRY_RUN], `${DRY_RUN} must be "true" or "false", got "${dryRun}"`);
      }
    }
  }
  for (const a of INTERNAL) {
    if (metadataValue(ctx, 'annotations', a) !== undefined) fail(ctx, [...path, a], `${a} is reserved for Istio's own generated resources`);
  }
}
