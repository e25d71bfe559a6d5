/**
 * The app's own request on undici's diagnostics channels, as undici's `Client` publishes one —
 * what an HTTP client instrumentation of the app (OpenTelemetry's
 * `@opentelemetry/instrumentation-undici`, part of `auto-instrumentations-node`, and the APM
 * agents built the same way) sees of a call the app makes with `mesh.fetch` or `mesh.dispatcher`.
 *
 * With a sidecar, the app's fetch is an undici request to the sidecar: the instrumentation makes
 * its client span for it and writes that span's context into the request (`request.addHeader`),
 * and the sidecar's span is that span's child. In process, the app's fetch reaches
 * `mesh.dispatcher`, which is no `Client` (nothing is published for it), while the mesh's own
 * requests to the endpoints are — the instrumentation saw those instead, made a span in the wrong
 * place and appended its `traceparent` to the one the mesh wrote (two values: the next hop read
 * neither and started a new trace). So the dispatcher publishes the app's call as undici would
 * (`undici:request:create` before the call enters the mesh, `undici:request:headers` with the
 * answer's head, `undici:request:trailers` at its end or `undici:request:error`), takes the
 * trace headers the subscribers add as the call's parent context (the tracer then writes the
 * call's own context over them: one value on the wire), and the mesh's requests to its endpoints
 * are sent with tracing suppressed (`untraced.ts`) — as a sidecar's upstream requests are not
 * the app's.
 *
 * Nothing is built unless `undici:request:create` has subscribers.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import type { Controller, Headers, ResponseHandler } from '../../core/handler.ts';
import { markAppContext } from '../../telemetry/tracing/app-context.ts';
import { TRACE_HEADERS } from '../../telemetry/tracing/propagation.ts';
import { rawFrom } from './render.ts';

const create = channel('undici:request:create');
const responseHeaders = channel('undici:request:headers');
const responseTrailers = channel('undici:request:trailers');
const requestError = channel('undici:request:error');

const TRACE = new Set(TRACE_HEADERS);

/** True when someone listens for undici's requests (then the app's call is published). */
export function appRequestsObserved(): boolean {
  return create.hasSubscribers;
}

/**
 * The app's request as subscribers of undici's channels read undici's own `Request`: `origin`,
 * `method`, `path`, `headers` (name, value, name, value, …) and `addHeader`.
 */
export class AppRequest {
  readonly origin: string;
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly #h: Headers;

  constructor(origin: string, method: string, path: string, h: Headers) {
    this.origin = origin;
    this.method = method;
    this.path = path;
    this.#h = h;
    const list: string[] = [];
    for (const k of Object.keys(h)) {
      const v = h[k];
      if (typeof v === 'string') list.push(k, v);
      else if (v !== undefined) for (const x of v) list.push(k, x);
    }
    this.headers = list;
  }

  /**
   * A header a subscriber adds (an instrumentation's trace context): a trace header replaces the
   * app's own one of that name — the instrumentation's span is the newer context, and the call
   * carries one — and marks the call's context as the app's; any other is added to what is there.
   */
  addHeader(key: string, value: string): this {
    const k = key.toLowerCase();
    const h = this.#h;
    const v = String(value);
    if (TRACE.has(k)) {
      h[k] = v;
      markAppContext(h);
    } else {
      const was = h[k];
      h[k] = was === undefined ? v : typeof was === 'string' ? [was, v] : [...was, v];
    }
    this.headers.push(k, v);
    return this;
  }
}

/** Publishes the app's request (`undici:request:create`): subscribers may add headers to `h`. */
export function publishAppRequest(origin: string, method: string, path: string, h: Headers): AppRequest {
  const request = new AppRequest(origin, method, path, h);
  create.publish({ request });
  return request;
}

/** The app's handler, with the answer published on undici's channels for `request` as undici's `Client` publishes it. */
export class PublishingHandler implements ResponseHandler {
  readonly #inner: ResponseHandler;
  readonly #request: AppRequest;

  constructor(inner: ResponseHandler, request: AppRequest) {
    this.#inner = inner;
    this.#request = request;
  }

  onRequestStart(controller: Controller, context: unknown): void {
    this.#inner.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    this.#inner.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    if (statusCode >= 200 && responseHeaders.hasSubscribers) responseHeaders.publish({ request: this.#request, response: { statusCode, statusText: statusMessage ?? '', headers: rawFrom(headers) } });
    this.#inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    this.#inner.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Controller, trailers: Headers): void {
    if (responseTrailers.hasSubscribers) responseTrailers.publish({ request: this.#request, trailers: rawFrom(trailers ?? {}) });
    this.#inner.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Controller, error: Error): void {
    if (requestError.hasSubscribers) requestError.publish({ request: this.#request, error });
    this.#inner.onResponseError?.(controller, error);
  }
}
