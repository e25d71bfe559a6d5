/**
 * One request as telemetry sees it, whichever side reported it: the normalized record the
 * attribute view (`attributes.ts`) and the access-log formatter read. Built from a
 * `meshlet:call:end` message (the client side, Istio's `reporter=source`) or a
 * `meshlet:inbound:end` message (the server side, `reporter=destination`) without copying
 * anything large; headers are read where they are.
 *
 * @module
 */
import type { Protocol } from '../core/classify.ts';
import { MeshletError } from '../core/errors.ts';
import { formatHostPort, keyAddress } from '../core/host-port.ts';
import type { CallEndMessage, CallStartMessage, InboundEndMessage, WorkloadIdentity } from '../core/observe.ts';

/** A header map with lower-cased names, as the kernel carries them. */
export type HeaderMap = Readonly<Record<string, string | readonly string[] | number | undefined>>;

/**
 * The peer workload's metadata, as Istio's metadata exchange gives it (the fields of
 * `filter_state.upstream_peer` / `filter_state.downstream_peer` in Istio's CEL vocabulary:
 * `namespace`, `cluster`, `service`, `revision`, `app`, `version`, `workload`, `type`, `name`,
 * and the peer's `labels`). Whoever knows it (the metrics module's metadata exchange) passes it in.
 */
export interface PeerMetadata {
  readonly namespace?: string;
  readonly cluster?: string;
  readonly service?: string;
  readonly revision?: string;
  readonly app?: string;
  readonly version?: string;
  readonly workload?: string;
  /** `deployment`, `pod`, … */
  readonly type?: string;
  /** The instance name (pod name). */
  readonly name?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** An address and port. */
export interface HostPort {
  readonly address: string;
  readonly port: number;
}

/** The side that reported a request: `client` (outbound, reporter=source) or `server` (inbound, reporter=destination). */
export type Side = 'client' | 'server';

/** One request, normalized. Absent values are undefined (printed `-` in logs). */
export interface RequestRecord {
  readonly side: Side;
  readonly workload: WorkloadIdentity | undefined;
  readonly protocol: Protocol;
  readonly method: string;
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  /** Path with query, as sent or received. */
  readonly path: string;
  readonly requestHeaders: HeaderMap | undefined;
  readonly responseHeaders: HeaderMap | undefined;
  /** The status the caller got, 0 when none. */
  readonly status: number;
  /** The gRPC status, -1 when none. */
  readonly grpcStatus: number;
  /** Envoy response flags, comma-separated ('' when none). */
  readonly flags: string;
  /** `%RESPONSE_CODE_DETAILS%`, when known. */
  readonly details: string | undefined;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly durationMs: number;
  /** When the request started, milliseconds since the Unix epoch. */
  readonly startTimeMs: number;
  /** Attempts made (client side). */
  readonly attempts: number | undefined;
  /** `address:port` of the upstream host. */
  readonly upstreamHost: string | undefined;
  /** The cluster: `outbound|port|subset|host` (client), `inbound|port||` (server). */
  readonly upstreamCluster: string | undefined;
  readonly routeName: string | undefined;
  /** The destination service host (client side). */
  readonly destinationService: string | undefined;
  /** Where the request was received (server side: the server's address). */
  readonly downstreamLocal: HostPort | undefined;
  /** Who sent it (server side: the caller's address). */
  readonly downstreamRemote: HostPort | undefined;
  readonly sni: string | undefined;
  /** Whether the downstream connection was mTLS (server side). */
  readonly mtls: boolean;
  /** The downstream peer's SPIFFE ID (server side, mTLS). */
  readonly peerPrincipal: string | undefined;
  /** `iss/sub` of the verified JWT. */
  readonly requestPrincipal: string | undefined;
  /** The destination workload as registered (client side). */
  readonly destination: CallEndMessage['destination'];
  /** The other side's workload metadata, when known (metadata exchange). */
  readonly peer: PeerMetadata | undefined;
  /** Why the call failed, when it did: the caller's error, or the mesh-made failure its answer was rendered from. */
  readonly error: Error | undefined;
  /** The downstream connection (server side): its socket, HTTP/2 session or the gRPC listener's record of it; what the TLS and connection-id operators read. */
  readonly connection?: object | undefined;
  /** Since the start, when the response head reached the downstream (the caller; the app, client side), when a log asked for it. */
  readonly downstreamTxStartMs?: number | undefined;
  /** Since the start, when the upstream's (the app's, server side) response head came, when a log asked for it (none for a reply the mesh made). */
  readonly upstreamRxStartMs?: number | undefined;
  /** The local end of the upstream connection (`address:port`, an IPv6 address in brackets), when a log asked for it. */
  readonly upstreamLocal?: string | undefined;
  /** Since the start, when the request's last byte was received from the downstream (the app, client side), when a log asked for it. */
  readonly requestRxMs?: number | undefined;
  /** Since the start, when the request's last byte was sent upstream (the app, server side), when a log asked for it. */
  readonly requestTxMs?: number | undefined;
  /** The response's trailers, when a log asked for them (client side). */
  readonly responseTrailers?: HeaderMap | undefined;
  /** The upstream connection (its socket) the call's request was last sent on, when a log asked for it (client side). */
  readonly upstreamConnection?: object | undefined;
}

/** What a client-side record needs besides the `call:end` message. */
export interface ClientRecordOptions {
  /** The `call:start` message of the same call (its headers). */
  readonly start?: CallStartMessage;
  /** The call's request headers, when the `call:start` message is not kept (`start`'s headers win). */
  readonly requestHeaders?: HeaderMap;
  /** When the call started, ms since the epoch. @defaultValue `Date.now() - end.durationMs` */
  readonly startTimeMs?: number;
  /** The destination workload's metadata (metadata exchange). */
  readonly peer?: PeerMetadata;
  /** What `meshlet:call:response` said of the call, when a log asked for it: the head's latency, whether the mesh made the reply, the connection's local end. */
  readonly response?: ResponseSeen | undefined;
  /** The local end (`address:port`) of the connection the call's request last went out on, when a log asked for it (answered or not). */
  readonly upstreamLocal?: string | undefined;
  /** When the request's last byte was received from the app and sent upstream, when a log asked for them. */
  readonly requestTimes?: RequestTimes | undefined;
  /** The response's trailers, when a log asked for them. */
  readonly responseTrailers?: HeaderMap | undefined;
  /** The connection (socket) the call's request last went out on, when a log asked for it (the upstream TLS operators of a call that got no answer). */
  readonly upstreamConnection?: object | undefined;
}

/** When a request's last byte was received from the downstream and sent upstream, ms since its start (`%REQUEST_DURATION%`, `%REQUEST_TX_DURATION%`). */
export interface RequestTimes {
  readonly receivedMs: number | undefined;
  readonly sentMs: number | undefined;
}

/** A response head as a log saw it (`meshlet:call:response`, `meshlet:inbound:response`). */
export interface ResponseSeen {
  readonly latencyMs: number;
  /** The mesh made the reply (a direct response, a denial): no upstream answered. */
  readonly local: boolean;
  readonly localAddress?: string | undefined;
  /** The connection (socket) that answered. */
  readonly connection?: object | undefined;
}

/** What a server-side record needs besides the `inbound:end` message. */
export interface ServerRecordOptions {
  /** When the request started, ms since the epoch. @defaultValue `Date.now() - end.durationMs` */
  readonly startTimeMs?: number;
  /** The source workload's metadata (metadata exchange). */
  readonly peer?: PeerMetadata;
  /** What `meshlet:inbound:response` said of the request, when a log asked for it. */
  readonly response?: ResponseSeen | undefined;
  /** When the request's last byte was received from the caller and reached the app, when a log asked for them. */
  readonly requestTimes?: RequestTimes | undefined;
}

function hostPort(s: string | undefined): HostPort | undefined {
  if (s === undefined) return undefined;
  const i = s.lastIndexOf(':');
  if (i <= 0) return undefined;
  const port = Number(s.slice(i + 1));
  return Number.isInteger(port) ? { address: s.slice(0, i).replace(/^\[|\]$/g, ''), port } : undefined;
}

export { hostPort as parseHostPort };

/**
 * `%RESPONSE_CODE_DETAILS%` of a client-side call, as Envoy's router and filters set it: from
 * the flags of how it ended (`no_healthy_upstream`, `fault_filter_abort`, …), and for a
 * failure the mesh made (the caller got the sidecar's answer or the error) from that failure
 * (`response_timeout`, `upstream_reset_before_response_started{remote_connection_failure}`, …);
 * `upstream_reset_after_response_started{connection_termination}` when the upstream failed mid-body,
 * `via_upstream` when the upstream answered, `direct_response` for a route's own answer,
 * `cors_response` for a preflight its CORS policy answered.
 */
function clientDetails(flags: readonly string[], status: number, end: CallEndMessage, failure: MeshletError | undefined): string | undefined {
  const has = (f: string): boolean => flags.includes(f);
  if (has('FI')) return 'fault_filter_abort';
  if (has('NR')) return 'route_not_found';
  if (has('NC')) return 'cluster_not_found';
  if (has('UH')) return 'no_healthy_upstream';
  if (has('RL')) return 'local_rate_limited';
  // REGISTRY_ONLY: Istio's block_all route is a direct response (502), whichever way the caller got it.
  if (end.catchAll === 'block_all') return 'direct_response';
  if (end.error === undefined && failure === undefined && status > 0) {
    if (end.endpoint !== undefined || end.route === undefined) return 'via_upstream';
    // A CORS preflight the route's corsPolicy answered (Envoy's CORS filter), or the route's own answer.
    return (end.call as { readonly localReply?: string }).localReply === 'cors' ? 'cors_response' : 'direct_response';
  }
  // The upstream failed mid-body (the caller's body got the transport's error), as Envoy's router words a late reset.
  if (failure === undefined && status > 0) {
    const late = has('UC') ? 'connection_termination' : has('UR') ? 'remote_reset' : has('UPE') ? 'protocol_error' : undefined;
    if (late !== undefined) return `upstream_reset_after_response_started{${late}}`;
  }
  const reset = failure === undefined ? undefined : resetDetails(failure);
  if (reset !== undefined) return reset;
  if (has('UT')) return 'response_timeout';
  if (has('UO')) return 'upstream_reset_before_response_started{overflow}';
  if (has('UF')) return 'upstream_reset_before_response_started{remote_connection_failure}';
  if (has('UPE')) return 'upstream_reset_before_response_started{protocol_error}';
  if (has('UC')) return 'upstream_reset_before_response_started{connection_termination}';
  if (has('UR')) return 'upstream_reset_before_response_started{remote_reset}';
  if (has('DC')) return 'downstream_remote_disconnect';
  if (status > 0) return 'via_upstream';
  return undefined;
}

/**
 * The details Envoy's router gives a mesh-made failure that says more than its flag: a per-try
 * timeout (`upstream_per_try_timeout`), an upstream reset with its reset reason and transport
 * failure reason, blanks as `_` (`upstream_reset_before_response_started{remote_connection_failure|TLS_error:_…}`).
 */
function resetDetails(e: MeshletError): string | undefined {
  if (e.code === 'MESHLET_ERR_TIMEOUT') return (e.cause as Error | undefined)?.name === 'PerTryTimeout' ? 'upstream_per_try_timeout' : undefined;
  const at = e.message.indexOf('reset reason: ');
  if (at < 0) return undefined;
  const text = e.message.slice(at + 'reset reason: '.length);
  const tfr = text.indexOf(', transport failure reason: ');
  // Envoy's router: `{<reset reason>|<transport failure reason>}`.
  const reason = tfr < 0 ? text : `${text.slice(0, tfr)}|${text.slice(tfr + ', transport failure reason: '.length)}`;
  return `upstream_reset_before_response_started{${reason.replace(/\s/g, '_')}}`;
}

/** The record of a client-side call (`meshlet:call:end`). */
export function clientRecord(end: CallEndMessage, o: ClientRecordOptions = {}): RequestRecord {
  const err = end.error;
  // The mesh-made failure: the caller's error, or the one its answer was rendered from.
  const meshErr = err instanceof MeshletError ? err : end.rendered instanceof MeshletError ? end.rendered : undefined;
  let flags = end.flags;
  for (const f of meshErr?.flags.split(',') ?? []) if (f !== '' && !flags.split(',').includes(f)) flags = flags === '' ? f : `${flags},${f}`;
  const status = end.status > 0 ? end.status : (meshErr?.httpStatus ?? 0);
  const list = flags === '' ? [] : flags.split(',');
  if (status === 0 && err?.name === 'AbortError' && !list.includes('DC')) {
    list.push('DC');
    flags = list.join(',');
  }
  return {
    side: 'client',
    workload: end.workload,
    protocol: end.protocol,
    method: end.method,
    scheme: 'http',
    authority: end.authority,
    path: end.path,
    requestHeaders: (o.start?.headers as HeaderMap | undefined) ?? o.requestHeaders,
    responseHeaders: end.responseHeaders,
    status,
    grpcStatus: end.grpcStatus >= 0 ? end.grpcStatus : end.protocol === 'grpc' && meshErr?.grpcStatus !== undefined ? meshErr.grpcStatus : -1,
    flags,
    details: clientDetails(list, status, end, meshErr),
    requestBytes: end.requestBytes,
    responseBytes: end.responseBytes,
    durationMs: end.durationMs,
    startTimeMs: o.startTimeMs ?? Date.now() - end.durationMs,
    attempts: end.attempts,
    upstreamHost: end.endpoint === undefined ? undefined : keyAddress(end.endpoint),
    upstreamCluster: end.cluster,
    // A host outside the registry took Istio's catch-all route, named allow_any or block_all.
    routeName: end.route ?? end.catchAll,
    destinationService: end.destinationService,
    downstreamLocal: undefined,
    downstreamRemote: undefined,
    sni: undefined,
    mtls: false,
    peerPrincipal: undefined,
    requestPrincipal: undefined,
    destination: end.destination,
    peer: o.peer,
    error: err ?? meshErr,
    ...(o.response === undefined ? {} : responseTimes(o.response)),
    // Envoy's router sets the upstream local address when the request gets a connection, answered or not (upstream_request.cc onPoolReady).
    upstreamLocal: o.response?.localAddress ?? o.upstreamLocal,
    // Envoy's router sets the upstream SSL connection at onPoolReady too: a call reset after the handshake has it.
    upstreamConnection: o.response?.connection ?? o.upstreamConnection,
    ...(o.requestTimes === undefined ? {} : { requestRxMs: o.requestTimes.receivedMs, requestTxMs: o.requestTimes.sentMs }),
    ...(o.responseTrailers === undefined ? {} : { responseTrailers: o.responseTrailers }),
  };
}

/** The record's response times, and the upstream connection's local end, from the response head a log saw. */
function responseTimes(s: ResponseSeen): Pick<RequestRecord, 'downstreamTxStartMs' | 'upstreamRxStartMs' | 'upstreamLocal' | 'upstreamConnection'> {
  return { downstreamTxStartMs: s.latencyMs, upstreamRxStartMs: s.local ? undefined : s.latencyMs, upstreamLocal: s.localAddress, upstreamConnection: s.connection };
}

/** The record of a request the server side saw (`meshlet:inbound:end`). */
export function serverRecord(end: InboundEndMessage, o: ServerRecordOptions = {}): RequestRecord {
  const admitted = end.deniedBy === undefined;
  const local = end.localAddress === undefined ? undefined : { address: end.localAddress, port: end.localPort };
  return {
    side: 'server',
    workload: end.workload,
    protocol: end.protocol,
    method: end.method,
    scheme: end.scheme,
    authority: end.authority,
    path: end.path,
    requestHeaders: end.headers,
    responseHeaders: end.responseHeaders,
    status: end.status,
    grpcStatus: end.grpcStatus,
    flags: end.flags,
    details: end.details === '' ? undefined : end.details,
    requestBytes: end.requestBytes,
    responseBytes: end.responseBytes,
    durationMs: end.durationMs,
    startTimeMs: o.startTimeMs ?? Date.now() - end.durationMs,
    attempts: undefined,
    // The app is the inbound cluster's one host (Istio: `inbound|port||`, the pod's address).
    upstreamHost: admitted && local !== undefined && end.status > 0 ? formatHostPort(local.address, local.port) : undefined,
    upstreamCluster: `inbound|${end.localPort}||`,
    routeName: 'default',
    destinationService: undefined,
    downstreamLocal: local,
    downstreamRemote: end.remoteAddress === '' ? undefined : { address: end.remoteAddress, port: end.remotePort },
    sni: end.sni,
    mtls: end.mtls,
    peerPrincipal: end.peer?.principal === '' ? undefined : end.peer?.principal,
    requestPrincipal: end.requestPrincipal,
    destination: undefined,
    peer: o.peer,
    error: end.error,
    connection: end.connection,
    ...(o.response === undefined ? {} : responseTimes({ ...o.response, local: !admitted })),
    // A denied request never reached the app (the server side's upstream).
    ...(o.requestTimes === undefined ? {} : { requestRxMs: o.requestTimes.receivedMs, requestTxMs: admitted ? o.requestTimes.sentMs : undefined }),
  };
}

/** A header's value (several values joined with `,`, as Envoy's header map reads them). */
export function headerValue(h: HeaderMap | undefined, name: string): string | undefined {
  if (h === undefined || !Object.hasOwn(h, name)) return undefined;
  const v = h[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : v.join(',');
}
