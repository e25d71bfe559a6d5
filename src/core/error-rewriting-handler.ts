/**
 * A response handler that hands everything to the one it wraps, except that it may put another
 * error in place of a failure: what an adapter or layer needs when it only has to say what a
 * transport error means (a TLS refusal, Envoy's local reply for a passthrough call).
 *
 * @module
 */
import type { Controller, Headers, ResponseHandler } from './exchange.ts';
import type { ConnectionNoted, DispatchedHandler } from './upstream-connections.ts';

/** Forwards every event to `inner`; a failure goes through {@link rewrite} first. */
export abstract class ErrorRewritingHandler implements ResponseHandler {
  protected readonly inner: ResponseHandler;
  constructor(inner: ResponseHandler) {
    this.inner = inner;
  }
  /** The call the handler it wraps sends, when it says (`core/upstream-connections.ts`: the connection's local end for the access log). */
  get dispatchedCall(): ConnectionNoted | undefined {
    return (this.inner as Partial<DispatchedHandler>).dispatchedCall;
  }
  /** The error `inner` gets for `error` (`error` itself to pass it on). */
  protected abstract rewrite(error: Error): Error;
  onRequestStart(controller: Controller, context: unknown): void {
    this.inner.onRequestStart?.(controller, context);
  }
  /** undici's `onRequestSent` (the request went out to its end), for the handler it wraps. */
  onRequestSent(): void {
    (this.inner as { onRequestSent?(): void }).onRequestSent?.();
  }
  onRequestUpgrade(controller: Controller, statusCode: number, headers: Headers, socket: unknown): void {
    this.inner.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }
  onResponseStart(controller: Controller, statusCode: number, headers: Headers, statusMessage?: string): void {
    this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }
  onResponseData(controller: Controller, chunk: Buffer): void {
    this.inner.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: Controller, trailers: Headers): void {
    this.inner.onResponseEnd?.(controller, trailers);
  }
  onResponseError(controller: Controller, error: Error): void {
    this.inner.onResponseError?.(controller, this.rewrite(error));
  }
}
