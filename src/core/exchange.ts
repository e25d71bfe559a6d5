/**
 * The Exchange — one logical call, protocol-neutral. What it holds (the request, the slots layers
 * fill, its control state and outcome) is declared in `exchange-state.ts`; the layer types that
 * take it (`Dispatch`, `Layer`, `stack`) are in `layer.ts`; the handler and controller types it
 * works with are in `handler.ts` (re-exported here).
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
import { noteResponseTrailers } from './response-trailers.ts';
import { ReplayableBody } from './body.ts';
import { callEndMessage } from './call-end.ts';
import { MeshletError } from './errors.ts';
import { ExchangeState, type LocalReplyKind } from './exchange-state.ts';
import { applyHeaderOps, type Controller, type Headers, type ResponseHandler, type ResponseHeaderOps } from './handler.ts';
import { channels } from './observe.ts';
import { responseChannels } from './observe-response.ts';
import { publishCallResponse } from './call-response.ts';

export type { Controller, ErrorMode, Headers, ResponseHandler, ResponseHeaderOps, Waiter } from './handler.ts';
export { applyHeaderOps, NO_CONTROLLER } from './handler.ts';
export type { Protocol } from './classify.ts';
export type { LocalReplyKind } from './exchange-state.ts';

const EMPTY: Headers = Object.freeze(Object.create(null)) as Headers;
/** What a finished exchange holds instead of the caller's handler. */
const RELEASED: ResponseHandler = Object.freeze({});

function abortError(): Error {
  const e = new Error('The operation was aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * One logical call. Adapters create it (a subclass that renders for their protocol); layers
 * read and rewrite it; it is the controller the caller sees and the outermost handler of the
 * pipeline. It has no fields or constructor of its own (see {@link ExchangeState}).
 */
/** The socket undici hands an upgraded call (net.Socket or TLSSocket), as far as the exchange reads it. */
interface UpgradedSocket {
  readonly destroyed?: boolean;
  readonly bytesRead?: number;
  readonly bytesWritten?: number;
  readonly readableLength?: number;
  once?(event: 'close', listener: () => void): unknown;
}

export class Exchange extends ExchangeState implements Controller, ResponseHandler {
  /**
   * A copy of this call's request for `handler` (a mirror): the same request, its own control,
   * errors delivered as errors (nothing rendered). Layers never construct Exchanges themselves.
   */
  copy(handler: ResponseHandler, startedAt: number): Exchange {
    const c = new Exchange(handler, 'throw', startedAt, this.method, this.scheme, this.authority, this.path, { ...this.headers }, this.body, undefined, this.protocol, this.transport);
    c.urlAuthority = this.urlAuthority;
    c.workload = this.workload;
    c.clock = this.clock;
    c.mirror = true;
    return c;
  }

  /** Tells the caller's handler the call started (adapters call it once, before dispatching). */
  begin(): void {
    const ch = channels.callStart;
    // The mesh's own call (a rate limit service's) is not the app's: Envoy's async client has no access log or request metrics.
    if (ch.hasSubscribers && !this.sideCall) {
      ch.publish({ workload: this.workload, call: this, protocol: this.protocol, method: this.method, authority: this.authority, path: this.path, headers: this.headers });
    }
    this._handler.onRequestStart?.(this, null);
  }

  // ── Controller (what the caller sees) ──

  abort(reason?: Error): void {
    if (this.aborted || this.done) return;
    this.aborted = true;
    // The caller went away before the call ended: Envoy's DC (downstream connection termination),
    // in every report of the call (access log, metrics, span), whatever status it had got.
    this.flag('DC');
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
    this.responseHeaders = headers;
    // The 101 is the call's response head (/tap's rsp), as any other head.
    if (responseChannels.call.hasSubscribers) publishCallResponse(this, statusCode, headers, this.answeredOn());
    const s = socket as UpgradedSocket | null;
    if (channels.callEnd.hasSubscribers && !this.done && s !== null && typeof s === 'object' && typeof s.once === 'function' && s.destroyed !== true) {
      // As Envoy reports an upgraded stream (a WebSocket): one request, ended when its connection
      // closes, with the whole session's duration and the bytes both ways.
      // What the connection read with the 101 and undici put back for the app (the first frames) counts too.
      const read0 = (s.bytesRead ?? 0) - (s.readableLength ?? 0);
      const written0 = s.bytesWritten ?? 0;
      this._finish(undefined, true);
      s.once('close', () => {
        this.responseBytes += Math.max(0, (s.bytesRead ?? 0) - read0);
        this.upgradedBytesSent = Math.max(0, (s.bytesWritten ?? 0) - written0);
        this._publishEnd(undefined);
      });
    } else this._finish(undefined);
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
    // What the router adds to the upstream's head (before the route's operations, as Envoy's router does).
    const stamped = this.upstreamHead(headers);
    const ops = this.responseOps;
    if (ops !== undefined) for (let i = 0; i < ops.length; i++) applyHeaderOps(headers, ops[i] as ResponseHeaderOps);
    this.responseHeaders = headers;
    if (responseChannels.call.hasSubscribers) publishCallResponse(this, statusCode, headers, this.answeredOn());
    this.deliverHead(controller, statusCode, headers, statusMessage, ops !== undefined || tapped || stamped);
  }

  onResponseData(_controller: Controller, chunk: Buffer): void {
    if (this.done) return;
    this.responseBytes += chunk.length;
    this._handler.onResponseData?.(this, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    if (this.done) return;
    // Before the end is published: the access log's %TRAILER(…)% reads them then.
    noteResponseTrailers(this, trailers);
    this.deliverEnd(controller);
    this._finish(undefined);
    try {
      this._handler.onResponseEnd?.(this, trailers ?? EMPTY);
    } catch (err) {
      // As undici's dispatchers do: a handler that throws at the end hears of it in onResponseError
      // (undici's RetryHandler throws there to have a status retried).
      this._handler.onResponseError?.(this, err as Error);
    } finally {
      this._release();
    }
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
   * An upstream's response head, before the route's header operations: an adapter adds what
   * Envoy's router adds there. Returns true when it replaced a header the upstream sent.
   */
  protected upstreamHead(_headers: Headers): boolean {
    return false;
  }

  /** The local end (`address:port`) of the connection the answering attempt used, when the transport knows it (`meshlet:call:response`). */
  protected answeredOn(): string | undefined {
    return undefined;
  }

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
    this.rendered = error;
    if (this.renderFailure(error)) return true;
    this.rendered = undefined;
    return false;
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
    this.localReply = kind;
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
      if (responseChannels.call.hasSubscribers) publishCallResponse(this, status, headers, undefined);
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

  /** The call is over for the pipeline; `publishLater`: its end is published by the caller of {@link _publishEnd} (an upgraded call, when its connection closes). */
  private _finish(error: Error | undefined, publishLater = false): void {
    if (this.done) return;
    this.done = true;
    this.waiting = undefined;
    const node = this.deadlineNode;
    if (node !== undefined) {
      this.deadlineNode = undefined;
      this.deadlineQueue?.remove(node);
    }
    if (!publishLater) this._publishEnd(error);
  }

  private _publishEnd(error: Error | undefined): void {
    const ch = channels.callEnd;
    // A mirrored copy is not the caller's call (it had no call:start either): like Envoy's shadow
    // requests, sent outside the connection manager, it has no client-side metrics or access-log line.
    if (ch.hasSubscribers && !this.mirror && !this.sideCall) ch.publish(callEndMessage(this, error));
    // The caller may hold this controller as long as it holds the response: undici's fetch keeps
    // it in the body stream of a Response that only a full GC frees (the Response is registered
    // in a FinalizationRegistry), so whatever the exchange still references is copied by every
    // scavenge and promoted with it. Let go of what only the pipeline needed.
    this.current = undefined;
    this.route = undefined;
    this.target = undefined;
    this.cluster = undefined;
    const holder = this.holder;
    if (holder !== undefined) {
      this.holder = undefined;
      holder.letGo();
    }
    this.host = undefined;
    this.tried = undefined;
    this.responseOps = undefined;
    this.rendered = undefined;
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
