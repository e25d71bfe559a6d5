/**
 * The Exchange — one logical call, protocol-neutral — and the layer types that take it
 * (`Dispatch`, `Layer`, `stack`). The handler and controller types it works with are in
 * `handler.ts` (re-exported here).
 *
 * The response side uses the handler shape of undici 8's dispatcher API (`onRequestStart`,
 * `onResponseStart`, `onResponseData`, `onResponseEnd`, `onResponseError`, each given the
 * controller of the request): the pipeline's layers speak it whatever the call's protocol.
 *
 * An Exchange plays three parts at once, so a call costs one object rather than three:
 * - the request (protocol, method, authority, path, headers, body) that layers read and rewrite;
 * - the controller the caller's handler sees for the whole call (abort/pause/resume reach the
 *   attempt in flight, or cancel whatever the call is waiting on);
 * - the outermost handler of the pipeline: it applies response header operations, records how
 *   the call ended, publishes it (`meshlet:call:*`, see observe.ts) and hands the result to
 *   the caller.
 *
 * It does not render anything. A mesh-made failure is a typed outcome (a {@link MeshletError}
 * with its Envoy flag, HTTP status and gRPC status) and a local reply (direct response,
 * redirect) is a status, headers and body; each adapter subclasses the Exchange to render them
 * its own way — the undici adapter as a sidecar's HTTP responses, the gRPC adapter as statuses.
 *
 * @module
 */
import { ReplayableBody } from './body.ts';
import type { Protocol } from './classify.ts';
import type { Clock } from './clock.ts';
import type { DeadlineNode, DeadlineQueue } from './deadlines.ts';
import { type ErrorContext, MeshletError } from './errors.ts';
import { applyHeaderOps, type Controller, type ErrorMode, type Headers, type ResponseHandler, type ResponseHeaderOps, type Waiter } from './handler.ts';
import { type AttemptObserver, type CallEndMessage, channels, type ResponseTap, type WorkloadIdentity } from './observe.ts';

export type { Controller, ErrorMode, Headers, ResponseHandler, ResponseHeaderOps, Waiter } from './handler.ts';
export { applyHeaderOps, NO_CONTROLLER } from './handler.ts';
export type { Protocol } from './classify.ts';

/** One step of the pipeline: handles the exchange, usually by calling the next step. */
export type Dispatch = (ex: Exchange, handler: ResponseHandler) => void;

/** A layer wraps the rest of the pipeline: `(next) => dispatch`. */
export type Layer = (next: Dispatch) => Dispatch;

/** Composes layers, outermost first, around a terminal dispatch. */
export function stack(layers: readonly Layer[], terminal: Dispatch): Dispatch {
  let d = terminal;
  for (let i = layers.length - 1; i >= 0; i--) d = (layers[i] as Layer)(d);
  return d;
}

const EMPTY: Headers = Object.freeze(Object.create(null)) as Headers;
/** An endpoint without labels (one object: telemetry caches by the labels' identity). */
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});
/** What a finished exchange holds instead of the caller's handler. */
const RELEASED: ResponseHandler = Object.freeze({});

function abortError(): Error {
  const e = new Error('The operation was aborted');
  e.name = 'AbortError';
  return e;
}

/** What a local reply is, for the adapter that renders it. */
export type LocalReplyKind = 'direct' | 'redirect' | 'failure';

/** The slots layers fill in, as the Exchange itself reads them (for error context and telemetry). */
interface Named {
  readonly name?: string;
}
interface ClusterRef {
  readonly name?: string;
  readonly cluster?: { readonly host?: string };
}
interface HostRef {
  readonly key?: string;
  readonly endpoint?: { readonly serviceAccount?: string; readonly labels?: Readonly<Record<string, string>>; readonly namespace?: string };
}

/**
 * One logical call. Adapters create it (a subclass that renders for their protocol); layers
 * read and rewrite it; it is the controller the caller sees and the outermost handler of the
 * pipeline.
 */
export class Exchange implements Controller, ResponseHandler {
  // ── the request ──
  method: string;
  /** `http` or `https`. */
  scheme: string;
  /** Host header / :authority, with the port when given: what routing matches (rewrites change it). */
  authority: string;
  /**
   * The authority of the URL the caller named (`reviews:9080`): where a call that leaves the mesh
   * (passthrough, resolution NONE) connects. The Host header only ever chooses among mesh
   * services; it never sends a call to an address the URL did not name.
   */
  urlAuthority: string;
  /** Path with query. */
  path: string;
  /** Request headers; the exchange owns this object, layers may change it. */
  headers: Headers;
  /** Request body as the adapter gave it (a replayable body for streams). */
  body: unknown;
  /** What the call speaks (HTTP/1.1, HTTP/2, gRPC): the classifier and telemetry read it. */
  protocol: Protocol;
  /** Which of the mesh's transports carries the call (`http`: undici; `grpc`: grpc-js). */
  transport: string;
  /** The mesh the call belongs to (for observation). */
  workload: WorkloadIdentity | undefined = undefined;
  /** The mesh clock (for the call's duration in observation). */
  clock: Clock | undefined = undefined;
  /** When the call began, on the mesh clock. */
  readonly startedAt: number;
  /** Absolute deadline on the mesh clock (Infinity = none): the sooner of the route's and the caller's. */
  deadline = Number.POSITIVE_INFINITY;
  /**
   * The caller's own deadline on the mesh clock (a gRPC call's deadline, an inbound
   * `grpc-timeout` or `x-envoy-expected-rq-timeout-ms`), set by the adapter; Infinity = none.
   */
  callerDeadline = Number.POSITIVE_INFINITY;
  /** Attempts made so far. */
  attempts = 0;
  /** Envoy response flags gathered on the way (`DI`, `URX`, …), comma-separated. */
  flags = '';
  /** Slots for layers (route decision, cluster, endpoint, …); outbound/slots.ts reads them typed. */
  route: unknown = undefined;
  target: unknown = undefined;
  cluster: unknown = undefined;
  host: unknown = undefined;
  /** Hosts tried by earlier attempts (allocated on first retry). */
  tried: unknown[] | undefined = undefined;
  /** The adapter's own options for the call (passed through to the transport). */
  options: unknown;

  // ── control ──
  /** Controller of the attempt in flight. */
  current: Controller | undefined = undefined;
  /** What the call is waiting on, when no attempt is in flight. */
  waiting: Waiter | undefined = undefined;
  aborted = false;
  paused = false;
  reason: Error | null = null;
  /** True once the caller's handler got its final callback. */
  done = false;
  /** True once the caller's handler got response headers. */
  responded = false;
  /** Response header operations to apply (route level, then destination level). */
  responseOps: ResponseHeaderOps[] | undefined = undefined;
  /** A subscriber's look at the response head before the caller's (see {@link ResponseTap}). */
  responseTap: ResponseTap | undefined = undefined;
  /** What the tap kept of the response head. */
  tapState: unknown = undefined;
  /** A subscriber's hook on this call's attempts (see {@link AttemptObserver}). */
  attemptObserver: AttemptObserver | undefined = undefined;
  /** The route timeout's entry in the deadline queue, removed when the call ends. */
  deadlineNode: DeadlineNode | undefined = undefined;
  deadlineQueue: DeadlineQueue | undefined = undefined;

  // ── outcome (what telemetry reads) ──
  /** Response status the caller got, 0 when none. */
  status = 0;
  /** gRPC status of the answer (head or trailers), -1 when none. */
  grpcStatus = -1;
  /** Response body bytes delivered to the caller. */
  responseBytes = 0;

  protected _handler: ResponseHandler;
  private readonly _errors: ErrorMode;

  /** How mesh-made failures reach the caller. */
  get errorMode(): ErrorMode {
    return this._errors;
  }

  constructor(
    handler: ResponseHandler,
    errors: ErrorMode,
    startedAt: number,
    method: string,
    scheme: string,
    authority: string,
    path: string,
    headers: Headers,
    body: unknown,
    options: unknown,
    protocol: Protocol = 'http1',
    transport = 'http',
  ) {
    this._handler = handler;
    this._errors = errors;
    this.startedAt = startedAt;
    this.method = method;
    this.scheme = scheme;
    this.authority = authority;
    this.urlAuthority = authority;
    this.path = path;
    this.headers = headers;
    this.body = body;
    this.options = options;
    this.protocol = protocol;
    this.transport = transport;
  }

  /**
   * A copy of this call's request for `handler` (a mirror): the same request, its own control,
   * errors delivered as errors (nothing rendered). Layers never construct Exchanges themselves.
   */
  copy(handler: ResponseHandler, startedAt: number): Exchange {
    const c = new Exchange(handler, 'throw', startedAt, this.method, this.scheme, this.authority, this.path, { ...this.headers }, this.body, undefined, this.protocol, this.transport);
    c.urlAuthority = this.urlAuthority;
    c.workload = this.workload;
    c.clock = this.clock;
    return c;
  }

  /** Adds an Envoy response flag. */
  flag(f: string): void {
    if (this.flags === '') this.flags = f;
    else if (!this.flags.split(',').includes(f)) this.flags += `,${f}`;
  }

  /** Tells the caller's handler the call started (adapters call it once, before dispatching). */
  begin(): void {
    const ch = channels.callStart;
    if (ch.hasSubscribers) {
      ch.publish({ workload: this.workload, call: this, protocol: this.protocol, method: this.method, authority: this.authority, path: this.path, headers: this.headers });
    }
    this._handler.onRequestStart?.(this, null);
  }

  // ── Controller (what the caller sees) ──

  abort(reason?: Error): void {
    if (this.aborted || this.done) return;
    this.aborted = true;
    this._interrupt(reason ?? abortError());
  }

  /** Fails the call with a mesh error the way abort does (used by deadlines). */
  expire(err: MeshletError): void {
    if (this.done) return;
    this._interrupt(err);
  }

  /** Cancels what the call waits on, or the attempt in flight, with `reason`. */
  private _interrupt(reason: Error): void {
    this.reason = reason;
    const w = this.waiting;
    if (w !== undefined) {
      this.waiting = undefined;
      w.cancel(reason);
    } else if (this.current !== undefined && !this.current.aborted) this.current.abort(reason);
  }

  /** Where the call is, for error messages: route, cluster, endpoint, attempt. */
  errorContext(): ErrorContext {
    return {
      route: (this.route as Named | undefined)?.name,
      cluster: (this.cluster as Named | undefined)?.name,
      endpoint: (this.host as HostRef | undefined)?.key,
      attempt: this.attempts === 0 ? undefined : this.attempts,
    };
  }

  pause(): void {
    this.paused = true;
    this.current?.pause();
  }

  resume(): void {
    this.paused = false;
    this.current?.resume();
  }

  // ── ResponseHandler (what the pipeline calls) ──

  onRequestStart(controller: Controller): void {
    this.current = controller;
    if (this.aborted) controller.abort(this.reason ?? abortError());
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    this.current = controller;
    this.responded = true;
    this.status = statusCode;
    this._finish(undefined);
    this._handler.onRequestUpgrade?.(this, statusCode, headers, socket);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    if (this.done) return;
    if (statusCode < 200) {
      this._handler.onResponseStart?.(this, statusCode, headers, statusMessage);
      return;
    }
    this.current = controller;
    this.responded = true;
    this.status = statusCode;
    // The tap sees the upstream's head (as Envoy's filters do), the route's header operations come after.
    const tapped = this.responseTap?.onResponseHead(this, headers) === true;
    const ops = this.responseOps;
    if (ops !== undefined) for (let i = 0; i < ops.length; i++) applyHeaderOps(headers, ops[i] as ResponseHeaderOps);
    this.deliverHead(controller, statusCode, headers, statusMessage, ops !== undefined || tapped);
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    if (this.done) return;
    this.responseBytes += chunk.length;
    this._handler.onResponseData?.(this, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    if (this.done) return;
    this.deliverEnd(controller);
    this._finish(undefined);
    this._handler.onResponseEnd?.(this, trailers ?? EMPTY);
    this._release();
  }

  onResponseError(_controller: Controller, error: Error): void {
    if (this.done) return;
    if (error instanceof MeshletError) {
      this._absorbFlags(error);
      if (!this.responded && this._render(error)) return;
    }
    this._finish(error);
    this._handler.onResponseError?.(this, error);
    this._release();
  }

  // ── what adapters override to render for their protocol ──

  /**
   * The response head goes to the caller. `changed` says whether header operations rewrote the
   * headers. The undici adapter adds the flags header and the raw header list here.
   */
  protected deliverHead(_controller: Controller, statusCode: number, headers: Headers, statusMessage: string | undefined, _changed: boolean): void {
    this._handler.onResponseStart?.(this, statusCode, headers, statusMessage);
  }

  /** The response is about to end (the undici adapter keeps the raw trailers here). */
  protected deliverEnd(_controller: Controller): void {}

  /**
   * Renders a mesh-made failure as the answer a sidecar gives (`reply` it) and returns true, or
   * returns false to deliver it to the caller as the error it is. The base renders nothing.
   */
  protected renderFailure(_error: MeshletError): boolean {
    return false;
  }

  /**
   * Prepares the head of a local reply (the undici adapter adds the flags header, a
   * content-length, a content-type for a direct response's body, and the raw header list).
   */
  protected localHead(_kind: LocalReplyKind, _status: number, _headers: Headers, _body: Buffer | undefined): void {}

  /** In `respond` mode, renders `error` as an answer; false when it does not apply. */
  private _render(error: MeshletError): boolean {
    if (this._errors !== 'respond' || this.aborted) return false;
    return this.renderFailure(error);
  }

  /**
   * Merges the error's flags into the call's and gives the error all of them, so a fault
   * delay's DI stays next to a later timeout's UT in the response and in the error.
   */
  private _absorbFlags(error: MeshletError): void {
    if (error.flags !== '') for (const f of error.flags.split(',')) if (f !== '') this.flag(f);
    (error as { flags: string }).flags = this.flags;
  }

  /**
   * Answers with a reply the mesh makes itself: a direct response or a redirect (from the route
   * layer), or a rendered failure (from an adapter's {@link renderFailure}). Delivery is
   * deferred to a microtask so a handler never sees callbacks before `dispatch` returns.
   */
  reply(kind: LocalReplyKind, status: number, headers: Headers, body: Buffer | undefined): void {
    if (this.done) return;
    this.responded = true;
    this.status = status;
    const ops = this.responseOps;
    if (ops !== undefined) for (const o of ops) applyHeaderOps(headers, o);
    this.localHead(kind, status, headers, body);
    this.current = undefined;
    queueMicrotask(() => {
      const h = this._handler;
      if (this.aborted) {
        const reason = this.reason ?? abortError();
        this._finish(reason);
        h.onResponseError?.(this, reason);
        this._release();
        return;
      }
      h.onResponseStart?.(this, status, headers, '');
      if (this.aborted) {
        const reason = this.reason ?? abortError();
        this._finish(reason);
        h.onResponseError?.(this, reason);
        this._release();
        return;
      }
      if (body !== undefined && body.length > 0) {
        this.responseBytes += body.length;
        h.onResponseData?.(this, body);
      }
      this._finish(undefined);
      h.onResponseEnd?.(this, EMPTY);
      this._release();
    });
  }

  /**
   * Fails the call with a mesh-made error: in `respond` mode the caller gets the answer a
   * sidecar would give (as the adapter renders it); in `throw` mode the error itself.
   */
  fail(error: MeshletError): void {
    if (this.done) return;
    this._absorbFlags(error);
    if (this._render(error)) return;
    queueMicrotask(() => {
      if (this.done) return;
      const e = this.aborted ? (this.reason ?? error) : error;
      this._finish(e);
      this._handler.onResponseError?.(this, e);
      this._release();
    });
  }

  private _finish(error: Error | undefined): void {
    if (this.done) return;
    this.done = true;
    this.waiting = undefined;
    const node = this.deadlineNode;
    if (node !== undefined) {
      this.deadlineNode = undefined;
      this.deadlineQueue?.remove(node);
    }
    const ch = channels.callEnd;
    if (ch.hasSubscribers) ch.publish(this._endMessage(error));
    // The caller may hold this controller as long as it holds the response: undici's fetch keeps
    // it in the body stream of a Response that only a full GC frees (the Response is registered
    // in a FinalizationRegistry), so whatever the exchange still references is copied by every
    // scavenge and promoted with it. Let go of what only the pipeline needed.
    this.current = undefined;
    this.route = undefined;
    this.target = undefined;
    this.cluster = undefined;
    this.host = undefined;
    this.tried = undefined;
    this.responseOps = undefined;
  }

  private _endMessage(error: Error | undefined): CallEndMessage {
    const cluster = this.cluster as ClusterRef | undefined;
    const host = this.host as HostRef | undefined;
    const ep = host?.endpoint;
    const body = this.body;
    return {
      workload: this.workload,
      call: this,
      protocol: this.protocol,
      method: this.method,
      authority: this.authority,
      path: this.path,
      route: (this.route as Named | undefined)?.name,
      cluster: cluster?.name,
      destinationService: cluster?.cluster?.host,
      endpoint: host?.key,
      destination: ep === undefined ? undefined : { serviceAccount: ep.serviceAccount ?? 'default', labels: ep.labels ?? NO_LABELS, namespace: ep.namespace ?? '' },
      status: this.status,
      grpcStatus: this.grpcStatus,
      flags: this.flags,
      attempts: this.attempts,
      requestBytes: body instanceof ReplayableBody ? body.bytes : typeof body === 'string' ? Buffer.byteLength(body) : body instanceof Uint8Array ? body.byteLength : 0,
      responseBytes: this.responseBytes,
      durationMs: this.clock === undefined ? 0 : this.clock.now() - this.startedAt,
      error,
    };
  }

  /**
   * After the caller's handler got its last callback: drop the request and response data too.
   * The caller may keep this controller for as long as it keeps the response (see _finish).
   */
  private _release(): void {
    // A streamed body the call did not read to the end (a mesh-made answer, a failure) is closed.
    if (this.body instanceof ReplayableBody) this.body.dispose();
    this._handler = RELEASED;
    this.headers = EMPTY;
    this.body = undefined;
    this.options = undefined;
    this.released();
  }

  /** The exchange let go of the call's data; adapters drop what they kept too. */
  protected released(): void {}
}
