/**
 * `mesh.grpc.serverInterceptors()`: the server side's admission phases for a grpc-js server, as
 * the HTTP adapters run them.
 *
 * When a call's metadata arrives, the interceptor builds the request as Envoy's inbound listener
 * sees it — `POST /pkg.Service/Method`, `:authority`, the metadata as headers (`-bin` as base64),
 * `content-type: application/grpc`, the caller's remaining deadline as `grpc-timeout`, the
 * connection's addresses and what its TLS handshake proved — and asks the mesh's
 * {@link InboundGuard} for a judgement: JWT from `authorization` metadata, AuthorizationPolicy
 * (paths `/pkg.Service/Method`, method `POST`), local rate limits. A denial ends the call with the
 * phase's status (UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE / RESOURCE_EXHAUSTED) and
 * Envoy's message, and the handler is never started. An admitted call's handler — and every
 * callback of the call after it (messages, half-close, cancel) — runs inside the request's
 * MeshContext (deadline, peer, request principal), so calls the handler makes through the mesh
 * inherit its deadline and trace. Headers a phase removed or added (a consumed token, claims
 * copied to headers) are what the handler finds in its metadata.
 *
 * The phases in use when the metadata arrives judge the call, so a new config applies to the
 * next call. A health probe (a plaintext call of a method in `probePaths`, such as kubelet's
 * `/grpc.health.v1.Health/Check`) is handed to the server unjudged and unobserved.
 *
 * @module
 */
import { SERVICE_TIME_HEADER, serviceTimeText } from '../../core/upstream-service-time.ts';
import type { PartialStatusObject } from '@grpc/grpc-js/build/src/call-interface.js';
import type { Metadata, ServerInterceptingCall, ServerInterceptingCallInterface, ServerInterceptor, ServerListener, ServerMethodDefinition } from '@grpc/grpc-js';
import { joinWholeContext, type MeshContext, reenterContext } from '../../core/context.ts';
import type { Headers } from '../../core/handler.ts';
import { callerGone, callerLeft, type InboundGuard, type Judgement, pendingRequest, releaseSlot } from '../../inbound/guard.ts';
import type { InboundRequest } from '../../inbound/pipeline.ts';
import type { Denial } from '../../inbound/pipeline.ts';
import { internalError } from '../server/denial.ts';
import type { GrpcJs } from './grpc-js.ts';
import { PEER_ID_HEADER, PEER_METADATA_HEADER } from '../../telemetry/metrics/peer-metadata.ts';
import type { PeerHeaders } from '../server/peer-exchange.ts';
import { headersOf, metadataClassOf, metadataOf } from './metadata.ts';
import type { GrpcPeers } from './server-peer.ts';
import { type GrpcInboundObservation, observeGrpcInbound } from './server-observe.ts';
import { overwriteServerOnStream, sentStatusOf } from './server-sent-status.ts';

/** What the interceptor needs from its mesh. */
export interface GrpcServerSideOptions {
  readonly grpc: GrpcJs;
  /** The mesh's server side (its current phases). */
  guard(): InboundGuard;
  /** What a call's connection proved. */
  readonly peers: GrpcPeers;
}

/** `grpc-timeout` for what remains of a deadline (ms since the epoch), in the unit that keeps it within 8 digits. */
export function grpcTimeoutOf(deadline: number, now: number): string | undefined {
  if (deadline === Number.POSITIVE_INFINITY) return undefined;
  const ms = Math.max(0, deadline - now);
  if (ms < 99_999) return `${Math.round(ms * 1000)}u`;
  if (ms < 99_999_999) return `${Math.ceil(ms)}m`;
  return `${Math.min(99_999_999, Math.ceil(ms / 1000))}S`;
}

function deadlineMs(d: unknown): number {
  if (d instanceof Date) return d.getTime();
  return typeof d === 'number' ? d : Number.POSITIVE_INFINITY;
}

/** Metadata names grpc-js keeps for the handler that never travel in the phases' view of changes. */
const KEPT = ['user-agent'];

/** The metadata the handler gets when the phases (or a subscriber) changed the headers: of the server's grpc-js copy, as the original. */
function metadataFor(g: GrpcJs, original: Metadata, headers: Headers): Metadata {
  const md = metadataOf({ Metadata: metadataClassOf(g, original) }, headers);
  for (const k of KEPT) for (const v of original.get(k)) md.add(k, v);
  return md;
}

/**
 * Response header names that are never the phases' to add to a call's metadata: HTTP/2's
 * connection-specific headers (Node's http2 throws on them when grpc-js writes the head, which
 * would end the process) and gRPC's own framing — the response's `content-type` and
 * `content-length` are the server's, as Envoy's gRPC local reply sets `content-type:
 * application/grpc` after a filter's headers and drops `content-length`.
 */
const NOT_METADATA = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host', 'te', 'content-type', 'content-length']);

/** Adds headers from config (rate-limit headers, an authorizer's) to metadata; one grpc-js refuses as metadata (a `-bin` name, a value it cannot carry) or HTTP/2 and gRPC keep for themselves ({@link NOT_METADATA}) is left out. */
function addHeaders(md: Metadata, headers: Readonly<Record<string, string | readonly string[]>>): void {
  for (const [k, v] of Object.entries(headers)) {
    if (NOT_METADATA.has(k.toLowerCase())) continue;
    try {
      if (typeof v === 'string') md.set(k, v);
      else for (const one of v) md.add(k, one);
    } catch {
      // Not valid gRPC metadata: not sent, as it could not be sent as an HTTP/2 header either.
    }
  }
}

function one(v: string | string[] | undefined): string {
  return typeof v === 'string' ? v : (v?.[0] ?? '');
}

/**
 * Istio's metadata exchange, as the HTTP servers do it (peer-exchange.ts): the caller's
 * `x-envoy-peer-metadata(-id)` are taken off the request — the phases' view and the handler's
 * metadata — and returned (undefined when it sent none); the answer (this workload's, one header
 * for each one received) is what the response metadata gets.
 */
function takePeerMetadata(own: PeerHeaders, headers: Headers, md: Metadata): { readonly theirs: PeerHeaders; readonly answer: Record<string, string> } | undefined {
  const id = headers[PEER_ID_HEADER];
  const value = headers[PEER_METADATA_HEADER];
  if (id === undefined && value === undefined) return undefined;
  delete headers[PEER_ID_HEADER];
  delete headers[PEER_METADATA_HEADER];
  md.remove(PEER_ID_HEADER);
  md.remove(PEER_METADATA_HEADER);
  const answer: Record<string, string> = Object.create(null);
  if (id !== undefined) answer[PEER_ID_HEADER] = own.id;
  if (value !== undefined) answer[PEER_METADATA_HEADER] = own.value;
  return { theirs: { id: one(id), value: one(value) }, answer };
}

/** A denial as the status the caller gets: the phase's code, Envoy's text, its headers as trailing metadata. */
function denialStatus(g: GrpcJs, d: Denial): PartialStatusObject {
  const metadata = new g.Metadata();
  if (d.headers !== undefined) addHeaders(metadata, d.headers);
  return { code: d.grpcStatus, details: d.body, metadata };
}

/** One call under the interceptor. */
class MeshServerCall {
  readonly #o: GrpcServerSideOptions;
  readonly #path: string;
  readonly #next: ServerInterceptingCallInterface;
  #ctx: MeshContext | undefined;
  #wrap: (<T>(fn: () => T) => T) | undefined;
  #ob: GrpcInboundObservation | undefined;
  /** Response headers the phases add (rate-limit headers, an external authorizer's). */
  #extra: Readonly<Record<string, string | readonly string[]>> | undefined;
  /** This workload's metadata-exchange headers, for a caller that sent its own. */
  #peerAnswer: Record<string, string> | undefined;
  /** Istio's `proxyHeaders.server.value`: the `server` header of every answer (the handler's, a denial), or undefined. */
  #server: string | undefined;
  #headSent = false;
  /** Served with Envoy's debug headers on: the answer's head gets `x-envoy-upstream-service-time`. */
  #timed = false;
  /** When the caller half-closed (`performance.now()`; -1: not yet): the request is complete, the service time runs from there. */
  #completeAt = -1;
  /** A status went out through the interceptor (grpc-js's onCancel follows every status). */
  #statusSent = false;
  /** The request view holding (or waiting for) a connection-pool slot, released when the status is sent or the call cancelled. */
  #pooled: InboundRequest | undefined;
  #cancelled = false;
  /** The request view of a judgement still pending: its pending check is cancelled if the call is. */
  #judging: InboundRequest | undefined;

  constructor(o: GrpcServerSideOptions, path: string, next: ServerInterceptingCallInterface) {
    this.#o = o;
    this.#path = path;
    this.#next = next;
  }

  /** Runs `fn` in the call's context (after admission), inside what subscribers wrapped around it. */
  enter<T>(fn: () => T): T {
    const ctx = this.#ctx;
    if (ctx === undefined) return fn();
    const w = this.#wrap;
    return w === undefined ? reenterContext(ctx, fn) : w(() => reenterContext(ctx, fn));
  }

  /**
   * The listener. grpc-js 1.14 starts a unary or server-streaming handler when the request's
   * half-close arrives (the metadata and the one message are only kept until then), a
   * client-streaming or bidi handler when the metadata arrives, whose messages then flow into its
   * stream: callbacks that run app code are entered in the call's context, the others are not
   * (a context switch is most of what the interceptor costs).
   */
  listener(requestStream: boolean): ServerListener {
    return {
      onReceiveMetadata: (md, next) => this.#admit(md, next, requestStream),
      onReceiveMessage: requestStream
        ? (m, next) => {
            this.#ob?.received(m);
            this.enter(() => next(m));
          }
        : (m, next) => {
            this.#ob?.received(m);
            next(m);
          },
      onReceiveHalfClose: (next) => {
        this.#completeAt = performance.now();
        this.#ob?.halfClosed();
        this.enter(next);
      },
      onCancel: () => {
        this.#cancelled = true;
        this.#release();
        if (this.#judging !== undefined) callerLeft(this.#judging);
        const ob = this.#ob;
        if (ob === undefined || this.#statusSent) return;
        // A status grpc-js sent itself, below the interceptors (a grpc-timeout it cannot parse, a
        // message over its limit, its deadline): the answer, as a sidecar records the app's.
        const sent = sentStatusOf(this.#next);
        if (sent !== undefined) ob.status(sent);
        else ob.cancelled();
      },
    };
  }

  /** Releases the call's slot (or takes it out of the queue), once. */
  #release(): void {
    const v = this.#pooled;
    if (v === undefined) return;
    this.#pooled = undefined;
    releaseSlot(v);
  }

  sendMetadata(md: Metadata, next: (md: Metadata) => void): void {
    this.#headSent = true;
    const extra = this.#extra;
    if (extra !== undefined) addHeaders(md, extra);
    if (this.#peerAnswer !== undefined) addHeaders(md, this.#peerAnswer);
    if (this.#server !== undefined) md.set('server', this.#server);
    if (this.#timed && this.#completeAt >= 0) md.set(SERVICE_TIME_HEADER, this.#serviceTime());
    this.#ob?.head(md);
    next(md);
  }

  sendMessage(m: unknown, next: (m: unknown) => void, serialize: (m: unknown) => Buffer): void {
    const ob = this.#ob;
    if (ob !== undefined) {
      try {
        ob.sent(serialize(m).length);
      } catch {
        // grpc-js reports the failure itself when it serializes.
      }
    }
    next(m);
  }

  sendStatus(s: PartialStatusObject, next: (s: PartialStatusObject) => void): void {
    const extra = this.#extra;
    const answer = this.#peerAnswer;
    const server = this.#server;
    const timed = this.#timed && this.#completeAt >= 0;
    if ((extra !== undefined || answer !== undefined || server !== undefined || timed) && !this.#headSent) {
      // Trailers-only: the phases' headers, the exchange's answer, the service time and the server header go with the status.
      const md = s.metadata ?? new this.#o.grpc.Metadata();
      if (extra !== undefined) addHeaders(md, extra);
      if (answer !== undefined) addHeaders(md, answer);
      if (timed) md.set(SERVICE_TIME_HEADER, this.#serviceTime());
      if (server !== undefined) md.set('server', server);
      s = { ...s, metadata: md };
    }
    this.#statusSent = true;
    this.#ob?.status(s);
    next(s);
    this.#release();
  }

  /**
   * `x-envoy-upstream-service-time` of the handler's answer: the ms from the caller's half-close to
   * its head, as the inbound sidecar's router writes it — only once the request is complete, over
   * the handler's own (router.cc `Filter::onUpstreamHeaders`; istiod's inbound router suppresses
   * it only with `proxyHeaders.envoyDebugHeaders` disabled: listener_inbound.go).
   */
  #serviceTime(): string {
    return serviceTimeText(Math.max(0, Math.floor(performance.now() - this.#completeAt)));
  }

  #admit(md: Metadata, next: (md: Metadata) => void, handlerNow: boolean): void {
    const o = this.#o;
    const call = this.#next;
    const guard = o.guard();
    if (guard.probes !== undefined && guard.isProbe('POST', this.#path, o.peers.isPlaintext(call), true)) {
      // A health probe (probePaths, kubelet's gRPC probe): served outside the policies and unobserved, as istio-agent serves it.
      next(md);
      return;
    }
    const server = guard.proxyHeaders.server;
    this.#server = server;
    // grpc-js's own answers below the interceptors (size limits, deserialization) carry it too, as every answer through a sidecar does.
    if (server !== undefined) overwriteServerOnStream(call, server);
    const headers = headersOf(md);
    const deadline = deadlineMs(call.getDeadline());
    const timeout = grpcTimeoutOf(deadline, Date.now());
    if (timeout !== undefined) headers['grpc-timeout'] = timeout;
    const conn = o.peers.connectionOf(call, guard.certDetails);
    const host = call.getHost();
    const authority = typeof host === 'string' ? host : '';
    const own = guard.peerExchange;
    const mx = own === undefined ? undefined : takePeerMetadata(own, headers, md);
    this.#peerAnswer = mx?.answer;
    const ob = observeGrpcInbound(guard.observer, this, headers, this.#path, authority, conn, deadline, mx?.theirs);
    this.#ob = ob;
    const judge = (): void => {
      let j: Judgement | Promise<Judgement>;
      try {
        j = guard.judge('POST', authority, this.#path, headers, conn);
      } catch (err) {
        this.#deny(internalError(err));
        return;
      }
      if (j instanceof Promise) {
        this.#judging = pendingRequest(j);
        if (guard.pooled) {
          const v = this.#judging;
          if (v !== undefined) v.alive = () => !this.#cancelled;
          this.#pooled = v;
        }
        j.then(
          (x) => this.#proceed(x, md, next, handlerNow),
          (err: unknown) => this.#deny(internalError(err)),
        );
        return;
      }
      this.#proceed(j, md, next, handlerNow);
    };
    if (ob === undefined) judge();
    else {
      const w = ob.start.wrap;
      this.#wrap = w;
      if (w === undefined) judge();
      else w(judge);
    }
  }

  #deny(d: Denial): void {
    this.#ob?.denied(d);
    this.sendStatus(denialStatus(this.#o.grpc, d), (s) => this.#next.sendStatus(s));
  }

  #proceed(j: Judgement, md: Metadata, next: (md: Metadata) => void, handlerNow: boolean): void {
    const ob = this.#ob;
    if (j.serve ? j.request.slot !== undefined && this.#cancelled : callerGone(j.denial)) {
      // Cancelled while it waited or took its slot: the slot goes back, nobody is answered.
      this.#release();
      return;
    }
    ob?.judged(j);
    if (!j.serve) {
      this.sendStatus(denialStatus(this.#o.grpc, j.denial), (s) => this.#next.sendStatus(s));
      return;
    }
    if (j.request.slot !== undefined) this.#pooled = j.request;
    this.#extra = j.responseHeaders;
    this.#timed = this.#o.guard().proxyHeaders.envoyDebugHeaders;
    const changed = j.request.headersChanged || ob?.added === true || j.request.generatedRequestId !== undefined || j.request.forwardedClientCert !== undefined;
    const forHandler = changed ? metadataFor(this.#o.grpc, md, j.request.headers) : md;
    this.#ctx = joinWholeContext(j.admission.context);
    if (handlerNow) this.enter(() => next(forHandler));
    else next(forHandler);
  }
}

/** The mesh's server interceptor: admission, MeshContext and telemetry for every call. */
export function meshServerInterceptor(o: GrpcServerSideOptions): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, next: ServerInterceptingCallInterface): ServerInterceptingCall => {
    const c = new MeshServerCall(o, method.path, next);
    const serialize = method.responseSerialize as (m: unknown) => Buffer;
    return new o.grpc.ServerInterceptingCall(next, {
      start: (go) => go(c.listener(method.requestStream)),
      sendMetadata: (md, n) => c.sendMetadata(md, n),
      sendMessage: (m, n) => c.sendMessage(m, n, serialize),
      sendStatus: (s, n) => c.sendStatus(s, n),
    });
  };
}
