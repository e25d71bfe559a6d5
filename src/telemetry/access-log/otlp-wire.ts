/**
 * OTLP logs on the wire, by hand: the `ExportLogsServiceRequest` Envoy's OpenTelemetry access
 * logger sends (`opentelemetry.proto.collector.logs.v1.LogsService/Export`) and the answer's
 * partial success. Field numbers are those of opentelemetry-proto
 * (`opentelemetry/proto/collector/logs/v1/logs_service.proto`, `logs/v1/logs.proto`,
 * `common/v1/common.proto`, `resource/v1/resource.proto`).
 *
 * The shape is Envoy's (`access_loggers/open_telemetry/otlp_log_utils.cc` `initOtlpMessageRoot`,
 * `grpc_access_log_impl.cc` `addEntry`): one `ResourceLogs` with a `Resource` (no attributes when
 * built-in labels are disabled, as Istio configures it) and one `ScopeLogs` (no scope) holding the
 * batch's `LogRecord`s; a record has `time_unix_nano` (the request's start), a string `body`,
 * string `attributes`, and the `trace_id` / `span_id` of the request's span when it has one
 * (`access_log_impl.cc` `emitLog`, `otlp_log_utils.cc` `populateTraceContext`).
 *
 * @module
 */
import { ProtoReader, ProtoWriter } from '../../core/protobuf.ts';

/** The gRPC method records are exported with. */
export const OTLP_LOGS_EXPORT = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

/** One log record, as the access logger makes it. */
export interface OtlpLogRecord {
  /** The request's start, in ms since the epoch (sent in ns). */
  readonly startTimeMs: number;
  /** The formatted body; undefined: no body. */
  readonly body: string | undefined;
  /** The formatted attributes, in order. */
  readonly attributes: readonly (readonly [string, string])[];
  /** 16 bytes, or undefined. */
  readonly traceId?: Uint8Array | undefined;
  /** 8 bytes, or undefined. */
  readonly spanId?: Uint8Array | undefined;
}

const HEX = /^[\da-f]+$/i;

/**
 * A trace id in hex as `trace_id` bytes, as Envoy's `populateTraceContext` makes them: 32 digits
 * are 16 bytes; a 64-bit id (16 digits, Zipkin's) is padded with zeros in front to 128 bits
 * (collectors refuse a `trace_id` of another length); anything else: none.
 */
export function traceIdBytes(hex: string | undefined): Buffer | undefined {
  if (hex === undefined || !HEX.test(hex)) return undefined;
  if (hex.length === 32) return Buffer.from(hex, 'hex');
  if (hex.length === 16) return Buffer.from(`0000000000000000${hex}`, 'hex');
  return undefined;
}

/** A span id in hex (16 digits) as its 8 `span_id` bytes; anything else: none. */
export function spanIdBytes(hex: string | undefined): Buffer | undefined {
  return hex !== undefined && hex.length === 16 && HEX.test(hex) ? Buffer.from(hex, 'hex') : undefined;
}

/** `common.v1.KeyValue` with a string `AnyValue`. */
function keyValue(key: string, value: string): ProtoWriter {
  const kv = new ProtoWriter();
  kv.string(1, key); // key
  kv.message(2, stringValue(value)); // value
  return kv;
}

/** `common.v1.AnyValue{string_value}` (a oneof member: written even when empty). */
function stringValue(s: string): ProtoWriter {
  const v = new ProtoWriter();
  v.bytes(1, Buffer.from(s, 'utf8'));
  return v;
}

/** Encodes one `logs.v1.LogRecord`. */
export function encodeLogRecord(r: OtlpLogRecord): Buffer {
  const w = new ProtoWriter();
  // fixed64 time_unix_nano = 1: ms since the epoch, with its sub-ms part, in ns.
  w.fixed64(1, BigInt(Math.floor(r.startTimeMs)) * 1_000_000n + BigInt(Math.round((r.startTimeMs % 1) * 1e6)));
  if (r.body !== undefined) w.message(5, stringValue(r.body)); // AnyValue body = 5
  for (const [k, v] of r.attributes) w.message(6, keyValue(k, v)); // repeated KeyValue attributes = 6
  if (r.traceId !== undefined) w.bytes(9, r.traceId); // bytes trace_id = 9
  if (r.spanId !== undefined) w.bytes(10, r.spanId); // bytes span_id = 10
  return w.finish();
}

/**
 * Encodes an `ExportLogsServiceRequest` of already encoded records, under a resource with
 * `resourceAttributes`.
 */
export function encodeExportLogsRequest(records: readonly Buffer[], resourceAttributes: readonly (readonly [string, string])[] = []): Buffer {
  const resource = new ProtoWriter();
  for (const [k, v] of resourceAttributes) resource.message(1, keyValue(k, v)); // Resource.attributes = 1
  const scope = new ProtoWriter();
  for (const r of records) scope.bytes(2, r); // ScopeLogs.log_records = 2
  const rl = new ProtoWriter();
  rl.message(1, resource); // ResourceLogs.resource = 1
  rl.message(2, scope); // ResourceLogs.scope_logs = 2
  const req = new ProtoWriter();
  req.message(1, rl); // ExportLogsServiceRequest.resource_logs = 1
  return req.finish();
}

/** What an `ExportLogsServiceResponse` says: records the collector rejected, and why. */
export interface ExportLogsAnswer {
  readonly rejected: number;
  readonly errorMessage: string;
}

/** Decodes an `ExportLogsServiceResponse` (`partial_success` = 1: `rejected_log_records` = 1, `error_message` = 2). */
export function decodeExportLogsResponse(b: Uint8Array): ExportLogsAnswer {
  let rejected = 0;
  let errorMessage = '';
  const r = new ProtoReader(b);
  r.fields((f, wire) => {
    if (f !== 1 || wire !== 2) return false;
    const ps = r.sub();
    ps.fields((g, w) => {
      if (g === 1 && w === 0) rejected = ps.int32();
      else if (g === 2 && w === 2) errorMessage = ps.string();
      else return false;
      return true;
    });
    return true;
  });
  return { rejected, errorMessage };
}
