/**
 * The connection each call's request was last sent on (its socket), for the access-log operators
 * of the upstream connection (`%UPSTREAM_TLS_VERSION%`, `%UPSTREAM_PEER_URI_SAN%`,
 * `%UPSTREAM_LOCAL_ADDRESS%`, …): kept only while a log asks for it ({@link watchUpstreamConnections}).
 *
 * undici does not tell a request's handler which connection carries it; its
 * `undici:client:sendHeaders` message does (`{ request, socket }`), and the request keeps the
 * handler it was dispatched with. While watched, the undici transport notes which call each
 * handler it dispatches belongs to ({@link noteDispatch}); the gRPC transport knows its own
 * connections ({@link noteConnection}). Otherwise nothing is subscribed or kept, and noting is one
 * comparison.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';

const sendHeaders = channel('undici:client:sendHeaders');

let watchers = 0;
/** The handler undici was given → the call it sends. */
const calls = new WeakMap<object, object>();
/** The call → the socket its request was last sent on. */
const sockets = new WeakMap<object, object>();
/**
 * undici's private key of a request's handler (`Symbol('handler')`), by the request's prototype:
 * every copy of undici in the process (Node's built-in fetch, the app's own, the mesh's) publishes
 * on the same channel, each with its own symbol. A request without one (an undici that keeps its
 * handler otherwise) is matched to no call: its operators stay '-'.
 */
const handlerKeys = new WeakMap<object, symbol | null>();

function handlerOf(request: object): unknown {
  const proto = Object.getPrototypeOf(request) as object | null;
  let key = proto === null ? undefined : handlerKeys.get(proto);
  if (key === undefined) {
    key = Object.getOwnPropertySymbols(request).find((s) => s.description === 'handler') ?? null;
    if (proto !== null) handlerKeys.set(proto, key);
  }
  return key === null ? undefined : (request as Record<symbol, unknown>)[key];
}

const onSendHeaders = (m: unknown): void => {
  const { request, socket } = m as { readonly request?: object; readonly socket?: object };
  if (request === undefined || socket === undefined) return;
  const h = handlerOf(request);
  const call = h !== null && typeof h === 'object' ? calls.get(h) : undefined;
  if (call !== undefined) sockets.set(call, socket);
};

/** Starts (`true`) or stops keeping the calls' connections; watchers are counted (one per mesh whose logs need them). */
export function watchUpstreamConnections(on: boolean): void {
  watchers += on ? 1 : -1;
  if (on && watchers === 1) sendHeaders.subscribe(onSendHeaders);
  else if (!on && watchers === 0) sendHeaders.unsubscribe(onSendHeaders);
}

/** The undici transport hands `handler` to undici for `call` (noted only while watched). */
export function noteDispatch(handler: object, call: object): void {
  if (watchers > 0) calls.set(handler, call);
}

/** A transport that knows its connection: `call`'s request went out on `socket` (noted only while watched). */
export function noteConnection(call: object, socket: object | undefined): void {
  if (watchers > 0 && socket !== undefined) sockets.set(call, socket);
}

/** The socket `call`'s request was last sent on, when it was noted. */
export function upstreamConnectionOf(call: object): object | undefined {
  return watchers > 0 ? sockets.get(call) : undefined;
}
