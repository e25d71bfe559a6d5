/**
 * The `metrics` section of the Telemetry resources that apply to a workload, merged as istiod
 * merges it (`pilot/pkg/model/telemetry.go` `mergeMetrics`, then `generateStatsConfig`):
 *
 * - the `metrics` entries are taken in order (root namespace → namespace → workload, each
 *   resource's list in its order); `providers` set on an entry replace the parent's (not a deep
 *   merge), and only the providers of the last entry that names any are in scope — meshlet emits
 *   for the built-in `prometheus` provider (or an extension provider declared with `prometheus`);
 * - each override applies to its `match.mode` (CLIENT, SERVER, or both when unset or
 *   CLIENT_AND_SERVER) and to its metric (`ALL_METRICS`, unset, or one `IstioMetric`; a
 *   `customMetric` names a metric meshlet does not make, and is kept but has no effect);
 * - `disabled: true` on ALL_METRICS turns the whole mode off, until a later override for that
 *   mode (even one that only changes tags) turns it back on; per metric, the last `disabled`
 *   set wins; `tagOverrides` accumulate per metric, later keys replacing earlier ones.
 *
 * @module
 */
import type { AnyResource, Resource } from '../../config/resource.ts';
import type { IstioMetric, MetricsOverride, TelemetryMetrics } from '../../config/types/telemetry.ts';
import { selectTelemetry, type TelemetryWorkload } from '../select.ts';

/** The standard metrics meshlet makes, by `IstioMetric` name. */
export const METRIC_NAMES = Object.freeze({
  REQUEST_COUNT: 'istio_requests_total',
  REQUEST_DURATION: 'istio_request_duration_milliseconds',
  REQUEST_SIZE: 'istio_request_bytes',
  RESPONSE_SIZE: 'istio_response_bytes',
  /** gRPC only: messages the client sent (counted per call, streams included). */
  GRPC_REQUEST_MESSAGES: 'istio_request_messages_total',
  /** gRPC only: messages the server sent. */
  GRPC_RESPONSE_MESSAGES: 'istio_response_messages_total',
} as const);

/** An `IstioMetric` meshlet makes. */
export type HttpMetric = keyof typeof METRIC_NAMES;

/** Every `IstioMetric` except ALL_METRICS (what ALL_METRICS stands for, sorted as istiod sorts it). */
const ALL: readonly IstioMetric[] = [
  'GRPC_REQUEST_MESSAGES',
  'GRPC_RESPONSE_MESSAGES',
  'REQUEST_COUNT',
  'REQUEST_DURATION',
  'REQUEST_SIZE',
  'RESPONSE_SIZE',
  'TCP_CLOSED_CONNECTIONS',
  'TCP_OPENED_CONNECTIONS',
  'TCP_RECEIVED_BYTES',
  'TCP_SENT_BYTES',
];

/** One tag override after the merge: removed, or set to the value of a CEL expression. */
export interface TagOverride {
  readonly name: string;
  readonly remove: boolean;
  /** The CEL expression (UPSERT). */
  readonly value: string;
}

/** The merged settings of one metric in one mode. */
export interface MetricOverride {
  readonly disabled: boolean;
  /** Sorted by tag name, as istiod sorts them. */
  readonly tags: readonly TagOverride[];
}

/** The merged settings of one mode (CLIENT: `reporter="source"`, SERVER: `reporter="destination"`). */
export interface ModeMetricsConfig {
  /** No metric at all in this mode. */
  readonly disabled: boolean;
  /** By metric (`IstioMetric` name or a custom metric's name). */
  readonly overrides: ReadonlyMap<string, MetricOverride>;
}

/** The merged `metrics` section. */
export interface MetricsConfig {
  readonly client: ModeMetricsConfig;
  readonly server: ModeMetricsConfig;
  /** The providers in scope (after the merge). */
  readonly providers: readonly string[];
  /** True when a provider meshlet emits for is in scope. */
  readonly enabled: boolean;
}

/** With no Telemetry: every metric on, no overrides. */
export const DEFAULT_METRICS_CONFIG: MetricsConfig = Object.freeze({
  client: Object.freeze({ disabled: false, overrides: new Map() }),
  server: Object.freeze({ disabled: false, overrides: new Map() }),
  providers: Object.freeze(['prometheus']),
  enabled: true,
});

type Mode = 'CLIENT' | 'SERVER';

function modesOf(mode: string | undefined): Mode[] {
  return mode === 'CLIENT' || mode === 'SERVER' ? [mode] : ['CLIENT', 'SERVER'];
}

function isAllMetrics(o: MetricsOverride): boolean {
  const m = o.match;
  if (m?.customMetric !== undefined && m.customMetric !== '') return false;
  return m?.metric === undefined || m.metric === 'ALL_METRICS';
}

function matches(o: MetricsOverride): readonly string[] {
  const m = o.match;
  if (m?.customMetric !== undefined && m.customMetric !== '') return [m.customMetric];
  if (m?.metric === undefined || m.metric === 'ALL_METRICS') return ALL;
  return [m.metric];
}

const providerNames = (m: TelemetryMetrics): string[] => (m.providers ?? []).map((p) => p.name);

interface Acc {
  disabled: boolean | undefined;
  tags: Map<string, { operation?: 'UPSERT' | 'REMOVE'; value?: string }>;
}

/**
 * Merges `metrics` entries (least specific first) as istiod does, for the providers meshlet
 * emits for (`isOurs`).
 * @param defaultProviders MeshConfig `defaultProviders.metrics`.
 */
export function mergeMetrics(metrics: readonly TelemetryMetrics[], defaultProviders: readonly string[], isOurs: (provider: string) => boolean): MetricsConfig {
  let inScope = [...defaultProviders];
  for (const m of metrics) {
    const names = providerNames(m);
    if (names.length > 0) inScope = names;
  }
  const ours = inScope.filter(isOurs);
  if (ours.length === 0) {
    const off = Object.freeze({ disabled: true, overrides: new Map() });
    return { client: off, server: off, providers: inScope, enabled: false };
  }
  // One provider's view suffices: every provider meshlet emits for is the same OTel pipeline,
  // so overrides merge across them in order.
  const perMode: Record<Mode, Map<string, Acc>> = { CLIENT: new Map(), SERVER: new Map() };
  const disabledAll = new Set<Mode>();
  let parent = [...defaultProviders];
  for (const m of metrics) {
    let names = providerNames(m);
    if (names.length === 0) names = parent;
    parent = names;
    if (!names.some((n) => ours.includes(n))) continue;
    for (const o of m.overrides ?? []) {
      if (isAllMetrics(o) && o.disabled === true) {
        for (const mode of modesOf(o.match?.mode)) disabledAll.add(mode);
        continue;
      }
      for (const mode of modesOf(o.match?.mode)) {
        disabledAll.delete(mode);
        for (const metric of matches(o)) {
          const acc = perMode[mode].get(metric) ?? { disabled: undefined, tags: new Map() };
          if (o.disabled !== undefined) acc.disabled = o.disabled;
          for (const [k, v] of Object.entries(o.tagOverrides ?? {})) acc.tags.set(k, v);
          perMode[mode].set(metric, acc);
        }
      }
    }
  }
  const build = (mode: Mode): ModeMetricsConfig => {
    if (disabledAll.has(mode)) return { disabled: true, overrides: new Map() };
    const overrides = new Map<string, MetricOverride>();
    for (const [metric, acc] of perMode[mode]) {
      const tags = [...acc.tags]
        .map(([name, v]) => ({ name, remove: v.operation === 'REMOVE', value: v.operation === 'REMOVE' ? '' : (v.value ?? '') }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      overrides.set(metric, { disabled: acc.disabled === true, tags });
    }
    return { disabled: false, overrides };
  };
  return { client: build('CLIENT'), server: build('SERVER'), providers: inScope, enabled: true };
}

/**
 * The merged `metrics` section for a workload: the Telemetry resources that apply to it
 * ({@link selectTelemetry}), merged by {@link mergeMetrics} with MeshConfig's default metrics
 * provider `prometheus`. meshlet emits for `prometheus` and for any `extensionProviders` entry
 * declared with a `prometheus` block.
 */
export function metricsConfigFor(
  resources: readonly (AnyResource | Resource)[],
  workload: TelemetryWorkload,
  rootNamespace: string,
  extensionProviders: readonly { readonly name: string }[] = [],
): MetricsConfig {
  const applied = selectTelemetry(resources, workload, rootNamespace).applied;
  if (applied.every((a) => (a.spec.metrics ?? []).length === 0)) return DEFAULT_METRICS_CONFIG;
  const prometheus = new Set(['prometheus']);
  for (const p of extensionProviders) if ((p as { prometheus?: unknown }).prometheus !== undefined) prometheus.add(p.name);
  return mergeMetrics(
    applied.flatMap((a) => a.spec.metrics ?? []),
    ['prometheus'],
    (name) => prometheus.has(name),
  );
}
