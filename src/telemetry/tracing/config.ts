/**
 * The Telemetry `tracing` section, merged as istiod merges it (`pilot/pkg/model/telemetry.go`,
 * `Telemetries.Tracing`, and `pilot/pkg/networking/core/tracing.go`): the Telemetries that apply
 * (root namespace, then the workload's namespace, then matching selectors, oldest first) are
 * walked in order and each `tracing` entry overrides, for the modes its `match.mode` selects
 * (CLIENT, SERVER, both by default), the provider, `disableSpanReporting`, `customTags` (replaced
 * wholesale, a shallow merge), `randomSamplingPercentage`, `enableIstioTags` and
 * `disableContextPropagation`. A mode left without a provider is disabled.
 *
 * With no Telemetry `tracing` at all, tracing follows the mesh-wide settings, as Istio's
 * `meshConfig.enableTracing` and ProxyConfig `tracing` do: on, at the default sampling percentage.
 *
 * @module
 */
import type { TelemetryTracing, TracingCustomTag } from '../../config/types/telemetry.ts';
import type { AppliedTelemetry } from '../select.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import type { PropagationFormat } from './propagation.ts';
import { optionNames } from '../../core/option-names.ts';

/**
 * `createMesh({ telemetry: { tracing } })`: the mesh-wide tracing settings (Istio's MeshConfig
 * `enableTracing`, `defaultProviders.tracing` and ProxyConfig `tracing`). Spans go to the
 * OpenTelemetry SDK the app registered (`@opentelemetry/api`'s global tracer provider).
 * @category Telemetry
 */
export interface TracingOptions {
  /** MeshConfig `enableTracing`: tracing when no Telemetry resource configures it. @defaultValue true */
  readonly enabled?: boolean | undefined;
  /**
   * ProxyConfig `tracing.sampling`: the percentage of requests that start a sampled trace when
   * no Telemetry sets `randomSamplingPercentage` (0–100). Istio's default is 1.
   * @defaultValue 1
   */
  readonly samplingPercentage?: number | undefined;
  /**
   * The trace-context headers written on calls, and read first on requests (the others are read
   * too, after these): `w3c` as Istio's `opentelemetry` provider (Envoy's OpenTelemetry tracer),
   * `b3` as its `zipkin` provider (Envoy's Zipkin tracer writes the `x-b3-*` headers), `b3-single`
   * the one `b3` header; `['b3', 'w3c']` as zipkin's `USE_B3_WITH_W3C_PROPAGATION`.
   * @defaultValue ['w3c']
   */
  readonly propagation?: readonly PropagationFormat[] | undefined;
  /**
   * The MeshConfig extension-provider names that mean this SDK, for Telemetry `providers`. A
   * Telemetry naming another provider disables tracing for its mode, as Istio does for a provider
   * it cannot find. Unset: any provider name means the app's SDK.
   * @defaultValue undefined (every name)
   */
  readonly providers?: readonly string[] | undefined;
  /** ProxyConfig `tracing.custom_tags`: tags used when no Telemetry sets `customTags`. @defaultValue {} */
  readonly customTags?: Readonly<Record<string, TracingCustomTag>> | undefined;
  /** `istio.mesh_id` on spans. @defaultValue the trust domain */
  readonly meshId?: string | undefined;
  /** `istio.cluster_id` on spans. @defaultValue 'Kubernetes' (Istio's default cluster name) */
  readonly clusterId?: string | undefined;
}

/** The names of {@link TracingOptions} (createMesh refuses others), checked against the type. @internal */
export const TRACING_OPTION_NAMES = optionNames<TracingOptions>()(['enabled', 'samplingPercentage', 'propagation', 'providers', 'customTags', 'meshId', 'clusterId']);

/** The tracing settings of one side (client: outbound calls; server: inbound requests). */
export interface TracingSpec {
  /** No spans and no trace headers touched (no provider, or `disableSpanReporting`). */
  readonly disabled: boolean;
  readonly samplingPercentage: number;
  readonly customTags: Readonly<Record<string, TracingCustomTag>>;
  readonly enableIstioTags: boolean;
  /** Istio 1.30 `disableContextPropagation`: spans are made, but no trace headers are written on calls. */
  readonly disableContextPropagation: boolean;
  /** The provider name chosen (for diagnostics), or undefined. */
  readonly provider: string | undefined;
}

/** Client and server tracing of one workload. */
export interface TracingConfig {
  readonly client: TracingSpec;
  readonly server: TracingSpec;
}

interface MutableSpec {
  providerSet: boolean;
  provider: string | undefined;
  disabled: boolean;
  samplingPercentage: number | undefined;
  customTags: Readonly<Record<string, TracingCustomTag>> | undefined;
  enableIstioTags: boolean;
  disableContextPropagation: boolean;
}

/** Istio's default sampling percentage (`features.TraceSampling`, PILOT_TRACE_SAMPLING). */
export const ISTIO_DEFAULT_SAMPLING = 1;

/** The default provider name: the app's OpenTelemetry SDK. */
export const SDK_PROVIDER = 'opentelemetry';

function known(name: string, o: TracingOptions): boolean {
  return o.providers === undefined || o.providers.includes(name);
}

/**
 * The tracing config of a workload from the Telemetries that apply to it, in istiod's order.
 * `warn` hears of provider names that mean nothing here.
 */
export function mergeTracing(applied: readonly AppliedTelemetry[], o: TracingOptions, warn?: (m: string) => void): TracingConfig {
  const fallbackSampling = o.samplingPercentage ?? ISTIO_DEFAULT_SAMPLING;
  const fallbackTags = o.customTags ?? {};
  const entries: { ref: string; t: TelemetryTracing }[] = [];
  for (const a of applied) for (const t of a.spec.tracing ?? []) entries.push({ ref: a.ref, t });
  if (entries.length === 0) {
    const spec: TracingSpec = { disabled: o.enabled === false, samplingPercentage: fallbackSampling, customTags: fallbackTags, enableIstioTags: true, disableContextPropagation: false, provider: SDK_PROVIDER };
    return { client: spec, server: spec };
  }
  const fresh = (): MutableSpec => ({ providerSet: true, provider: o.providers?.[0] ?? SDK_PROVIDER, disabled: false, samplingPercentage: undefined, customTags: undefined, enableIstioTags: true, disableContextPropagation: false });
  const client = fresh();
  const server = fresh();
  for (const { ref, t } of entries) {
    const mode = t.match?.mode;
    const specs = mode === 'CLIENT' ? [client] : mode === 'SERVER' ? [server] : [client, server];
    const name = t.providers?.[0]?.name;
    if (name !== undefined) {
      // Istio supports one provider per mode: the first named.
      const ok = known(name, o);
      if (!ok) warn?.(`meshlet: Telemetry ${ref}: tracing provider "${name}" is not one of telemetry.tracing.providers (${(o.providers ?? []).join(', ')}); tracing is disabled for ${mode ?? 'CLIENT_AND_SERVER'}, as Istio does for a provider it cannot find`);
      for (const s of specs) s.provider = ok ? name : undefined;
    }
    if (t.disableSpanReporting !== undefined) for (const s of specs) s.disabled = t.disableSpanReporting;
    if (t.customTags !== undefined) for (const s of specs) s.customTags = t.customTags;
    if (t.randomSamplingPercentage !== undefined) for (const s of specs) s.samplingPercentage = t.randomSamplingPercentage;
    if (t.enableIstioTags !== undefined) for (const s of specs) s.enableIstioTags = t.enableIstioTags;
    if (t.disableContextPropagation !== undefined) for (const s of specs) s.disableContextPropagation = t.disableContextPropagation;
  }
  const done = (s: MutableSpec): TracingSpec => ({
    disabled: s.disabled || s.provider === undefined,
    samplingPercentage: s.samplingPercentage ?? fallbackSampling,
    // tracing.go configureCustomTags: the Telemetry's tags, or else ProxyConfig's.
    customTags: s.customTags !== undefined && Object.keys(s.customTags).length > 0 ? s.customTags : fallbackTags,
    enableIstioTags: s.enableIstioTags,
    disableContextPropagation: s.disableContextPropagation,
    provider: s.provider,
  });
  return { client: done(client), server: done(server) };
}

const FORMATS: readonly PropagationFormat[] = ['w3c', 'b3', 'b3-single'];

/** Checks `createMesh`'s `telemetry.tracing`, naming the field that is wrong. */
export function validateTracingOptions(o: TracingOptions | undefined): void {
  if (o === undefined) return;
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('createMesh: `telemetry.tracing` must be an object');
  const p = o.samplingPercentage;
  if (p !== undefined && (typeof p !== 'number' || !Number.isFinite(p) || p < 0 || p > 100)) throw new InvalidArgumentError(`createMesh: telemetry.tracing.samplingPercentage must be a number from 0 to 100; got ${String(p)}`);
  if (o.propagation !== undefined) {
    if (!Array.isArray(o.propagation) || o.propagation.length === 0) throw new InvalidArgumentError("createMesh: telemetry.tracing.propagation must be a non-empty list of 'w3c', 'b3', 'b3-single'");
    o.propagation.forEach((f, i) => {
      if (!FORMATS.includes(f)) throw new InvalidArgumentError(`createMesh: telemetry.tracing.propagation[${i}]: unknown format ${JSON.stringify(f)}; use 'w3c', 'b3' or 'b3-single'`);
    });
  }
  if (o.providers !== undefined && (!Array.isArray(o.providers) || o.providers.some((n) => typeof n !== 'string' || n === ''))) throw new InvalidArgumentError('createMesh: telemetry.tracing.providers must be a list of provider names');
}
