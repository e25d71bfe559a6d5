/**
 * Listeners an app adds to an admitted request run in the request's async context (the mesh's
 * and every other store): {@link listenInContext}, used by the server adapters (node.ts).
 *
 * @module
 */
import { AsyncResource } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/** An event listener wrapped to run in a context; `.listener` lets removeListener find it by the original, as EventEmitter's once-wrappers do. */
type ContextListener = ((...args: unknown[]) => unknown) & { listener?: unknown };

/**
 * Makes the listeners the app adds to `req` from now on (a body parser's 'data'/'end', …) run in
 * the current async context — the mesh context, and every other async-context store (an
 * OpenTelemetry span made active around the request): they are called from the socket's reads,
 * whose async context is not the request's. Only listeners are wrapped, when added — the
 * stream's own emits stay untouched (wrapping `emit` itself cost a fifth of a server's
 * throughput). Nothing global changes.
 *
 * The context is held by one `AsyncResource` (what `AsyncLocalStorage.snapshot()` makes too, but
 * that also binds a function and defines a deprecated getter on it: ~3 µs a request in Node 24,
 * against ~20 ns for the resource alone), kept on the request with the `on` it replaced: the
 * replacements are functions shared by every request, not two closures made for each.
 */
export function listenInContext(req: IncomingMessage): void {
  // The whole async context: every AsyncLocalStorage, the mesh's own store among them.
  const r = req as Scoped;
  r[kScope] = new AsyncResource('meshlet.request');
  // Entered again (a second mesh's middleware): the wrappers are there, the newer scope is used.
  if (r.on === (onInContext as unknown)) return;
  r[kOn] = r.on;
  r.on = onInContext as IncomingMessage['on'];
  r.addListener = onInContext as IncomingMessage['on'];
  r.once = onceInContext as IncomingMessage['once'];
}

const kScope = Symbol('meshlet.scope');
const kOn = Symbol('meshlet.on');
/** A request whose listeners run in its context: the scope, and the `on` the wrappers replaced (shared functions, not closures per request). */
type Scoped = IncomingMessage & { [kScope]?: AsyncResource; [kOn]?: IncomingMessage['on'] };

/** The `on` the wrappers replaced on `req` (an emitter's own, should the wrappers have been copied elsewhere). */
function replacedOn(req: Scoped): (this: unknown, n: string | symbol, l: unknown) => Scoped {
  return (req[kOn] ?? (req instanceof Readable ? Readable.prototype.on : EventEmitter.prototype.on)) as (this: unknown, n: string | symbol, l: unknown) => Scoped;
}

function onInContext(this: Scoped, name: string | symbol, listener: (...args: unknown[]) => unknown): Scoped {
  const on = replacedOn(this);
  const scope = this[kScope];
  if (typeof listener !== 'function' || scope === undefined || isNodeClearIncoming(name, listener)) return on.call(this, name, listener);
  const wrapped: ContextListener = function (this: unknown, ...args: unknown[]) {
    return scope.runInAsyncScope(listener, this, ...args);
  };
  wrapped.listener = listener;
  return on.call(this, name, wrapped);
}

/** node:http's own `clearIncoming`, once recognized (see {@link isNodeClearIncoming}). */
let nodeClearIncoming: unknown;
/** The last listener named `clearIncoming` found not to be node:http's (its stack is not looked at again). */
let notNodeClearIncoming: unknown;

/**
 * True for node:http's own `clearIncoming`, its `'end'` listener on a request answered before it
 * was read to its end (nearly every GET): it needs no context and is left unwrapped. Recognized by
 * name and caller (node:http's server module) once, by identity after; an app's namesake is wrapped.
 */
function isNodeClearIncoming(name: string | symbol, listener: (...args: unknown[]) => unknown): boolean {
  if (listener === nodeClearIncoming) return true;
  if (nodeClearIncoming !== undefined || name !== 'end' || listener.name !== 'clearIncoming' || listener === notNodeClearIncoming) return false;
  // The frames above: this function, onInContext, then its caller — captured whatever the app's
  // Error.stackTraceLimit. A stack that is not text (an Error.prepareStackTrace of the app's
  // returning call sites) tells nothing: wrapped, as any listener (and looked at again next time).
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 4;
  let stack: unknown;
  try {
    stack = new Error().stack;
  } finally {
    Error.stackTraceLimit = limit;
  }
  if (typeof stack !== 'string') return false;
  if (!(stack.split('\n', 4)[3] ?? '').includes('(node:_http_server:')) {
    notNodeClearIncoming = listener;
    return false;
  }
  nodeClearIncoming = listener;
  return true;
}

// once() made here rather than by EventEmitter's (which adds its own wrapper through on()): the
// wrapper's `.listener` is then the original, so removeListener(original) finds it — as
// events.once() and pipe() rely on to clean up — and listeners() gives the original back.
function onceInContext(this: Scoped, name: string | symbol, listener: (...args: unknown[]) => unknown): Scoped {
  const on = replacedOn(this);
  const scope = this[kScope];
  if (typeof listener !== 'function' || scope === undefined) return on.call(this, name, listener);
  let fired = false;
  const wrapped: ContextListener = function (this: IncomingMessage, ...args: unknown[]) {
    this.removeListener(name, wrapped);
    if (fired) return undefined;
    fired = true;
    return scope.runInAsyncScope(listener, this, ...args);
  };
  wrapped.listener = listener;
  return on.call(this, name, wrapped);
}
