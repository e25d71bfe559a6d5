/**
 * A reporting mode's merged Telemetry `metrics` overrides (client or server), compiled for the
 * data path: per metric whether it is disabled, and its tag overrides with their CEL expressions
 * compiled — a standard tag removed, or a tag (standard or new) set from an expression.
 *
 * @module
 */
import { type CompiledCel, compileCel } from '../cel.ts';
import { type HttpMetric, METRIC_NAMES, type ModeMetricsConfig } from './config.ts';
import { STANDARD_LABELS } from './labels.ts';

/** One tag override, compiled. */
export interface CompiledTag {
  readonly name: string;
  readonly remove: boolean;
  readonly value: CompiledCel | undefined;
}

/** Per mode: per metric, disabled or the tag overrides to apply. */
export interface CompiledMode {
  readonly disabled: boolean;
  readonly metrics: Record<HttpMetric, { readonly disabled: boolean; readonly tags: readonly CompiledTag[] }>;
  /** No metric has tag overrides: the four share one label set per request. */
  readonly plain: boolean;
}

const STANDARD = new Set<string>(STANDARD_LABELS);

/** Compiles a mode's overrides; an expression that does not compile is warned about and left out, as the proxy does. */
export function compileMode(mode: ModeMetricsConfig, metrics: readonly HttpMetric[], warn: (message: string) => void): CompiledMode {
  const out = {} as Record<HttpMetric, { disabled: boolean; tags: CompiledTag[] }>;
  for (const metric of metrics) {
    const o = mode.overrides.get(metric);
    const tags: CompiledTag[] = [];
    for (const t of o?.tags ?? []) {
      if (t.remove) {
        // The proxy removes standard tags only.
        if (STANDARD.has(t.name)) tags.push({ name: t.name, remove: true, value: undefined });
        continue;
      }
      let value: CompiledCel;
      try {
        value = compileCel(t.value);
      } catch (e) {
        // The proxy logs and skips an expression it cannot parse (for a standard tag the tag is then dropped).
        warn(`meshlet: Telemetry tagOverrides ${t.name} on ${METRIC_NAMES[metric]}: ${JSON.stringify(t.value)} does not compile (${(e as Error).message}); ${STANDARD.has(t.name) ? 'the tag is left out' : 'the tag is not added'}`);
        if (STANDARD.has(t.name)) tags.push({ name: t.name, remove: true, value: undefined });
        continue;
      }
      tags.push({ name: t.name, remove: false, value });
    }
    out[metric] = { disabled: o?.disabled === true, tags };
  }
  return { disabled: mode.disabled, metrics: out, plain: metrics.every((m) => out[m].tags.length === 0) };
}
