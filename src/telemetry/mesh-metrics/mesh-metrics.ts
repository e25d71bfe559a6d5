/**
 * meshlet's own metrics: what a sidecar's Envoy reports about itself (config in use, retries and
 * their overflow, outlier ejections, pool overflows, mirror drops, RBAC decisions, inbound TLS),
 * for one mesh, through the OpenTelemetry metrics API (`@opentelemetry/api` only; the app's SDK
 * exports them). Names are Prometheus-style and final (`meshlet_retries_total`): the OTel
 * Prometheus exporter keeps a name that already ends in `_total` and adds no unit suffix.
 *
 * Every series carries `mesh_service` and `mesh_namespace` (the mesh that counts: one value per
 * mesh, so two meshes in one process do not add into each other). The other labels are bounded
 * by the config, never by traffic: `cluster` (`outbound|port|subset|host`), `policy`
 * (`namespace/name`), `detector`, `reason`, `source`. Endpoints are labelled only when asked
 * (`endpointLabels`, on the ejection count): an endpoint set churns with deployments. The config
 * version is a number (as Envoy's `cds.version`), not a label: the SDK keeps every attribute set
 * it has seen, so a label per version would add a series per config change for good.
 *
 * The counts come from the kernel's observation channels (core/observe.ts), filtered to this
 * mesh (`message.workload === identity`); gauges are read from the mesh when the SDK collects.
 * Nothing is subscribed when the meter is OTel's no-op one (no SDK registered): a mesh without
 * telemetry pays nothing.
 *
 * @module
 */
import { type Attributes, type BatchObservableCallback, createNoopMeter, type Meter, type MeterProvider, metrics, type BatchObservableResult, type Observable, type ObservableCounter } from '@opentelemetry/api';
import type { Channel } from 'node:diagnostics_channel';
import { versionNumber } from '../../config/version.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { MESHLET_VERSION } from '../../core/version.ts';
import {
  type CallEndMessage,
  type ConfigAppliedMessage,
  type ConfigRejectedMessage,
  channels,
  type InboundRefusedMessage,
  type MirrorDroppedMessage,
  type ObservedAuthzDecision,
  type OutlierEjectedMessage,
  type PoolOverflowMessage,
  type RetryBudgetExhaustedMessage,
  type WorkloadIdentity,
} from '../../core/observe.ts';
import { MESH_METRICS } from './names.ts';
import { type AccessLogDroppedMessage, accessLogDropped } from '../access-log/otel-exporter.ts';
import { optionNames } from '../../core/option-names.ts';

/**
 * `createMesh({ telemetry: { ownMetrics } })`.
 * @category Telemetry
 */
export interface OwnMetricsOptions {
  /** Where the instruments come from. @defaultValue the global MeterProvider (`metrics.getMeterProvider()`) */
  readonly meterProvider?: MeterProvider | undefined;
  /**
   * Label `meshlet_outlier_ejections_total` with the `endpoint` (`address:port`) too. Off by
   * default: endpoints come and go with every deployment, and each one stays a series for the
   * life of the process. @defaultValue false
   */
  readonly endpointLabels?: boolean | undefined;
}

/** The names of {@link OwnMetricsOptions} (createMesh refuses others), checked against the type. @internal */
export const OWN_METRICS_OPTION_NAMES = optionNames<OwnMetricsOptions>()(['meterProvider', 'endpointLabels']);

/** What the metrics read from the mesh when the SDK collects. */
export interface MeshMetricsSource {
  readonly identity: WorkloadIdentity;
  /** The config in use: its version and where it came from (`file`, `control-plane`, `cache`, `none`). */
  config(): { readonly version: string; readonly source: string };
  /** Inbound requests so far, in plaintext and over mTLS. */
  inboundTls(): { readonly plaintext: number; readonly mtls: number };
  /** The clusters that have outlier detection, with their endpoints ejected now. */
  outlierClusters(): Iterable<{ readonly name: string; readonly ejected: readonly string[] }>;
}

/** The instrumentation scope name. */
export const METER_NAME = 'meshlet';

/** Most cached label sets per counter before the cache starts over (label values are bounded by config; this bounds history). */
const MAX_CACHED = 1024;

/** Where a mesh's config can come from (`mesh.configSource`). */
const CONFIG_SOURCES = ['file', 'control-plane', 'cache', 'none'] as const;

/** Checks `telemetry.ownMetrics` (createMesh). */
export function checkOwnMetricsOption(v: unknown): void {
  if (v === undefined || typeof v === 'boolean') return;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`createMesh: \`telemetry.ownMetrics\` must be true, false or { meterProvider?, endpointLabels? }, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'meterProvider' && k !== 'endpointLabels') throw new InvalidArgumentError(`createMesh: \`telemetry.ownMetrics.${k}\` is not an option (meterProvider, endpointLabels)`);
  }
  const p = o.meterProvider as { getMeter?: unknown } | undefined | null;
  if (p !== undefined && (p === null || typeof p.getMeter !== 'function')) throw new InvalidArgumentError('createMesh: `telemetry.ownMetrics.meterProvider` must be an OpenTelemetry MeterProvider (with getMeter)');
  if (o.endpointLabels !== undefined && typeof o.endpointLabels !== 'boolean') throw new InvalidArgumentError(`createMesh: \`telemetry.ownMetrics.endpointLabels\` must be true or false, got ${JSON.stringify(o.endpointLabels)}`);
}

/**
 * A counter kept by meshlet and reported through an observable counter at each collection: an
 * `add` is a map lookup and an addition (a synchronous OTel counter would have the SDK sort and
 * stringify the attributes on every one — per request, for authorization decisions).
 */
class LocalCounter {
  readonly instrument: ObservableCounter;
  readonly #base: Attributes;
  readonly #sets = new Map<string, { readonly attributes: Attributes; value: number }>();
  constructor(instrument: ObservableCounter, base: Attributes) {
    this.instrument = instrument;
    this.#base = base;
  }
  /** `attributes(arg)` makes the set's attributes when `key` is new (a function and its argument: no closure per call on hot paths). */
  add<A>(n: number, key: string, attributes: (arg: A) => Attributes, arg?: A): void {
    let s = this.#sets.get(key);
    if (s === undefined) {
      // Label values are bounded by the config; this bounds history (the counts then start again from zero, a counter reset).
      if (this.#sets.size >= MAX_CACHED) this.#sets.clear();
      s = { attributes: Object.freeze({ ...this.#base, ...attributes(arg as A) }), value: 0 };
      this.#sets.set(key, s);
    }
    s.value += n;
  }
  observe(r: BatchObservableResult): void {
    for (const s of this.#sets.values()) r.observe(this.instrument, s.value, s.attributes);
  }
}

/** The authorization counter's attributes of an engine result (once per key). */
function authzAttributes(r: ObservedAuthzDecision['result']): Attributes {
  return { policy: r.policy ?? '', action: r.action ?? '', decision: r.decision };
}

/** The authorization counter's key of an engine result. */
const authzKeys = new WeakMap<object, string>();

/** One mesh's own metrics; {@link MeshMetrics.close} unsubscribes (mesh.close() does). */
export class MeshMetrics {
  readonly #source: MeshMetricsSource;
  readonly #meter: Meter;
  readonly #base: Attributes;
  readonly #endpointLabels: boolean;
  readonly #subscriptions: [Channel, (m: unknown) => void][] = [];
  readonly #observables: Observable[];
  readonly #collect: BatchObservableCallback;
  /** Clusters the ejected-endpoints gauge has reported: the config's, and at most MAX_CACHED gone ones. */
  readonly #ejectedClusters = new Set<string>();
  /** How many clusters the ejected-endpoints gauge reports (present and gone ones). @internal */
  get reportedClusters(): number {
    return this.#ejectedClusters.size;
  }

  /** When a config was last applied (epoch seconds), undefined before the first. */
  #appliedAt: number | undefined;
  /** Closed: reported once more, at the next collection. */
  #closed = false;

  /**
   * Starts counting for `source`'s mesh; undefined when disabled (`false`) or when the meter
   * provider is OTel's no-op one (no SDK registered).
   */
  static start(source: MeshMetricsSource, option: boolean | OwnMetricsOptions | undefined): MeshMetrics | undefined {
    if (option === false) return undefined;
    const o = typeof option === 'object' ? option : {};
    const meter = (o.meterProvider ?? metrics.getMeterProvider()).getMeter(METER_NAME);
    if (meter === createNoopMeter()) return undefined;
    return new MeshMetrics(source, meter, o.endpointLabels === true);
  }

  private constructor(source: MeshMetricsSource, meter: Meter, endpointLabels: boolean) {
    this.#source = source;
    this.#meter = meter;
    this.#endpointLabels = endpointLabels;
    const id = source.identity;
    const base: Attributes = Object.freeze({ mesh_service: id.service, mesh_namespace: id.namespace });
    this.#base = base;
    const counters: LocalCounter[] = [];
    const counter = (name: keyof typeof MESH_METRICS): LocalCounter => {
      const c = new LocalCounter(meter.createObservableCounter(name, { description: MESH_METRICS[name].help, unit: MESH_METRICS[name].unit }), base);
      counters.push(c);
      return c;
    };
    const applied = counter('meshlet_config_applied_total');
    const rejected = counter('meshlet_config_rejected_total');
    const retries = counter('meshlet_retries_total');
    const exhausted = counter('meshlet_retry_budget_exhausted_total');
    const ejections = counter('meshlet_outlier_ejections_total');
    const overflows = counter('meshlet_pool_overflows_total');
    const mirrorDropped = counter('meshlet_mirror_dropped_total');
    const logsDropped = counter('meshlet_access_log_dropped_total');
    const authz = counter('meshlet_authz_decisions_total');
    const dryRun = counter('meshlet_authz_dry_run_decisions_total');
    const refused = counter('meshlet_inbound_connections_refused_total');

    const mine = (m: { workload: WorkloadIdentity | undefined }): boolean => m.workload === id;
    this.#on(channels.configApplied, (m: ConfigAppliedMessage) => {
      if (!mine(m)) return;
      this.#appliedAt = Date.now() / 1000;
      applied.add(1, m.source, () => ({ source: m.source }));
    });
    this.#on(channels.configRejected, (m: ConfigRejectedMessage) => {
      if (mine(m)) rejected.add(1, '', () => ({}));
    });
    this.#on(channels.callEnd, (m: CallEndMessage) => {
      if (m.attempts > 1 && mine(m)) retries.add(m.attempts - 1, m.cluster ?? '', () => ({ cluster: m.cluster ?? '' }));
    });
    this.#on(channels.retryBudgetExhausted, (m: RetryBudgetExhaustedMessage) => {
      if (!mine(m)) return;
      const limit = m.budgeted ? 'retry_budget' : 'max_retries';
      exhausted.add(1, `${m.cluster}|${limit}`, () => ({ cluster: m.cluster, limit }));
    });
    this.#on(channels.outlierEjected, (m: OutlierEjectedMessage) => {
      if (!mine(m)) return;
      if (endpointLabels) ejections.add(1, `${m.cluster}|${m.detector}|${m.endpoint}`, () => ({ cluster: m.cluster, detector: m.detector, endpoint: m.endpoint }));
      else ejections.add(1, `${m.cluster}|${m.detector}`, () => ({ cluster: m.cluster, detector: m.detector }));
    });
    this.#on(channels.poolOverflow, (m: PoolOverflowMessage) => {
      if (mine(m)) overflows.add(1, m.cluster, () => ({ cluster: m.cluster }));
    });
    this.#on(channels.mirrorDropped, (m: MirrorDroppedMessage) => {
      if (mine(m)) mirrorDropped.add(1, `${m.cluster ?? ''}|${m.reason}`, () => ({ cluster: m.cluster ?? '', reason: m.reason }));
    });
    this.#on(accessLogDropped, (m: AccessLogDroppedMessage) => {
      if (mine(m)) logsDropped.add(m.count, `${m.provider}|${m.reason}`, () => ({ provider: m.provider, reason: m.reason }));
    });
    this.#on(channels.authzDecision, (m: ObservedAuthzDecision) => {
      if (!mine(m)) return;
      const r = m.result;
      // The engine hands out one result object per policy rule: its key is made once.
      let key = authzKeys.get(r);
      if (key === undefined) {
        key = `${r.policy ?? ''}|${r.action ?? ''}|${r.decision}`;
        authzKeys.set(r, key);
      }
      authz.add(1, key, authzAttributes, r);
      for (const d of r.dryRun) dryRun.add(1, `${d.policy ?? ''}|${d.action}|${d.result}`, () => ({ policy: d.policy ?? '', action: d.action, result: d.result }));
    });
    this.#on(channels.inboundRefused, (m: InboundRefusedMessage) => {
      if (mine(m)) refused.add(1, `${m.mode}|${m.transport}`, () => ({ mode: m.mode, transport: m.transport }));
    });

    const gauge = (name: keyof typeof MESH_METRICS) => meter.createObservableGauge(name, { description: MESH_METRICS[name].help, unit: MESH_METRICS[name].unit });
    const version = gauge('meshlet_config_version');
    const sourceGauge = gauge('meshlet_config_source');
    const appliedAt = gauge('meshlet_config_last_applied_timestamp_seconds');
    const ejected = gauge('meshlet_outlier_ejected_endpoints');
    // As a sidecar's proxy reports it: Istio's Grafana "Istio Component Versions" panel (sum by (component, tag) (istio_build)).
    const build = gauge('istio_build');
    const buildAttributes = { ...base, component: 'proxy', tag: MESHLET_VERSION };
    const tls = meter.createObservableCounter('meshlet_inbound_tls_requests_total', { description: MESH_METRICS.meshlet_inbound_tls_requests_total.help, unit: MESH_METRICS.meshlet_inbound_tls_requests_total.unit });
    this.#observables = [version, sourceGauge, appliedAt, ejected, build, tls, ...counters.map((c) => c.instrument)];
    const plaintext = { ...base, connection_security_policy: 'none' };
    const mutual = { ...base, connection_security_policy: 'mutual_tls' };
    const sources = CONFIG_SOURCES.map((s) => [s, { ...base, source: s }] as const);
    let hashed = { version: '', value: 0 };
    this.#collect = (r: BatchObservableResult) => {
      // Closed: this collection reports its final values; the callback goes after it (not during: the SDK is iterating its callbacks).
      if (this.#closed) queueMicrotask(() => this.#drop());
      const c = this.#source.config();
      if (hashed.version !== c.version) hashed = { version: c.version, value: versionNumber(c.version) };
      r.observe(version, hashed.value, base);
      r.observe(build, 1, buildAttributes);
      // Every source every time: the SDK keeps reporting an attribute set it once saw, so the old one must drop to 0.
      for (const [s, a] of sources) r.observe(sourceGauge, s === c.source ? 1 : 0, a);
      if (this.#appliedAt !== undefined) r.observe(appliedAt, this.#appliedAt, base);
      const present = new Set<string>();
      for (const cl of this.#source.outlierClusters()) {
        present.add(cl.name);
        this.#ejectedClusters.add(cl.name);
        r.observe(ejected, cl.ejected.length, { ...base, cluster: cl.name });
      }
      // A cluster that went away (or lost its outlier detection) reads 0, not its last count (the SDK would keep that).
      for (const name of this.#ejectedClusters) if (!present.has(name)) r.observe(ejected, 0, { ...base, cluster: name });
      // Config churn adds clusters for as long as the process runs: past MAX_CACHED, the gone ones (reported 0 by now) are forgotten.
      if (this.#ejectedClusters.size > MAX_CACHED) for (const name of this.#ejectedClusters) if (!present.has(name)) this.#ejectedClusters.delete(name);
      const t = this.#source.inboundTls();
      r.observe(tls, t.plaintext, plaintext);
      r.observe(tls, t.mtls, mutual);
      for (const c of counters) c.observe(r);
    };
    meter.addBatchObservableCallback(this.#collect, this.#observables);
  }

  /** The attributes every series of this mesh carries. */
  get baseAttributes(): Attributes {
    return this.#base;
  }

  #on<T>(ch: Channel, fn: (m: T) => void): void {
    const f = fn as (m: unknown) => void;
    ch.subscribe(f);
    this.#subscriptions.push([ch, f]);
  }

  /**
   * Stops counting: unsubscribes. Its counters and gauges are reported at the next collection
   * still (so what it counted since the last export is exported when the SDK shuts down after
   * the mesh closed), then no longer.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [ch, f] of this.#subscriptions) ch.unsubscribe(f);
    this.#subscriptions.length = 0;
    closedUncollected.add(this);
    // A reader that never collects keeps only the last few closed meshes.
    const oldest = closedUncollected.values().next().value as MeshMetrics;
    if (closedUncollected.size > MAX_CLOSED_UNCOLLECTED) oldest.#drop();
  }

  /** No longer reported. */
  #drop(): void {
    if (!closedUncollected.delete(this)) return;
    this.#meter.removeBatchObservableCallback(this.#collect, this.#observables);
  }
}

/** Closed meshes whose final values no collection has read yet (their callbacks are still registered). */
const closedUncollected = new Set<MeshMetrics>();
/** Most closed meshes kept for a collection. */
const MAX_CLOSED_UNCOLLECTED = 64;
