/**
 * `startTelemetry()`: the OpenTelemetry Node SDK set up in one call for an application that has
 * none, so what meshlet records through the OTel API (Istio's standard metrics, meshlet's own,
 * spans) goes somewhere: OTLP (traces and metrics; HTTP/protobuf, HTTP/JSON or gRPC) and/or a
 * Prometheus scrape endpoint. Imported from `meshlet/telemetry`; the SDK packages are optional
 * peer dependencies of meshlet, installed by the application that calls this, and imported
 * here only when it is called (a missing one is refused, with every other missing one).
 *
 * @module
 */
import { createRequire } from 'node:module';
import { type Attributes, context, metrics as metricsApi, ProxyTracerProvider, propagation, trace } from '@opentelemetry/api';
import type { IMetricReader } from '@opentelemetry/sdk-metrics';
import { EvictingPrometheusReader } from './evicting-prometheus.ts';
import { type MeshletMetricProducer, meshletMetricProducer } from './metric-producer.ts';
import { checkOtlpProtocol, loadMetricExporter, loadTraceExporter, type OtlpProtocol, otherProtocolHint, otlpPackage, otlpProtocol } from './otlp-exporters.ts';
import { loadPeers, type PeerLoader } from './peers.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { checkOptionNames, optionNames } from '../../core/option-names.ts';
import { sdkRegistered } from '../tracing/span-context.ts';
import { flushMeshTelemetry } from '../flush-channel.ts';
import { formatHostPort } from '../../core/host-port.ts';

/** OTLP export settings of {@link startTelemetry}. */
export interface OtlpOptions {
  /**
   * The transport, for traces and metrics. Only the exporter packages of the chosen one need
   * installing: `@opentelemetry/exporter-{trace,metrics}-otlp-proto` (`http/protobuf`),
   * `-otlp-http` (`http/json`) or `-otlp-grpc` (`grpc`).
   * @defaultValue `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`,
   * else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `'http/protobuf'` (the OpenTelemetry spec's default)
   */
  readonly protocol?: OtlpProtocol | undefined;
  /**
   * The collector's base URL. Over HTTP, `/v1/traces` and `/v1/metrics` are appended; gRPC uses it as it is.
   * @defaultValue `OTEL_EXPORTER_OTLP_ENDPOINT`, else `http://localhost:4318` (HTTP) or `http://localhost:4317` (gRPC)
   */
  readonly endpoint?: string | undefined;
  /** Extra headers (authentication); gRPC metadata over gRPC. @defaultValue none (or `OTEL_EXPORTER_OTLP_HEADERS`) */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Export spans. @defaultValue true */
  readonly traces?: boolean | undefined;
  /** Export metrics. @defaultValue true */
  readonly metrics?: boolean | undefined;
  /** How often metrics are pushed. @defaultValue 60000 */
  readonly exportIntervalMs?: number | undefined;
  /**
   * Metric temporality: `cumulative` (what Prometheus-compatible backends want) or `delta`
   * (series idle since the last export are not sent again: with a collector's
   * `deltatocumulative` processor, its `max_stale` then evicts them).
   * @defaultValue 'cumulative'
   */
  readonly temporality?: 'cumulative' | 'delta' | undefined;
}

/** Prometheus endpoint settings of {@link startTelemetry}. */
export interface PrometheusOptions {
  /** @defaultValue 15020 (Istio's merged-metrics port, so pod annotations `prometheus.io/port: "15020"` keep working) */
  readonly port?: number | undefined;
  /** @defaultValue '0.0.0.0' */
  readonly host?: string | undefined;
  /** @defaultValue ['/stats/prometheus', '/metrics'] */
  readonly paths?: readonly string[] | undefined;
  /** A series unchanged this long leaves the output (Istio's proxy rotates its stats the same way); at least 1 ms. @defaultValue 600000 (10 minutes) */
  readonly idleSeriesMs?: number | undefined;
  /** Leave out `target_info`. @defaultValue false */
  readonly withoutTargetInfo?: boolean | undefined;
}

/** Options of {@link startTelemetry}. */
export interface StartTelemetryOptions {
  /** `service.name` of the resource. @defaultValue `OTEL_SERVICE_NAME`, else the SDK's default */
  readonly serviceName?: string | undefined;
  /** More resource attributes. @defaultValue none */
  readonly resourceAttributes?: Attributes | undefined;
  /**
   * OTLP export; `false` for none.
   * @defaultValue on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else off
   */
  readonly otlp?: OtlpOptions | boolean | undefined;
  /**
   * The Prometheus scrape endpoint; `false` for none.
   * @defaultValue on, port 15020
   */
  readonly prometheus?: PrometheusOptions | boolean | undefined;
}

const START_TELEMETRY_OPTION_NAMES = optionNames<StartTelemetryOptions>()(['serviceName', 'resourceAttributes', 'otlp', 'prometheus']);
const OTLP_OPTION_NAMES = optionNames<OtlpOptions>()(['protocol', 'endpoint', 'headers', 'traces', 'metrics', 'exportIntervalMs', 'temporality']);
const PROMETHEUS_OPTION_NAMES = optionNames<PrometheusOptions>()(['port', 'host', 'paths', 'idleSeriesMs', 'withoutTargetInfo']);

/** What {@link startTelemetry} started. */
export interface Telemetry {
  /** The Prometheus endpoint's URL base (`http://host:port`), when one was started. */
  readonly prometheusUrl: string | undefined;
  /**
   * Exports now what is waiting — the metrics since the last OTLP export, the ended spans not
   * sent yet, and the meshes' `envoyOtelAls` access-log batches — and resolves when the exports
   * are done; exporting goes on as before. For a process
   * that is frozen or ended without notice after each piece of work (an AWS Lambda handler: call
   * it before returning), where the next periodic export may never run.
   */
  flush(): Promise<void>;
  /** Flushes and stops exporting; closes the Prometheus endpoint; unregisters the global providers it registered (telemetry can be started again). */
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry SDK (global tracer and meter providers) with OTLP export and/or a
 * Prometheus scrape endpoint. Call it before `createMesh` (or anytime: meshes find a new global
 * MeterProvider within a second, and count from then on).
 * @example
 * import { startTelemetry } from 'meshlet/telemetry';
 * const telemetry = await startTelemetry({ serviceName: 'reviews', prometheus: { port: 15020 } });
 * // … on exit:
 * await telemetry.shutdown();
 */
export async function startTelemetry(options: StartTelemetryOptions = {}): Promise<Telemetry> {
  checkOptionNames('startTelemetry', options, START_TELEMETRY_OPTION_NAMES);
  if (typeof options.otlp === 'object') checkOptionNames('startTelemetry', options.otlp, OTLP_OPTION_NAMES, 'otlp.');
  if (typeof options.prometheus === 'object') checkOptionNames('startTelemetry', options.prometheus, PROMETHEUS_OPTION_NAMES, 'prometheus.');
  const otlpOn = options.otlp === undefined ? process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] !== undefined : options.otlp !== false;
  const otlp: OtlpOptions = typeof options.otlp === 'object' ? options.otlp : {};
  const promOn = options.prometheus !== false;
  const prom: PrometheusOptions = typeof options.prometheus === 'object' ? options.prometheus : {};
  checkPort(prom.port, 'prometheus.port');
  // As createMesh's telemetry.metrics.idleSeriesMs: 0 dropped every series unchanged since the last scrape (a quiet counter), less every series at every scrape.
  const idle = prom.idleSeriesMs;
  if (idle !== undefined && !(typeof idle === 'number' && idle >= 1)) throw new InvalidArgumentError(`startTelemetry: prometheus.idleSeriesMs must be a number of milliseconds of at least 1, got ${typeof idle === 'string' ? JSON.stringify(idle) : String(idle)}`);
  if (otlp.exportIntervalMs !== undefined && !(Number.isFinite(otlp.exportIntervalMs) && otlp.exportIntervalMs > 0)) throw new InvalidArgumentError(`startTelemetry: otlp.exportIntervalMs must be a positive number of milliseconds, got ${String(otlp.exportIntervalMs)}`);
  if (otlp.temporality !== undefined && otlp.temporality !== 'cumulative' && otlp.temporality !== 'delta') throw new InvalidArgumentError(`startTelemetry: otlp.temporality must be 'cumulative' or 'delta', got ${JSON.stringify(otlp.temporality)}`);
  if (otlp.protocol !== undefined) checkOtlpProtocol(otlp.protocol, 'otlp.protocol');

  const base = otlp.endpoint?.replace(/\/+$/, '');
  const target = (signal: 'TRACES' | 'METRICS') => ({ protocol: otlpProtocol(otlp.protocol, signal), base, headers: otlp.headers });
  const metricTarget = otlpOn && otlp.metrics !== false ? target('METRICS') : undefined;
  const traceTarget = otlpOn && otlp.traces !== false ? target('TRACES') : undefined;
  // Every package this call needs, imported before anything starts: the missing ones are named
  // together, and nothing is left behind.
  const exporters = [
    ...(metricTarget === undefined ? [] : [otlpPackage(metricTarget.protocol, 'metrics')]),
    ...(traceTarget === undefined ? [] : [otlpPackage(traceTarget.protocol, 'trace')]),
  ];
  const grpcMetadata = [metricTarget, traceTarget].some((t) => t?.protocol === 'grpc' && Object.keys(t.headers ?? {}).length > 0);
  const optional: PeerLoader[] = [
    ...(promOn ? [['@opentelemetry/exporter-prometheus', () => import('@opentelemetry/exporter-prometheus')] as const] : []),
    ...exporters.map((name) => [name, () => import(name)] as const),
    ...(grpcMetadata ? [['@grpc/grpc-js', () => import('@grpc/grpc-js')] as const] : []),
  ];
  const [{ NodeSDK }, { PeriodicExportingMetricReader }, { resourceFromAttributes }] = await loadPeers(
    'startTelemetry',
    [
      ['@opentelemetry/sdk-node', () => import('@opentelemetry/sdk-node')],
      ['@opentelemetry/sdk-metrics', () => import('@opentelemetry/sdk-metrics')],
      ['@opentelemetry/resources', () => import('@opentelemetry/resources')],
      ...optional,
    ],
    exporters.length > 0 ? otherProtocolHint([metricTarget, traceTarget].flatMap((t) => (t === undefined ? [] : [t.protocol]))).replace('or choose', 'or, for OTLP, choose') : undefined,
  );
  const makeMetricExporter = metricTarget === undefined ? undefined : await loadMetricExporter(metricTarget, otlp.temporality ?? 'cumulative');
  const makeTraceExporter = traceTarget === undefined ? undefined : await loadTraceExporter(traceTarget);
  const readers: IMetricReader[] = [];
  // Each reader gets meshlet's Istio-metric series from its own producer (meshes aggregate them themselves while one exists).
  const producers: MeshletMetricProducer[] = [];
  const producer = (temporality: 'cumulative' | 'delta'): MeshletMetricProducer => {
    const p = meshletMetricProducer({ temporality });
    producers.push(p);
    return p;
  };
  let prometheus: EvictingPrometheusReader | undefined;
  let prometheusUrl: string | undefined;
  if (promOn) {
    prometheus = new EvictingPrometheusReader({
      port: prom.port ?? 15020,
      host: prom.host ?? '0.0.0.0',
      ...(prom.paths === undefined ? {} : { paths: prom.paths }),
      ...(prom.idleSeriesMs === undefined ? {} : { idleSeriesMs: prom.idleSeriesMs }),
      ...(prom.withoutTargetInfo === undefined ? {} : { withoutTargetInfo: prom.withoutTargetInfo }),
      metricProducers: [producer('cumulative')],
    });
    let addr: Awaited<ReturnType<EvictingPrometheusReader['listen']>>;
    try {
      addr = await prometheus.listen();
    } catch (e) {
      for (const p of producers) p.release();
      throw e;
    }
    const host = addr.address === '0.0.0.0' || addr.address === '::' ? '127.0.0.1' : addr.address;
    prometheusUrl = `http://${formatHostPort(host, addr.port)}`;
    readers.push(prometheus);
  }
  if (makeMetricExporter !== undefined) {
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: makeMetricExporter(),
        exportIntervalMillis: otlp.exportIntervalMs ?? 60_000,
        metricProducers: [producer(otlp.temporality === 'delta' ? 'delta' : 'cumulative')],
      }),
    );
  }
  const traceExporter = makeTraceExporter?.();
  const attributes: Attributes = { ...(options.resourceAttributes ?? {}) };
  if (options.serviceName !== undefined) attributes['service.name'] = options.serviceName;
  const sdk = new NodeSDK({
    ...(Object.keys(attributes).length > 0 ? { resource: resourceFromAttributes(attributes) } : {}),
    // Given explicitly, so nothing is configured from OTEL_* exporter variables behind the caller's back.
    ...(traceExporter === undefined ? { spanProcessors: [] } : { traceExporter }),
    metricReaders: readers,
    logRecordProcessors: [],
    instrumentations: [],
  });
  // The SDK registers the global tracer provider, context manager and propagator only where none is
  // registered yet (the API refuses a second registration): they are this call's to take back if
  // the tracer provider was free.
  const ownsTracing = !sdkRegistered();
  const requireProxy = ownsTracing ? requireApiTracerProvider() : undefined;
  const meterProvider = metricsApi.getMeterProvider();
  sdk.start();
  const registered = ownsTracing && sdkRegistered() ? trace.getTracerProvider() : undefined;
  // A forwarder, not the provider itself: it follows what the ES build has registered at each
  // call (nothing once `shutdown()` takes the registration back).
  if (registered !== undefined && requireProxy !== undefined) requireProxy.setDelegate({ getTracer: (name, version, options) => trace.getTracerProvider().getTracer(name, version, options) });
  // Likewise the meter provider: this call's only if the SDK's registration took.
  const registeredMeter = metricsApi.getMeterProvider() !== meterProvider ? metricsApi.getMeterProvider() : undefined;
  let stopped: Promise<void> | undefined;
  const failed = exportFailures();
  return {
    prometheusUrl,
    flush: async () => {
      if (stopped !== undefined) return;
      // The registered global is the API's proxy; the SDK's provider (with forceFlush) is its delegate.
      const tp = registered instanceof ProxyTracerProvider ? registered.getDelegate() : registered;
      const flushes = [...readers.map((r) => r.forceFlush()), (tp as { forceFlush?: () => Promise<void> } | undefined)?.forceFlush?.(), flushMeshTelemetry()];
      for (const r of await Promise.allSettled(flushes)) if (r.status === 'rejected') failed('flush', r.reason);
    },
    shutdown: () => {
      stopped ??= sdk
        .shutdown()
        .catch((e: unknown) => failed('shutdown', e))
        .finally(() => {
        for (const p of producers) p.release();
        if (registeredMeter !== undefined && metricsApi.getMeterProvider() === registeredMeter) metricsApi.disable();
        // Unregistered, so a later startTelemetry() (or the app's own SDK) can register again;
        // meshes notice and trace through whatever is registered next.
        if (registered !== undefined && trace.getTracerProvider() === registered) {
          trace.disable();
          context.disable();
          propagation.disable();
        }
        });
      return stopped;
    },
  };
}

/** How often at most a failed `flush()` is warned about (a Lambda handler flushes at every invocation). */
const FLUSH_WARN_EVERY_MS = 30_000;

/**
 * Reports an export that `flush()` or `shutdown()` could not make (the collector down, refusing,
 * not answering within the exporter's timeout) as a warning, instead of rejecting: telemetry that
 * cannot be delivered must not fail the work of the app that awaits it (a Lambda handler's
 * `await telemetry.flush()`, a SIGTERM handler's `await telemetry.shutdown()`). The OpenTelemetry
 * SDK rejects (its own docs' handlers catch); a meshlet user awaits and goes on. A failing
 * `flush()` is warned about at most once per {@link FLUSH_WARN_EVERY_MS}, with how many failed since.
 */
function exportFailures(): (what: 'flush' | 'shutdown', reason: unknown) => void {
  let warnedAt = Number.NEGATIVE_INFINITY;
  let since = 0;
  return (what, reason) => {
    const now = performance.now();
    if (what === 'flush' && now - warnedAt < FLUSH_WARN_EVERY_MS) {
      since++;
      return;
    }
    const more = since > 0 ? ` (${since} more failed since the last warning)` : '';
    warnedAt = now;
    since = 0;
    console.warn(`meshlet: telemetry.${what}(): an export failed: ${describeFailure(reason)}; what it carried is lost${more}`);
  };
}

function describeFailure(reason: unknown): string {
  const message = (r: unknown): string | undefined => (typeof (r as { message?: unknown } | null | undefined)?.message === 'string' ? (r as { message: string }).message : undefined);
  // The SDK's readers reject with an error, an ExportResult ({ code, error }) or nothing at all.
  const m = message(reason) ?? message((reason as { error?: unknown } | null | undefined)?.error);
  if (m !== undefined) return m;
  return reason === undefined ? 'no reason given (the exporter failed; is the collector reachable?)' : String(reason);
}

/**
 * The tracer provider of `require('@opentelemetry/api')` when it is another copy of the API than
 * this module's `import` (the API ships separate CommonJS and ES module builds, each with its own
 * ProxyTracerProvider). The SDK registers through the ES build, which hands its own proxy the
 * provider; tracers the CommonJS build gave out before that (auto-instrumentations registered
 * with `--require` before `startTelemetry()`) ask the CommonJS proxy, which nothing else would
 * ever give a provider: they would make non-recording spans for the life of the process.
 */
function requireApiTracerProvider(): ProxyTracerProvider | undefined {
  let api: typeof import('@opentelemetry/api');
  try {
    api = createRequire(import.meta.url)('@opentelemetry/api') as typeof import('@opentelemetry/api');
  } catch {
    return undefined;
  }
  if (api.trace === trace) return undefined;
  const p = api.trace.getTracerProvider();
  return p instanceof api.ProxyTracerProvider ? p : undefined;
}

function checkPort(port: unknown, field: string): void {
  if (port === undefined) return;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`startTelemetry: ${field} must be a port number (0–65535; 0 picks a free one), got ${String(port)}`);
}
