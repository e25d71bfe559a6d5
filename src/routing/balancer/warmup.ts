/**
 * Slow start (`loadBalancer.warmup`, or the deprecated `warmupDurationSecs`): while a host
 * is warming, its weight is scaled by `max(minimumPercent/100, (t/duration)^(1/aggression))`
 * where `t = max(1ms, now - warmingSince)`, as Envoy's `applySlowStartFactor` does. Istio
 * applies it to ROUND_ROBIN and LEAST_REQUEST only.
 *
 * @module
 */
import { formatDuration, parseDuration } from '../../config/duration.ts';
import type { LoadBalancerSettings } from '../../config/types/destination-rule.ts';

/** A parsed slow-start configuration. */
export interface SlowStart {
  /** The slow-start window in ms (> 0). */
  readonly windowMs: number;
  /** The minimum weight factor, 0..1 (`minimumPercent / 100`). @defaultValue 0.1 */
  readonly minWeight: number;
  /** The ramp's aggression (1 = linear). @defaultValue 1 */
  readonly aggression: number;
}

/**
 * The slow-start configuration of `settings`, or undefined when none is set (or the duration
 * does not parse or is not positive). `warmup` wins over `warmupDurationSecs`.
 */
export function slowStartFrom(settings: LoadBalancerSettings | undefined): SlowStart | undefined {
  if (settings === undefined) return undefined;
  const w = settings.warmup;
  const text = w !== undefined ? w.duration : settings.warmupDurationSecs;
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (typeof ms !== 'number' || !(ms > 0)) return undefined;
  const pct = w?.minimumPercent;
  const minWeight = pct !== undefined && Number.isFinite(pct) ? Math.min(1, Math.max(0, pct / 100)) : 0.1;
  const agg = w?.aggression;
  // Envoy: "aggression cannot be less than 0.0"; invalid values fall back to 1.0.
  const aggression = agg !== undefined && Number.isFinite(agg) && agg > 0 ? agg : 1;
  return Object.freeze({ windowMs: ms, minWeight, aggression });
}

/**
 * The factor (0..1] a host's weight is multiplied by at `nowMs`; 1 when the host is not
 * warming (never started, or its window has passed).
 * @param ss the slow-start configuration
 * @param warmingSince {@link HostState.warmingSince}
 * @param nowMs the Clock time
 */
export function slowStartFactor(ss: SlowStart, warmingSince: number, nowMs: number): number {
  const elapsed = nowMs - warmingSince;
  if (!(elapsed < ss.windowMs)) return 1;
  const t = Math.max(1, elapsed) / ss.windowMs;
  const ramp = ss.aggression === 1 ? t : t ** (1 / ss.aggression);
  return Math.max(ramp, ss.minWeight);
}

/** `warmup 30s (min 10%, aggression 1)`. */
export function describeSlowStart(ss: SlowStart): string {
  return `warmup ${formatDuration(ss.windowMs)} (min ${Number((ss.minWeight * 100).toFixed(2))}%, aggression ${ss.aggression})`;
}
