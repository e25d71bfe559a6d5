/**
 * What one workload identity (a token's `namespace/service`) may hold on the control plane, so
 * that one token cannot exhaust it: watch streams, registered instances, and the size of the
 * NACKs it reports. Refusals are `429 LIMIT_EXCEEDED` (a count) or `413 TOO_LARGE` (a NACK),
 * naming the limit and the option that raises it.
 *
 * @module
 */
import { DEFAULT_MAX_NACK_BYTES, DEFAULT_MAX_NACK_REASONS } from '../control-plane/protocol.ts';
import { InvalidArgumentError } from '../core/errors.ts';

/** Per-workload limits of a control-plane server. */
export interface ControlPlaneLimits {
  /**
   * Watch streams one workload identity (`namespace/service`) may have open on one replica; one
   * more is refused with 429. Raise it for a service with more instances than this per replica.
   * @defaultValue 100
   */
  readonly maxWatchesPerWorkload?: number;
  /**
   * Registered instances one workload identity may own (counted over the shared registry, so over
   * every replica; with etcd a burst spread over replicas can pass it by the writes in flight).
   * Re-registering an instance it has does not count. @defaultValue 500
   */
  readonly maxRegistrationsPerWorkload?: number;
  /** Reasons one NACK may carry (413 beyond). @defaultValue 100 */
  readonly maxNackReasons?: number;
  /** UTF-8 bytes the reasons of one NACK may total (413 beyond). @defaultValue 65536 */
  readonly maxNackBytes?: number;
}

/** The defaults of {@link ControlPlaneLimits}. */
export const DEFAULT_LIMITS: Required<ControlPlaneLimits> = Object.freeze({
  maxWatchesPerWorkload: 100,
  maxRegistrationsPerWorkload: 500,
  maxNackReasons: DEFAULT_MAX_NACK_REASONS,
  maxNackBytes: DEFAULT_MAX_NACK_BYTES,
});

/** The limits with defaults filled in; throws `InvalidArgumentError` naming a limit that is not a positive integer. */
export function resolveLimits(o: ControlPlaneLimits = {}): Required<ControlPlaneLimits> {
  const out = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(DEFAULT_LIMITS) as (keyof ControlPlaneLimits)[]) {
    const v = o[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError(`startControlPlane: limits.${k} must be a positive integer, got ${String(v)}`);
    out[k] = v;
  }
  return out;
}
