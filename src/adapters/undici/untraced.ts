/**
 * The mesh's own requests to its endpoints, out of sight of the app's tracing: sent with
 * OpenTelemetry's suppress-tracing flag in the active context (what `@opentelemetry/core`'s
 * `suppressTracing()` sets, as the SDK's exporters do for their own requests), so an HTTP client
 * instrumentation of the app (`@opentelemetry/instrumentation-undici`, which sees every undici
 * request) makes no span for them and writes no trace header into them: the mesh's attempt spans
 * stand for them, and the call carries the one context the mesh wrote (see `app-request.ts`,
 * which publishes the app's own call instead, as undici would).
 *
 * The flag is set only around handing the request to undici, and only while someone listens for
 * undici's requests. A connection opened then is opened in the context from before (the
 * connectors are wrapped, `outsideSuppression`): a socket keeps the context it was made in for
 * its callbacks, and those run the app's code (response streams' listeners) long after.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { type Context, context, createContextKey } from '@opentelemetry/api';
import { Client, type Dispatcher } from 'undici';

const create = channel('undici:request:create');

/** `@opentelemetry/core`'s SUPPRESS_TRACING_KEY (the API's keys are `Symbol.for` their description). */
const SUPPRESS = createContextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING');
/** The context the request was handed over in, before the flag was set. */
const BEFORE = createContextKey('meshlet upstream request: context before suppression');

function dispatchIn(d: Dispatcher, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
  d.dispatch(opts, handler);
}

/** True while someone listens for undici's requests (an HTTP client instrumentation): only then is suppression needed. */
export function undiciRequestsObserved(): boolean {
  return create.hasSubscribers;
}

/** `before` with OpenTelemetry's suppress-tracing flag set (and `before` kept for {@link outsideSuppression}). */
export function suppressedContext(before: Context): Context {
  return before.setValue(SUPPRESS, true).setValue(BEFORE, before);
}

/** `d.dispatch(opts, handler)`, with tracing suppressed while undici makes its request. */
export function dispatchUntraced(d: Dispatcher, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
  if (!create.hasSubscribers) {
    d.dispatch(opts, handler);
    return;
  }
  const before = context.active();
  context.with(before.setValue(SUPPRESS, true).setValue(BEFORE, before), dispatchIn, undefined, d, opts, handler);
}

type Connector = (opts: unknown, callback: (...args: unknown[]) => void) => unknown;

/** `connect`, run in the context from before {@link dispatchUntraced} set the flag (when it did). */
export function outsideSuppression(connect: Connector): Connector {
  return (opts, callback) => {
    const before = context.active().getValue(BEFORE) as Context | undefined;
    return before === undefined ? connect(opts, callback) : context.with(before, connect, undefined, opts, callback);
  };
}

/** A `Pool`'s `factory`: undici's default (a `Client`), its connector run {@link outsideSuppression}. */
export function upstreamClient(origin: string | URL, opts: object): Client {
  const connect = (opts as { connect?: unknown }).connect;
  return new Client(origin, typeof connect === 'function' ? { ...opts, connect: outsideSuppression(connect as Connector) } : opts);
}
