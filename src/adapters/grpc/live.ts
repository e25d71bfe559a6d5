/**
 * The gRPC transport's attempts as its connections see them ({@link Admitted}), and those in
 * flight ({@link Live}), that a cluster's channels' close() waits for.
 *
 * @module
 */
import type { Clock, Timer } from '../../core/clock.ts';
import { MeshletError } from '../../core/errors.ts';
import type { Conn } from './conn.ts';

/** An attempt admitted to an endpoint's connections. */
export interface Admitted {
  /** The connection the attempt goes on (given when it is admitted). */
  conn: Conn | undefined;
  /** A stream is free: put the call on the wire. */
  go(): void;
  /** Cancels the attempt (close() after its grace period). */
  abort(reason: Error): void;
  /** Its place among the attempts in flight (managed by them; -1 when not in flight). */
  liveIndex: number;
}

/**
 * Attempts in flight, that close() waits for (and cancels after its grace period): an array
 * each attempt knows its place in, so adding and removing one costs no allocation or hashing.
 */
export class Live {
  readonly #list: Admitted[] = [];
  /** What waits for the last attempt to end (drain() may be called again with a shorter grace period). */
  #onIdle: (() => void)[] = [];
  add(a: Admitted): void {
    if (a.liveIndex !== -1) return;
    a.liveIndex = this.#list.length;
    this.#list.push(a);
  }
  delete(a: Admitted): void {
    const i = a.liveIndex;
    const list = this.#list;
    if (i === -1 || list[i] !== a) return;
    a.liveIndex = -1;
    const last = list.pop() as Admitted;
    if (last !== a) {
      list[i] = last;
      last.liveIndex = i;
    }
    if (list.length === 0) for (const f of this.#onIdle.splice(0)) f();
  }
  /** Waits until no attempt is left, or `graceMs`; then cancels what is left with MESHLET_ERR_CLOSED. */
  async drain(graceMs: number, clock: Clock): Promise<void> {
    if (this.#list.length === 0) return;
    let timer: Timer | undefined;
    const idle = new Promise<boolean>((r) => this.#onIdle.push(() => r(false)));
    const timedOut = graceMs === Number.POSITIVE_INFINITY ? await idle : await Promise.race([idle, new Promise<boolean>((r) => (timer = clock.setTimer(() => r(true), graceMs, true)))]);
    timer?.clear();
    if (!timedOut) return;
    const err = new MeshletError('MESHLET_ERR_CLOSED', `mesh.close(): the call was still running after closeTimeoutMs (${graceMs} ms) and was cancelled`);
    for (const a of [...this.#list]) a.abort(err);
  }
}

