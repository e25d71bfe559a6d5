/**
 * The server side's observation: `meshlet:inbound:start` when a request reaches a server adapter
 * of the mesh (before admission) and `meshlet:inbound:end` when it was answered — by the app, by
 * a denial — or its caller went away, with Envoy's response flags and `%RESPONSE_CODE_DETAILS%`.
 *
 * Nothing here runs unless one of the two channels has subscribers: the adapters call
 * {@link observeInbound}, which checks `hasSubscribers` first (one property read per request)
 * and returns undefined otherwise.
 *
 * The request and response streams flow as they would without it: no `data` listener, no
 * wrapped `write`/`end`. The end is seen from one `close` listener on the response; sizes come
 * from the socket's own byte counters (see {@link InboundObservation}).
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { unfinished } from './closed-by.ts';
import { cameOverHttp2 } from './h2-bridge.ts';
import type { PeerHeaders } from './peer-exchange.ts';
import type { Socket } from 'node:net';
import { isGrpcContentType, type Protocol } from '../../core/classify.ts';
import type { Clock } from '../../core/clock.ts';
import type { Headers } from '../../core/handler.ts';
import { channels, type InboundEndMessage, type InboundStartMessage, type WorkloadIdentity } from '../../core/observe.ts';
import type { ConnectionInfo, Judgement } from '../../inbound/guard.ts';
import type { AuthzDecision, Denial, InboundRequest } from '../../inbound/pipeline.ts';
import { OVERFLOW_DETAILS } from '../../inbound/connection-pool.ts';
import { type InboundResponseMessage, responseChannels } from '../../core/observe-response.ts';
import { seeHead } from './on-head.ts';

/** What a guard publishes its requests as (set by the mesh's servers; unset: nothing is published). */
export interface InboundObserver {
  readonly workload: WorkloadIdentity;
  readonly clock: Clock;
}

/** Envoy's `%RESPONSE_CODE_DETAILS%` for an answer from the app. */
export const VIA_UPSTREAM = 'via_upstream';
export { DOWNSTREAM_DISCONNECT } from './closed-by.ts';

/** Envoy's `jwt_authn_access_denied{Jwt_is_expired}`: the status message with blanks as `_`. */
export function jwtDetails(body: string): string {
  return `jwt_authn_access_denied{${body.replace(/\s/g, '_')}}`;
}

/** The response flag and `%RESPONSE_CODE_DETAILS%` of a denial, as Envoy's filters set them. */
export function denialOutcome(d: Denial, req: InboundRequest | undefined): { readonly flags: string; readonly details: string } {
  switch (d.phase) {
    case 'jwt':
      return { flags: '', details: jwtDetails(d.body) };
    case 'authorization': {
      // The engine's own details (rbac_access_denied_matched_policy[…], ext_authz_denied, ext_authz_error).
      const details = (req?.authz as { details?: string } | undefined)?.details;
      if (details === undefined || details === '') return { flags: '', details: 'rbac_access_denied_matched_policy[none]' };
      // Envoy's ext_authz filter flags its denials (and its errors) UAEX; RBAC sets no flag.
      return { flags: details.startsWith('ext_authz') ? 'UAEX' : '', details };
    }
    case 'rate-limit':
      return { flags: (d as { flag?: string }).flag ?? 'RL', details: 'local_rate_limited' };
    case 'connection-pool':
      // The inbound cluster's circuit breaker (Envoy's router: a pool overflow is an upstream reset).
      return { flags: 'UO', details: OVERFLOW_DETAILS };
    case 'peer-identity':
      // A connection no filter chain accepts (STRICT and no mesh identity): Envoy's NR, filter_chain_not_found.
      return { flags: 'NR', details: 'filter_chain_not_found' };
    case 'path':
      return { flags: '', details: d.details ?? (d.status === 400 ? 'path_normalization_failed' : d.status === 404 ? 'absolute_path_rejected' : 'admission_failed') };
    default:
      return { flags: '', details: 'admission_failed' };
  }
}

/** The policy and rule that decided, as Envoy's RBAC filter names them: `ns[foo]-policy[allow]-rule[1]`. */
export function authzPolicyOf(a: AuthzDecision | undefined): string | undefined {
  if (a?.policy === undefined) return undefined;
  // The engine hands out one decision object per policy rule: its name is made once.
  let s = POLICY_NAMES.get(a);
  if (s === undefined) {
    const slash = a.policy.indexOf('/');
    const ns = a.policy.slice(0, slash);
    const name = a.policy.slice(slash + 1);
    s = `ns[${ns}]-policy[${name}]-rule[${a.rule ?? 0}]`;
    POLICY_NAMES.set(a, s);
  }
  return s;
}

const POLICY_NAMES = new WeakMap<AuthzDecision, string>();

/**
 * The response headers sent: those set with `setHeader` (what frameworks use), and for a denial
 * the ones the adapter wrote with it.
 */
function responseHeadersOf(res: ServerResponse, d: Denial | undefined): InboundEndMessage['responseHeaders'] {
  const h = res.getHeaders() as Record<string, string | string[] | number | undefined>;
  if (d === undefined || d.closeConnection === true) return h;
  return { ...h, ...d.headers, 'content-type': h['content-type'] ?? 'text/plain' };
}

/** The `inbound:start` message of a request a server adapter of the mesh got. */
export function startMessage(o: InboundObserver, req: object, protocol: Protocol, method: string, authority: string, path: string, headers: Headers, conn: ConnectionInfo): InboundStartMessage {
  return {
    workload: o.workload,
    request: req,
    protocol,
    method,
    scheme: conn.scheme,
    authority,
    path,
    headers,
    remoteAddress: conn.remoteAddress,
    remotePort: conn.remotePort,
    localAddress: conn.localAddress,
    localPort: conn.localPort,
    connection: conn.connection,
    changedHeaders: undefined,
    wrap: undefined,
  };
}

/** An approximation of the bytes of the request head: request line and header lines. */
export function headBytes(req: IncomingMessage): number {
  let n = (req.method?.length ?? 3) + (req.url?.length ?? 1) + 12; // "M U HTTP/1.1\r\n"
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) n += (raw[i] as string).length + (raw[i + 1] as string).length + 4;
  return n + 2;
}

function contentLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * One observed request, from its start to its end — and its `inbound:end` message: the message
 * is this object (its own fields are the message's, set from the start and filled in when the
 * request ends), not a copy made then; what it keeps for itself is private.
 *
 * Sizes are approximations from the socket's counters, so the streams stay untouched:
 * - request bytes: the head (request line and header lines, as received) plus the body — none
 *   for an HTTP/1 request without `content-length` or `transfer-encoding`, its `content-length`
 *   when the request was read to its end, otherwise what the socket read while the request was
 *   in flight;
 * - response bytes: what the socket wrote between the start and the end of this request
 *   (status line, headers, body and chunked framing). For HTTP/1.1 keep-alive connections this
 *   is exact; with pipelined requests (rare), bytes of a neighbour may be counted; over TLS it is
 *   what Node's TLS socket reports.
 *
 * `responseHeaders` is copied out of the response when a subscriber first reads it
 * (`getHeaders()` copies every header set; most subscribers — the standard metrics, an unsampled
 * request's tracing — never read it). The response's headers cannot change once it was sent, so
 * a later read sees what was sent.
 */
export class InboundObservation implements InboundEndMessage {
  // ── the inbound:end message ──
  readonly workload: WorkloadIdentity;
  readonly request: object;
  readonly protocol: Protocol;
  readonly method: string;
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  path: string;
  headers: Headers;
  readonly peerMetadata: PeerHeaders | undefined;
  status = 0;
  grpcStatus = -1;
  flags = '';
  details = '';
  deniedBy: string | undefined = undefined;
  deniedBefore: string | undefined = undefined;
  requestBytes = 0;
  responseBytes = 0;
  durationMs = 0;
  endedAt = 0;
  mtls = false;
  peer: InboundEndMessage['peer'] = undefined;
  requestPrincipal: string | undefined = undefined;
  authzPolicy: string | undefined = undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string | undefined;
  readonly localPort: number;
  sni: string | undefined = undefined;
  readonly connection: object | undefined;
  readonly error: Error | undefined = undefined;

  // ── the observation's own ──
  readonly #start: InboundStartMessage;
  readonly #res: ServerResponse;
  readonly #socket: Socket;
  readonly #clock: Clock;
  readonly #startedAt: number;
  readonly #read0: number;
  /** An HTTP/1 request that has no body (no Content-Length, no Transfer-Encoding). */
  readonly #bodyless: boolean;
  readonly #written0: number;
  /** The request head's bytes as received, counted before the phases change its URL or headers (a generated x-request-id, a consumed token). */
  readonly #headBytes: number;
  readonly #conn: ConnectionInfo;
  #judged: InboundRequest | undefined;
  #denial: Denial | undefined;
  #ended = false;
  /** How many header names the request had before `inbound:start` was published (-1: not published). */
  #names: number;
  /** The response was sent and its headers were not read yet. */
  #headersUnread = false;
  #responseHeaders: InboundEndMessage['responseHeaders'];

  constructor(o: InboundObserver, req: IncomingMessage, res: ServerResponse, headers: Headers, method: string, authority: string, path: string, conn: ConnectionInfo, peerMetadata: PeerHeaders | undefined, names: number | undefined) {
    const protocol: Protocol = isGrpcContentType(headers['content-type']) ? 'grpc' : req.httpVersionMajor === 2 || cameOverHttp2(req.socket) ? 'http2' : 'http1';
    this.workload = o.workload;
    this.request = req;
    this.protocol = protocol;
    this.method = method;
    this.scheme = conn.scheme;
    this.authority = authority;
    this.path = path;
    this.headers = headers;
    this.peerMetadata = peerMetadata;
    this.remoteAddress = conn.remoteAddress;
    this.remotePort = conn.remotePort;
    this.localAddress = conn.localAddress;
    this.localPort = conn.localPort;
    this.connection = conn.connection;
    this.#names = names ?? -1;
    this.#res = res;
    this.#socket = req.socket;
    this.#clock = o.clock;
    this.#conn = conn;
    this.#startedAt = o.clock.now();
    this.#written0 = this.#socket.bytesWritten;
    this.#headBytes = headBytes(req);
    this.#start = startMessage(o, req, protocol, method, authority, path, headers, conn);
    this.#bodyless = req.httpVersionMajor === 1 && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined;
    // Read only when the request may have a body: an HTTP/1 request without Content-Length or
    // Transfer-Encoding has none (RFC 9112 §6.3), which is how Node's parser reads it too.
    this.#read0 = this.#bodyless ? 0 : this.#socket.bytesRead;
    // A closure, not the observation kept on the response under a symbol: a property would give
    // observed responses another shape than the app's others (a raw server's in the same process),
    // and node:http's and the framework's code would run polymorphic on them.
    res.on('close', () => this.#end());
    if (responseChannels.inbound.hasSubscribers) seeResponseHead(o, req, res, this.#start, this.#startedAt);
  }

  /** The `inbound:start` message. */
  get start(): InboundStartMessage {
    return this.#start;
  }

  get responseHeaders(): InboundEndMessage['responseHeaders'] {
    if (this.#headersUnread) {
      this.#headersUnread = false;
      this.#responseHeaders = responseHeadersOf(this.#res, this.#denial);
    }
    return this.#responseHeaders;
  }

  /** Publishes the start (subscribers may set `wrap` and add headers). */
  publish(): void {
    if (!channels.inboundStart.hasSubscribers) {
      this.#names = -1;
      return;
    }
    if (this.#names === -1) this.#names = Object.keys(this.#start.headers).length;
    channels.inboundStart.publish(this.#start);
  }

  /**
   * True when a subscriber added request headers (the adapter then hands them to the app).
   * Counted when read: read it before the admission phases change the headers, or only when
   * they did not (`headersChanged` false) — then the view is as the subscribers left it.
   */
  get added(): boolean {
    return this.#names !== -1 && Object.keys(this.#start.headers).length !== this.#names;
  }

  /** Names of headers whose values subscribers set (undefined when none). */
  get changed(): readonly string[] | undefined {
    return this.#start.changedHeaders;
  }

  /** True when a subscriber wrapped the rest of the request (then run it through {@link run}). */
  get wraps(): boolean {
    return this.#start.wrap !== undefined;
  }

  /** Runs `fn` inside what subscribers wrapped around the request (or as is). */
  run(fn: () => void): void {
    const w = this.#start.wrap;
    if (w === undefined) fn();
    else w(fn);
  }

  /** Records the judgement (the request view with its principal and verdict). */
  judged(j: Judgement): void {
    this.#judged = j.request;
    if (!j.serve) this.#denial = j.denial;
  }

  /** Records a denial the adapter answered outside a judgement (admission failed, a path routed already). */
  denied(d: Denial): void {
    this.#denial = d;
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const ch = channels.inboundEnd;
    if (!ch.hasSubscribers) return;
    const res = this.#res;
    const req = this.request as IncomingMessage;
    const finished = res.writableFinished;
    const sent = finished || res.headersSent;
    let flags = '';
    let details = VIA_UPSTREAM;
    const d = this.#denial;
    if (d !== undefined) {
      const o = denialOutcome(d, this.#judged);
      flags = o.flags;
      details = o.details;
    } else if (!finished) {
      ({ flags, details } = unfinished(this.#socket, sent));
    }
    const j = this.#judged;
    // The mTLS peer as the phases saw it, else as the connection proved it (a request refused before any phase).
    const peer = j?.peer ?? this.#conn.peer;
    if (j !== undefined) {
      this.path = j.path;
      this.headers = j.headers;
    }
    this.status = sent && !(d?.closeConnection === true) ? res.statusCode : 0;
    // grpc-status is only read for gRPC (a header lookup otherwise for nothing).
    this.grpcStatus = this.protocol === 'grpc' ? grpcStatusOf(res.getHeader('grpc-status')) : -1;
    this.flags = flags;
    this.details = details;
    this.deniedBy = d?.phase;
    this.deniedBefore = d?.before;
    const cl = this.#bodyless ? 0 : contentLength(req);
    const bodyRead = this.#bodyless ? 0 : req.complete && cl !== undefined ? cl : Math.max(0, this.#socket.bytesRead - this.#read0);
    this.requestBytes = this.#headBytes + bodyRead;
    this.responseBytes = Math.max(0, this.#socket.bytesWritten - this.#written0);
    const endedAt = this.#clock.now();
    this.durationMs = endedAt - this.#startedAt;
    this.endedAt = endedAt;
    this.mtls = peer !== undefined;
    this.peer = peer;
    this.requestPrincipal = j?.requestPrincipal;
    this.authzPolicy = authzPolicyOf(j?.authz);
    this.sni = j?.sni ?? this.#conn.sni;
    this.#headersUnread = sent;
    // Read out: a subscriber that keeps the message (a batching access log) does not keep the phases' view of the request.
    this.#judged = undefined;
    ch.publish(this);
  }
}

/** Publishes `meshlet:inbound:response` when the response head is written (a function of its own: the closure captures only what it needs). */
function seeResponseHead(o: InboundObserver, req: IncomingMessage, res: ServerResponse, start: InboundStartMessage, startedAt: number): void {
  seeHead(res, (status, headerNames, grpc) => {
    if (!responseChannels.inbound.hasSubscribers) return;
    const g = grpc === undefined ? -1 : Number(grpc);
    responseChannels.inbound.publish({ workload: start.workload, request: req, protocol: start.protocol, status, grpcStatus: Number.isInteger(g) && g >= 0 ? g : -1, headerNames, latencyMs: o.clock.now() - startedAt } satisfies InboundResponseMessage);
  });
}

/** A `grpc-status` header's value as a number, -1 when there is none (or it is not a number). */
function grpcStatusOf(v: number | string | string[] | undefined): number {
  if (v === undefined) return -1;
  const n = Number(v);
  return Number.isNaN(n) ? -1 : n;
}

/**
 * Starts observing a request when someone listens (`undefined` otherwise, and nothing else is
 * done): publishes `meshlet:inbound:start` and arranges `meshlet:inbound:end`. Whether a
 * subscriber added headers is in `added`, so the adapter hands them to the app. `names`: how
 * many names `headers` has, when the adapter knows it without listing them (else they are
 * listed before publishing).
 */
export function observeInbound(
  observer: InboundObserver | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  headers: Headers,
  method: string,
  authority: string,
  path: string,
  conn: ConnectionInfo,
  peerMetadata?: PeerHeaders,
  names?: number,
): InboundObservation | undefined {
  if (observer === undefined || !(channels.inboundStart.hasSubscribers || channels.inboundEnd.hasSubscribers || responseChannels.inbound.hasSubscribers)) return undefined;
  const o = new InboundObservation(observer, req, res, headers, method, authority, path, conn, peerMetadata, names);
  o.publish();
  return o;
}
