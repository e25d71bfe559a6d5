/**
 * The Istio/Envoy attribute view of one request: what a CEL expression of a Telemetry resource
 * (metric `tagOverrides` values, access-log `filter.expression`, `%CEL(…)%` log operators) reads,
 * named as Envoy names its attributes (envoyproxy.io, "Attributes") and as Istio's CEL vocabulary
 * adds to them (`filter_state.upstream_peer` / `filter_state.downstream_peer`, `xds.node`).
 *
 * Lazy: the view holds the request's record; a group (`request`, `response`, …) is made when an
 * expression first reads it, and a field when it is first read.
 *
 * | attribute | client side (`call:end`, reporter=source) | server side (`inbound:end`, reporter=destination) |
 * |---|---|---|
 * | `request.headers`, `host`, `method`, `path`, `url_path`, `query`, `scheme`, `protocol`, `id`, `useragent`, `referer`, `time`, `duration`, `size`, `total_size` | the call (headers from its `call:start`) | the request |
 * | `response.code`, `code_details`, `flags` (Envoy's bit set), `grpc_status`, `headers`, `size`, `total_size` | what the caller got | what was sent |
 * | `source.address`, `source.port`, `source.principal` | absent (the app itself) | the caller (`ip:port`, as Envoy's; principal: its SPIFFE ID over mTLS) |
 * | `destination.address`, `destination.port` | port of the cluster | the server's address (`ip:port`) and port |
 * | `connection.mtls`, `requested_server_name`, `uri_san_peer_certificate` | `mtls` false (the app talks to the mesh in process) | the downstream connection |
 * | `upstream.address`, `upstream.port`, `upstream.request_attempt_count` | the endpoint of the last attempt (`ip:port`); attempts | the server itself (when the app answered) |
 * | `xds.cluster_name`, `route_name`, `listener_direction`, `node` | `outbound\|port\|subset\|host`, `vs.rule`, 2 | `inbound\|port\|\|`, `default`, 1 |
 * | `filter_state.upstream_peer` / `downstream_peer` | the destination's metadata, when passed in | the source's metadata, when passed in |
 *
 * `request.size` and `request.total_size` are the same number (the kernel counts one figure per
 * side); so are the response's. `source.principal` is meshlet's (Envoy has no such attribute;
 * Istio's old Mixer had it).
 *
 * @module
 */
import type { CelActivation } from './cel.ts';
import { CelDuration, CelObject, CelTimestamp } from './cel-values.ts';
import { type HeaderMap, headerValue, parseHostPort, type PeerMetadata, type RequestRecord } from './record.ts';
import { formatHostPort } from '../core/host-port.ts';

export type { PeerMetadata, RequestRecord } from './record.ts';
export { clientRecord, serverRecord, type ClientRecordOptions, type ServerRecordOptions } from './record.ts';

/** Envoy's `%PROTOCOL%` / `request.protocol` for a kernel protocol. */
export function protocolName(p: RequestRecord['protocol']): string {
  return p === 'http1' ? 'HTTP/1.1' : 'HTTP/2';
}

/** Envoy's response-flag bits (`StreamInfo::CoreResponseFlag`), for `response.flags`. */
const FLAG_BITS: Readonly<Record<string, number>> = Object.assign(Object.create(null), {
  LH: 0,
  UH: 1,
  UT: 2,
  LR: 3,
  UR: 4,
  UF: 5,
  UC: 6,
  UO: 7,
  NR: 8,
  DI: 9,
  FI: 10,
  RL: 11,
  UAEX: 12,
  RLSE: 13,
  DC: 14,
  URX: 15,
  SI: 16,
  IH: 17,
  DPE: 18,
  UMSDR: 19,
  RFCF: 20,
  NFCF: 21,
  DT: 22,
  UPE: 23,
  NC: 24,
  OM: 25,
  DF: 26,
  DO: 27,
  DR: 28,
});

/** `response.flags`: the flags as Envoy's bit set. */
export function flagBits(flags: string): bigint {
  let bits = 0n;
  for (const f of flags === '' ? [] : flags.split(',')) {
    const b = FLAG_BITS[f];
    if (b !== undefined) bits |= 1n << BigInt(b);
  }
  return bits;
}

/** A header map as CEL sees it: names looked up case-insensitively, several values joined with `,`. */
class HeaderFields extends CelObject {
  readonly #h: HeaderMap;
  constructor(h: HeaderMap) {
    super();
    this.#h = h;
  }
  field(name: string): unknown {
    return headerValue(this.#h, name.toLowerCase());
  }
  keys(): readonly string[] {
    return Object.keys(this.#h).filter((k) => this.#h[k] !== undefined);
  }
}

type Thunk = (r: RequestRecord) => unknown;

/** A group of attributes computed on first read. */
class Group extends CelObject {
  readonly #table: Readonly<Record<string, Thunk>>;
  readonly #r: RequestRecord;
  #cache: Map<string, unknown> | undefined;
  constructor(table: Readonly<Record<string, Thunk>>, r: RequestRecord) {
    super();
    this.#table = table;
    this.#r = r;
  }
  field(name: string): unknown {
    const t = this.#table[name];
    if (t === undefined) return undefined;
    this.#cache ??= new Map();
    if (this.#cache.has(name)) return this.#cache.get(name);
    const v = t(this.#r);
    this.#cache.set(name, v);
    return v;
  }
  keys(): readonly string[] {
    return Object.keys(this.#table).filter((k) => this.field(k) !== undefined);
  }
}

/** A plain record as a CEL map (null-prototype copy; keys come from outside). */
function mapOf(o: Readonly<Record<string, string>> | undefined): Record<string, string> | undefined {
  if (o === undefined) return undefined;
  return Object.assign(Object.create(null) as Record<string, string>, o);
}

function table(t: Record<string, Thunk>): Readonly<Record<string, Thunk>> {
  return Object.freeze(Object.assign(Object.create(null), t));
}

const int = (n: number | undefined): bigint | undefined => (n === undefined ? undefined : BigInt(Math.trunc(n)));
const urlPath = (p: string): string => {
  const q = p.indexOf('?');
  return q === -1 ? p : p.slice(0, q);
};

const REQUEST = table({
  headers: (r) => (r.requestHeaders === undefined ? undefined : new HeaderFields(r.requestHeaders)),
  host: (r) => r.authority,
  method: (r) => r.method,
  path: (r) => r.path,
  url_path: (r) => urlPath(r.path),
  query: (r) => {
    const q = r.path.indexOf('?');
    return q === -1 ? '' : r.path.slice(q + 1);
  },
  scheme: (r) => r.scheme,
  protocol: (r) => protocolName(r.protocol),
  id: (r) => headerValue(r.requestHeaders, 'x-request-id'),
  useragent: (r) => headerValue(r.requestHeaders, 'user-agent'),
  referer: (r) => headerValue(r.requestHeaders, 'referer'),
  time: (r) => new CelTimestamp(r.startTimeMs),
  duration: (r) => new CelDuration(r.durationMs),
  size: (r) => int(r.requestBytes),
  total_size: (r) => int(r.requestBytes),
});

const RESPONSE = table({
  code: (r) => (r.status > 0 ? int(r.status) : undefined),
  code_details: (r) => r.details,
  flags: (r) => flagBits(r.flags),
  grpc_status: (r) => (r.grpcStatus >= 0 ? int(r.grpcStatus) : undefined),
  headers: (r) => (r.responseHeaders === undefined ? undefined : new HeaderFields(r.responseHeaders)),
  size: (r) => int(r.responseBytes),
  total_size: (r) => int(r.responseBytes),
});

/** `ip:port` (`[ip6]:port`), as Envoy's `Address::asStringView()` gives an address in CEL. */
function joined(hp: { readonly address: string; readonly port: number } | undefined): string | undefined {
  if (hp === undefined) return undefined;
  return formatHostPort(hp.address, hp.port);
}

const SOURCE = table({
  address: (r) => joined(r.downstreamRemote),
  port: (r) => int(r.downstreamRemote?.port),
  principal: (r) => r.peerPrincipal,
});

/** The port of `outbound|port|subset|host` or `inbound|port||`. */
function clusterPort(cluster: string | undefined): number | undefined {
  const p = cluster?.split('|')[1];
  return p === undefined || p === '' ? undefined : Number(p);
}

const DESTINATION = table({
  address: (r) => joined(r.downstreamLocal),
  port: (r) => int(r.downstreamLocal?.port ?? clusterPort(r.upstreamCluster)),
});

const CONNECTION = table({
  mtls: (r) => r.mtls,
  requested_server_name: (r) => r.sni,
  uri_san_peer_certificate: (r) => r.peerPrincipal,
});

const UPSTREAM = table({
  address: (r) => joined(parseHostPort(r.upstreamHost)),
  port: (r) => int(parseHostPort(r.upstreamHost)?.port),
  request_attempt_count: (r) => int(r.attempts),
});

function nodeOf(r: RequestRecord): Record<string, unknown> | undefined {
  const w = r.workload;
  if (w === undefined) return undefined;
  const metadata = Object.assign(Object.create(null), { NAMESPACE: w.namespace, SERVICE_ACCOUNT: w.serviceAccount, LABELS: mapOf(w.labels), WORKLOAD_NAME: w.service });
  return Object.assign(Object.create(null), { cluster: `${w.service}.${w.namespace}`, metadata });
}

const XDS = table({
  cluster_name: (r) => r.upstreamCluster,
  route_name: (r) => r.routeName,
  listener_direction: (r) => (r.side === 'server' ? 1n : 2n),
  node: nodeOf,
});

/** `filter_state.upstream_peer` / `downstream_peer`: the peer's metadata in Istio's vocabulary. */
function peerObject(p: PeerMetadata): Record<string, unknown> {
  const o: Record<string, unknown> = Object.create(null);
  for (const k of ['namespace', 'cluster', 'service', 'revision', 'app', 'version', 'workload', 'type', 'name'] as const) if (p[k] !== undefined) o[k] = p[k];
  if (p.labels !== undefined) o['labels'] = mapOf(p.labels);
  return o;
}

const FILTER_STATE = table({
  upstream_peer: (r) => (r.side === 'client' && r.peer !== undefined ? peerObject(r.peer) : undefined),
  downstream_peer: (r) => (r.side === 'server' && r.peer !== undefined ? peerObject(r.peer) : undefined),
});

const GROUPS: Readonly<Record<string, Readonly<Record<string, Thunk>>>> = Object.freeze(
  Object.assign(Object.create(null), { request: REQUEST, response: RESPONSE, source: SOURCE, destination: DESTINATION, connection: CONNECTION, upstream: UPSTREAM, xds: XDS, filter_state: FILTER_STATE }),
);

/** The top-level attribute names the view knows (an expression reading another one is an error for every request). */
export const ATTRIBUTE_ROOTS: readonly string[] = Object.freeze(Object.keys(GROUPS));

/**
 * The attribute view of one request: a {@link CelActivation} for `cel.ts`. Make one per
 * request from {@link clientRecord} or {@link serverRecord}; it builds only what is read.
 * @example compileCel('response.code >= 400').test(new AttributeView(serverRecord(m)))
 */
export class AttributeView implements CelActivation {
  /** The request this view reads. */
  readonly record: RequestRecord;
  #groups: Map<string, Group> | undefined;
  constructor(record: RequestRecord) {
    this.record = record;
  }
  resolve(name: string): unknown {
    const t = GROUPS[name];
    if (t === undefined) return undefined;
    this.#groups ??= new Map();
    let g = this.#groups.get(name);
    if (g === undefined) {
      g = new Group(t, this.record);
      this.#groups.set(name, g);
    }
    return g;
  }
}
