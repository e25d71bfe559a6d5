/**
 * One grpc-js call through the mesh: the `Call` a grpc-js client gets from the mesh channel
 * (`createCall`). `start` turns it into an Exchange — `POST /pkg.Service/Method`, metadata as
 * lower-cased headers (`-bin` base64), the caller's deadline, the request messages as a
 * replayable body — and runs the mesh's outbound pipeline with it, the same one HTTP calls
 * run; what comes back is handed to grpc-js's listener as metadata, messages and a status.
 *
 * Flow control follows grpc-js: a message is delivered only when the caller asked to read
 * (`startRead`), the attempt in flight is paused while one waits, and the status is delivered
 * after the last message. A write is acknowledged once the attempt on the wire wrote the message
 * (body.ts).
 *
 * @module
 */
import type { CallCredentials, experimental, InterceptingListener, Metadata, StatusObject } from '@grpc/grpc-js';
import type { MessageContext } from '@grpc/grpc-js/build/src/call-interface.js';
import type { Clock } from '../../core/clock.ts';
import { MeshletError } from '../../core/errors.ts';
import type { Controller, ErrorMode, Headers, ResponseHandler } from '../../core/exchange.ts';
import type { Dispatch } from '../../core/layer.ts';
import { GRPC_STATUS, httpToGrpc } from '../../core/grpc-status.ts';
import { localReplyText } from '../../core/local-reply.ts';
import { outboundRequestId } from '../../telemetry/request-id.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';
import { MessageBody } from './body.ts';
import { GrpcCallError } from './classify.ts';
import { GrpcExchange, grpcStatusOfError } from './exchange.ts';
import type { GrpcJs } from './grpc-js.ts';
import { answerMetadataOf, answerOf, asMetadataOf, callHeadersOf, decodeGrpcMessage, FLAGS_KEY, grpcStatusCodeOf, metadataClassOf } from './metadata.ts';
import { GRPC_TRANSPORT } from './transport.ts';

/** What a mesh call needs from its mesh. */
export interface MeshCallContext {
  readonly grpc: GrpcJs;
  readonly clock: Clock;
  readonly errors: ErrorMode;
  /** Largest request (the recorded messages) kept for replay by retries. */
  readonly retryBufferBytes: number;
  readonly workload: WorkloadIdentity | undefined;
  /** A call without `x-request-id` gets a new one (Istio's `proxyHeaders.requestId` not disabled). @defaultValue true */
  readonly requestId?: boolean;
  /** Responses get `x-envoy-upstream-service-time`, overflow answers `x-envoy-overloaded` (Istio's `proxyHeaders.envoyDebugHeaders` not disabled). @defaultValue true */
  readonly envoyHeaders?: boolean;
  /** The outbound pipeline. */
  pipeline(): Dispatch;
  /** True once the mesh is closed. */
  closed(): boolean;
}

let callNumber = 0;

/** grpc-js's `Status.CANCELLED` and `Status.RESOURCE_EXHAUSTED`. */
const CANCELLED = 1;
const RESOURCE_EXHAUSTED = 8;

/** From the client's options: message-size limits (-1: none), checked as grpc-js checks them, and the user-agent grpc-js would send. */
export interface CallSettings {
  readonly receive: number;
  readonly send: number;
  readonly userAgent?: string;
  /** The mesh's own call (channel option `meshlet.side_call`): the rate limit filters do not judge it. */
  readonly sideCall?: boolean;
}

/** grpc-js's defaults: 4 MiB received, any size sent. */
export const DEFAULT_SETTINGS: CallSettings = Object.freeze({ receive: 4 * 1024 * 1024, send: -1 });

/** What a server call given as `parent` offers (grpc-js's `ServerSurfaceCall` is an EventEmitter with `cancelled`). */
export interface ParentCall {
  readonly cancelled?: boolean;
  on(event: 'cancelled', listener: () => void): unknown;
  removeListener(event: 'cancelled', listener: () => void): unknown;
}

/** The caller cancelled the call (`cancelWithStatus`): the status it gets is the one it gave. */
class CallCancelled extends Error {
  readonly grpcCode: number;
  constructor(code: number, details: string) {
    super(details);
    this.name = 'AbortError';
    this.grpcCode = code;
  }
}

/** MeshCall's bits: the status was delivered. */
const ENDED = 1;
/** Inside start() or cancelWithStatus(): a status that comes now is delivered after it returns. */
const STARTING = 2;

/** A grpc-js call carried by the mesh. */
export class MeshCall implements experimental.CallStream, ResponseHandler {
  readonly #o: MeshCallContext;
  readonly #method: string;
  readonly #authority: string;
  /** The caller's deadline, ms since the epoch (Infinity: none). */
  readonly #deadline: number;
  readonly #number = ++callNumber;
  #ex: GrpcExchange | undefined;
  #listener: InterceptingListener | undefined;
  #credentials: CallCredentials | undefined;
  /** The request messages (written before the call is routed, they wait in it). */
  readonly #body: MessageBody;
  /** Messages received that the caller has not asked to read yet (made when one has to wait: most calls have none). */
  #queue: Buffer[] | undefined = undefined;
  /** Reads the caller asked for that no message has answered yet. */
  #reads = 0;
  /** The status of an answer that came as a head alone (trailers-only, a mesh-made answer). */
  #headStatus: StatusObject | undefined;
  /** The body of a non-gRPC local answer (a direct response), its status's details. */
  #localBody: Buffer[] | undefined;
  /** The final status, delivered once the caller has read every message before it. */
  #status: StatusObject | undefined;
  /** ENDED, STARTING: one field rather than two booleans (a call object is made per call). */
  #bits = 0;
  #cancelled: { code: number; details: string } | undefined;
  /** The caller's Metadata class when it is another copy of grpc-js than the mesh's (an app that bundled its own): what it is handed is of it. */
  #theirs: GrpcJs['Metadata'] | undefined;
  /** The server call whose cancellation cancels this one (`parent`, Propagate.CANCELLATION), and the listener it holds. */
  #parent: { call: ParentCall; onCancelled: () => void } | undefined;
  readonly #limits: CallSettings;

  constructor(o: MeshCallContext, method: string, authority: string, deadline: number, limits: CallSettings = DEFAULT_SETTINGS) {
    this.#o = o;
    this.#limits = limits;
    this.#method = method;
    this.#authority = authority;
    this.#deadline = deadline;
    this.#body = new MessageBody(o.retryBufferBytes);
  }

  /**
   * Cancels this call when `parent` (a server call given as the `parent` call option) is
   * cancelled, as grpc-js's own channels do (`Cancelled by parent call`); the listener leaves the
   * parent when this call ends, so a long-lived parent making many calls holds none of them.
   */
  cancelWithParent(parent: ParentCall): void {
    if (parent.cancelled === true) {
      this.cancelWithStatus(CANCELLED, 'Cancelled by parent call');
      return;
    }
    const onCancelled = (): void => this.cancelWithStatus(CANCELLED, 'Cancelled by parent call');
    this.#parent = { call: parent, onCancelled };
    parent.on('cancelled', onCancelled);
  }

  // ── grpc-js Call ──

  start(metadata: Metadata, listener: InterceptingListener): void {
    this.#listener = listener;
    if (!(metadata instanceof this.#o.grpc.Metadata)) this.#theirs = metadataClassOf(this.#o.grpc, metadata);
    // A status never comes back before start() returns (as with grpc-js's own calls): the
    // caller's client wires its listeners after.
    if (this.#cancelled !== undefined) {
      const c = this.#cancelled;
      queueMicrotask(() => this.#finish({ code: c.code, details: c.details, metadata: new this.#o.grpc.Metadata() }));
      return;
    }
    if (this.#o.closed()) {
      queueMicrotask(() => this.#finish({ code: GRPC_STATUS.UNAVAILABLE, details: 'the mesh is closed', metadata: new this.#o.grpc.Metadata() }));
      return;
    }
    const creds = this.#credentials;
    if (creds === undefined) {
      this.#bits |= STARTING;
      try {
        this.#dispatch(metadata);
      } finally {
        this.#bits &= ~STARTING;
      }
      return;
    }
    // Per-call credentials (a token source): their metadata joins the call's before it is routed.
    const service = this.#method.slice(0, this.#method.lastIndexOf('/'));
    creds.generateMetadata({ service_url: `https://${this.#authority}${service}`, method_name: this.#method.slice(this.#method.lastIndexOf('/') + 1) }).then(
      (md) => {
        if ((this.#bits & ENDED) !== 0 || this.#cancelled !== undefined) return;
        metadata.merge(md);
        this.#dispatch(metadata);
      },
      (err: unknown) => {
        const code = typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : GRPC_STATUS.UNAVAILABLE;
        this.#finish({ code, details: `Getting metadata from plugin failed with error: ${(err as Error).message}`, metadata: new this.#o.grpc.Metadata() });
      },
    );
  }

  #dispatch(metadata: Metadata): void {
    const o = this.#o;
    const now = o.clock.now();
    const { headers, before } = callHeadersOf(metadata);
    if (this.#limits.userAgent !== undefined) headers['user-agent'] = this.#limits.userAgent;
    outboundRequestId(headers, o.requestId !== false);
    const ex = new GrpcExchange(this, o.errors, now, 'POST', 'http', this.#authority, this.#method, headers, this.#body, undefined, 'grpc', GRPC_TRANSPORT);
    ex.workload = o.workload;
    ex.clock = o.clock;
    ex.envoyHeaders = o.envoyHeaders !== false;
    ex.callerMetadata = metadata;
    ex.callerHeaders = before;
    ex.receiveLimit = this.#limits.receive;
    ex.caller = this;
    if (this.#limits.sideCall === true) ex.sideCall = true;
    // The caller's deadline, carried over to the mesh clock: the timeout layer takes the sooner of it and the route's.
    if (this.#deadline !== Number.POSITIVE_INFINITY) ex.callerDeadline = now + (this.#deadline - Date.now());
    this.#ex = ex;
    ex.begin();
    if (ex.aborted) {
      ex.onResponseError(ex, ex.reason as Error);
      return;
    }
    // A layer that threw ends the call with that error (as the dispatcher).
    try { o.pipeline()(ex, ex); } catch (err) { if (!ex.done) ex.onResponseError(ex, err as Error); }
  }

  sendMessageWithContext(context: MessageContext, message: Buffer): void {
    const send = this.#limits.send;
    if (send !== -1 && message.length > send) {
      // As grpc-js (only -1 is any size: compression-filter.js): the call fails, nothing of the message is sent (the status comes after this
      // returns: the write may be inside the client's own call, a unary call's request).
      this.cancelWithStatus(RESOURCE_EXHAUSTED, `Attempted to send message with a size larger than ${send}`);
      return;
    }
    const cb = context.callback;
    this.#body.push(message, cb);
  }

  halfClose(): void {
    this.#body.end(this.#o.clock.now()); // a route timeout runs from here (Envoy's onRequestComplete)
  }

  startRead(): void {
    const m = this.#queue?.shift();
    if (m === undefined) {
      // The attempt was paused when the caller's last read was answered: it reads on now.
      if (this.#reads++ === 0) this.#ex?.resume();
      return;
    }
    this.#listener?.onReceiveMessage(m);
    if (this.#queue === undefined || this.#queue.length === 0) {
      this.#ex?.resume();
      this.#flush();
    }
  }

  cancelWithStatus(status: number, details: string): void {
    // As with grpc-js's own calls, the status reaches the caller after cancel() returns, never
    // inside it (a callback run within call.cancel() would re-enter the caller's code).
    const outer = this.#bits & STARTING;
    this.#bits |= STARTING;
    try {
      this.#cancel(status, details);
    } finally {
      if (outer === 0) this.#bits &= ~STARTING;
    }
  }

  #cancel(status: number, details: string): void {
    if ((this.#bits & ENDED) !== 0 || this.#cancelled !== undefined) return;
    this.#cancelled = { code: status, details };
    const ex = this.#ex;
    if (ex === undefined) {
      // Not routed yet (call credentials pending) or not started: the status goes out now.
      if (this.#listener !== undefined) this.#finish({ code: status, details, metadata: new this.#o.grpc.Metadata() });
      return;
    }
    this.#queue = undefined; // messages not read yet are dropped: a cancelled call ends now
    // An OK answer that waited behind unread messages: the caller's cancel is what it gets.
    if (this.#status === undefined) ex.abort(new CallCancelled(status, details));
    else this.#finish({ code: status, details, metadata: new this.#o.grpc.Metadata() }, true);
  }

  getPeer(): string {
    return this.#authority;
  }

  getCallNumber(): number {
    return this.#number;
  }

  setCredentials(credentials: CallCredentials): void {
    this.#credentials = credentials;
  }

  getAuthContext(): null {
    return null;
  }

  // ── the pipeline's answer ──

  onResponseStart(_controller: Controller, statusCode: number, headers: Headers): void {
    const g = this.#o.grpc;
    const ex = this.#ex;
    if (ex?.localKind !== undefined || statusCode !== 200) {
      // Not a gRPC answer (a direct response, a redirect): gRPC's HTTP mapping, the body as details.
      this.#headStatus = { code: statusCode === 200 ? GRPC_STATUS.UNKNOWN : httpToGrpc(statusCode), details: '', metadata: answerOf(g, headers) };
      this.#localBody = [];
      return;
    }
    const md = ex?.answerMetadata(headers, true);
    const metadata = md === undefined ? answerOf(g, headers) : answerMetadataOf(md, headers, ex?.flags ?? '');
    const gs = headers['grpc-status'];
    if (gs !== undefined) {
      // Trailers-only: the head is the status.
      this.#headStatus = { code: grpcStatusCodeOf(gs), details: decodeGrpcMessage(headers['grpc-message']), metadata };
      return;
    }
    // The response started: the call is never retried from here, so its messages are not kept for it.
    this.#body.commit();
    this.#listener?.onReceiveMetadata(this.#theirs === undefined ? metadata : asMetadataOf(this.#theirs, metadata));
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    if (this.#headStatus !== undefined) {
      this.#localBody?.push(chunk);
      return;
    }
    const receive = this.#limits.receive;
    if (receive !== -1 && chunk.length > receive) {
      // As grpc-js's own calls: the call fails and is cancelled on the wire.
      this.cancelWithStatus(RESOURCE_EXHAUSTED, `Received message larger than max (${chunk.length} vs ${receive})`);
      return;
    }
    const queue = this.#queue;
    if (this.#reads > 0 && (queue === undefined || queue.length === 0)) {
      // The caller asked for no more: the attempt reads no further until it does, as grpc-js's
      // own calls read the stream only when asked (a unary caller asks once, and the status
      // still comes: grpc-js ends a paused stream when the server closes it). Not asking
      // grpc-js for the next message saves a stream resume (a tick and a read start) per call.
      if (--this.#reads === 0) this.#ex?.pause();
      this.#listener?.onReceiveMessage(chunk);
      return;
    }
    if (queue === undefined) this.#queue = [chunk];
    else queue.push(chunk);
    this.#ex?.pause();
  }

  onResponseEnd(_controller: Controller, trailers: Headers): void {
    const head = this.#headStatus;
    if (head !== undefined) {
      const body = this.#localBody;
      if (body !== undefined && body.length > 0 && head.details === '') head.details = Buffer.concat(body).toString();
      this.#finish(head);
      return;
    }
    const gs = trailers['grpc-status'];
    const md = this.#ex?.answerMetadata(trailers, false);
    const metadata = md === undefined ? answerOf(this.#o.grpc, trailers) : answerMetadataOf(md, trailers, '');
    // A stream that ends without a status is an error (UNKNOWN, as the classifier counts it).
    this.#finish(gs === undefined ? { code: GRPC_STATUS.UNKNOWN, details: 'the stream ended without a gRPC status', metadata } : { code: grpcStatusCodeOf(gs), details: decodeGrpcMessage(trailers['grpc-message']), metadata });
  }

  onResponseError(_controller: Controller, err: Error): void {
    this.#finish(this.#statusOf(err));
  }

  /** The status a failure reaches the caller as. */
  #statusOf(err: Error): StatusObject {
    const g = this.#o.grpc;
    if (err instanceof CallCancelled) return { code: err.grpcCode, details: err.message, metadata: new g.Metadata() };
    const flags = this.#ex?.flags ?? '';
    const code = grpcStatusOfError(err);
    let status: StatusObject;
    if (err instanceof MeshletError) {
      const text = localReplyText(err);
      status = { code, details: text === '' ? err.message : text, metadata: new g.Metadata() };
    } else if (err instanceof GrpcCallError) {
      status = { code, details: err.details, metadata: err.metadata?.clone() ?? new g.Metadata() };
    } else {
      status = { code, details: err.message, metadata: new g.Metadata() };
    }
    if (flags !== '') status.metadata.set(FLAGS_KEY, flags);
    return status;
  }

  #finish(status: StatusObject, replace = false): void {
    if (this.#status !== undefined && !replace) return;
    this.#status = status;
    this.#flush();
  }

  /** Delivers an OK status once every message before it was read; a failure (a deadline) at once, dropping them, as grpc-js (`maybeOutputStatus`). */
  #flush(): void {
    const s = this.#status;
    if (s === undefined || (this.#bits & ENDED) !== 0) return;
    if (s.code !== GRPC_STATUS.OK) this.#queue = undefined;
    else if (this.#queue !== undefined && this.#queue.length > 0) return;
    if ((this.#bits & STARTING) !== 0) {
      queueMicrotask(() => this.#flush());
      return;
    }
    this.#bits |= ENDED;
    this.#body.close();
    const parent = this.#parent;
    if (parent !== undefined) {
      this.#parent = undefined;
      parent.call.removeListener('cancelled', parent.onCancelled);
    }
    this.#listener?.onReceiveStatus(this.#theirs === undefined ? s : { ...s, metadata: asMetadataOf(this.#theirs, s.metadata) });
  }
}
