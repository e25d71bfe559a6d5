/**
 * Who ended a request whose answer never finished, for the inbound observation's flags and
 * `%RESPONSE_CODE_DETAILS%`, as Envoy's inbound sidecar would report it:
 * - the caller (its FIN read, a reset, or its HTTP/2 stream or session over the bridge ended
 *   first): `DC`, `downstream_remote_disconnect`;
 * - the server itself, closing its connections (`closeAllConnections()`: mesh.close() past its
 *   drain bound, Fastify's `forceCloseConnections`): `DC`, `downstream_local_disconnect(…)`, as
 *   Envoy's connection manager reports a local close;
 * - otherwise the app, which destroyed its response, request or socket with the caller still
 *   there — what Envoy's inbound cluster sees as its upstream connection ending: `UC`,
 *   `upstream_reset_{before,after}_response_started{connection_termination}`.
 *
 * @module
 */
import type { Server, Socket } from 'node:net';
import { bridgedCallerLeft } from './h2-bridge.ts';

/** Envoy's details and flag for a caller that went away before the answer was sent. */
export const DOWNSTREAM_DISCONNECT = 'downstream_remote_disconnect';

const closing = new WeakSet<object>();

/** Notes that `server` is closing its connections itself (called before it destroys them). */
export function closingConnections(server: Server): void {
  closing.add(server);
}

/** `server` listens again: its later connections are not closed by it (yet). */
export function listeningAgain(server: Server): void {
  closing.delete(server);
}

/** True when the server that accepted `socket` (its raw socket's, under TLS) closed its connections. */
function closedByServer(socket: object): boolean {
  const s = socket as { server?: object; _parent?: { server?: object } };
  const server = s._parent?.server ?? s.server;
  return server !== undefined && closing.has(server);
}

/** True when the caller ended the connection: its FIN was read, a reset (or broken pipe), or (over the bridge) its stream or session ended first. */
function callerLeft(socket: Partial<Pick<Socket, 'readableEnded' | 'errored'>>): boolean {
  // An error the app gave destroy() (req.destroy(err), socket.destroy(err)) is the app's: only a reset or broken pipe is the caller's.
  const code = (socket.errored as { code?: unknown } | null | undefined)?.code;
  return socket.readableEnded === true || code === 'ECONNRESET' || code === 'EPIPE' || bridgedCallerLeft(socket);
}

/** The flag and details of a request whose answer did not finish; `started`: its head was sent. */
export function unfinished(socket: Socket, started: boolean): { readonly flags: string; readonly details: string } {
  // The server's own close first: over the bridge it also ends the in-memory connections from the caller's side.
  if (closedByServer(socket)) return { flags: 'DC', details: 'downstream_local_disconnect(server_closed_connections)' };
  if (callerLeft(socket)) return { flags: 'DC', details: DOWNSTREAM_DISCONNECT };
  return { flags: 'UC', details: started ? 'upstream_reset_after_response_started{connection_termination}' : 'upstream_reset_before_response_started{connection_termination}' };
}
