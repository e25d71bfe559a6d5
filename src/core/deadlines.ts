/**
 * One timer for every deadline in the mesh. Route timeouts, per-try timeouts and caller
 * deadlines register here instead of arming a timer each (a per-request timer costs
 * microseconds; a heap insert costs nanoseconds). The queue keeps a min-heap of nodes and
 * one timer set no later than the earliest; removing a node is O(log n) and leaves no garbage.
 * The timer is not re-armed when deadlines are removed, so a steady stream of calls that
 * finish in time costs one timer per deadline period, not one per call.
 *
 * @module
 */
import type { Clock, Timer } from './clock.ts';

/** Something with a deadline. The queue manages `heapIndex`. */
export interface DeadlineNode {
  /** Absolute time on the queue's clock. */
  due: number;
  /** Position in the heap, -1 when not queued. */
  heapIndex: number;
  /** Called once when `due` has passed. */
  expire(): void;
}

/** A min-heap of deadlines served by one timer. */
export class DeadlineQueue {
  readonly #clock: Clock;
  readonly #heap: DeadlineNode[] = [];
  #timer: Timer | undefined;
  #armedFor = Number.POSITIVE_INFINITY;
  readonly #fire = (): void => this.#onTimer();
  #closed = false;
  readonly #closeWaiters = new Set<() => void>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Number of queued deadlines. */
  get size(): number {
    return this.#heap.length;
  }

  /** Queues `node` (with its `due` set); re-queues it if already queued. */
  add(node: DeadlineNode): void {
    if (node.heapIndex !== -1) this.remove(node);
    const h = this.#heap;
    node.heapIndex = h.length;
    h.push(node);
    this.#up(node.heapIndex);
    if (node.due < this.#armedFor) this.#arm(node.due);
  }

  /** Removes `node` if queued. */
  remove(node: DeadlineNode): void {
    const i = node.heapIndex;
    if (i === -1) return;
    const h = this.#heap;
    const last = h.pop() as DeadlineNode;
    node.heapIndex = -1;
    if (i < h.length) {
      h[i] = last;
      last.heapIndex = i;
      this.#down(i);
      this.#up(last.heapIndex);
    }
    // The timer stays armed when the heap empties: re-arming for every call (a call finishing
    // before its deadline is the common case) would cost a timer per call. A timer that fires
    // early or on an empty heap just re-arms for the earliest deadline, if any.
  }

  /** Cancels the timer (queued nodes stay queued but will not fire until the next `add`) and tells each waiter of {@link onClose}. */
  close(): void {
    this.#disarm();
    this.#closed = true;
    const waiters = [...this.#closeWaiters];
    this.#closeWaiters.clear();
    for (const w of waiters) w();
  }

  /** True once {@link close} ran (the mesh is closing). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Calls `fn` when the queue closes (a retry's backoff, which no pool knows of); returns a function that forgets it. */
  onClose(fn: () => void): () => void {
    this.#closeWaiters.add(fn);
    return () => this.#closeWaiters.delete(fn);
  }

  #arm(at: number): void {
    this.#timer?.clear();
    this.#armedFor = at;
    this.#timer = this.#clock.setTimer(this.#fire, Math.max(0, at - this.#clock.now()));
  }

  #disarm(): void {
    this.#timer?.clear();
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    const h = this.#heap;
    while (h.length > 0 && (h[0] as DeadlineNode).due <= now) {
      const n = h[0] as DeadlineNode;
      this.remove(n);
      n.expire();
    }
    if (h.length > 0 && this.#timer === undefined) this.#arm((h[0] as DeadlineNode).due);
  }

  #up(i: number): void {
    const h = this.#heap;
    const n = h[i] as DeadlineNode;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pn = h[p] as DeadlineNode;
      if (pn.due <= n.due) break;
      h[i] = pn;
      pn.heapIndex = i;
      i = p;
    }
    h[i] = n;
    n.heapIndex = i;
  }

  #down(i: number): void {
    const h = this.#heap;
    const len = h.length;
    const n = h[i] as DeadlineNode;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= len) break;
      const r = l + 1;
      const c = r < len && (h[r] as DeadlineNode).due < (h[l] as DeadlineNode).due ? r : l;
      const cn = h[c] as DeadlineNode;
      if (cn.due >= n.due) break;
      h[i] = cn;
      cn.heapIndex = i;
      i = c;
    }
    h[i] = n;
    n.heapIndex = i;
  }
}
