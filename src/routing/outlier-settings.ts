/**
 * Istio's `OutlierDetection` fields resolved to the values Envoy runs with: Istio passes a field
 * to Envoy only when set (and, for most counts, only when positive); Envoy fills in the rest
 * (pilot `applyOutlierDetection`, Envoy `DetectorConfig`).
 *
 * @module
 */
import { parseDuration } from '../config/duration.ts';
import type { OutlierDetection } from '../config/types/destination-rule.ts';

/** `OutlierDetection` with Istio's and Envoy's defaults applied. Thresholds of 0 mean "off". */
export interface ResolvedOutlierSettings {
  /** `consecutive5xxErrors` (default 5; 0 = off). */
  readonly consecutive5xx: number;
  /** `consecutiveGatewayErrors` (0 = off, the default: Istio enables it only when set). */
  readonly consecutiveGateway: number;
  /** `consecutiveLocalOriginFailures` (default 5); used only with {@link ResolvedOutlierSettings.splitLocalOrigin}. */
  readonly consecutiveLocalOrigin: number;
  /** `splitExternalLocalOriginErrors`. */
  readonly splitLocalOrigin: boolean;
  /** `interval`: time between sweeps (default 10s). */
  readonly intervalMs: number;
  /** `baseEjectionTime` (default 30s). */
  readonly baseEjectionMs: number;
  /** Envoy `max_ejection_time`, not exposed by Istio: max(300s, baseEjectionTime). */
  readonly maxEjectionMs: number;
  /** `maxEjectionPercent` (default 10; 0 means the default, as Istio cannot tell 0 from unset). */
  readonly maxEjectionPercent: number;
  /**
   * `minHealthPercent` (default 0): Envoy's healthy panic threshold, which Istio sets from it. When
   * fewer than this percentage of a priority level's endpoints are healthy, the balancer uses all
   * of them, ejected ones included; 0 = never.
   */
  readonly minHealthPercent: number;
  /** Status codes counted as errors instead of any 5xx, when `outlierDetectionHttpErrorCodes` is given. */
  readonly errorCodes: ReadonlySet<number> | undefined;
}

const DEFAULT_CONSECUTIVE = 5;
const DEFAULT_INTERVAL_MS = 10_000;
const DEFAULT_BASE_EJECTION_MS = 30_000;
const DEFAULT_MAX_EJECTION_MS = 300_000;
const DEFAULT_MAX_EJECTION_PERCENT = 10;

function positiveMs(d: string | undefined, fallback: number): number {
  if (d === undefined) return fallback;
  const v = parseDuration(d);
  return typeof v === 'number' && v > 0 ? v : fallback;
}

/**
 * Applies the defaults the way Istio hands the fields to Envoy: `consecutive5xxErrors` unset → 5,
 * 0 → off; `consecutiveGatewayErrors` unset or 0 → off; `consecutiveLocalOriginFailures` unset
 * or 0 → 5; `maxEjectionPercent` unset or 0 → 10; `minHealthPercent` unset → 0 (no panic mode); durations unset or invalid → 10s / 30s.
 * The deprecated `consecutiveErrors` is ignored, as Istio ignores it.
 */
export function resolveOutlierSettings(s: OutlierDetection): ResolvedOutlierSettings {
  const count = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? undefined : Math.max(0, Math.floor(v)));
  const c5 = count(s.consecutive5xxErrors);
  const gw = count(s.consecutiveGatewayErrors);
  const local = count(s.consecutiveLocalOriginFailures);
  const pct = count(s.maxEjectionPercent);
  const baseEjectionMs = positiveMs(s.baseEjectionTime, DEFAULT_BASE_EJECTION_MS);
  const codes = s.outlierDetectionHttpErrorCodes;
  return Object.freeze({
    consecutive5xx: c5 ?? DEFAULT_CONSECUTIVE,
    consecutiveGateway: gw ?? 0,
    consecutiveLocalOrigin: local !== undefined && local > 0 ? local : DEFAULT_CONSECUTIVE,
    splitLocalOrigin: s.splitExternalLocalOriginErrors === true,
    intervalMs: positiveMs(s.interval, DEFAULT_INTERVAL_MS),
    baseEjectionMs,
    maxEjectionMs: Math.max(DEFAULT_MAX_EJECTION_MS, baseEjectionMs),
    maxEjectionPercent: pct !== undefined && pct > 0 ? Math.min(100, pct) : DEFAULT_MAX_EJECTION_PERCENT,
    minHealthPercent: Math.min(100, count(s.minHealthPercent) ?? 0),
    errorCodes: codes !== undefined && codes.length > 0 ? new Set(codes) : undefined,
  });
}
