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
 * {@link DRAIN_IDLE_GRACE_MS}; a request that comes before is answered with `Connection: close`.
 *
 * @module
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** How long a kept-alive connection must have been idle before a drain closes it (a caller reusing it at once gets `Connection: close` instead). */
export const DRAIN_IDLE_GRACE_MS = 250;

/** The grace in use ({@link DRAIN_IDLE_GRACE_MS}; tests set another, so that no assertion rides on the machine's speed). */
export const drainIdle = { graceMs: DRAIN_IDLE_GRACE_MS };

interface ConnectionState {
  /** Requests read and not yet answered (more than one when pipelined). */
  busy: number;
  /** When it last became idle (performance.now(): network time, not the mesh's clock, which tests may hold still). */
  idleSince: number;
}

export class Http1Connections {
  readonly #all = new Map<Socket, ConnectionState>();
  /** Set by the first closeIdle(): from then on, connections are closed as they have been idle long enough. */
  #draining = false;
  #sweep: NodeJS.Timeout | undefined;

  /** A connection handed to node:http. */
  add(socket: Socket): void {
    this.#all.set(socket, { busy: 0, idleSince: performance.now() });
    socket.once('close', () => this.#all.delete(socket));
  }

  /** No longer node:http's (an upgrade, a CONNECT): never closed as idle. */
  forget(socket: Socket): void {
    this.#all.delete(socket);
  }

  /** A request was read on `socket`; `done` when its answer ended (or the connection went away). */
  begin(socket: Socket): () => void {
    const s = this.#all.get(socket);
    if (s === undefined) return () => undefined;
    s.busy++;
    return () => {
      s.busy--;
      if (s.busy > 0) return;
      s.idleSince = performance.now();
      if (this.#draining) this.#schedule(drainIdle.graceMs);
    };
  }

  /**
   * Closes the connections without a request in flight that have been idle for
   * {@link DRAIN_IDLE_GRACE_MS}, and keeps doing so for the others as they get there (a server
   * closed by the app alone, without mesh.close()'s sweeps, still closes).
   */
  closeIdle(): void {
    this.#draining = true;
    const now = performance.now();
    let next: number | undefined;
    for (const [socket, s] of this.#all) {
      if (s.busy > 0) continue;
      const left = s.idleSince + drainIdle.graceMs - now;
      if (left <= 0) socket.destroy();
      else next = Math.min(next ?? left, left);
    }
    if (next !== undefined) this.#schedule(next);
  }

  #schedule(ms: number): void {
    if (this.#sweep !== undefined) return;
    // Unref'd: the connections it waits for keep the process alive, not the timer.
    this.#sweep = setTimeout(() => {
      this.#sweep = undefined;
      this.closeIdle();
    }, Math.ceil(ms)).unref();
  }
}
