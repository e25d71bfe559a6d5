/**
 * The gRPC server side's observation: `meshlet:inbound:start` when a call's metadata reached the
 * mesh's interceptor (before admission) and `meshlet:inbound:end` when its status was sent — by
 * the handler, by grpc-js, or by a denial — or its caller went away, with the gRPC status,
 * Envoy's response flags and `%RESPONSE_CODE_DETAILS%`, exactly as the HTTP adapters publish them
 * (observe-inbound.ts), so tracing, Istio's metrics (`reporter="destination"`,
 * `request_protocol="grpc"`, `grpc_response_status`) and access logs see gRPC calls too.
 *
 * Nothing here runs unless a channel has subscribers. Sizes are counted from what the interceptor
 * sees: the metadata (names and values), and each response message as grpc-js serializes it
 * (plus its 5-byte frame prefix); a request message counts when the method's messages are
 * `Buffer`s — decoded request messages cannot be measured from an interceptor. Every message is
 * counted either way (Istio's `istio_request_messages_total` / `istio_response_messages_total`).
 *
 * @module
 */
import { noteRequestReceived, noteRequestSent, requestTimesWatched } from '../../core/request-times.ts';
import type { Metadata } from '@grpc/grpc-js';
import type { PartialStatusObject } from '@grpc/grpc-js/build/src/call-interface.js';
import type { Clock } from '../../core/clock.ts';
import type { Headers } from '../../core/handler.ts';
import { channels, type InboundEndMessage, type InboundStartMessage } from '../../core/observe.ts';
import type { ConnectionInfo, Judgement } from '../../inbound/guard.ts';
import type { Denial, InboundRequest } from '../../inbound/pipeline.ts';
import { authzPolicyOf, DOWNSTREAM_DISCONNECT, denialOutcome, type InboundObserver, startMessage, VIA_UPSTREAM } from '../server/observe-inbound.ts';
import type { PeerHeaders } from '../server/peer-exchange.ts';
import { type InboundResponseMessage, responseChannels } from '../../core/observe-response.ts';

/** Bytes of metadata on the wire, roughly: names and values (`-bin` as base64) and HPACK's per-entry overhead. */
export function metadataBytes(md: Metadata | Headers | undefined): number {
  if (md === undefined) return 0;
  const h = 'toHttp2Headers' in md && typeof md.toHttp2Headers === 'function' ? (md as Metadata).toHttp2Headers() : (md as Headers);
  let n = 0;
  for (const k of Object.keys(h)) {
    const v = (h as Record<string, unknown>)[k];
    if (Array.isArray(v)) for (const x of v) n += k.length + String(x).length + 32;
    else if (v !== undefined) n += k.length + String(v).length + 32;
  }
  return n;
}

/** A call that ends without a status this close to its deadline ended because of it. */
const DEADLINE_SLACK_MS = 5;

/** One observed gRPC call, from its start to its end message. */
export class GrpcInboundObservation {
  readonly start: InboundStartMessage;
  readonly #clock: Clock;
  readonly #startedAt: number;
  readonly #conn: ConnectionInfo;
  readonly #deadline: number;
  #judged: InboundRequest | undefined;
  #denial: Denial | undefined;
  #ended = false;
  #requestBytes: number;
  #responseBytes = 0;
  #requestMessages = 0;
  #responseMessages = 0;
  #headSent = false;
  #responseHeaders: Record<string, string | string[] | number | undefined> | undefined;
  /** True when a subscriber added request headers (the interceptor then hands them to the handler). */
  added = false;

  readonly #peerMetadata: PeerHeaders | undefined;

  /** `deadline`: the caller's, in ms since the epoch (Infinity: none); `peerMetadata`: the caller's exchange headers, taken off the request. */
  constructor(o: InboundObserver, request: object, headers: Headers, path: string, authority: string, conn: ConnectionInfo, deadline: number, peerMetadata: PeerHeaders | undefined) {
    this.#peerMetadata = peerMetadata;
    this.#clock = o.clock;
    this.#conn = conn;
    this.#deadline = deadline;
    this.#startedAt = o.clock.now();
    this.#requestBytes = metadataBytes(headers) + path.length + authority.length + 64;
    this.start = startMessage(o, request, 'grpc', 'POST', authority, path, headers, conn);
  }

  /** Publishes the start (subscribers may set `wrap` and add headers). */
  publish(): void {
    if (!channels.inboundStart.hasSubscribers) return;
    const h = this.start.headers;
    const before = Object.keys(h).length;
    channels.inboundStart.publish(this.start);
    this.added = this.start.changedHeaders !== undefined || Object.keys(h).length !== before;
  }

  /** Records the judgement (the request view with its principal and verdict). */
  judged(j: Judgement): void {
    this.#judged = j.request;
    if (!j.serve) this.#denial = j.denial;
  }

  /** Records a denial the interceptor answered outside a judgement (admission failed). */
  denied(d: Denial): void {
    this.#denial = d;
  }

  /** A request message (its size is known when it is a Buffer). */
  received(message: unknown): void {
    this.#requestMessages++;
    if (Buffer.isBuffer(message)) this.#requestBytes += message.length + 5;
  }

  /** The caller half-closed: its last message came, and goes on to the app now (`%REQUEST_DURATION%`, `%REQUEST_TX_DURATION%`). */
  halfClosed(): void {
    if (!requestTimesWatched()) return;
    const ms = this.#clock.now() - this.#startedAt;
    noteRequestReceived(this.start.request, ms);
    noteRequestSent(this.start.request, ms);
  }

  /** The response metadata went out. */
  head(md: Metadata): void {
    this.#headSent = true;
    this.#responseBytes += metadataBytes(md) + 16;
    this.#responseHeaders = Object.assign(Object.create(null), md.toHttp2Headers(), { 'content-type': 'application/grpc' });
    if (responseChannels.inbound.hasSubscribers) this.#published(-1);
  }

  /** `meshlet:inbound:response`: the head went out (`grpcStatus`: a trailers-only answer's). */
  #published(grpcStatus: number): void {
    const s = this.start;
    const headerNames = Object.keys(this.#responseHeaders ?? {}).map((k) => k.toLowerCase());
    responseChannels.inbound.publish({ workload: s.workload, request: s.request, protocol: 'grpc', status: 200, grpcStatus, headerNames, latencyMs: this.#clock.now() - this.#startedAt } satisfies InboundResponseMessage);
  }

  /** A response message of `bytes` serialized bytes went out. */
  sent(bytes: number): void {
    this.#responseMessages++;
    this.#responseBytes += bytes + 5;
  }

  /** The call's status went out (trailers, or trailers-only when no metadata was sent). */
  status(s: PartialStatusObject): void {
    const md = s.metadata ?? undefined;
    this.#responseBytes += metadataBytes(md) + s.details.length + 24;
    if (!this.#headSent) {
      this.#responseHeaders = Object.assign(Object.create(null), md?.toHttp2Headers(), { 'content-type': 'application/grpc', 'grpc-status': String(s.code) });
      if (responseChannels.inbound.hasSubscribers) this.#published(s.code);
    }
    this.#end(s.code);
  }

  /**
   * The call ended without a status through the interceptor: the caller went away, or grpc-js
   * answered itself (the deadline passed: DEADLINE_EXCEEDED).
   */
  cancelled(): void {
    // grpc-js's deadline timer runs on the monotonic clock and may fire a little before Date.now() reaches the deadline.
    this.#end(Date.now() >= this.#deadline - DEADLINE_SLACK_MS ? 4 : -1);
  }

  #end(grpcStatus: number): void {
    if (this.#ended) return;
    this.#ended = true;
    const ch = channels.inboundEnd;
    if (!ch.hasSubscribers) return;
    const s = this.start;
    const d = this.#denial;
    let flags = '';
    let details = VIA_UPSTREAM;
    if (d !== undefined) {
      const o = denialOutcome(d, this.#judged);
      flags = o.flags;
      details = o.details;
    } else if (grpcStatus === -1) {
      flags = 'DC';
      details = DOWNSTREAM_DISCONNECT;
    }
    const j = this.#judged;
    const peer = j?.peer ?? this.#conn.peer;
    const m: InboundEndMessage = {
      workload: s.workload,
      request: s.request,
      protocol: 'grpc',
      method: s.method,
      scheme: s.scheme,
      authority: s.authority,
      path: j?.path ?? s.path,
      headers: j?.headers ?? s.headers,
      peerMetadata: this.#peerMetadata,
      status: grpcStatus === -1 ? 0 : 200,
      grpcStatus,
      flags,
      details,
      deniedBy: d?.phase,
      deniedBefore: d?.before,
      requestBytes: this.#requestBytes,
      responseBytes: this.#responseBytes,
      requestMessages: this.#requestMessages,
      responseMessages: this.#responseMessages,
      durationMs: this.#clock.now() - this.#startedAt,
      mtls: peer !== undefined,
      peer,
      requestPrincipal: j?.requestPrincipal,
      authzPolicy: authzPolicyOf(j?.authz),
      remoteAddress: s.remoteAddress,
      remotePort: s.remotePort,
      localAddress: s.localAddress,
      localPort: s.localPort,
      sni: j?.sni ?? this.#conn.sni,
      connection: this.#conn.connection,
      responseHeaders: this.#responseHeaders,
      error: undefined,
    };
    ch.publish(m);
  }
}

/** Starts observing a call when someone listens (`undefined` otherwise, and nothing else is done). */
export function observeGrpcInbound(
  observer: InboundObserver | undefined,
  request: object,
  headers: Headers,
  path: string,
  authority: string,
  conn: ConnectionInfo,
  deadline: number,
  peerMetadata?: PeerHeaders,
): GrpcInboundObservation | undefined {
  if (observer === undefined || !(channels.inboundStart.hasSubscribers || channels.inboundEnd.hasSubscribers || responseChannels.inbound.hasSubscribers)) return undefined;
  const o = new GrpcInboundObservation(observer, request, headers, path, authority, conn, deadline, peerMetadata);
  o.publish();
  return o;
}
