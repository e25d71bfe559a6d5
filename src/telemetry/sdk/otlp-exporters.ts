/**
 * The OTLP exporters of `startTelemetry()`: which protocol each signal speaks (the option, else
 * the OpenTelemetry spec's environment variables, else the spec's default, `http/protobuf`), and
 * the exporter package for it, imported only when chosen: the exporter packages are optional
 * peer dependencies, so an application installs the one pair its protocol needs.
 *
 * @module
 */
import type { Metadata } from '@grpc/grpc-js';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { NodeSDKConfiguration } from '@opentelemetry/sdk-node';
import { CUMULATIVE, DELTA } from './sdk-values.ts';
import { InvalidArgumentError } from '../../core/errors.ts';

/** An OTLP transport, as `OTEL_EXPORTER_OTLP_PROTOCOL` names it. */
export type OtlpProtocol = 'http/protobuf' | 'http/json' | 'grpc';

const PROTOCOLS: readonly string[] = ['http/protobuf', 'http/json', 'grpc'] satisfies OtlpProtocol[];
const ALLOWED = "'http/protobuf', 'http/json' or 'grpc'";

type SpanExporter = NodeSDKConfiguration['traceExporter'];

/** Where and how one signal is exported. */
export interface OtlpTarget {
  readonly protocol: OtlpProtocol;
  /** The collector's base URL without a trailing slash; undefined: the exporter's (its env variables, else the protocol's default port on localhost). */
  readonly base: string | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;
}

/**
 * The protocol of one signal: `option` (startTelemetry's `otlp.protocol`), else
 * `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`.
 * An unknown value, wherever it came from, is refused naming its source.
 */
export function otlpProtocol(option: unknown, signal: 'TRACES' | 'METRICS'): OtlpProtocol {
  if (option !== undefined) return checkOtlpProtocol(option, 'otlp.protocol');
  for (const name of [`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`, 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    // Blank counts as unset, as the SDK's own environment reading does.
    const value = process.env[name]?.trim();
    if (value !== undefined && value !== '') return checkOtlpProtocol(value, name);
  }
  return 'http/protobuf';
}

/** `value` as a protocol, else an error naming `source` (the option or environment variable it came from). */
export function checkOtlpProtocol(value: unknown, source: string): OtlpProtocol {
  if (typeof value === 'string' && PROTOCOLS.includes(value)) return value as OtlpProtocol;
  throw new InvalidArgumentError(`startTelemetry: ${source} must be ${ALLOWED}, got ${JSON.stringify(value)}`);
}

/** The exporter package of one signal over `protocol` (an optional peer dependency of meshlet). */
export function otlpPackage(protocol: OtlpProtocol, signal: 'trace' | 'metrics'): string {
  return `@opentelemetry/exporter-${signal}-otlp-${protocol === 'grpc' ? 'grpc' : protocol === 'http/json' ? 'http' : 'proto'}`;
}

/** How to avoid an exporter package, appended to the error naming the missing ones: the protocols other than those `chosen`. */
export function otherProtocolHint(chosen: readonly OtlpProtocol[]): string {
  const others = PROTOCOLS.filter((p) => !chosen.includes(p as OtlpProtocol)).map((p) => `'${p}'`);
  const list = others.length === 1 ? (others[0] as string) : `${others.slice(0, -1).join(', ')} or ${others.at(-1) as string}`;
  return `or choose another protocol (${list}) with otlp.protocol or OTEL_EXPORTER_OTLP_PROTOCOL`;
}

/** HTTP appends the signal's path to the base; gRPC takes the endpoint as it is (the spec's rules). */
function url(target: OtlpTarget, path: string): { url?: string } {
  if (target.base === undefined) return {};
  return { url: target.protocol === 'grpc' ? target.base : `${target.base}${path}` };
}

/** Loads the span exporter of `target.protocol` now (so a missing package fails startTelemetry before it starts anything); returns a function making it. */
export async function loadTraceExporter(target: OtlpTarget): Promise<() => SpanExporter> {
  if (target.protocol === 'grpc') {
    const [{ OTLPTraceExporter }, metadata] = await Promise.all([loadPeer('@opentelemetry/exporter-trace-otlp-grpc', 'grpc', () => import('@opentelemetry/exporter-trace-otlp-grpc')), loadMetadata(target)]);
    return () => new OTLPTraceExporter({ ...url(target, ''), ...(metadata === undefined ? {} : { metadata: metadata() }) });
  }
  const { OTLPTraceExporter } =
    target.protocol === 'http/json'
      ? await loadPeer('@opentelemetry/exporter-trace-otlp-http', 'http/json', () => import('@opentelemetry/exporter-trace-otlp-http'))
      : await loadPeer('@opentelemetry/exporter-trace-otlp-proto', 'http/protobuf', () => import('@opentelemetry/exporter-trace-otlp-proto'));
  return () => new OTLPTraceExporter({ ...url(target, '/v1/traces'), ...(target.headers === undefined ? {} : { headers: { ...target.headers } }) });
}

/** The metric counterpart of {@link loadTraceExporter}. */
export async function loadMetricExporter(target: OtlpTarget, temporality: 'cumulative' | 'delta'): Promise<() => PushMetricExporter> {
  // sdk-metrics' AggregationTemporality has the values of the exporters' AggregationTemporalityPreference (DELTA 0, CUMULATIVE 1), and every exporter takes either.
  const temporalityPreference = temporality === 'delta' ? DELTA : CUMULATIVE;
  if (target.protocol === 'grpc') {
    const [{ OTLPMetricExporter }, metadata] = await Promise.all([loadPeer('@opentelemetry/exporter-metrics-otlp-grpc', 'grpc', () => import('@opentelemetry/exporter-metrics-otlp-grpc')), loadMetadata(target)]);
    return () => new OTLPMetricExporter({ ...url(target, ''), ...(metadata === undefined ? {} : { metadata: metadata() }), temporalityPreference });
  }
  const { OTLPMetricExporter } =
    target.protocol === 'http/json'
      ? await loadPeer('@opentelemetry/exporter-metrics-otlp-http', 'http/json', () => import('@opentelemetry/exporter-metrics-otlp-http'))
      : await loadPeer('@opentelemetry/exporter-metrics-otlp-proto', 'http/protobuf', () => import('@opentelemetry/exporter-metrics-otlp-proto'));
  return () => new OTLPMetricExporter({ ...url(target, '/v1/metrics'), ...(target.headers === undefined ? {} : { headers: { ...target.headers } }), temporalityPreference });
}

/** gRPC carries headers as call metadata, a grpc-js object (the gRPC exporters depend on grpc-js; needed from meshlet only when there are headers). */
async function loadMetadata(target: OtlpTarget): Promise<(() => Metadata) | undefined> {
  const headers = target.headers;
  if (headers === undefined || Object.keys(headers).length === 0) return undefined;
  const grpc = await loadPeer('@grpc/grpc-js', 'grpc (with headers)', () => import('@grpc/grpc-js'));
  return () => {
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
    return metadata;
  };
}

/**
 * Imports an optional peer package; when it is not installed, an error saying which to install and
 * how to choose another protocol. (Anything else, a missing dependency of the package included,
 * is rethrown as it is.)
 */
export async function loadPeer<T>(name: string, protocol: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND' || !String((e as Error).message).includes(`'${name}'`)) throw e;
    throw new InvalidArgumentError(`startTelemetry: OTLP over ${protocol} needs ${name}, which is not installed; install it next to meshlet (npm install ${name}), ${otherProtocolHint([protocol as OtlpProtocol])}`, { cause: e });
  }
}
