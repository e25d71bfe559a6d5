/**
 * Waiting for a new connection's first bytes (to tell a TLS ClientHello from plaintext, as
 * Envoy's TLS inspector does) without consuming them: the bytes are put back on the socket for
 * whoever reads it next.
 *
 * @module
 */
import type { Socket } from 'node:net';

/** What happens next on a connection being sniffed. */
export interface FirstBytesHandlers {
  /** The first bytes came (already put back on the socket). */
  data(first: Buffer): void;
  /** The peer closed or the socket failed before sending anything (the socket is destroyed). */
  gone(): void;
  /** Nothing came within the time allowed. */
  timeout(): void;
}

/** Calls one of `on`'s handlers once: the first bytes, the connection gone, or `timeoutMs` of silence. */
export function awaitFirstBytes(socket: Socket, timeoutMs: number, on: FirstBytesHandlers): void {
  const done = (): void => {
    socket.removeListener('readable', onReadable);
    socket.removeListener('error', onGone);
    socket.removeListener('end', onGone);
    socket.removeListener('timeout', onTimeout);
    socket.setTimeout(0);
  };
  const onGone = (): void => {
    done();
    socket.destroy();
    on.gone();
  };
  const onTimeout = (): void => {
    done();
    on.timeout();
  };
  const onReadable = (): void => {
    const chunk = socket.read() as Buffer | null;
    if (chunk === null || chunk.length === 0) return;
    done();
    socket.unshift(chunk);
    on.data(chunk);
  };
  socket.on('readable', onReadable);
  socket.on('error', onGone);
  socket.on('end', onGone);
  socket.on('timeout', onTimeout);
  socket.setTimeout(timeoutMs);
}
