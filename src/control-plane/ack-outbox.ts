/**
 * The ACKs and NACKs a {@link Watch} owes the control plane: queued while the current I/O
 * callbacks run, sent together after them, and awaited (briefly) when the watch closes.
 *
 * @module
 */
import { setImmediate } from 'node:timers';
import type { Clock, Timer } from '../core/clock.ts';
import type { ControlPlaneHttp } from './http.ts';
import { ACK_PATH, type AckRequest } from './protocol.ts';

/** Queues and sends a watch's ACK/NACK posts. */
export class AckOutbox {
  readonly #http: ControlPlaneHttp;
  readonly #clock: Clock;
  readonly #posts = new Set<Promise<void>>();
  #queue: { url: string; body: AckRequest }[] = [];

  constructor(http: ControlPlaneHttp, clock: Clock) {
    this.#http = http;
    this.#clock = clock;
  }

  /**
   * Sends `body` to `url` once the I/O callbacks that are running are done (`node:timers` setImmediate, not a runner's fake): the
   * change is in use already, and a process whose meshes all receive the same push (tests,
   * several meshes in one process) applies it in every mesh before any of them talks back.
   */
  post(url: string, body: AckRequest): void {
    if (this.#queue.length === 0) setImmediate(() => this.send());
    this.#queue.push({ url, body });
  }

  /** Sends what is queued now. */
  send(): void {
    const out = this.#queue;
    this.#queue = [];
    for (const { url, body } of out) {
      // An ACK that does not arrive only makes the status stale; the stream itself is what matters.
      const p = this.#http.call(url, { method: 'POST', path: ACK_PATH, body }).then(
        () => undefined,
        () => undefined,
      );
      this.#posts.add(p);
      void p.finally(() => this.#posts.delete(p));
    }
  }

  /** Sends what is queued and waits for the posts in flight, at most `maxWaitMs` on the clock. */
  async drain(maxWaitMs: number): Promise<void> {
    this.send();
    if (this.#posts.size === 0) return;
    let timer: Timer | undefined;
    await Promise.race([Promise.all(this.#posts), new Promise<void>((r) => (timer = this.#clock.setTimer(r, maxWaitMs, true)))]);
    timer?.clear();
  }
}
