/**
 * One attempt of a gRPC call on one connection: the controller the pipeline sees for it, and
 * the listener of the grpc-js call it makes. What comes back becomes the pipeline's handler
 * calls: response metadata is the head (`onResponseStart(200, headers)`), each message is data,
 * the status is the trailers — or, for a trailers-only answer, a head with `grpc-status` — so
 * the one classifier sees gRPC statuses as Envoy does. A status grpc-js made up itself
 * (connection refused, stream reset) is a transport failure of the kind it is (classify.ts),
 * never an answer. The request messages come from the call's body as the caller writes them
 * (body.ts). The exchange's effective deadline is the mesh's to keep; the call carries what
 * remains of it as `grpc-timeout`.
 *
 * @module
 */
import type { experimental, InterceptingListener, Metadata, StatusObject } from '@grpc/grpc-js';
import { MeshletError } from '../../core/errors.ts';
import type { Controller, Exchange, Headers, ResponseHandler } from '../../core/exchange.ts';
import { MessageBody, type MessageSink, type WriteAck } from './body.ts';
import type { AttemptOwner, Conn, EndpointChannel } from './channels.ts';
import { failureKindOf, GrpcCallError, isLocalAfterHead, isServerTrailersOnly } from './classify.ts';
import { GrpcExchange } from './exchange.ts';
import { encodeGrpcMessage, expectedTimeout, grpcTimeout, metadataOf, requestMetadataOf, responseHeadersOf, setGrpcTimeout, statusTrailersOf } from './metadata.ts';

type Call = experimental.CallStream;

const EMPTY: Headers = Object.freeze(Object.create(null)) as Headers;

/** The acknowledgement of a message no caller waits on (a mirrored copy's). */
const NO_ACK: WriteAck = { written: () => undefined };

/** The attempt got the response metadata (a head). */
const GOT_HEAD = 1;
/** A read is asked of the grpc-js call (startRead) and no message answered it yet. */
const READING = 2;
/** The pipeline got this controller (onRequestStart). */
const ANNOUNCED = 4;
/** A request message write is in flight (its callback not come yet). */
const WRITING = 8;
/** The caller half-closed while messages waited: half-close after the last one goes out. */
const HALF_CLOSE_PENDING = 16;

/** One attempt on one endpoint: the controller the pipeline sees, and grpc-js's listener. */
export class GrpcAttempt implements Controller, InterceptingListener, MessageSink {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  readonly #ex: Exchange;
  readonly #handler: ResponseHandler;
  /** The connection the attempt goes on (given when it is admitted). */
  conn: Conn | undefined;
  liveIndex = -1;
  readonly #owner: AttemptOwner;
  readonly #e: EndpointChannel | undefined;
  #call: Call | undefined;
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
   * grpc-js's write callback: the attempt is its own write context (`sendMessageWithContext(this,
   * …)`), so a write makes no context object and closure of its own; with one write in flight at
   * a time, the callback acknowledges {@link GrpcAttempt.#ack}. An own function, not a method:
   * grpc-js may call it detached (a message over its retry buffer).
   */
  readonly callback = (): void => this.#sent();

  constructor(ex: Exchange, handler: ResponseHandler, conn: Conn | undefined, owner: AttemptOwner, e: EndpointChannel | undefined) {
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

  /** A stream is free: put the call on the wire. */
  go(): void {
    if (this.#state !== 0) return;
    const ex = this.#ex;
    this.#state = 1;
    const channel = (this.conn as Conn).channel;
    let call: Call;
    try {
      call = channel.createCall(ex.path, Number.POSITIVE_INFINITY, ex.authority, null, undefined);
    } catch (err) {
      // The channel was closed under the call (mesh.close()): the mesh's doing, not the endpoint's.
      this.#end();
      const e = new MeshletError('MESHLET_ERR_CLOSED', `the gRPC channel to ${channel.getTarget()} is closed`, { ...ex.errorContext(), cause: err });
      queueMicrotask(() => this.#handler.onResponseError?.(this, e));
      return;
    }
    this.#call = call;
    if ((this.#bits & ANNOUNCED) === 0) {
      this.#bits |= ANNOUNCED;
      this.#handler.onRequestStart?.(this, null);
    }
    // The pipeline may have cancelled it on the way (a per-try timeout that already passed).
    if ((this.#state as number) === 2) return;
    const metadata = ex instanceof GrpcExchange && ex.callerMetadata !== undefined && ex.callerHeaders !== undefined ? requestMetadataOf(this.#owner.grpc, ex.headers, ex.callerMetadata, ex.callerHeaders) : metadataOf(this.#owner.grpc, ex.headers);
    // The effective deadline (route timeout, caller deadline, MeshContext) is the mesh's to keep
    // (its deadline queue cancels the attempt when it passes); the endpoint call carries, with no
    // grpc-js deadline timer of its own, what this attempt may take as grpc-timeout: the per-try
    // timeout when the route has one, never more than what remains of the deadline — Envoy's
    // setTimeoutHeaders, which writes that into grpc-timeout under Istio's max_grpc_timeout, and
    // into x-envoy-expected-rq-timeout-ms unless suppress_envoy_headers (router.cc). Istio sets
    // max_grpc_timeout on every route (route.go setTimeout: the route timeout, or 0 = none), so
    // a gRPC call's caller deadline counts as its timeout there even on a route without one.
    const owner = this.#owner;
    const left = ex.deadline === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : ex.deadline - owner.clock.now();
    const perTry = ex.perTryTimeoutMs;
    const expected = perTry === undefined || perTry <= 0 ? left : Math.min(left, perTry);
    if (expected !== Number.POSITIVE_INFINITY) {
      const ms = Math.max(1, expected);
      setGrpcTimeout(metadata, grpcTimeout(ms), owner.envoyHeaders ? expectedTimeout(ms) : '');
    }
    call.start(metadata, this);
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
    if (this.#state !== 1) return;
    if ((this.#bits & WRITING) !== 0) {
      const entry = { message, ack };
      if (this.#outbox === undefined) this.#outbox = [entry];
      else this.#outbox.push(entry);
      return;
    }
    this.#send(message, ack);
  }

  #send(message: Buffer, ack: WriteAck): void {
    const call = this.#call as Call;
    this.#bits |= WRITING;
    this.#ack = ack;
    call.sendMessageWithContext(this, message);
    // The half-close goes right after the last message, without waiting for that write's
    // callback (as grpc-js's own unary calls do): HTTP/2 then carries END_STREAM on the
    // message's DATA frame, in the same write, instead of an empty DATA frame of its own.
    if ((this.#bits & HALF_CLOSE_PENDING) !== 0 && (this.#outbox === undefined || this.#outbox.length === 0) && this.#state === 1) {
      this.#bits &= ~HALF_CLOSE_PENDING;
      call.halfClose();
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
    else this.#call?.halfClose();
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
    this.#end();
    call?.cancelWithStatus(this.#owner.grpc.status.CANCELLED, r.message);
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

  // ── grpc-js listener ──

  /** What the endpoint answered (a head, trailers) is kept with its Metadata: the caller gets it as it is if nothing changes it on the way. */
  #upstream(headers: Headers, metadata: Metadata): void {
    const ex = this.#ex;
    if (ex instanceof GrpcExchange) ex.upstreamAnswer(headers, metadata);
  }

  onReceiveMetadata(metadata: Metadata): void {
    if (this.#state !== 1) return;
    this.#bits |= GOT_HEAD;
    const head = responseHeadersOf(metadata);
    this.#upstream(head, metadata);
    this.#handler.onResponseStart?.(this, 200, head, '');
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

  onReceiveStatus(status: StatusObject): void {
    if (this.#state !== 1) return;
    const { code, details, metadata } = status;
    const h = this.#handler;
    if ((this.#bits & GOT_HEAD) === 0) {
      this.#end();
      if (code === 0 || isServerTrailersOnly(metadata)) {
        // The server answered trailers-only: a head that carries the status.
        const head = responseHeadersOf(metadata);
        head['grpc-status'] = String(code);
        if (details !== '') head['grpc-message'] = encodeGrpcMessage(details);
        this.#upstream(head, metadata);
        h.onResponseStart?.(this, 200, head, '');
        if (!this.aborted) h.onResponseEnd?.(this, EMPTY);
        return;
      }
      h.onResponseError?.(this, new GrpcCallError(failureKindOf(code, details), code, details, metadata, this.#e?.trust));
      return;
    }
    this.#end();
    if (isLocalAfterHead(code, details, metadata)) {
      h.onResponseError?.(this, new GrpcCallError(failureKindOf(code, details), code, details, metadata));
      return;
    }
    const trailers = statusTrailersOf(metadata, code, details);
    this.#upstream(trailers, metadata);
    h.onResponseEnd?.(this, trailers);
  }
}
