/**
 * A mesh's access logs: Envoy-format lines for the calls the app makes (`meshlet:call:end`,
 * the client side) and the requests its servers answer (`meshlet:inbound:end`, the server
 * side), as the Telemetry resources and MeshConfig settings say (`config.ts`); `envoyOtelAls`
 * providers' records go to their collectors (`otel-exporter.ts`), `envoyHttpAls` providers'
 * entries to their log services (`als-streamer.ts`). It subscribes to
 * the observation channels only while a side has a log to write, so a mesh without access logs
 * costs nothing; it handles only its own mesh's messages.
 *
 * @module
 */
import type { AnyResource, Resource } from '../../config/resource.ts';
import { type Clock, epochOf, systemClock } from '../../core/clock.ts';
import { type CallEndMessage, type CallStartMessage, channels, type InboundEndMessage, type WorkloadIdentity } from '../../core/observe.ts';
import { ATTRIBUTE_ROOTS, AttributeView } from '../attributes.ts';
import { type CompiledCel, compileCel } from '../cel.ts';
import { clientRecord, type RequestRecord, serverRecord } from '../record.ts';
import { selectTelemetry } from '../select.ts';
import { type AccessLogOptions, type AccessLogProviderConfig, type ResolvedLog, resolveAccessLogs } from './config.ts';
import { compileJsonFormat, compileTextFormat, type JsonFormatter, type TextFormatter } from './format.ts';
import { type AccessLogLogger, type EntryWriter, Writers } from './writers.ts';
import type { UnaryRequester } from '../../core/unary-call.ts';
import { compileSubstitution } from './format.ts';
import { type AccessLogDropReason, OtelLogExporter, type OtelExportStats } from './otel-exporter.ts';
import { type TelemetryFlushMessage, telemetryFlush } from '../flush-channel.ts';
import { encodeLogRecord, spanIdBytes, traceIdBytes } from './otlp-wire.ts';
import { otelTarget, type ResolvedOtelLog } from './otel-config.ts';
import type { ResolvedHttpAls } from './als-config.ts';
import { AlsStreamer, type ClientStreamRequester } from './als-streamer.ts';
import { encodeHttpEntry, encodeIdentifier } from './als-wire.ts';
import { nodeId } from '../tracing/tags.ts';
import { AccessLogPeers } from './peers.ts';
import { LogCapture } from './capture.ts';
import type { OperatorNeed } from './operators.ts';

/** What an {@link AccessLogger} needs from its mesh. */
export interface AccessLoggerOptions {
  readonly workload: WorkloadIdentity;
  /** MeshConfig `rootNamespace`. */
  readonly rootNamespace: string;
  /** The mesh's clock: with the system clock, start times are wall-clock times; an injected clock's `now()` is read as ms since the epoch. */
  readonly clock: Clock;
  readonly logger: AccessLogLogger;
  /** MeshConfig `extensionProviders`. */
  readonly providers: readonly AccessLogProviderConfig[];
  /** MeshConfig access-log settings. */
  readonly options: AccessLogOptions;
  /**
   * The grpc-js client `envoyOtelAls` records are exported with to `host:port` (the mesh's own
   * calls, through the mesh); undefined: those providers log nothing (a warning says so).
   */
  readonly otelClient?: ((target: string) => UnaryRequester) | undefined;
  /** The grpc-js client `envoyHttpAls` entries are streamed with to `host:port` (the mesh's own calls); undefined: those providers log nothing (warned). */
  readonly alsClient?: ((target: string) => ClientStreamRequester) | undefined;
  /** The workload's address (the node id an `envoyHttpAls` stream's identifier carries). @defaultValue '127.0.0.1' */
  readonly sourceIp?: string | undefined;
  /** Records an `envoyOtelAls` provider dropped, and lines a file dropped (meshlet's own metrics count them). */
  readonly onOtelDropped?: ((provider: string, count: number, reason: AccessLogDropReason) => void) | undefined;
  /**
   * The hex ids of the span the mesh made for a call (`call:end`'s `call`) or a served request
   * (`inbound:end`'s `request`), if it made one: an `envoyOtelAls` record's `trace_id` / `span_id`.
   */
  readonly spanIds?: ((callOrRequest: object) => { readonly traceId: string; readonly spanId: string } | undefined) | undefined;
}

interface CompiledLog {
  readonly provider: string;
  readonly filter: CompiledCel | undefined;
  readonly text: TextFormatter | undefined;
  readonly json: JsonFormatter | undefined;
  readonly writer: EntryWriter;
  /** An `envoyOtelAls` log: makes the record of the call or request `key` and hands it to the exporter (instead of `writer`). */
  readonly otel?: ((r: RequestRecord, key: object) => void) | undefined;
  /** An `envoyHttpAls` log: makes the request's entry and hands it to the stream (instead of `writer`). */
  readonly stream?: ((r: RequestRecord) => void) | undefined;
}

const NO_WRITER: EntryWriter = { write: () => undefined };

/** Writes one mesh's access logs. */
export class AccessLogger {
  readonly #o: AccessLoggerOptions;
  readonly #writers: Writers;
  readonly #wallNow: () => number;
  #client: readonly CompiledLog[] = [];
  #server: readonly CompiledLog[] = [];
  /** Warnings already given (each is said once). */
  readonly #warned = new Set<string>();
  /** The `call:start` of each call in flight (its headers), for its `call:end`. */
  #starts = new WeakMap<object, CallStartMessage>();
  #subscribedClient = false;
  #subscribedServer = false;
  /** One exporter per `envoyOtelAls` provider and collector, kept across configs. */
  readonly #exporters = new Map<string, OtelLogExporter | AlsStreamer>();
  /** The peer of each call and request (`%FILTER_STATE(upstream_peer)%`, …). */
  readonly #peers = new AccessLogPeers();
  /** What the logs in use need captured besides the end messages (TLS details, response heads). */
  readonly #capture: LogCapture;

  constructor(o: AccessLoggerOptions) {
    this.#o = o;
    this.#writers = new Writers(o.logger, o.clock);
    this.#capture = new LogCapture(o.workload, o.clock);
    const clock = o.clock;
    const epoch = epochOf(clock);
    this.#wallNow = clock === systemClock ? Date.now : () => epoch + clock.now();
  }

  /** The providers that write for each side (for tests and diagnostics). */
  get active(): { readonly client: readonly string[]; readonly server: readonly string[] } {
    return { client: this.#client.map((l) => l.provider), server: this.#server.map((l) => l.provider) };
  }

  /** True while an `envoyOtelAls` log is in use: its records carry the ids of the request's span ({@link AccessLoggerOptions.spanIds}). */
  get wantsSpanIds(): boolean {
    return this.#client.some((l) => l.otel !== undefined) || this.#server.some((l) => l.otel !== undefined);
  }

  /** Applies the config in use: which logs each side writes. */
  install(resources: readonly (AnyResource | Resource)[]): void {
    const w = this.#o.workload;
    const { applied } = selectTelemetry(resources, { namespace: w.namespace, labels: w.labels }, this.#o.rootNamespace);
    const client = resolveAccessLogs(applied, this.#o.providers, this.#o.options, 'CLIENT');
    const server = resolveAccessLogs(applied, this.#o.providers, this.#o.options, 'SERVER');
    const clientNeeds = new Set<OperatorNeed>();
    const serverNeeds = new Set<OperatorNeed>();
    this.#client = this.#compile(client, clientNeeds);
    this.#server = this.#compile(server, serverNeeds);
    this.#capture.use(clientNeeds, serverNeeds);
    // Files no log of this config writes are closed (a reload moved the log elsewhere, or dropped it).
    this.#writers.use([...client.logs, ...server.logs].filter((l) => l.otel === undefined && l.als === undefined).map((l) => l.path));
    this.#subscribe();
  }

  #warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#o.logger.warn(`meshlet: ${message}`);
  }

  /** Compiles the logs of one side; what their formats need captured is added to `needs`. */
  #compile(r: { readonly logs: readonly ResolvedLog[]; readonly findings: readonly string[] }, needs: Set<OperatorNeed>): CompiledLog[] {
    for (const f of r.findings) this.#warn(f);
    const out: CompiledLog[] = [];
    for (const log of r.logs) {
      let filter: CompiledCel | undefined;
      let text: TextFormatter | undefined;
      let json: JsonFormatter | undefined;
      try {
        if (log.filter !== undefined) {
          filter = compileCel(log.filter);
          const unknown = filter.roots.filter((r) => !ATTRIBUTE_ROOTS.includes(r));
          if (unknown.length > 0) this.#warn(`access log "${log.provider}": filter ${JSON.stringify(log.filter)} reads ${unknown.join(', ')}, which no request has (attributes: ${ATTRIBUTE_ROOTS.join(', ')}): it is an error, so false, for every request`);
        }
      } catch (e) {
        // Envoy would refuse the listener; meshlet writes nothing for this provider rather than every request.
        this.#warn(`access log "${log.provider}": filter ${(e as Error).message}; nothing is logged by this provider`);
        continue;
      }
      if (log.als !== undefined) {
        const stream = this.#als(log.provider, log.als);
        if (stream === undefined) continue;
        // The entry's tls_properties, request and response times and upstream_local_address.
        needs.add('tls').add('response').add('request');
        out.push({ provider: log.provider, filter, text: undefined, json: undefined, writer: NO_WRITER, stream });
        continue;
      }
      if (log.otel !== undefined) {
        const otel = this.#otel(log.provider, log.otel, needs);
        if (otel !== undefined) out.push({ provider: log.provider, filter, text: undefined, json: undefined, writer: NO_WRITER, otel });
        continue;
      }
      try {
        if (log.format.kind === 'text') text = compileTextFormat(log.format.text, log.omitEmptyValues, needs);
        else json = compileJsonFormat(log.format.labels, log.omitEmptyValues, needs);
      } catch (e) {
        this.#warn(`access log "${log.provider}": invalid ${log.format.kind === 'text' ? 'text' : 'JSON'} format: ${(e as Error).message}; nothing is logged by this provider`);
        continue;
      }
      const provider = log.provider;
      out.push({ provider, filter, text, json, writer: this.#writers.for(log.path, (reason, n) => this.#o.onOtelDropped?.(provider, n, reason)) });
    }
    return out;
  }

  /**
   * What an `envoyOtelAls` log does with a record: Envoy's `AccessLog::emitLog` — the body and
   * each attribute formatted as strings (a missing value is `-`), the request's start time, the
   * trace and span ids of the span the mesh made for it (Envoy's active span; none when tracing
   * is off for it) — handed to the provider's exporter. Undefined when a format does not parse or
   * there is no gRPC client (warned).
   */
  #otel(provider: string, o: ResolvedOtelLog, needs: Set<OperatorNeed>): ((r: RequestRecord, key: object) => void) | undefined {
    const client = this.#o.otelClient;
    if (client === undefined) {
      this.#warn(`access log "${provider}" (envoyOtelAls): the mesh has no gRPC client to export with; nothing is logged by this provider`);
      return undefined;
    }
    let body: TextFormatter;
    let attributes: (readonly [string, TextFormatter])[];
    try {
      body = compileSubstitution(o.text, false, needs);
      attributes = o.labels.map(([k, v]) => [k, compileSubstitution(v, false, needs)] as const);
    } catch (e) {
      this.#warn(`access log "${provider}": invalid format: ${(e as Error).message}; nothing is logged by this provider`);
      return undefined;
    }
    const target = otelTarget(o);
    const key = `${provider}\0${target}`;
    let exporter = this.#exporters.get(key);
    if (!(exporter instanceof OtelLogExporter)) {
      const onDropped = this.#o.onOtelDropped;
      // One grpc-js client per collector, made at the first export (as the rate limit client keeps one per service).
      let grpcClient: UnaryRequester | undefined;
      exporter = new OtelLogExporter({
        provider,
        target,
        clock: this.#o.clock,
        client: () => (grpcClient ??= client(target)),
        warn: (m) => this.#o.logger.warn(m),
        onDropped: onDropped === undefined ? undefined : (n, reason) => onDropped(provider, n, reason),
      });
      this.#keep(key, exporter);
    }
    const ex = exporter;
    const spanIds = this.#o.spanIds;
    return (r, key) => {
      const ids = spanIds?.(key);
      const attrs = attributes.map(([k, f]) => [k, f(r)] as const);
      ex.log(encodeLogRecord({ startTimeMs: r.startTimeMs, body: body(r), attributes: attrs, traceId: traceIdBytes(ids?.traceId), spanId: spanIdBytes(ids?.spanId) }));
    };
  }

  /** Keeps an exporter or stream for later configs, `telemetry.flush()` and close. */
  #keep(key: string, e: OtelLogExporter | AlsStreamer): void {
    this.#exporters.set(key, e);
    if (this.#exporters.size === 1) telemetryFlush.subscribe(this.#onFlush);
  }

  /**
   * What an `envoyHttpAls` log does with a request: Envoy's `HttpGrpcAccessLog::emitLog` — an
   * `HTTPAccessLogEntry` handed to the provider's stream. Undefined when there is no gRPC client (warned).
   */
  #als(provider: string, o: ResolvedHttpAls): ((r: RequestRecord) => void) | undefined {
    const client = this.#o.alsClient;
    if (client === undefined) {
      this.#warn(`access log "${provider}" (envoyHttpAls): the mesh has no gRPC client to stream with; nothing is logged by this provider`);
      return undefined;
    }
    const target = otelTarget(o);
    const key = `${provider}\0${target}\0${o.logName}`;
    let streamer = this.#exporters.get(key);
    if (!(streamer instanceof AlsStreamer)) {
      const w = this.#o.workload;
      const ip = this.#o.sourceIp ?? '127.0.0.1';
      const node = {
        id: nodeId(w, ip),
        cluster: `${w.service}.${w.namespace}`,
        metadata: { NAMESPACE: w.namespace, NAME: w.service, WORKLOAD_NAME: w.workloadName ?? w.service, SERVICE_ACCOUNT: w.serviceAccount, LABELS: w.labels, INSTANCE_IPS: ip },
      };
      const onDropped = this.#o.onOtelDropped;
      let grpcClient: ClientStreamRequester | undefined;
      streamer = new AlsStreamer({
        provider,
        target,
        clock: this.#o.clock,
        client: () => (grpcClient ??= client(target)),
        identifier: encodeIdentifier(node, o.logName),
        warn: (m) => this.#o.logger.warn(m),
        onDropped: onDropped === undefined ? undefined : (n, reason) => onDropped(provider, n, reason),
      });
      this.#keep(key, streamer);
    }
    const st = streamer;
    return (r) => st.log(encodeHttpEntry(r, o));
  }

  /** What each `envoyOtelAls` and `envoyHttpAls` provider's exporter or stream counted, by provider name. */
  get otelStats(): Readonly<Record<string, OtelExportStats>> {
    const out: Record<string, OtelExportStats> = {};
    for (const [key, ex] of this.#exporters) out[key.slice(0, key.indexOf('\0'))] = ex.stats;
    return out;
  }

  /**
   * Sends what the `envoyOtelAls` providers hold and waits for their exports, for at most
   * `graceMs`; records logged later are dropped (counted). The mesh calls it while its own calls
   * still go out, before it closes its connection pools.
   */
  async closeExports(graceMs: number): Promise<void> {
    telemetryFlush.unsubscribe(this.#onFlush);
    await Promise.all([...this.#exporters.values()].map((e) => e.close(graceMs)));
  }

  /** `telemetry.flush()`: each `envoyOtelAls` provider sends its batch now, and the flush waits for the exports. */
  readonly #onFlush = (m: unknown): void => {
    (m as TelemetryFlushMessage).waits.push(Promise.all([...this.#exporters.values()].map((e) => e.flushed())).then(() => undefined));
  };

  readonly #onCallStart = (m: unknown): void => {
    const s = m as CallStartMessage;
    if (s.workload === this.#o.workload) this.#starts.set(s.call, s);
  };

  readonly #onCallEnd = (m: unknown): void => {
    const e = m as CallEndMessage;
    if (e.workload !== this.#o.workload) return;
    const start = this.#starts.get(e.call);
    if (start !== undefined) this.#starts.delete(e.call);
    this.#emit(
      this.#client,
      () => {
        const peer = this.#peers.client(e);
        return clientRecord(e, { start, startTimeMs: this.#wallNow() - e.durationMs, ...(peer === undefined ? {} : { peer }), response: this.#capture.responseOf(e.call), upstreamLocal: this.#capture.localOf(e.call), requestTimes: this.#capture.requestTimesOf(e.call, 'client'), responseTrailers: this.#capture.trailersOf(e.call), upstreamConnection: this.#capture.connectionOf(e.call) });
      },
      e.call,
    );
  };

  readonly #onInboundEnd = (m: unknown): void => {
    const e = m as InboundEndMessage;
    if (e.workload !== this.#o.workload) return;
    this.#emit(
      this.#server,
      () => {
        const peer = this.#peers.server(e);
        return serverRecord(e, { startTimeMs: this.#wallNow() - e.durationMs, ...(peer === undefined ? {} : { peer }), response: this.#capture.responseOf(e.request), requestTimes: this.#capture.requestTimesOf(e.request, 'server') });
      },
      e.request,
    );
  };

  #emit(logs: readonly CompiledLog[], make: () => RequestRecord, key: object): void {
    if (logs.length === 0) return;
    let record: RequestRecord | undefined;
    let view: AttributeView | undefined;
    for (const log of logs) {
      // A subscriber's exception would surface as an uncaught exception in the caller's process.
      try {
        record ??= make();
        if (log.filter !== undefined) {
          view ??= new AttributeView(record);
          if (!log.filter.test(view)) continue;
        }
        if (log.otel !== undefined) log.otel(record, key);
        else if (log.stream !== undefined) log.stream(record);
        else log.writer.write(log.text !== undefined ? log.text(record) : (log.json as JsonFormatter)(record));
      } catch (err) {
        this.#warn(`access log "${log.provider}" failed: ${(err as Error).message}`);
      }
    }
  }

  #subscribe(): void {
    const client = this.#client.length > 0;
    if (client !== this.#subscribedClient) {
      if (client) {
        channels.callStart.subscribe(this.#onCallStart);
        channels.callEnd.subscribe(this.#onCallEnd);
      } else {
        channels.callStart.unsubscribe(this.#onCallStart);
        channels.callEnd.unsubscribe(this.#onCallEnd);
        this.#starts = new WeakMap();
      }
      this.#subscribedClient = client;
    }
    const server = this.#server.length > 0;
    if (server !== this.#subscribedServer) {
      if (server) channels.inboundEnd.subscribe(this.#onInboundEnd);
      else channels.inboundEnd.unsubscribe(this.#onInboundEnd);
      this.#subscribedServer = server;
    }
  }

  /** Stops writing and closes the files (and the exporters, with no more time to send). */
  async close(): Promise<void> {
    this.#client = [];
    this.#server = [];
    this.#subscribe();
    this.#capture.close();
    await Promise.all([this.#writers.close(), this.closeExports(0)]);
  }
}
