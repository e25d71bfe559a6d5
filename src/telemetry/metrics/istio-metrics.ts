/**
 * Istio's standard HTTP and gRPC metrics for one mesh, through the OpenTelemetry metrics API (the
 * application's MeterProvider exports them; without one nothing is recorded):
 *
 * | metric | instrument | unit | value |
 * |---|---|---|---|
 * | `istio_requests_total` | Counter | — | 1 per request |
 * | `istio_request_duration_milliseconds` | Histogram (Envoy's default buckets) | `ms` | request duration |
 * | `istio_request_bytes` | Histogram | `By` | request bytes |
 * | `istio_response_bytes` | Histogram | `By` | response bytes |
 * | `istio_request_messages_total` | Counter | — | gRPC messages the client sent (gRPC calls only) |
 * | `istio_response_messages_total` | Counter | — | gRPC messages the server sent (gRPC calls only) |
 *
 * The gRPC message counts are a call's, as Envoy's grpc_stats filter counts them on the
 * downstream stream (streams included; a retried call's messages count once), added when the call
 * ends; only adapters that frame messages count them (the grpc-js client and server). As the
 * proxy's stats filter reports them, they carry the reporter's and the peers' labels only (no
 * request_protocol, response_code, grpc_response_status, response_flags,
 * connection_security_policy).
 *
 * `reporter="source"` data points come from `meshlet:call:end` (this mesh's outbound calls),
 * `reporter="destination"` ones from `meshlet:inbound:end` (requests its servers answered).
 * Outbound calls carry Istio's metadata-exchange headers (`stamp`), inbound requests with them name
 * their source workload (`peer-metadata.ts`). Its options and what the mesh gives it: `options.ts`.
 *
 * @module
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { type MeterProvider, type MetricAttributes, metrics } from '@opentelemetry/api';
import type { AttemptStartMessage, CallEndMessage, InboundEndMessage, ResponseTap, TappedCall } from '../../core/observe.ts';
import { DEFAULT_METRICS_CONFIG, METRIC_NAMES, type MetricsConfig, type ModeMetricsConfig } from './config.ts';
import { destinationReporterLabels, endpointPeer, type LocalWorkload, type MetricLabels, messageLabels, sourceReporterLabels } from './labels.ts';
import { encodePeerMetadata, localPeerMetadata, nodeId, PEER_ID_HEADER, PEER_METADATA_HEADER, type PeerMetadata, PeerMetadataCache } from './peer-metadata.ts';
import { AttributeView, clientRecord, type PeerMetadata as CelPeer, serverRecord } from '../attributes.ts';
import type { CelActivation, CompiledCel } from '../cel.ts';
import type { HeaderMap } from '../record.ts';
import { type CompiledMode, compileMode } from './compiled-mode.ts';
import { DESCRIPTIONS, ENVOY_DEFAULT_BUCKETS, type Instruments, instrumentsOf } from './instruments.ts';
import { addSeriesSource, aggregatingLocally, removeSeriesSource, type SeriesSource } from './outlet.ts';
import { type MetricSeries, MetricSeriesStore, type SeriesLimits, seriesKey } from './series.ts';
import { addLocally, type DataPoints, recordThrough } from './data-points.ts';
import { GRPC_MESSAGE_METRICS_AT, HTTP_METRICS, isCounter, type SeriesGroup, SeriesGroups } from './series-groups.ts';
import type { IstioMetricsContext, MetricsOptions } from './options.ts';

export { ENVOY_DEFAULT_BUCKETS, METER_NAME } from './instruments.ts';

/** A server-side request's label inputs (besides its caller's peer metadata `by`) and the series group they gave. */
interface LastServer { readonly by: object; readonly port: number; readonly messages: boolean; readonly status: number; readonly flags: string; readonly grpcStatus: number; readonly protocol: string; readonly peerPrincipal: string; readonly localPrincipal: string; readonly group: SeriesGroup }
/** A client-side call's label inputs (besides its destination entry `by`) and the series group they gave. */
interface LastClient { readonly by: object; readonly messages: boolean; readonly status: number; readonly flags: string; readonly grpcStatus: number; readonly protocol: string; readonly service: string | undefined; readonly serviceNs: string; readonly authority: string; readonly cluster: string; readonly destNamespace: string; readonly tlsLocal: string; readonly tlsPeer: string; readonly group: SeriesGroup }

/** Whether a request gives the gRPC message counters: a gRPC call whose adapter counted its messages. */
function countsMessages(m: { readonly protocol: string; readonly requestMessages?: number | undefined }): boolean {
  return m.protocol === 'grpc' && m.requestMessages !== undefined;
}

/** Key objects for the group caches when a call has no destination entry / a request no peer metadata. */
const NO_DESTINATION = {};
const NO_PEER = {};

/** The standard metrics of one mesh. */
export class IstioMetrics {
  readonly #ctx: IstioMetricsContext;
  readonly #o: MetricsOptions;
  #local: LocalWorkload;
  readonly #peers = new PeerMetadataCache();
  readonly #stores: readonly MetricSeriesStore[];
  readonly #source: SeriesSource;
  /** The series groups of each side, remembered for requests that give the same labels. */
  readonly #groups: SeriesGroups;
  /** The client side's last call inputs and their group. */
  #lastClient: LastClient | undefined;
  /** The same, per destination entry (calls spread over a service's endpoints alternate between them). */
  #lastClientOf = new WeakMap<object, LastClient>();
  /** The server side's last request inputs and their group. */
  #lastServer: LastServer | undefined;
  /** The same, per caller (a server called by several workloads or pods alternates between them). */
  #lastServerOf = new WeakMap<object, LastServer>();
  readonly #peerId: string;
  readonly #peerValue: string;
  #instruments: Instruments | undefined;
  #client: CompiledMode;
  #server: CompiledMode;
  #started = false;
  #recording = false;
  #checkedProvider: MeterProvider | undefined;
  /** When the next store may look for idle label sets (the earliest of theirs). */
  #nextSweep = Number.NEGATIVE_INFINITY;

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
    this.#stores = HTTP_METRICS.map(
      (metric) =>
        new MetricSeriesStore(limits, ctx.now, isCounter(metric) ? undefined : ENVOY_DEFAULT_BUCKETS, () =>
          ctx.warn(`meshlet: ${METRIC_NAMES[metric]} reached ${limits.maxSeries} label sets (telemetry.metrics.maxSeries); data points with new label sets are recorded under otel.metric.overflow="true" until some are idle for ${limits.idleMs} ms`),
        ),
    );
    this.#groups = new SeriesGroups(this.#stores, 2 * limits.maxSeries);
    this.#source = { metrics: new Map(HTTP_METRICS.map((metric, i) => [METRIC_NAMES[metric], { store: this.#stores[i] as MetricSeriesStore, ...DESCRIPTIONS[metric] }])) };
    this.#client = compileMode(DEFAULT_METRICS_CONFIG.client, HTTP_METRICS, ctx.warn);
    this.#server = compileMode(DEFAULT_METRICS_CONFIG.server, HTTP_METRICS, ctx.warn);
  }

  /** The header values this mesh's outbound calls carry (`x-envoy-peer-metadata-id`, `x-envoy-peer-metadata`). */
  get peerHeaders(): { readonly id: string; readonly value: string } {
    return { id: this.#peerId, value: this.#peerValue };
  }

  /** Overflow counts by metric name (data points recorded under the overflow attributes). */
  get overflows(): Readonly<Record<string, number>> {
    const out: Record<string, number> = Object.create(null);
    HTTP_METRICS.forEach((m, i) => {
      out[METRIC_NAMES[m]] = (this.#stores[i] as MetricSeriesStore).overflowed;
    });
    return out;
  }

  /**
   * Puts the merged Telemetry `metrics` section in use (new data points follow it), with the
   * services that reach this workload's local ports (`destination_service` on the server side).
   */
  configure(config: MetricsConfig, inboundHosts?: ReadonlyMap<number, string>): void {
    if (inboundHosts !== undefined) this.#local = { ...this.#local, inboundHosts };
    const off: ModeMetricsConfig = { disabled: true, overrides: new Map() };
    this.#client = compileMode(config.enabled ? config.client : off, HTTP_METRICS, this.#ctx.warn);
    this.#server = compileMode(config.enabled ? config.server : off, HTTP_METRICS, this.#ctx.warn);
    this.#groups.forget();
    this.#lastServer = undefined;
    this.#lastServerOf = new WeakMap();
    this.#lastClient = undefined;
    this.#lastClientOf = new WeakMap();
    this.#checkRecording();
  }

  /**
   * Subscribes to `attempt:start` (metadata exchange: the destination's metrics need it whether
   * or not this process records any), and to `call:end` / `inbound:end` once there is a
   * MeterProvider that records (an SDK): without one the kernel builds no end messages for
   * metrics. A global provider registered later is noticed at the next outbound attempt, config
   * change or {@link IstioMetrics.checkProvider} (the mesh calls it once a second until then).
   */
  start(): void {
    if (this.#started || this.#o.enabled === false) return;
    this.#started = true;
    addSeriesSource(this.#source);
    subscribe('meshlet:attempt:start', this.#onAttemptStart);
    this.#checkRecording();
  }

  /** Unsubscribes. */
  close(): void {
    if (!this.#started) return;
    this.#started = false;
    removeSeriesSource(this.#source);
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

  /** Looks again for a MeterProvider that records (the mesh does, once a second, until one is found). */
  checkProvider(): void {
    this.#checkRecording();
  }

  #checkRecording(): void {
    if (this.#recording || !this.#started) return;
    const local = aggregatingLocally();
    const provider = this.#o.meterProvider ?? metrics.getMeterProvider();
    if (provider === this.#checkedProvider && !local) return;
    this.#checkedProvider = provider;
    if (!local && this.#resolve() === undefined) return;
    this.#recording = true;
    subscribe('meshlet:call:end', this.#onCallEnd);
    subscribe('meshlet:inbound:end', this.#onInboundEnd);
  }

  readonly #onAttemptStart = (message: unknown): void => {
    const m = message as AttemptStartMessage;
    if (m.workload !== this.#ctx.identity) return;
    this.#checkRecording();
    if (this.#ctx.inMesh(m.call)) this.stamp(m.call);
  };

  /** Stamps a call with this workload's metadata-exchange headers; the answer's are taken off its response (a passthrough call's too, under UNDEFINED). */
  stamp(call: object): void {
    const headers = (call as { headers?: Record<string, unknown> }).headers;
    if (headers === undefined) return;
    headers[PEER_ID_HEADER] = this.#peerId;
    headers[PEER_METADATA_HEADER] = this.#peerValue;
    (call as TappedCall).responseTap = this.#responseTap;
  }

  /**
   * The response direction of the exchange: the destination's sidecar (or mesh) answers with its
   * own metadata, which names the destination workload (app, version, …) for this call's
   * metrics; the headers are taken off the response, as the proxy does, so the app never sees them.
   */
  readonly #responseTap: ResponseTap = {
    onResponseHead: (call, headers) => {
      const value = headers[PEER_METADATA_HEADER];
      const id = headers[PEER_ID_HEADER];
      if (value === undefined && id === undefined) return false;
      delete headers[PEER_METADATA_HEADER];
      delete headers[PEER_ID_HEADER];
      if (typeof value === 'string' && value !== '') call.tapState = this.#peers.get(typeof id === 'string' ? id : '', value);
      return true;
    },
  };

  readonly #onCallEnd = (message: unknown): void => {
    const m = message as CallEndMessage;
    const mode = this.#client;
    if (m.workload !== this.#ctx.identity || mode.disabled) return;
    const outlet = this.#outlet();
    if (outlet === undefined) return;
    const tls = this.#ctx.upstreamPrincipals?.(m.call);
    // What the destination said of itself (metadata exchange), else its registry entry.
    const exchanged = (m.call as Partial<TappedCall>).tapState as PeerMetadata | undefined;
    if (!mode.plain) {
      const peer = exchanged ?? (m.destination === undefined ? undefined : endpointPeer(m.destination));
      // The call's request headers (as the access log reads them: the exchange's own), for `request.headers` / `request.useragent` / … — the view is made only when a tag is evaluated.
      const requestHeaders = (m.call as { headers?: HeaderMap }).headers;
      this.#recordEach(outlet, mode, sourceReporterLabels(m, this.#local, peer, tls), m, countsMessages(m), () => new AttributeView(clientRecord(m, { ...(peer === undefined ? {} : { peer: celPeer(peer) }), ...(requestHeaders === undefined ? {} : { requestHeaders }) })), undefined);
      return;
    }
    // The labels follow from the destination's registry entry (or what it said of itself) and these inputs only.
    const by = exchanged ?? m.destination?.labels ?? NO_DESTINATION;
    const destNamespace = m.destination?.namespace ?? '';
    const service = m.destinationService;
    const serviceNs = m.destinationServiceNamespace ?? '';
    // Without a destination service the Host header and the cluster name the destination.
    const authority = service === undefined ? m.authority : '';
    const cluster = service === undefined ? (m.cluster ?? m.catchAll ?? '') : '';
    const tlsLocal = tls?.local ?? '';
    const tlsPeer = tls?.peer ?? '';
    const messages = countsMessages(m);
    // Most calls give the same inputs as the call before: its group, without making the key.
    let last = this.#lastClient;
    if (last === undefined || last.by !== by) last = this.#lastClientOf.get(by);
    if (last !== undefined && last.status === m.status && last.flags === m.flags && last.grpcStatus === m.grpcStatus && last.protocol === m.protocol && last.messages === messages && last.service === service && last.serviceNs === serviceNs && last.authority === authority && last.cluster === cluster && last.destNamespace === destNamespace && last.tlsLocal === tlsLocal && last.tlsPeer === tlsPeer && this.#groups.valid(last.group)) {
      this.#add(outlet, last.group.series, m, undefined);
      return;
    }
    const key = `${destNamespace}\u0000${m.status}\u0000${m.flags}\u0000${m.grpcStatus}\u0000${m.protocol}${messages ? '' : '-'}\u0000${service === undefined ? `\u0001${authority}\u0001${cluster}` : `${service}\u0002${serviceNs}`}\u0000${tlsLocal}\u0000${tlsPeer}`;
    const groups = this.#groups.of('client', by);
    let g = groups.get(key);
    if (g === undefined || !this.#groups.valid(g)) {
      g = this.#groups.make(mode, sourceReporterLabels(m, this.#local, exchanged ?? (m.destination === undefined ? undefined : endpointPeer(m.destination)), tls), messages);
      groups.set(key, g);
    }
    this.#lastClient = { by, messages, status: m.status, flags: m.flags, grpcStatus: m.grpcStatus, protocol: m.protocol, service, serviceNs, authority, cluster, destNamespace, tlsLocal, tlsPeer, group: g };
    this.#lastClientOf.set(by, this.#lastClient);
    this.#add(outlet, g.series, m, undefined);
  };

  readonly #onInboundEnd = (message: unknown): void => {
    const m = message as InboundEndMessage;
    const mode = this.#server;
    // A connection STRICT refused (no mesh identity) matches no filter chain of a sidecar's
    // inbound listener: no HTTP connection manager, so no istio_stats filter and no request metric
    // (only the listener's access log, Istio's NR filter).
    if (m.workload !== this.#ctx.identity || mode.disabled || m.details === 'filter_chain_not_found') return;
    const outlet = this.#outlet();
    if (outlet === undefined) return;
    // Taken off the request by the server adapter (or still in the headers, from adapters that leave them).
    const id = m.peerMetadata?.id ?? m.headers[PEER_ID_HEADER];
    const value = m.peerMetadata?.value ?? m.headers[PEER_METADATA_HEADER];
    const peer = typeof value === 'string' && value !== '' ? this.#peers.get(typeof id === 'string' ? id : '', value) : undefined;
    if (!mode.plain) {
      this.#recordEach(outlet, mode, destinationReporterLabels(m, this.#local, peer), m, countsMessages(m), () => new AttributeView(serverRecord(m, peer === undefined ? {} : { peer: celPeer(peer) })), m.endedAt);
      return;
    }
    // The labels follow from the caller's peer metadata and these inputs only.
    const by = peer ?? NO_PEER;
    const peerPrincipal = m.peer?.principal ?? '';
    const localPrincipal = m.mtls ? this.#local.principal() : '';
    const messages = countsMessages(m);
    // Most requests give the same inputs as the one before: its group, without making the key.
    let last = this.#lastServer;
    if (last === undefined || last.by !== by) last = this.#lastServerOf.get(by);
    if (last !== undefined && last.port === m.localPort && last.status === m.status && last.flags === m.flags && last.grpcStatus === m.grpcStatus && last.protocol === m.protocol && last.messages === messages && last.peerPrincipal === peerPrincipal && last.localPrincipal === localPrincipal && this.#groups.valid(last.group)) {
      this.#add(outlet, last.group.series, m, m.endedAt);
      return;
    }
    // The local port picks destination_service (its oldest Service); its host, not the port, keys the group.
    const key = `${m.status}\u0000${m.flags}\u0000${m.grpcStatus}\u0000${m.protocol}${messages ? '' : '-'}\u0000${peerPrincipal}\u0000${localPrincipal}\u0000${this.#local.inboundHosts?.get(m.localPort) ?? ''}`;
    const groups = this.#groups.of('server', by);
    let g = groups.get(key);
    if (g === undefined || !this.#groups.valid(g)) {
      g = this.#groups.make(mode, destinationReporterLabels(m, this.#local, peer), messages);
      groups.set(key, g);
    }
    this.#lastServer = { by, port: m.localPort, messages, status: m.status, flags: m.flags, grpcStatus: m.grpcStatus, protocol: m.protocol, peerPrincipal, localPrincipal, group: g };
    this.#lastServerOf.set(by, this.#lastServer);
    this.#add(outlet, g.series, m, m.endedAt);
  };

  /** Records a request whose metrics have tag overrides: each metric's labels are worked out on their own. */
  #recordEach(outlet: Instruments | 'local', mode: CompiledMode, base: MetricLabels, m: DataPoints, messages: boolean, view: () => CelActivation, endedAt: number | undefined): void {
    let activation: CelActivation | undefined;
    const series: (MetricSeries | undefined)[] = [];
    HTTP_METRICS.forEach((metric, i) => {
      const cfg = mode.metrics[metric];
      if (cfg.disabled || (!messages && i >= GRPC_MESSAGE_METRICS_AT)) {
        series.push(undefined);
        return;
      }
      const labels = i >= GRPC_MESSAGE_METRICS_AT ? messageLabels(base) : Object.assign(Object.create(null) as MetricLabels, base);
      for (const t of cfg.tags) {
        if (t.remove) delete labels[t.name];
        else {
          activation ??= view();
          // An expression that is an error for this request makes the tag `unknown`, as in the proxy.
          labels[t.name] = (t.value as CompiledCel).text(activation) ?? 'unknown';
        }
      }
      series.push((this.#stores[i] as MetricSeriesStore).series(seriesKey(labels), Object.freeze(labels) as MetricAttributes));
    });
    this.#add(outlet, series, m, endedAt);
  }

  /** One request's data points: added to meshlet's own series, or recorded through the API. */
  #add(outlet: Instruments | 'local', series: readonly (MetricSeries | undefined)[], m: DataPoints, endedAt: number | undefined): void {
    // The end message's own clock reading when it has one (a clock read is 100–150 ns on a VM).
    const now = endedAt ?? this.#ctx.now();
    for (let i = 0; i < series.length; i++) {
      const s = series[i];
      if (s !== undefined) s.lastSeen = now;
    }
    // The stores look for idle label sets once `idleMs` has passed since their last look: one comparison per request until then.
    if (now >= this.#nextSweep) this.#sweep(now);
    if (outlet === 'local') addLocally(series, m);
    else recordThrough(outlet, series, m);
  }

  #sweep(now: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (const store of this.#stores) next = Math.min(next, store.tick(now));
    this.#nextSweep = next;
  }

  /** Where data points go now: meshlet's own series (a producer reads them), the API's instruments, or nowhere (no SDK). */
  #outlet(): Instruments | 'local' | undefined {
    return aggregatingLocally() ? 'local' : this.#resolve();
  }

  /** The instruments of the current MeterProvider (made again when the global one changes), undefined without an SDK. */
  #resolve(): Instruments | undefined {
    const provider = this.#o.meterProvider ?? metrics.getMeterProvider();
    const cur = this.#instruments;
    if (cur === undefined || cur.provider !== provider) this.#instruments = instrumentsOf(provider);
    return this.#instruments?.noop === true ? undefined : this.#instruments;
  }

}

/** A peer as the CEL attribute view names it (`filter_state.upstream_peer` / `downstream_peer`). */
export function celPeer(p: PeerMetadata): CelPeer {
  return { namespace: p.namespace, cluster: p.cluster, service: p.canonicalName, revision: p.canonicalRevision, app: p.app, version: p.version, workload: p.workload, name: p.instance };
}
