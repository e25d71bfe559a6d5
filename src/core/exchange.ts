/**
 * The Exchange — one logical call, protocol-neutral — and the layer types that take it
 * (`Dispatch`, `Layer`, `stack`). The handler and controller types it works with are in
 * `handler.ts` (re-exported here).
 *
 * The response side uses the handler shape of undici 8's dispatcher API (`onRequestStart`,
 * `onResponseStart`, `onResponseData`, `onResponseEnd`, `onResponseError`, each given the
 * controller of the request). It is protocol-neutral in itself; the undici adapter passes
 * handlers through unchanged and the gRPC adapter translates to it.
 *
 * An Exchange plays three parts at once, so a call costs one object rather than three:
 * - the request (method, authority, path, headers, body) that layers read and rewrite;
 * - the controller the caller's handler sees for the whole call (abort/pause/resume reach the
 *   attempt in flight, or cancel whatever the call is waiting on);
 * - the outermost handler of the pipeline: it turns mesh-made failures into the response a
 *   sidecar would send (or a typed error), applies response header operations and adds the
 *   `x-meshlet-response-flags` header.
 *
 * @module
 */
import { ReplayableBody } from './body.ts';
import { type ErrorContext, MeshletError } from './errors.ts';
import { applyHeaderOps, type Controller, type ErrorMode, type Headers, type ResponseHandler, type ResponseHeaderOps, type Waiter } from './handler.ts';
import { bodyFor, FLAGS_HEADER, FLAGS_HEADER_RAW, localHeaders, OVERLOADED_HEADER, rawFrom } from './local-response.ts';

export type { Controller, ErrorMode, Headers, ResponseHandler, ResponseHeaderOps, Waiter } from './handler.ts';
export { applyHeaderOps, NO_CONTROLLER } from './handler.ts';
export { FLAGS_HEADER } from './local-response.ts';

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

const EMPTY: Headers = Object.freeze({}) as Headers;
/** What a finished exchange holds instead of the caller's handler. */
const RELEASED: ResponseHandler = Object.freeze({});

function abortError(): Error {
  const e = new Error('The operation was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * One logical call. Adapters create it; layers read and rewrite it; it is the controller the
 * caller sees and the outermost handler of the pipeline.
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
  /** When the call began, on the mesh clock. */
  readonly startedAt: number;
  /** Absolute deadline on the mesh clock (Infinity = none). */
  deadline = Number.POSITIVE_INFINITY;
  /** Position in the deadline queue (managed by it). */
  heapIndex = -1;
  /** Attempts made so far. */
  attempts = 0;
  /** Envoy response flags gathered on the way (`DI`, `URX`, …), comma-separated. */
  flags = '';
  /** Free-form slots for layers (route decision, cluster, endpoint, …). */
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
  rawHeaders: unknown = null;
  rawTrailers: unknown = null;
  /** Response header operations to apply (route level, then destination level). */
  responseOps: ResponseHeaderOps[] | undefined = undefined;
  /** Called once when the call ends (used by the deadline queue and counters). */
  onDone: ((ex: Exchange) => void) | undefined = undefined;

  private _handler: ResponseHandler;
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
  }

  /** Adds an Envoy response flag. */
  flag(f: string): void {
    if (this.flags === '') this.flags = f;
    else if (!this.flags.split(',').includes(f)) this.flags += `,${f}`;
  }

  /** Tells the caller's handler the call started (adapters call it once, before dispatching). */
  begin(): void {
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
      route: (this.route as { name?: string } | undefined)?.name,
      cluster: (this.cluster as { name?: string } | undefined)?.name,
      endpoint: (this.host as { key?: string } | undefined)?.key,
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
    this._finish();
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
    let raw = controller.rawHeaders ?? null;
    // Only the mesh says what the mesh did: an upstream's own copies of its signals are dropped.
    let forged = false;
    if (headers[FLAGS_HEADER] !== undefined || headers[OVERLOADED_HEADER] !== undefined) {
      delete headers[FLAGS_HEADER];
      delete headers[OVERLOADED_HEADER];
      forged = true;
    }
    const ops = this.responseOps;
    if (ops !== undefined) {
      for (let i = 0; i < ops.length; i++) applyHeaderOps(headers, ops[i] as ResponseHeaderOps);
      if (this.flags !== '') headers[FLAGS_HEADER] = this.flags;
      raw = rawFrom(headers);
    } else if (this.flags !== '') {
      headers[FLAGS_HEADER] = this.flags;
      raw = Array.isArray(raw) && !forged ? [...raw, FLAGS_HEADER_RAW, Buffer.from(this.flags)] : rawFrom(headers);
    } else if (forged) raw = rawFrom(headers);
    // Clients that read raw headers (undici's fetch) must see the same headers as the object.
    this.rawHeaders = raw;
    this._handler.onResponseStart?.(this, statusCode, headers, statusMessage);
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    if (this.done) return;
    this._handler.onResponseData?.(this, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    if (this.done) return;
    this.rawTrailers = controller.rawTrailers ?? null;
    this._finish();
    this._handler.onResponseEnd?.(this, trailers ?? EMPTY);
    this._release();
  }

  onResponseError(_controller: Controller, error: Error): void {
    if (this.done) return;
    if (error instanceof MeshletError) {
      this._absorbFlags(error);
      if (!this.responded && this._respondWith(error)) return;
    }
    this._finish();
    this._handler.onResponseError?.(this, error);
    this._release();
  }

  /**
   * Merges the error's flags into the call's and gives the error all of them, so a fault
   * delay's DI stays next to a later timeout's UT in the response and in the error.
   */
  private _absorbFlags(error: MeshletError): void {
    if (error.flags !== '') for (const f of error.flags.split(',')) if (f !== '') this.flag(f);
    (error as { flags: string }).flags = this.flags;
  }

  /** In `respond` mode, answers with the response a sidecar sends for `error`; false if it does not apply. */
  private _respondWith(error: MeshletError): boolean {
    if (this._errors !== 'respond' || this.aborted || error.httpStatus === undefined) return false;
    this.sendLocal(error.httpStatus, localHeaders(this.flags), Buffer.from(bodyFor(error)));
    return true;
  }

  /**
   * Sends a response made by the mesh (direct response, redirect, or a sidecar-style error
   * response). Delivery is deferred to a microtask so a handler never sees callbacks before
   * `dispatch` returns.
   */
  sendLocal(status: number, headers: Headers, body: Buffer | undefined): void {
    if (this.done) return;
    this.responded = true;
    if (this.flags !== '' && headers[FLAGS_HEADER] === undefined) headers[FLAGS_HEADER] = this.flags;
    const ops = this.responseOps;
    if (ops !== undefined) for (const o of ops) applyHeaderOps(headers, o);
    if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
    this.rawHeaders = rawFrom(headers);
    this.rawTrailers = null;
    this.current = undefined;
    queueMicrotask(() => {
      const h = this._handler;
      if (this.aborted) {
        this._finish();
        h.onResponseError?.(this, this.reason ?? abortError());
        this._release();
        return;
      }
      h.onResponseStart?.(this, status, headers, '');
      if (this.aborted) {
        this._finish();
        h.onResponseError?.(this, this.reason ?? abortError());
        this._release();
        return;
      }
      if (body !== undefined && body.length > 0) h.onResponseData?.(this, body);
      this._finish();
      h.onResponseEnd?.(this, EMPTY);
      this._release();
    });
  }

  /**
   * Fails the call with a mesh-made error: in `respond` mode the caller gets the response a
   * sidecar would send; in `throw` mode the error itself.
   */
  fail(error: MeshletError): void {
    if (this.done) return;
    this._absorbFlags(error);
    if (this._respondWith(error)) return;
    queueMicrotask(() => {
      if (this.done) return;
      this._finish();
      this._handler.onResponseError?.(this, this.aborted ? (this.reason ?? error) : error);
      this._release();
    });
  }

  private _finish(): void {
    if (this.done) return;
    this.done = true;
    this.waiting = undefined;
    const d = this.onDone;
    if (d !== undefined) {
      this.onDone = undefined;
      d(this);
    }
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
    this.rawHeaders = null;
    this.rawTrailers = null;
  }
}
