/**
 * The connection each call's request was last sent on, for the access-log operators of the
 * upstream connection: its local end (`%UPSTREAM_LOCAL_ADDRESS%`, which Istio's default formats
 * print) and, when a log asks for more, its socket (`%UPSTREAM_TLS_VERSION%`,
 * `%UPSTREAM_PEER_URI_SAN%`, …). Envoy's router sets both when the connection pool hands the
 * request a connection, before any answer (`source/common/router/upstream_request.cc`,
 * `UpstreamRequest::onPoolReady`: `setUpstreamLocalAddress`, `setUpstreamSslConnection`). Kept
 * only while a log asks for it ({@link watchUpstreamConnections}).
 *
 * undici does not tell a request's handler which connection carries it; its
 * `undici:client:sendHeaders` message does (`{ request, socket }`), and the request keeps the
 * handler it was dispatched with, which says which call it sends ({@link DispatchedHandler}:
 * a getter, nothing kept per request). The gRPC transport knows its own connections
 * ({@link noteConnection}). Otherwise nothing is subscribed or kept, and noting is one
 * comparison. A socket's local end is formatted once per connection; a call keeps that string
 * (in a field of its own, {@link ConnectionNoted}), not the socket, unless a log asks for the socket.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { formatHostPort } from './host-port.ts';

const sendHeaders = channel('undici:client:sendHeaders');

/** Watchers of the local end (every watcher), and of the socket too. */
let watchers = 0;
let socketWatchers = 0;
/** The call → the socket its request was last sent on (only while a watcher wants sockets). */
const sockets = new WeakMap<object, object>();
/** A socket → its local end, formatted once. */
const localEnds = new WeakMap<object, string>();
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

/** The socket's local end (`address:port`), read once per socket (while it is open: Node caches it then). */
function localEndOf(socket: object): string | undefined {
  let end = localEnds.get(socket);
  if (end !== undefined) return end;
  const s = socket as { readonly localAddress?: string | undefined; readonly localPort?: number | undefined };
  const address = s.localAddress;
  if (address === undefined) return undefined;
  end = formatHostPort(address, s.localPort ?? 0);
  localEnds.set(socket, end);
  return end;
}

/** A call whose connection is noted: the local end is a field of its own (no map entry per call). */
export interface ConnectionNoted {
  upstreamLocal: string | undefined;
}

/** Told of each socket noted for a watcher of sockets, while it is open (the access log reads its TLS details then). */
let onSocket: ((socket: object) => void) | undefined;

function note(call: ConnectionNoted, socket: object): void {
  if (socketWatchers > 0) {
    sockets.set(call, socket);
    onSocket?.(socket);
  }
  const end = localEndOf(socket);
  if (end !== undefined) call.upstreamLocal = end;
}

/** A handler the mesh's transports give undici: it names the call it sends (a getter: nothing per request). */
export interface DispatchedHandler {
  readonly dispatchedCall: ConnectionNoted | undefined;
}

const onSendHeaders = (m: unknown): void => {
  const { request, socket } = m as { readonly request?: object; readonly socket?: object };
  if (request === undefined || socket === undefined) return;
  const h = handlerOf(request);
  // Requests of other dispatchers (the app's own undici) have handlers that name no call.
  const call = h !== null && typeof h === 'object' ? (h as Partial<DispatchedHandler>).dispatchedCall : undefined;
  if (call !== undefined) note(call, socket);
};

/**
 * Starts (`true`) or stops keeping the calls' connections; watchers are counted (one per mesh
 * whose logs need them). `socket`: the watcher needs the socket itself (TLS details), not only its
 * local end; `seen`: told of each such socket when a request goes out on it (one function for
 * every watcher: the access log's reader of TLS details, which caches them per socket).
 */
export function watchUpstreamConnections(on: boolean, socket = true, seen?: (socket: object) => void): void {
  watchers += on ? 1 : -1;
  if (on && seen !== undefined) onSocket = seen;
  if (socket) socketWatchers += on ? 1 : -1;
  if (on && watchers === 1) sendHeaders.subscribe(onSendHeaders);
  else if (!on && watchers === 0) sendHeaders.unsubscribe(onSendHeaders);
}

/** A transport that knows its connection: `call`'s request went out on `socket` (noted only while watched). */
export function noteConnection(call: ConnectionNoted, socket: object | undefined): void {
  if (watchers > 0 && socket !== undefined) note(call, socket);
}

/** The socket `call`'s request was last sent on, when it was noted for a watcher of sockets. */
export function upstreamConnectionOf(call: object): object | undefined {
  return socketWatchers > 0 ? sockets.get(call) : undefined;
}

/** The local end (`address:port`) of the connection `call`'s request was last sent on, when it was noted. */
export function upstreamLocalOf(call: object): string | undefined {
  return watchers > 0 ? (call as Partial<ConnectionNoted>).upstreamLocal : undefined;
}
