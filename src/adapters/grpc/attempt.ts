/**
 * One attempt of a gRPC call on one connection: the controller the pipeline sees for it, and
 * the listener of its HTTP/2 stream (h2-call.ts). What comes back becomes the pipeline's handler
 * calls: response metadata is the head (`onResponseStart(200, headers)`), each message is data,
 * the status is the trailers — or, for a trailers-only answer, a head with `grpc-status` — so
 * the one classifier sees gRPC statuses as Envoy does. A status the stream made up (a reset, a
 * refused stream, a dropped connection) or a connection that could not be made is a transport
 * failure of the kind it is (classify.ts), never an answer. The request messages come from the
 * call's body as the caller writes them (body.ts). The exchange's effective deadline is the
 * mesh's to keep; the attempt carries what remains of it as `grpc-timeout`.
 *
 * @module
 */
import type { Metadata, StatusObject } from '@grpc/grpc-js';
import { MeshletError } from '../../core/errors.ts';
import type { Controller, Exchange, Headers, ResponseHandler } from '../../core/exchange.ts';
import type { FailureKind } from '../../core/outcome.ts';
import { MessageBody, type MessageSink, type WriteAck } from './body.ts';
import type { Conn, ConnWaiter } from './conn.ts';
import type { AttemptOwner, EndpointConns } from './pools.ts';
import { GrpcCallError } from './classify.ts';
import { GrpcExchange, noteAnsweredOn } from './exchange.ts';
import { noteConnection } from '../../core/upstream-connections.ts';
import { noteRequestSent, requestTimesWatched } from '../../core/request-times.ts';
import { responseChannels } from '../../core/observe-response.ts';
import { DISCARD_MESSAGES, H2Call, type H2Listener } from './h2-call.ts';
import { openStream } from './request-headers.ts';
import { encodeGrpcMessage, expectedTimeout, grpcTimeout, metadataOf, requestMetadataOf, responseHeadersOf, setGrpcTimeout, statusTrailersOf } from './metadata.ts';

const EMPTY: Headers = Object.freeze(Object.create(null)) as Headers;

/** The acknowledgement of a message no caller waits on (a mirrored copy's). */
const NO_ACK: WriteAck = { written: () => undefined };

/** The attempt got the response metadata (a head). */
const GOT_HEAD = 1;
/** A read is asked of the stream (startRead) and no message answered it yet. */
const READING = 2;
/** The pipeline got this controller (onRequestStart). */
const ANNOUNCED = 4;
/** A request message write is in flight (its callback not come yet). */
const WRITING = 8;
/** The caller half-closed while messages waited: half-close after the last one goes out. */
const HALF_CLOSE_PENDING = 16;

/** One attempt on one endpoint: the controller the pipeline sees, and its stream's listener. */
export class GrpcAttempt implements Controller, H2Listener, ConnWaiter, MessageSink {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  readonly #ex: Exchange;
  readonly #handler: ResponseHandler;
  /** The connection the attempt goes on (given when it is admitted). */
  conn: Conn | undefined;
  liveIndex = -1;
  readonly #owner: AttemptOwner;
  readonly #e: EndpointConns | undefined;
  #call: H2Call | undefined;
  #state: 0 | 1 | 2 = 0; // 0 waiting for a stream, 1 on the wire, 2 over
  /**
   * GOT_HEAD, READING, ANNOUNCED, WRITING, HALF_CLOSE_PENDING: one field rather than five
   * booleans (an attempt is made per call: fewer bytes to allocate and to touch).
   */
  #bits = 0;
  /** The call's messages, when it is a streamed body (attached while the attempt is on the wire). */
  #body: MessageBody | undefined;
  /** Messages waiting for the write in flight (made when one has to wait: a unary call's never does). */
  #outbox: { message: Buffer; ack: WriteAck }[] | undefined = undefined;
  /** The acknowledgement of the write in flight (one at a time), given when its callback comes. */
  #ack: WriteAck | undefined = undefined;
  /**
   * The stream's write callback: with one write in flight at a time, it acknowledges
   * {@link GrpcAttempt.#ack} (one function per attempt, no closure per write).
   */
  readonly #written = (): void => this.#sent();

  constructor(ex: Exchange, handler: ResponseHandler, conn: Conn | undefined, owner: AttemptOwner, e: EndpointConns | undefined) {
    this.#ex = ex;
    this.#handler = handler;
    this.conn = conn;
    this.#owner = owner;
    this.#e = e;
  }

  /** Admits the attempt to a stream of its endpoint's connection, and sends it. */
  start(): void {
    const r = this.#owner.admit(this.#e, this);
    if (r === 'go') this.go();
    else if (r === 'overflow') {
      this.#state = 2;
      const err = new MeshletError('MESHLET_ERR_OVERLOADED', `upstream overflow: ${this.#e?.endpoint.key} has maxConcurrentStreams streams in use and the pending queue is full`, this.#ex.errorContext());
      queueMicrotask(() => this.#handler.onResponseError?.(this, err));
    } else {
      // Waiting for a stream: the pipeline may cancel it through this controller.
      this.#bits |= ANNOUNCED;
      this.#handler.onRequestStart?.(this, null);
    }
  }

  /** A stream is free: put the call on the wire once its connection is up. */
  go(): void {
    if (this.#state !== 0) return;
    this.#state = 1;
    if ((this.#bits & ANNOUNCED) === 0) {
      this.#bits |= ANNOUNCED;
      this.#handler.onRequestStart?.(this, null);
    }
    // The pipeline may have cancelled it on the way (a per-try timeout that already passed).
    if ((this.#state as number) === 2) return;
    (this.conn as Conn).wait(this);
  }

  /** The connection could not be made (or was closed before it was): a transport failure. */
  connectFailed(err: GrpcCallError): void {
    if (this.#state !== 1 || this.#call !== undefined) return;
    this.#end();
    this.#handler.onResponseError?.(this, err);
  }

  /** The connection is up: the stream, its headers as grpc-js writes them, then the request messages. */
  connected(): void {
    if (this.#state !== 1 || this.#call !== undefined) return;
    const ex = this.#ex;
    const owner = this.#owner;
    const conn = this.conn as Conn;
    const metadata = ex instanceof GrpcExchange && ex.callerMetadata !== undefined && ex.callerHeaders !== undefined ? requestMetadataOf(owner.grpc, ex.headers, ex.callerMetadata, ex.callerHeaders) : metadataOf(owner.grpc, ex.headers);
    // The effective deadline (route timeout, caller deadline, MeshContext) is the mesh's to keep
    // (its deadline queue cancels the attempt when it passes); the stream carries what this
    // attempt may take as grpc-timeout: the per-try timeout when the route has one, never more
    // than what remains of the deadline — Envoy's setTimeoutHeaders, which writes that into
    // grpc-timeout under Istio's max_grpc_timeout, and into x-envoy-expected-rq-timeout-ms unless
    // suppress_envoy_headers (router.cc). Istio sets max_grpc_timeout on every route (route.go
    // setTimeout: the route timeout, or 0 = none), so a gRPC call's caller deadline counts as its
    // timeout there even on a route without one.
    // What was left when the attempt started, not now that its connection is up: Envoy writes both
    // headers before the pool's wait for a connection (exchange-state.ts attemptAt).
    const left = ex.deadline === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : ex.deadline - (ex.attemptAt >= 0 ? ex.attemptAt : owner.clock.now());
    const perTry = ex.perTryTimeoutMs;
    const expected = perTry === undefined || perTry <= 0 ? left : Math.min(left, perTry);
    if (expected !== Number.POSITIVE_INFINITY) {
      const ms = Math.max(1, expected);
      setGrpcTimeout(metadata, grpcTimeout(ms), owner.envoyHeaders ? expectedTimeout(ms) : '');
    }
    const session = conn.session;
    let stream: ReturnType<NonNullable<Conn['session']>['request']>;
    try {
      if (session === undefined || session.closed || session.destroyed) throw new Error('the connection is closed');
      stream = openStream(session, metadata, ex, owner.userAgent, conn.scheme);
    } catch (err) {
      // The connection went away under the call (GOAWAY, mesh.close()): a connection failure, retried as one.
      this.#end();
      const e = new GrpcCallError('reset', 14, `the HTTP/2 connection cannot take a stream: ${(err as Error).message}`);
      this.#handler.onResponseError?.(this, e);
      return;
    }
    // A mirrored copy's answer is thrown away: none of its messages is kept or inflated.
    const call = new H2Call(owner.grpc, stream, this, conn, ex instanceof GrpcExchange ? ex.receiveLimit : ex.mirror ? DISCARD_MESSAGES : -1);
    this.#call = call;
    // The connection the request goes out on (Envoy's router notes it at onPoolReady, before any answer).
    noteConnection(ex, conn.socket);
    this.#bits |= READING;
    call.startRead();
    const body = ex.body;
    if (body instanceof MessageBody) {
      this.#body = body;
      body.attach(this);
    } else {
      // A whole request (a mirrored copy): one message, then the half-close.
      if (body instanceof Uint8Array || typeof body === 'string') this.message(Buffer.from(body as Uint8Array), NO_ACK);
      this.end();
    }
  }

  // ── MessageSink: the request messages ──

  /**
   * Sends a request message. One write is in flight at a time (grpc-js's calls hold a single
   * pending message); the ones after it wait here and go out as each write is acknowledged.
   */
  message(message: Buffer, ack: WriteAck): void {
    if (this.#state !== 1 || this.#call === undefined) return;
    if ((this.#bits & WRITING) !== 0) {
      const entry = { message, ack };
      if (this.#outbox === undefined) this.#outbox = [entry];
      else this.#outbox.push(entry);
      return;
    }
    this.#send(message, ack);
  }

  #send(message: Buffer, ack: WriteAck): void {
    const call = this.#call as H2Call;
    this.#bits |= WRITING;
    this.#ack = ack;
    call.write(message, this.#written);
    // The half-close goes right after the last message, without waiting for that write's
    // callback (as grpc-js's own unary calls do): HTTP/2 then carries END_STREAM on the
    // message's DATA frame, in the same write, instead of an empty DATA frame of its own.
    if ((this.#bits & HALF_CLOSE_PENDING) !== 0 && (this.#outbox === undefined || this.#outbox.length === 0) && this.#state === 1) {
      this.#bits &= ~HALF_CLOSE_PENDING;
      call.halfClose();
      this.#halfClosed();
    }
  }

  #sent(): void {
    const ack = this.#ack;
    if (ack === undefined) return;
    this.#ack = undefined;
    this.#bits &= ~WRITING;
    ack.written();
    const outbox = this.#outbox;
    if (this.#state !== 1 || outbox === undefined || outbox.length === 0) return;
    const next = outbox.shift() as { message: Buffer; ack: WriteAck };
    this.#send(next.message, next.ack);
  }

  end(): void {
    if (this.#state !== 1) return;
    if (this.#outbox !== undefined && this.#outbox.length > 0) this.#bits |= HALF_CLOSE_PENDING;
    else if (this.#call !== undefined) {
      this.#call.halfClose();
      this.#halfClosed();
    }
  }

  /** The request went out to its end (Envoy's last upstream tx byte: `%REQUEST_TX_DURATION%`). */
  #halfClosed(): void {
    if (requestTimesWatched()) noteRequestSent(this.#ex, this.#owner.clock.now() - this.#ex.startedAt);
  }

  fail(err: Error): void {
    this.abort(err);
  }

  #end(): void {
    if (this.#state === 2) return;
    const wasOnWire = this.#state === 1;
    this.#state = 2;
    this.#body?.detach(this);
    this.#outbox = undefined;
    this.#owner.done(this.#e, this, wasOnWire);
  }

  // ── Controller ──

  abort(reason?: Error): void {
    if (this.#state === 2 || this.aborted) return;
    this.aborted = true;
    const r = reason ?? Object.assign(new Error('The operation was aborted'), { name: 'AbortError' });
    this.reason = r;
    const call = this.#call;
    if (call === undefined && this.#state === 1) this.conn?.unwait(this);
    this.#end();
    call?.cancel();
    this.#handler.onResponseError?.(this, r);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if ((this.#bits & READING) === 0 && this.#state === 1) {
      this.#bits |= READING;
      this.#call?.startRead();
    }
  }

  // ── the stream's listener ──

  /** What the endpoint answered (a head, trailers) is kept with its Metadata: the caller gets it as it is if nothing changes it on the way. */
  #upstream(headers: Headers, metadata: Metadata): void {
    const ex = this.#ex;
    if (ex instanceof GrpcExchange) ex.upstreamAnswer(headers, metadata);
    if (responseChannels.call.hasSubscribers) noteAnsweredOn(ex, this.conn?.localAddress);
  }

  onReceiveMetadata(metadata: Metadata): void {
    if (this.#state !== 1) return;
    this.#bits |= GOT_HEAD;
    const head = responseHeadersOf(metadata);
    this.#upstream(head, metadata);
    this.#handler.onResponseStart?.(this, 200, head, '');
  }

  onMessageTooLarge(details: string): void {
    const ex = this.#ex;
    if (this.#state === 1 && ex instanceof GrpcExchange) ex.caller?.cancelWithStatus(8, details); // RESOURCE_EXHAUSTED, as grpc-js
  }

  onReceiveMessage(message: Buffer): void {
    if (this.#state !== 1) return;
    this.#bits &= ~READING;
    this.#handler.onResponseData?.(this, message);
    if (this.#state === 1 && !this.paused && (this.#bits & READING) === 0) {
      this.#bits |= READING;
      this.#call?.startRead();
    }
  }

  onReceiveStatus(status: StatusObject, failure: FailureKind | undefined): void {
    if (this.#state !== 1) return;
    const { code, details, metadata } = status;
    const h = this.#handler;
    this.#end();
    if (failure !== undefined) {
      // The stream ended without the server's status (reset, refused, dropped): a transport failure.
      h.onResponseError?.(this, new GrpcCallError(failure, code, details, metadata));
      return;
    }
    if ((this.#bits & GOT_HEAD) === 0) {
      // The server answered trailers-only: a head that carries the status.
      const head = responseHeadersOf(metadata);
      head['grpc-status'] = String(code);
      if (details !== '') head['grpc-message'] = encodeGrpcMessage(details);
      this.#upstream(head, metadata);
      h.onResponseStart?.(this, 200, head, '');
      if (!this.aborted) h.onResponseEnd?.(this, EMPTY);
      return;
    }
    const trailers = statusTrailersOf(metadata, code, details);
    this.#upstream(trailers, metadata);
    h.onResponseEnd?.(this, trailers);
  }
}
