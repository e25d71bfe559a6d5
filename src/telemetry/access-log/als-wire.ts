/**
 * The protobuf messages of Envoy's gRPC access log service, by hand (`core/protobuf.ts`), with
 * Envoy's field numbers: `envoy.service.accesslog.v3.StreamAccessLogsMessage` (als.proto) and
 * `envoy.data.accesslog.v3.HTTPAccessLogEntry` (accesslog.proto), filled from a request record as
 * Envoy's HTTP gRPC access logger fills them (`HttpGrpcAccessLog::emitLog`,
 * `GrpcCommon::Utility::extractCommonAccessLogProperties`). test/fixtures/als/als.proto holds the
 * same messages for the tests' collector, which decodes them with @grpc/proto-loader.
 *
 * @module
 */
import { ProtoWriter } from '../../core/protobuf.ts';
import { type HeaderMap, headerValue, parseHostPort, type PeerMetadata, type RequestRecord } from '../record.ts';
import { compileOperator, headersBytes } from './operators.ts';
import { type TlsDetails, tlsDetailsOf } from './tls-details.ts';

/** The gRPC method the stream calls. */
export const ALS_STREAM_METHOD = '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs';

/** What an entry is made with besides the record (the provider's `additional*ToLog` and `filterStateObjectsToLog`). */
export interface HttpEntryOptions {
  /** Lower-cased request header names (`request.request_headers`). */
  readonly requestHeaders: readonly string[];
  readonly responseHeaders: readonly string[];
  readonly responseTrailers: readonly string[];
  readonly filterStateObjects: readonly string[];
}

/** `envoy.config.core.v3.Node`: the sender, in the stream's first message. */
export interface AlsNode {
  readonly id: string;
  readonly cluster: string;
  /** `Node.metadata` (a Struct of strings and string maps). */
  readonly metadata: Readonly<Record<string, string | Readonly<Record<string, string>>>>;
}

/** Envoy's response flag → the `ResponseFlags` field it sets (`responseFlagsToAccessLogResponseFlags`); UAEX is `unauthorized_details`. */
const FLAG_FIELDS: Readonly<Record<string, number>> = Object.freeze({
  LH: 1,
  UH: 2,
  UT: 3,
  LR: 4,
  UR: 5,
  UF: 6,
  UC: 7,
  UO: 8,
  NR: 9,
  DI: 10,
  FI: 11,
  RL: 12,
  RLSE: 14,
  DC: 15,
  URX: 16,
  SI: 17,
  IH: 18,
  DPE: 19,
  UMSDR: 20,
  RFCF: 21,
  NFCF: 22,
  DT: 23,
  UPE: 24,
  NC: 25,
  OM: 26,
  DF: 27,
});

/** `envoy.config.core.v3.RequestMethod` (Envoy parses the method's name; others are METHOD_UNSPECIFIED). */
const METHODS: Readonly<Record<string, number>> = Object.freeze({ GET: 1, HEAD: 2, POST: 3, PUT: 4, DELETE: 5, CONNECT: 6, OPTIONS: 7, TRACE: 8, PATCH: 9 });

const transportFailure = compileOperator('UPSTREAM_TRANSPORT_FAILURE_REASON', undefined, undefined);
const attemptCount = compileOperator('UPSTREAM_REQUEST_ATTEMPT_COUNT', undefined, undefined);
const noView = (): never => {
  throw new Error('no attribute view');
};

/** A Timestamp or Duration from milliseconds (seconds 1, nanos 2). */
function time(ms: number): ProtoWriter {
  const w = new ProtoWriter();
  const whole = Math.floor(ms / 1000);
  w.uint(1, whole);
  w.uint(2, Math.min(999_999_999, Math.round((ms - whole * 1000) * 1e6)));
  return w;
}

/** `Address { socket_address { address, port_value } }`. */
function address(host: string, port: number): ProtoWriter {
  const sa = new ProtoWriter();
  sa.string(2, host);
  sa.uint(3, port);
  const w = new ProtoWriter();
  w.message(1, sa);
  return w;
}

/** A `map<string, string>` field: one entry message per key. */
function stringMap(w: ProtoWriter, field: number, entries: Iterable<readonly [string, string]>): void {
  for (const [k, v] of entries) {
    const e = new ProtoWriter();
    e.string(1, k);
    e.string(2, v);
    w.message(field, e);
  }
}

/** A `google.protobuf.Struct` of strings and nested objects of strings. */
export function encodeStruct(s: Readonly<Record<string, unknown>>): ProtoWriter {
  const w = new ProtoWriter();
  for (const key of Object.keys(s).sort()) {
    const v = s[key];
    const value = new ProtoWriter();
    if (typeof v === 'string') value.bytes(3, Buffer.from(v, 'utf8'));
    else if (v !== null && typeof v === 'object') value.message(5, encodeStruct(v as Record<string, unknown>));
    else continue;
    const entry = new ProtoWriter();
    entry.bytes(1, Buffer.from(key, 'utf8'));
    entry.message(2, value);
    w.message(1, entry);
  }
  return w;
}

/** The filter state object Istio's metadata exchange keeps for a peer, as a `google.protobuf.Any` of a Struct. */
function peerAny(p: PeerMetadata): ProtoWriter {
  const any = new ProtoWriter();
  any.string(1, 'type.googleapis.com/google.protobuf.Struct');
  any.message(2, encodeStruct(p as Record<string, unknown>));
  return any;
}

/** `TLSVersion` (accesslog.proto) of Envoy's `tlsVersionStringToEnum`. */
const TLS_VERSIONS: Readonly<Record<string, number>> = Object.freeze({ TLSv1: 1, 'TLSv1.1': 2, 'TLSv1.2': 3, 'TLSv1.3': 4 });

/** `CertificateProperties { subject_alt_name { uri }, subject }`. */
function certificateProperties(uris: readonly string[], subject: string): ProtoWriter {
  const w = new ProtoWriter();
  for (const uri of uris) {
    const san = new ProtoWriter();
    san.bytes(1, Buffer.from(uri, 'utf8'));
    w.message(1, san);
  }
  w.string(2, subject);
  return w;
}

/**
 * `TLSProperties`, as Envoy's `extractCommonAccessLogProperties` fills it (source/extensions/access_loggers/
 * common/grpc_access_logger_utils.cc): the SNI, and for a TLS connection its version, cipher suite
 * (IANA id), session id, and the local and peer certificates' URI SANs and subjects. Without the
 * connection (a listener the mesh did not make), the verified SPIFFE ID is the peer's one SAN.
 */
function tlsProperties(r: RequestRecord, t: TlsDetails | undefined): ProtoWriter {
  const tls = new ProtoWriter();
  if (t !== undefined) {
    tls.uint(1, TLS_VERSIONS[t.version ?? ''] ?? 0);
    if (t.cipherId !== undefined) {
      const c = new ProtoWriter();
      c.uint(1, t.cipherId);
      tls.message(2, c);
    }
  }
  tls.string(3, r.sni);
  if (t !== undefined) {
    tls.message(4, certificateProperties(t.local?.uriSans ?? [], t.local?.subject ?? ''));
    tls.message(5, certificateProperties(t.peer?.uriSans ?? [], t.peer?.subject ?? ''));
    tls.string(6, t.sessionId);
  } else if (r.mtls && r.peerPrincipal !== undefined) tls.message(5, certificateProperties([r.peerPrincipal], ''));
  return tls;
}

/** `envoy.data.accesslog.v3.AccessLogType.DownstreamEnd`. */
const ACCESS_LOG_TYPE_DOWNSTREAM_END = 6;

function common(r: RequestRecord, o: HttpEntryOptions): ProtoWriter {
  const w = new ProtoWriter();
  const remote = r.downstreamRemote;
  if (remote !== undefined) w.message(2, address(remote.address, remote.port));
  if (r.downstreamLocal !== undefined) w.message(3, address(r.downstreamLocal.address, r.downstreamLocal.port));
  const t = r.side === 'server' ? tlsDetailsOf(r.connection) : undefined;
  if (r.sni !== undefined || r.mtls || t !== undefined) w.message(4, tlsProperties(r, t));
  w.message(5, time(r.startTimeMs));
  // Envoy's TimingUtility: the last byte from the downstream, the last byte to the upstream (the
  // app, server side), the first byte from the upstream, and the first and last bytes to the
  // downstream; meshlet sees the response head (first bytes) and the end (the last one).
  if (r.requestRxMs !== undefined) w.message(6, time(r.requestRxMs));
  if (r.requestTxMs !== undefined) w.message(8, time(r.requestTxMs));
  if (r.upstreamRxStartMs !== undefined) w.message(9, time(r.upstreamRxStartMs));
  if (r.downstreamTxStartMs !== undefined) w.message(11, time(r.downstreamTxStartMs));
  if (r.status > 0 && !r.flags.split(',').includes('DC')) w.message(12, time(r.durationMs));
  const upstream = parseHostPort(r.upstreamHost);
  if (upstream !== undefined) {
    w.message(13, address(upstream.address, upstream.port));
    // Envoy names the cluster of the upstream host it picked (none without one).
    w.string(15, r.upstreamCluster);
  }
  const upstreamLocal = parseHostPort(r.upstreamLocal);
  if (upstreamLocal !== undefined) w.message(14, address(upstreamLocal.address, upstreamLocal.port));
  const flags = r.flags === '' ? [] : r.flags.split(',');
  if (flags.length > 0) {
    const f = new ProtoWriter();
    for (const flag of flags.map((x) => FLAG_FIELDS[x]).filter((n): n is number => n !== undefined).sort((a, b) => a - b)) f.uint(flag, 1);
    if (flags.includes('UAEX')) {
      const u = new ProtoWriter();
      u.uint(1, 1); // EXTERNAL_SERVICE
      f.message(13, u);
    }
    w.message(16, f);
  }
  const tfr = transportFailure(r, noView);
  if (typeof tfr === 'string') w.string(18, tfr);
  w.string(19, r.routeName);
  if (remote !== undefined) w.message(20, address(remote.address, remote.port));
  if (r.peer !== undefined) {
    const key = r.side === 'client' ? 'upstream_peer' : 'downstream_peer';
    if (o.filterStateObjects.includes(key)) {
      const e = new ProtoWriter();
      e.string(1, key);
      e.message(2, peerAny(r.peer));
      w.message(21, e);
    }
  }
  w.message(23, time(r.durationMs));
  const attempts = attemptCount(r, noView);
  if (typeof attempts === 'number') w.uint(24, attempts);
  // grpc_access_log_utils.cc extractCommonAccessLogProperties: the stream id provider's id (Envoy's
  // request-id extension: the x-request-id, as %STREAM_ID%), and the log's type — every meshlet
  // entry is the HTTP connection manager's end-of-stream log (AccessLogType DownstreamEnd = 6).
  w.string(26, headerValue(r.requestHeaders, 'x-request-id'));
  w.uint(33, ACCESS_LOG_TYPE_DOWNSTREAM_END);
  return w;
}

function picked(h: HeaderMap | undefined, names: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const n of names) {
    const v = headerValue(h, n);
    if (v !== undefined) out.push([n, v]);
  }
  return out;
}

/** One `HTTPAccessLogEntry` for a request, as Envoy's HTTP gRPC access logger makes it. */
export function encodeHttpEntry(r: RequestRecord, o: HttpEntryOptions): Buffer {
  const h = r.requestHeaders;
  const req = new ProtoWriter();
  req.uint(1, METHODS[r.method] ?? 0);
  req.string(2, r.scheme);
  req.string(3, r.authority);
  req.string(5, r.path);
  req.string(6, headerValue(h, 'user-agent'));
  req.string(7, headerValue(h, 'referer'));
  req.string(8, headerValue(h, 'x-forwarded-for'));
  req.string(9, headerValue(h, 'x-request-id'));
  req.string(10, headerValue(h, 'x-envoy-original-path'));
  req.uint(11, headersBytes(h));
  req.uint(12, r.requestBytes);
  stringMap(req, 13, picked(h, o.requestHeaders));
  const res = new ProtoWriter();
  if (r.status > 0) {
    const code = new ProtoWriter();
    code.uint(1, r.status);
    res.message(1, code);
  }
  res.uint(2, headersBytes(r.responseHeaders));
  res.uint(3, r.responseBytes);
  stringMap(res, 4, picked(r.responseHeaders, o.responseHeaders));
  // The record keeps no trailers: a gRPC call's grpc-status (a trailer) is the one it knows.
  if (r.grpcStatus >= 0 && o.responseTrailers.includes('grpc-status')) stringMap(res, 5, [['grpc-status', String(r.grpcStatus)]]);
  res.string(6, r.details);
  const entry = new ProtoWriter();
  entry.message(1, common(r, o));
  entry.uint(2, r.protocol === 'http1' ? 2 : 3);
  entry.message(3, req);
  entry.message(4, res);
  return entry.finish();
}

/** The `Identifier` of a stream's first message: the node and the log's name. */
export function encodeIdentifier(node: AlsNode, logName: string): Buffer {
  const n = new ProtoWriter();
  n.string(1, node.id);
  n.string(2, node.cluster);
  n.message(3, encodeStruct(node.metadata));
  n.string(6, 'meshlet');
  const id = new ProtoWriter();
  id.message(1, n);
  id.string(2, logName);
  return id.finish();
}

/** One `StreamAccessLogsMessage`: the identifier (first message of a stream only) and a batch of HTTP entries. */
export function encodeStreamMessage(identifier: Buffer | undefined, entries: readonly Buffer[]): Buffer {
  const logs = new ProtoWriter();
  for (const e of entries) logs.bytes(1, e);
  const m = new ProtoWriter();
  if (identifier !== undefined) m.bytes(1, identifier);
  m.message(2, logs);
  return m.finish();
}
