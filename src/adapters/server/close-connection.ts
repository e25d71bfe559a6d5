/**
 * Closing "the connection" a request came on, when a mesh refuses it (PeerAuthentication: a
 * plaintext request under STRICT, a peer certificate the mesh does not accept). A request an
 * HTTP/2 caller sent reaches the app over an in-memory HTTP/1.1 connection of the HTTP/2 bridge
 * (h2-bridge.ts): closing that one alone made the bridge reset the caller's stream
 * (`INTERNAL_ERROR`), which a mesh caller reads as an upstream stream reset (UR, `remote reset`).
 * The refusal is the caller's connection's, as Envoy's listener refuses it by closing it: the
 * caller then sees what it sees over HTTP/1.1 — the connection terminated before an answer
 * (503 UC, `connection termination`, retried under `reset`). Other streams on that connection
 * end with it, as the keep-alive requests of an HTTP/1.1 connection would.
 *
 * @module
 */

/** The caller's connection of each in-memory connection the HTTP/2 bridge made. */
const callerConnection = new WeakMap<object, { destroy(): unknown }>();

/** @internal The HTTP/2 bridge: `inMemory` carries streams that came on `real`. */
export function bridgedOver(inMemory: object, real: { destroy(): unknown }): void {
  callerConnection.set(inMemory, real);
}

/** Closes the connection `socket` stands for: the caller's own for a bridged HTTP/2 stream (first, so no stream reset goes out on it), then `socket`. */
export function closeConnection(socket: { destroy(): unknown }): void {
  callerConnection.get(socket)?.destroy();
  socket.destroy();
}
