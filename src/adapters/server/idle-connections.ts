/**
 * The HTTP/1 connections of a mesh server and whether each has a request in flight, so that a
 * drain closes a kept-alive connection only once it has been idle for a moment.
 *
 * node:http's `closeIdleConnections()` (which `server.close()` calls) destroys every connection
 * without a request in flight at that instant — including one whose caller has just been
 * answered and is sending its next request on it, which then fails with a reset after it was
 * sent (not knowing whether it was processed, the caller cannot safely retry a POST). An Envoy
 * listener in its drain does not close such a connection: its next request is answered with
 * `Connection: close`. Here, during a drain, a connection is closed once it has been idle for
 * {@link DRAIN_IDLE_GRACE_MS} (no byte read and no answer in flight since it was first seen idle); a
 * request that comes before is answered with `Connection: close`.
 *
 * @module
 */
import { clearTimeout, setTimeout } from 'node:timers';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

/** How long a kept-alive connection must have been idle before a drain closes it (a caller reusing it at once gets `Connection: close` instead). */
export const DRAIN_IDLE_GRACE_MS = 250;

/** The grace in use ({@link DRAIN_IDLE_GRACE_MS}; tests set another, so that no assertion rides on the machine's speed). */
export const drainIdle = { graceMs: DRAIN_IDLE_GRACE_MS };

/** The answer node:http is writing on a connection (its `_httpMessage`), if any: a connection without one has no request in flight. */
export function answerOn(socket: Socket): ServerResponse | undefined {
  return ((socket as { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined) as ServerResponse | undefined;
}

/**
 * The HTTP/1 connections of a server. Nothing is done per request: whether a connection is busy
 * is node:http's own record (the answer it is writing), and whether it stayed idle is seen from
 * its byte count between two sweeps a grace apart.
 */
export class Http1Connections {
  readonly #all = new Set<Socket>();
  /** Each connection found idle: the bytes read then, and when (performance.now(): network time, not the mesh's clock, which tests may hold still). */
  readonly #idleAt = new Map<Socket, { read: number; since: number }>();
  /** Set by the first closeIdle(): from then on, connections are swept until none is left. */
  #draining = false;
  #sweep: NodeJS.Timeout | undefined;

  /** A connection handed to node:http. */
  add(socket: Socket): void {
    this.#all.add(socket);
    socket.once('close', () => this.forget(socket));
  }

  /** No longer node:http's (an upgrade, a CONNECT) or gone: never closed as idle. */
  forget(socket: Socket): void {
    this.#all.delete(socket);
    this.#idleAt.delete(socket);
  }

  /** The connections open now. */
  connections(): Iterable<Socket> {
    return this.#all;
  }

  /**
   * Closes the connections that have been idle — no answer in flight, no byte read — for a whole
   * grace ({@link drainIdle}), and goes on sweeping the others every grace until none is left (a
   * server closed by the app alone, without mesh.close()'s sweeps, still closes).
   */
  closeIdle(): void {
    this.#draining = true;
    const now = performance.now();
    const grace = drainIdle.graceMs;
    let next = grace;
    for (const socket of this.#all) {
      const read = socket.bytesRead;
      const idle = this.#idleAt.get(socket);
      if (answerOn(socket) !== undefined) this.#idleAt.delete(socket);
      else if (idle === undefined || idle.read !== read) this.#idleAt.set(socket, { read, since: now });
      else if (now - idle.since >= grace) socket.destroy();
      else next = Math.min(next, idle.since + grace - now);
    }
    if (this.#all.size > 0 && this.#sweep === undefined) {
      // Unref'd: the connections it waits for keep the process alive, not the timer.
      this.#sweep = setTimeout(
        () => {
          this.#sweep = undefined;
          if (this.#draining) this.closeIdle();
        },
        Math.max(1, Math.ceil(next)),
      ).unref();
    }
  }

  /** The server listens again: no drain any more. */
  reset(): void {
    this.#draining = false;
    this.#idleAt.clear();
    if (this.#sweep !== undefined) clearTimeout(this.#sweep);
    this.#sweep = undefined;
  }
}
