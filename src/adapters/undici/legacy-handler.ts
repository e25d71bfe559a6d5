/**
 * Handlers of undici's older dispatcher API. Node.js's built-in `fetch` (undici 6 in Node 22,
 * undici 7 in Node 24) and undici 7's `request`/`stream`/`fetch` call `dispatch(opts, handler)`
 * with a handler of the older shape (`onConnect(abort)`, `onHeaders(status, rawHeaders,
 * resume, statusText)`, `onData`, `onComplete(rawTrailers)`, `onError`, `onUpgrade`); the mesh
 * pipeline speaks undici 8's (`onRequestStart(controller)`, `onResponseStart`, …). A handler
 * that has neither shape is refused at once, never left waiting.
 *
 * The translation follows undici 8's own `Dispatcher1Wrapper` (lib/dispatcher/dispatcher1-wrapper.js):
 * raw header lists come from the controller when it has them (Buffers, as the older handlers
 * expect), `false` from `onHeaders`/`onData` pauses and the `resume` callback resumes.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.ts';
import type { Controller, Headers, ResponseHandler } from '../../core/exchange.ts';
import { rawFrom } from './render.ts';

/** The older handler shape (undici ≤ 7's `Dispatcher.DispatchHandlers`). */
export interface LegacyHandler {
  onConnect?(abort: (err?: Error) => void, context?: unknown): void;
  onHeaders?(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean | undefined;
  onData?(chunk: Buffer): boolean | undefined;
  onComplete?(rawTrailers: Buffer[] | null): void;
  onError?(err: Error): void;
  onUpgrade?(statusCode: number, rawHeaders: Buffer[], socket: unknown): void;
  onResponseStarted?(): void;
}

/** undici's controllers (and the mesh's UndiciExchange) carry the raw header lists. */
interface RawController extends Controller {
  readonly rawHeaders?: unknown;
  readonly rawTrailers?: unknown;
}

function isFn(v: unknown): boolean {
  return typeof v === 'function';
}

/** Headers as the older handlers' raw list: name, value, name, value, … (Buffers). */
function toRaw(headers: Headers | undefined): Buffer[] {
  return headers === undefined ? [] : rawFrom(headers);
}

function rawOf(list: unknown, headers: Headers | undefined): Buffer[] {
  return Array.isArray(list) ? (list as Buffer[]) : toRaw(headers);
}

class LegacyHandlerAdapter implements ResponseHandler {
  readonly #h: LegacyHandler;
  constructor(h: LegacyHandler) {
    this.#h = h;
  }

  onRequestStart(controller: Controller, context: unknown): void {
    this.#h.onConnect?.((reason?: Error) => controller.abort(reason), context);
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    this.#h.onUpgrade?.(statusCode, rawOf((controller as RawController).rawHeaders, headers), socket);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    // Informational responses never reached the older handlers (undici's client swallowed them).
    if (statusCode < 200) return;
    this.#h.onResponseStarted?.();
    if (this.#h.onHeaders?.(statusCode, rawOf((controller as RawController).rawHeaders, headers), () => controller.resume(), statusMessage ?? '') === false) controller.pause();
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#h.onData?.(chunk) === false) controller.pause();
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    this.#h.onComplete?.(rawOf((controller as RawController).rawTrailers, trailers));
  }

  onResponseError(_controller: Controller, error: Error): void {
    // Without onError the older API cannot hear a failure (undici threw it back into its own
    // callback chain). Say so rather than lose it silently; do not crash the process.
    if (this.#h.onError === undefined) {
      process.emitWarning(`mesh.dispatcher: a request failed but its handler has no onError: ${error.message}`, 'MeshletWarning');
      return;
    }
    this.#h.onError(error);
  }
}

/**
 * The handler the pipeline drives: `handler` itself when it has undici 8's shape, an adapter
 * when it has the older one. Throws {@link InvalidArgumentError} for anything else.
 */
export function toResponseHandler(handler: unknown): ResponseHandler {
  if (handler === null || typeof handler !== 'object') throw new InvalidArgumentError('mesh.dispatcher: dispatch(opts, handler) needs a handler object');
  const h = handler as Record<string, unknown>;
  // As undici 8 decides (Dispatcher1Wrapper.wrapHandler): onRequestStart means the new API.
  // undici 7's fetch handler has onRequestUpgrade next to the older methods, so the older
  // methods are looked for before the rest of the new ones.
  if (isFn(h.onRequestStart) || isFn(h.onResponseStart)) return handler as ResponseHandler;
  if (isFn(h.onConnect) || isFn(h.onHeaders) || isFn(h.onData) || isFn(h.onComplete) || isFn(h.onError) || isFn(h.onUpgrade)) return new LegacyHandlerAdapter(handler as LegacyHandler);
  if (isFn(h.onResponseData) || isFn(h.onResponseEnd) || isFn(h.onResponseError) || isFn(h.onRequestUpgrade)) return handler as ResponseHandler;
  throw new InvalidArgumentError(
    'mesh.dispatcher: the handler has neither undici\'s dispatch handler methods (onRequestStart, onResponseStart, onResponseData, onResponseEnd, onResponseError) nor the older ones (onConnect, onHeaders, onData, onComplete, onError)',
  );
}
