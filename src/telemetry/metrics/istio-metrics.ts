/**
 * Istio's standard HTTP metrics for one mesh, through the OpenTelemetry metrics API (the
 * application's MeterProvider exports them; without one nothing is recorded):
 *
 * | metric | instrument | unit | value |
 * |---|---|---|---|
 * | `istio_requests_total` | Counter | — | 1 per request |
 * | `istio_request_duration_milliseconds` | Histogram (Envoy's default buckets) | `ms` | request duration |
 * | `istio_request_bytes` | Histogram | `By` | request bytes |
 * | `istio_response_bytes` | Histogram | `By` | response bytes |
 *
 * `reporter="source"` data points come from `meshlet:call:end` (this mesh's outbound calls),
 * `reporter="destination"` ones from `meshlet:inbound:end` (requests its servers answered).
 * Outbound calls to in-mesh destinations carry Istio's metadata-exchange headers, and inbound
 * requests that carry them name their source workload (see `peer-metadata.ts`).
 *
 * @module
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { type Counter, createNoopMeter, type Histogram, type Meter, type MeterProvider, type MetricAttributes, metrics } from '@opentelemetry/api';
import type { AttemptStartMessage, CallEndMessage, InboundEndMessage, WorkloadIdentity } from '../../core/observe.ts';
import { DEFAULT_METRICS_CONFIG, type HttpMetric, METRIC_NAMES, type MetricsConfig, type ModeMetricsConfig } from './config.ts';
import { destinationReporterLabels, endpointPeer, type LocalWorkload, type MetricLabels, sourceReporterLabels, STANDARD_LABELS } from './labels.ts';
import { encodePeerMetadata, localPeerMetadata, nodeId, PEER_ID_HEADER, PEER_METADATA_HEADER, type PeerMetadata, PeerMetadataCache } from './peer-metadata.ts';
import { AttributeView, clientRecord, type PeerMetadata as CelPeer, serverRecord } from '../attributes.ts';
import { type CelActivation, type CompiledCel, compileCel } from '../cel.ts';
import { SeriesLimiter, type SeriesLimits, seriesKey } from './series.ts';

/** Envoy's default histogram buckets (ms for durations; the same bounds for sizes). */
export const ENVOY_DEFAULT_BUCKETS: readonly number[] = Object.freeze([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]);

/** The meter's instrumentation scope name. */
export const METER_NAME = 'meshlet';

/**
 * The `telemetry.metrics` options of `createMesh`.
 * @category Telemetry
 */
export interface MetricsOptions {
  /**
   * Record Istio's standard metrics (and exchange peer metadata) at all.
   * @defaultValue true
   */
  readonly enabled?: boolean;
  /**
   * The MeterProvider to record through.
   * @defaultValue the global one (`metrics.getMeterProvider()`, looked up again when it changes)
   */
  readonly meterProvider?: MeterProvider;
  /**
   * At most this many label sets per metric; data points beyond it are recorded under
   * `otel.metric.overflow="true"`, and a warning is logged once per metric. (Below the SDK's
   * default cardinality limit of 2000, so the SDK never folds meshlet's series itself.)
   * @defaultValue 1000
   */
  readonly maxSeries?: number;
  /**
   * A label set unseen this long no longer counts against `maxSeries`; `startTelemetry()`'s
   * Prometheus endpoint drops such series from its output after the same time.
   * @defaultValue 600000 (10 minutes)
   */
  readonly idleSeriesMs?: number;
  /**
   * The cluster name in `source_cluster` / `destination_cluster` (Istio's `CLUSTER_ID`).
   * @defaultValue 'Kubernetes'
   */
  readonly clusterId?: string;
}

/** What a mesh gives its metrics. */
export interface IstioMetricsContext {
  readonly identity: WorkloadIdentity;
  /** Istio's workload name (`WORKLOAD_NAME`). */
  readonly workloadName: string;
  readonly now: () => number;
  readonly warn: (message: string) => void;
  /** This workload's SPIFFE ID while it has a certificate, else ''. */
  readonly principal: () => string;
  /** True when an outbound call (an Exchange, at its attempt's start) goes to an in-mesh destination: it then carries the peer-metadata headers. */
  readonly inMesh: (call: object) => boolean;
  /** The IP named in the node ID. */
  readonly ip: string;
  /**
   * When an outbound call (an Exchange, at its end) went to its endpoint over Istio mTLS: this
   * workload's SPIFFE ID and the endpoint's (`source_principal` / `destination_principal` on
   * the client side); undefined otherwise.
   */
  readonly upstreamPrincipals?: (call: object) => { readonly local: string; readonly peer: string } | undefined;
}

interface Instruments {
  readonly provider: MeterProvider;
  /** The provider is the API's no-op one (no SDK installed): nothing is computed. */
  readonly noop: boolean;
  readonly requests: Counter;
  readonly duration: Histogram;
  readonly requestBytes: Histogram;
  readonly responseBytes: Histogram;
}

/** One tag override, compiled. */
interface CompiledTag {
  readonly name: string;
  readonly remove: boolean;
  readonly value: CompiledCel | undefined;
}

/** Per mode: per metric, disabled or the tag overrides to apply. */
interface CompiledMode {
  readonly disabled: boolean;
  readonly metrics: Record<HttpMetric, { readonly disabled: boolean; readonly tags: readonly CompiledTag[] }>;
}

const HTTP_METRICS = Object.keys(METRIC_NAMES) as HttpMetric[];
const STANDARD = new Set<string>(STANDARD_LABELS);

/** The standard metrics of one mesh. */
export class IstioMetrics {
  readonly #ctx: IstioMetricsContext;
  readonly #o: MetricsOptions;
  readonly #local: LocalWorkload;
  readonly #peers = new PeerMetadataCache();
  readonly #limiters: Record<HttpMetric, SeriesLimiter>;
  readonly #peerId: string;
  readonly #peerValue: string;
  #instruments: Instruments | undefined;
  #client: CompiledMode;
  #server: CompiledMode;
  #started = false;
  #recording = false;
  #checkedProvider: MeterProvider | undefined;

  constructor(ctx: IstioMetricsContext, o: MetricsOptions = {}) {
    this.#ctx = ctx;
    this.#o = o;
    const id = ctx.identity;
    const cluster = o.clusterId ?? 'Kubernetes';
    this.#local = {
      workload: ctx.workloadName,
      namespace: id.namespace,
      service: id.service,
      labels: id.labels,
      cluster,
      serviceHost: `${id.service}.${id.namespace}.svc.cluster.local`,
      principal: ctx.principal,
    };
    const me = localPeerMetadata({ workload: ctx.workloadName, namespace: id.namespace, labels: id.labels, cluster });
    this.#peerId = nodeId(ctx.ip, me);
    this.#peerValue = encodePeerMetadata(me);
    const limits: SeriesLimits = { maxSeries: o.maxSeries ?? 1000, idleMs: o.idleSeriesMs ?? 600_000 };
    const limiter = (metric: HttpMetric): SeriesLimiter =>
      new SeriesLimiter(limits, ctx.now, () => ctx.warn(`meshlet: ${METRIC_NAMES[metric]} reached ${limits.maxSeries} label sets (telemetry.metrics.maxSeries); data points with new label sets are recorded under otel.metric.overflow="true" until some are idle for ${limits.idleMs} ms`));
    this.#limiters = { REQUEST_COUNT: limiter('REQUEST_COUNT'), REQUEST_DURATION: limiter('REQUEST_DURATION'), REQUEST_SIZE: limiter('REQUEST_SIZE'), RESPONSE_SIZE: limiter('RESPONSE_SIZE') };
    this.#client = this.#compileMode(DEFAULT_METRICS_CONFIG.client);
    this.#server = this.#compileMode(DEFAULT_METRICS_CONFIG.server);
  }

  /** The header values this mesh's outbound calls carry (`x-envoy-peer-metadata-id`, `x-envoy-peer-metadata`). */
  get peerHeaders(): { readonly id: string; readonly value: string } {
    return { id: this.#peerId, value: this.#peerValue };
  }

  /** Overflow counts by metric name (data points recorded under the overflow attributes). */
  get overflows(): Readonly<Record<string, number>> {
    const out: Record<string, number> = Object.create(null);
    for (const m of HTTP_METRICS) out[METRIC_NAMES[m]] = this.#limiters[m].overflowed;
    return out;
  }

  /** Puts the merged Telemetry `metrics` section in use (new data points follow it). */
  configure(config: MetricsConfig): void {
    const off: ModeMetricsConfig = { disabled: true, overrides: new Map() };
    this.#client = this.#compileMode(config.enabled ? config.client : off);
    this.#server = this.#compileMode(config.enabled ? config.server : off);
    this.#checkRecording();
  }

  #compileMode(mode: ModeMetricsConfig): CompiledMode {
    const metricsOut = {} as Record<HttpMetric, { disabled: boolean; tags: CompiledTag[] }>;
    for (const metric of HTTP_METRICS) {
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
          this.#ctx.warn(`meshlet: Telemetry tagOverrides ${t.name} on ${METRIC_NAMES[metric]}: ${JSON.stringify(t.value)} does not compile (${(e as Error).message}); ${STANDARD.has(t.name) ? 'the tag is left out' : 'the tag is not added'}`);
          if (STANDARD.has(t.name)) tags.push({ name: t.name, remove: true, value: undefined });
          continue;
        }
        tags.push({ name: t.name, remove: false, value });
      }
      metricsOut[metric] = { disabled: o?.disabled === true, tags };
    }
    return { disabled: mode.disabled, metrics: metricsOut };
  }

  /**
   * Subscribes to `attempt:start` (metadata exchange: the destination's metrics need it whether
   * or not this process records any), and to `call:end` / `inbound:end` once there is a
   * MeterProvider that records (an SDK): without one the kernel builds no end messages for
   * metrics. A global provider registered later is noticed at the next outbound attempt or
   * config change.
   */
  start(): void {
    if (this.#started || this.#o.enabled === false) return;
    this.#started = true;
    subscribe('meshlet:attempt:start', this.#onAttemptStart);
    this.#checkRecording();
  }

  /** Unsubscribes. */
  close(): void {
    if (!this.#started) return;
    this.#started = false;
    unsubscribe('meshlet:attempt:start', this.#onAttemptStart);
    if (this.#recording) {
      this.#recording = false;
      unsubscribe('meshlet:call:end', this.#onCallEnd);
      unsubscribe('meshlet:inbound:end', this.#onInboundEnd);
    }
  }

  /** True once `call:end` / `inbound:end` are subscribed (a recording MeterProvider was found). */
  get recording(): boolean {
    return this.#recording;
  }

  #checkRecording(): void {
    if (this.#recording || !this.#started) return;
    const provider = this.#o.meterProvider ?? metrics.getMeterProvider();
    if (provider === this.#checkedProvider) return;
    this.#checkedProvider = provider;
    if (this.#resolve() === undefined) return;
    this.#recording = true;
    subscribe('meshlet:call:end', this.#onCallEnd);
    subscribe('meshlet:inbound:end', this.#onInboundEnd);
  }

  readonly #onAttemptStart = (message: unknown): void => {
    const m = message as AttemptStartMessage;
    if (m.workload !== this.#ctx.identity) return;
    this.#checkRecording();
    if (!this.#ctx.inMesh(m.call)) return;
    const headers = (m.call as { headers?: Record<string, unknown> }).headers;
    if (headers === undefined) return;
    headers[PEER_ID_HEADER] = this.#peerId;
    headers[PEER_METADATA_HEADER] = this.#peerValue;
  };

  readonly #onCallEnd = (message: unknown): void => {
    const m = message as CallEndMessage;
    if (m.workload !== this.#ctx.identity || this.#client.disabled) return;
    const inst = this.#resolve();
    if (inst === undefined) return;
    const peer = m.destination === undefined ? undefined : endpointPeer(m.destination);
    const labels = sourceReporterLabels(m, this.#local, peer, this.#ctx.upstreamPrincipals?.(m.call));
    this.#record(inst, this.#client, labels, m.durationMs, m.requestBytes, m.responseBytes, () => new AttributeView(clientRecord(m, peer === undefined ? {} : { peer: celPeer(peer) })));
  };

  readonly #onInboundEnd = (message: unknown): void => {
    const m = message as InboundEndMessage;
    if (m.workload !== this.#ctx.identity || this.#server.disabled) return;
    const inst = this.#resolve();
    if (inst === undefined) return;
    const id = m.headers[PEER_ID_HEADER];
    const value = m.headers[PEER_METADATA_HEADER];
    const peer = typeof value === 'string' && value !== '' ? this.#peers.get(typeof id === 'string' ? id : '', value) : undefined;
    const labels = destinationReporterLabels(m, this.#local, peer);
    this.#record(inst, this.#server, labels, m.durationMs, m.requestBytes, m.responseBytes, () => new AttributeView(serverRecord(m, peer === undefined ? {} : { peer: celPeer(peer) })));
  };

  #record(inst: Instruments, mode: CompiledMode, base: MetricLabels, durationMs: number, requestBytes: number, responseBytes: number, view: () => CelActivation): void {
    const values = { REQUEST_COUNT: 1, REQUEST_DURATION: durationMs, REQUEST_SIZE: requestBytes, RESPONSE_SIZE: responseBytes };
    let plain: { key: string; labels: MetricLabels } | undefined;
    let activation: CelActivation | undefined;
    for (const metric of HTTP_METRICS) {
      const cfg = mode.metrics[metric];
      if (cfg.disabled) continue;
      let labels: MetricLabels;
      let key: string;
      if (cfg.tags.length === 0) {
        plain ??= { key: seriesKey(base), labels: base };
        labels = plain.labels;
        key = plain.key;
      } else {
        labels = Object.assign(Object.create(null) as MetricLabels, base);
        for (const t of cfg.tags) {
          if (t.remove) delete labels[t.name];
          else {
            activation ??= view();
            // An expression that is an error for this request makes the tag `unknown`, as in the proxy.
            labels[t.name] = (t.value as CompiledCel).text(activation) ?? 'unknown';
          }
        }
        key = seriesKey(labels);
      }
      const attrs = this.#limiters[metric].admit(key, labels as MetricAttributes);
      const v = values[metric];
      if (metric === 'REQUEST_COUNT') inst.requests.add(1, attrs);
      else if (metric === 'REQUEST_DURATION') inst.duration.record(v, attrs);
      else if (metric === 'REQUEST_SIZE') inst.requestBytes.record(v, attrs);
      else inst.responseBytes.record(v, attrs);
    }
  }

  /** The instruments of the current MeterProvider (made again when the global one changes). */
  #resolve(): Instruments | undefined {
    const provider = this.#o.meterProvider ?? metrics.getMeterProvider();
    const cur = this.#instruments;
    if (cur !== undefined && cur.provider === provider) return cur.noop ? undefined : cur;
    const meter: Meter = provider.getMeter(METER_NAME);
    const noop = meter.constructor === NOOP_METER_CLASS;
    const boundaries = { advice: { explicitBucketBoundaries: [...ENVOY_DEFAULT_BUCKETS] } };
    this.#instruments = {
      provider,
      noop,
      requests: meter.createCounter(METRIC_NAMES.REQUEST_COUNT, { description: 'Requests, counted when they end (Istio standard metric)' }),
      duration: meter.createHistogram(METRIC_NAMES.REQUEST_DURATION, { description: 'Request duration (Istio standard metric)', unit: 'ms', ...boundaries }),
      requestBytes: meter.createHistogram(METRIC_NAMES.REQUEST_SIZE, { description: 'Request size (Istio standard metric)', unit: 'By', ...boundaries }),
      responseBytes: meter.createHistogram(METRIC_NAMES.RESPONSE_SIZE, { description: 'Response size (Istio standard metric)', unit: 'By', ...boundaries }),
    };
    return noop ? undefined : this.#instruments;
  }
}

const NOOP_METER_CLASS = createNoopMeter().constructor;

/** A peer as the CEL attribute view names it (`filter_state.upstream_peer` / `downstream_peer`). */
function celPeer(p: PeerMetadata): CelPeer {
  return { namespace: p.namespace, cluster: p.cluster, service: p.canonicalName, revision: p.canonicalRevision, app: p.app, version: p.version, workload: p.workload, name: p.instance };
}
