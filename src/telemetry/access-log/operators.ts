/**
 * Envoy's access-log command operators (`%RESPONSE_CODE%`, `%REQ(:PATH)%`, …) over a request
 * record: each gives a typed value (a number where Envoy's JSON format gives a number) or
 * undefined when the request has none (`-` in text, `null` in JSON).
 *
 * Envoy operators meshlet has no data for (`%DYNAMIC_METADATA(…)%`, `%ROUNDTRIP_DURATION%`, wire
 * bytes, …) are accepted and always print `-`; an operator Envoy does not know is a
 * configuration error, as in Envoy. docs/telemetry.md lists which are which.
 *
 * A few operators read data a log must ask for ({@link OperatorNeed}): compiling a format records
 * them, and the access logger captures that data only while a format in use needs it.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { GRPC_STATUS } from '../../core/grpc-status.ts';
import { type CompiledCel, compileCel } from '../cel.ts';
import { type AttributeView, protocolName } from '../attributes.ts';
import { type HeaderMap, headerValue, parseHostPort, type RequestRecord } from '../record.ts';
import { checkTimeFormat, defaultStartTime, formatTime } from './time-format.ts';
import { formatHostPort } from '../../core/host-port.ts';
import { certTimeOperator, TLS_OPERATORS } from './tls-operators.ts';
import { connectionIdOf } from './tls-details.ts';

/** What an operator gives: a string or number, or undefined when there is nothing to print. */
export type OperatorValue = string | number | undefined;

/** An operator compiled for one use: reads the record (and, for `%CEL%`, its attribute view). */
export type Operator = (r: RequestRecord, view: () => AttributeView) => OperatorValue;

/**
 * Data an operator reads that is captured only for the logs that need it: `tls`, the downstream
 * connection's TLS details, read when the request starts (a caller that goes away may take its
 * socket with it); `response`, the response head's time and the connection it came on (its TLS
 * details and local end); `local`, only the local end of the connection a call's request went
 * out on (Istio's default formats print it); `request`, when the request's last byte was received
 * and sent upstream; `trailers`, a call's response trailers.
 */
export type OperatorNeed = 'tls' | 'response' | 'local' | 'request' | 'trailers';

const NEEDS: Readonly<Record<string, OperatorNeed>> = Object.assign(Object.create(null), {
  ...Object.fromEntries(Object.keys(TLS_OPERATORS).map((k) => [k, k.startsWith('UPSTREAM_') ? 'response' : 'tls'])),
  UPSTREAM_PEER_CERT_V_START: 'response',
  UPSTREAM_PEER_CERT_V_END: 'response',
  UPSTREAM_CONNECTION_ID: 'response',
  DOWNSTREAM_PEER_CERT_V_START: 'tls',
  DOWNSTREAM_PEER_CERT_V_END: 'tls',
  RESPONSE_DURATION: 'response',
  RESPONSE_TX_DURATION: 'response',
  REQUEST_DURATION: 'request',
  REQUEST_TX_DURATION: 'request',
  TRAILER: 'trailers',
  UPSTREAM_LOCAL_ADDRESS: 'local',
  UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: 'local',
  UPSTREAM_LOCAL_PORT: 'local',
});

const LONG_FLAGS: Readonly<Record<string, string>> = Object.assign(Object.create(null), {
  LH: 'FailedLocalHealthCheck',
  UH: 'NoHealthyUpstream',
  UT: 'UpstreamRequestTimeout',
  LR: 'LocalReset',
  UR: 'UpstreamRemoteReset',
  UF: 'UpstreamConnectionFailure',
  UC: 'UpstreamConnectionTermination',
  UO: 'UpstreamOverflow',
  NR: 'NoRouteFound',
  DI: 'DelayInjected',
  FI: 'FaultInjected',
  RL: 'RateLimited',
  UAEX: 'UnauthorizedExternalService',
  RLSE: 'RateLimitServiceError',
  DC: 'DownstreamConnectionTermination',
  URX: 'UpstreamRetryLimitExceeded',
  SI: 'StreamIdleTimeout',
  IH: 'InvalidEnvoyRequestHeaders',
  DPE: 'DownstreamProtocolError',
  UMSDR: 'UpstreamMaxStreamDurationReached',
  RFCF: 'ResponseFromCacheFilter',
  NFCF: 'NoFilterConfigFound',
  DT: 'DurationTimeout',
  UPE: 'UpstreamProtocolError',
  NC: 'NoClusterFound',
  OM: 'OverloadManagerTerminated',
  DF: 'DnsResolutionFailed',
  DO: 'DropOverload',
  DR: 'DownstreamRemoteReset',
});

const GRPC_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(GRPC_STATUS).map(([name, code]) => [code, name]));

/** Envoy operators meshlet has no data for: accepted, always `-` (docs/telemetry.md says why for each). */
const NOT_AVAILABLE = new Set([
  'CONNECTION_TERMINATION_DETAILS',
  'DYNAMIC_METADATA',
  'CLUSTER_METADATA',
  'UPSTREAM_METADATA',
  'METADATA',
  'UPSTREAM_FILTER_STATE',
  'DOWNSTREAM_PEER_OTHERNAME_SAN',
  'DOWNSTREAM_LOCAL_OTHERNAME_SAN',
  'DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256',
  'DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1',
  'DOWNSTREAM_PEER_CHAIN_SERIALS',
  'TLS_JA3_FINGERPRINT',
  'VIRTUAL_CLUSTER_NAME',
  'UPSTREAM_CONNECTION_POOL_READY_DURATION',
  'DOWNSTREAM_HANDSHAKE_DURATION',
  'ROUNDTRIP_DURATION',
  'LOCAL_REPLY_BODY',
  'RESPONSE_TRAILERS_BYTES',
  'UPSTREAM_WIRE_BYTES_SENT',
  'UPSTREAM_WIRE_BYTES_RECEIVED',
  'DOWNSTREAM_WIRE_BYTES_SENT',
  'DOWNSTREAM_WIRE_BYTES_RECEIVED',
  'DOWNSTREAM_TRANSPORT_FAILURE_REASON',
]);

/** Envoy's `HeaderMap::byteSize()`: the names' and values' lengths (`%REQUEST_HEADERS_BYTES%`, the ALS entry's `request_headers_bytes`). */
export function headersBytes(h: HeaderMap | undefined): number {
  if (h === undefined) return 0;
  let n = 0;
  for (const k of Object.keys(h)) {
    const v = headerValue(h, k);
    if (v !== undefined) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  return n;
}

/** Milliseconds as Envoy's duration operators print them (`duration_cast<milliseconds>`: truncated). */
const ms = (v: number | undefined): OperatorValue => (v === undefined ? undefined : Math.max(0, Math.floor(v)));

/** `%RESPONSE_TX_DURATION%`: from the upstream's first byte to the downstream's last, when the response was sent to its end. */
function responseTx(r: RequestRecord): OperatorValue {
  const rx = r.upstreamRxStartMs;
  if (rx === undefined || r.status === 0 || r.flags.split(',').includes('DC')) return undefined;
  return ms(r.durationMs - rx);
}

const withoutPort = (hp: { address: string } | undefined): OperatorValue => hp?.address;
const joined = (hp: { address: string; port: number } | undefined): OperatorValue => (hp === undefined ? undefined : formatHostPort(hp.address, hp.port));

/** Operators without arguments. */
const SIMPLE: Readonly<Record<string, Operator>> = Object.assign(Object.create(null), {
  PROTOCOL: (r: RequestRecord) => protocolName(r.protocol),
  RESPONSE_CODE: (r: RequestRecord) => r.status,
  // Envoy's ResponseFlagUtils prints "-" for no flags, in JSON too.
  RESPONSE_FLAGS: (r: RequestRecord) => (r.flags === '' ? '-' : r.flags),
  RESPONSE_FLAGS_LONG: (r: RequestRecord) => (r.flags === '' ? '-' : r.flags.split(',').map((f) => LONG_FLAGS[f] ?? f).join(',')),
  RESPONSE_CODE_DETAILS: (r: RequestRecord) => r.details,
  // Envoy's stream-info formatter writes it with blanks as '_'.
  UPSTREAM_TRANSPORT_FAILURE_REASON: (r: RequestRecord) => (r.error === undefined ? undefined : /transport failure reason: (.+)$/.exec(r.error.message)?.[1]?.replace(/ /g, '_')),
  BYTES_RECEIVED: (r: RequestRecord) => r.requestBytes,
  BYTES_SENT: (r: RequestRecord) => r.responseBytes,
  DURATION: (r: RequestRecord) => Math.max(0, Math.floor(r.durationMs)),
  UPSTREAM_HOST: (r: RequestRecord) => r.upstreamHost,
  UPSTREAM_REMOTE_ADDRESS: (r: RequestRecord) => r.upstreamHost,
  UPSTREAM_CLUSTER: (r: RequestRecord) => r.upstreamCluster,
  UPSTREAM_CLUSTER_RAW: (r: RequestRecord) => r.upstreamCluster,
  UPSTREAM_REQUEST_ATTEMPT_COUNT: (r: RequestRecord) => r.attempts ?? (r.side === 'server' && r.upstreamHost !== undefined ? 1 : undefined),
  DOWNSTREAM_LOCAL_ADDRESS: (r: RequestRecord) => joined(r.downstreamLocal),
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: (r: RequestRecord) => withoutPort(r.downstreamLocal),
  DOWNSTREAM_LOCAL_PORT: (r: RequestRecord) => r.downstreamLocal?.port,
  DOWNSTREAM_REMOTE_ADDRESS: (r: RequestRecord) => joined(r.downstreamRemote),
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: (r: RequestRecord) => withoutPort(r.downstreamRemote),
  DOWNSTREAM_REMOTE_PORT: (r: RequestRecord) => r.downstreamRemote?.port,
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: (r: RequestRecord) => joined(r.downstreamRemote),
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT: (r: RequestRecord) => withoutPort(r.downstreamRemote),
  REQUESTED_SERVER_NAME: (r: RequestRecord) => r.sni,
  ROUTE_NAME: (r: RequestRecord) => r.routeName,
  GRPC_STATUS_NUMBER: (r: RequestRecord) => (r.grpcStatus < 0 ? undefined : r.grpcStatus),
  HOSTNAME: () => hostname(),
  // Envoy's connectionID().value_or(0): the server side's connection; the client side's downstream is the app's in-process call.
  CONNECTION_ID: (r: RequestRecord) => (r.side === 'server' ? (connectionIdOf(r.connection) ?? 0) : 0),
  UPSTREAM_CONNECTION_ID: (r: RequestRecord) => connectionIdOf(r.upstreamConnection) ?? 0,
  UNIQUE_ID: () => randomUUID(),
  // The stream id provider of Envoy's request-id extension: the x-request-id.
  STREAM_ID: (r: RequestRecord) => headerValue(r.requestHeaders, 'x-request-id'),
  // Every meshlet line is Envoy's HCM log at the stream's end.
  ACCESS_LOG_TYPE: () => 'DownstreamEnd',
  REQUEST_HEADERS_BYTES: (r: RequestRecord) => headersBytes(r.requestHeaders),
  RESPONSE_HEADERS_BYTES: (r: RequestRecord) => headersBytes(r.responseHeaders),
  // stream_info_formatter.cc: TimingUtility's lastDownstreamRxByteReceived / lastUpstreamTxByteSent.
  REQUEST_DURATION: (r: RequestRecord) => ms(r.requestRxMs),
  REQUEST_TX_DURATION: (r: RequestRecord) => ms(r.requestTxMs),
  RESPONSE_DURATION: (r: RequestRecord) => ms(r.upstreamRxStartMs),
  RESPONSE_TX_DURATION: responseTx,
  UPSTREAM_LOCAL_ADDRESS: (r: RequestRecord) => r.upstreamLocal,
  UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: (r: RequestRecord) => withoutPort(parseHostPort(r.upstreamLocal)),
  UPSTREAM_LOCAL_PORT: (r: RequestRecord) => parseHostPort(r.upstreamLocal)?.port,
  ...TLS_OPERATORS,
  TRACE_ID: (r: RequestRecord) => {
    const tp = headerValue(r.requestHeaders, 'traceparent');
    const w3c = tp === undefined ? undefined : /^[\da-f]{2}-([\da-f]{32})-/.exec(tp)?.[1];
    return w3c ?? headerValue(r.requestHeaders, 'x-b3-traceid') ?? headerValue(r.requestHeaders, 'b3')?.split('-')[0];
  },
});

/**
 * A response trailer: a call's trailers as they came (client side, when a log asked for them);
 * the server side keeps none, but a gRPC status sent in trailers (not in a trailers-only head) is
 * known there too.
 */
function trailer(r: RequestRecord, name: string): string | undefined {
  const v = headerValue(r.responseTrailers, name);
  if (v !== undefined || name !== 'grpc-status' || r.responseTrailers !== undefined) return v;
  return r.protocol === 'grpc' && r.grpcStatus >= 0 && headerValue(r.responseHeaders, 'grpc-status') === undefined ? String(r.grpcStatus) : undefined;
}

/** Request pseudo-headers as Envoy's `%REQ(…)%` reads them. */
function requestHeader(r: RequestRecord, name: string): string | undefined {
  switch (name) {
    case ':path':
      return r.path;
    case ':method':
      return r.method;
    case ':authority':
    case 'host':
      return r.authority;
    case ':scheme':
      return r.scheme;
    default:
      return headerValue(r.requestHeaders, name);
  }
}

const truncate = (v: OperatorValue, max: number | undefined): OperatorValue => (max === undefined || typeof v !== 'string' ? v : v.slice(0, max));

/** A problem with an operator in a format; the caller names the format and the provider. */
export class FormatError extends Error {}

/** Compiles `%NAME(arg):max%`; what it needs captured is added to `needs`. */
export function compileOperator(name: string, arg: string | undefined, max: number | undefined, needs?: Set<OperatorNeed>): Operator {
  const need = NEEDS[name];
  if (need !== undefined) needs?.add(need);
  if (name === 'REQ' || name === 'RESP' || name === 'REQ_WITHOUT_QUERY') {
    if (arg === undefined || arg === '') throw new FormatError(`%${name}(…)% needs a header name`);
    const [main, alt] = arg.toLowerCase().split('?') as [string, string | undefined];
    const strip = name === 'REQ_WITHOUT_QUERY';
    if (name === 'RESP') return (r) => truncate(headerValue(r.responseHeaders, main) ?? (alt === undefined ? undefined : headerValue(r.responseHeaders, alt)), max);
    return (r) => {
      let v = requestHeader(r, main) ?? (alt === undefined ? undefined : requestHeader(r, alt));
      if (strip && v !== undefined) v = v.split('?')[0];
      return truncate(v, max);
    };
  }
  if (name === 'GRPC_STATUS') {
    // CAMEL_STRING (the default) `NotFound`, SNAKE_STRING `NOT_FOUND`, NUMBER `5`.
    const form = arg ?? 'CAMEL_STRING';
    if (form !== 'CAMEL_STRING' && form !== 'SNAKE_STRING' && form !== 'NUMBER') throw new FormatError(`%GRPC_STATUS(${form})%: the format must be CAMEL_STRING, SNAKE_STRING or NUMBER`);
    return (r) => {
      if (r.grpcStatus < 0) return undefined;
      const snake = GRPC_NAMES[r.grpcStatus];
      if (form === 'NUMBER' || snake === undefined) return r.grpcStatus;
      return form === 'SNAKE_STRING' ? snake : snake.toLowerCase().replace(/(?:^|_)([a-z])/g, (_m, c: string) => c.toUpperCase());
    };
  }
  if (name === 'FILTER_STATE') {
    // Istio's peer metadata (`upstream_peer` on the client side, `downstream_peer` on the server
    // side) as JSON, when metadata exchange gave it; any other key has no value in meshlet.
    const [key, form] = (arg ?? '').split(':') as [string, string | undefined];
    if (form !== undefined && form !== 'PLAIN' && form !== 'TYPED') throw new FormatError(`%FILTER_STATE(${arg})%: the format must be PLAIN or TYPED`);
    const side = key === 'upstream_peer' ? 'client' : key === 'downstream_peer' ? 'server' : undefined;
    return (r) => (side === undefined || r.side !== side || r.peer === undefined ? undefined : truncate(JSON.stringify(r.peer), max));
  }
  if (name === 'START_TIME') {
    if (arg === undefined || arg === '') return (r) => defaultStartTime(r.startTimeMs);
    const problem = checkTimeFormat(arg);
    if (problem !== undefined) throw new FormatError(`%START_TIME(${arg})%: ${problem}`);
    return (r) => formatTime(r.startTimeMs, arg);
  }
  if (name === 'CEL') {
    if (arg === undefined || arg === '') throw new FormatError('%CEL(…)% needs an expression');
    let cel: CompiledCel;
    try {
      cel = compileCel(arg);
    } catch (e) {
      throw new FormatError((e as Error).message);
    }
    return (_r, view) => truncate(cel.text(view()), max);
  }
  if (name === 'ENVIRONMENT') {
    // Read once, when the format is compiled; an unset variable is the string "-" (Envoy's EnvironmentFormatter).
    if (arg === undefined || arg === '') throw new FormatError('%ENVIRONMENT(…)% needs a variable name');
    const v = process.env[arg];
    const value = v === undefined ? '-' : truncate(v, max);
    return () => value;
  }
  if (name === 'TRAILER') {
    if (arg === undefined || arg === '') throw new FormatError('%TRAILER(…)% needs a trailer name');
    // As %RESP(…)%: `name?alternative`, `:N` truncation (Envoy's ResponseTrailerFormatter).
    const [main, alt] = arg.toLowerCase().split('?') as [string, string | undefined];
    return (r) => truncate(trailer(r, main) ?? (alt === undefined ? undefined : trailer(r, alt)), max);
  }
  let certTime: Operator | undefined;
  try {
    certTime = certTimeOperator(name, arg);
  } catch (e) {
    throw new FormatError((e as Error).message);
  }
  if (certTime !== undefined) return certTime;
  const simple = SIMPLE[name];
  if (simple !== undefined) return max === undefined ? simple : (r, v) => truncate(simple(r, v), max);
  if (NOT_AVAILABLE.has(name)) return () => undefined;
  throw new FormatError(`unknown command operator %${name}%`);
}

/** Whether an operator name is one meshlet prints from data (not always `-`). */
export function hasData(name: string): boolean {
  return !NOT_AVAILABLE.has(name);
}
