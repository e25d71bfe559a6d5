/**
 * Earliest-deadline-first scheduling, Envoy's weighted round robin (`EdfScheduler`). Each
 * entry has a deadline `current + 1/weight`; a pick takes the earliest deadline (ties go to
 * the entry queued first), moves `current` to it and re-queues the entry with its weight read
 * again, so weights that change over time (slow start) take effect at the entry's next turn.
 * Used for weighted ROUND_ROBIN and for choosing a locality by weight.
 *
 * @module
 */

/** A weighted round-robin scheduler over entries `0..size-1`; picks allocate nothing. */
export class EdfScheduler {
  readonly #weightOf: (index: number) => number;
  readonly #deadline: Float64Array;
  readonly #order: Float64Array;
  readonly #heap: Int32Array;
  #current = 0;
  #seq = 0;

  /**
   * @param size number of entries
   * @param weightOf the weight of entry `i`; read when the entry is (re)queued. Non-positive
   *   or non-finite weights count as the smallest possible weight.
   */
  constructor(size: number, weightOf: (index: number) => number) {
    this.#weightOf = weightOf;
    this.#deadline = new Float64Array(size);
    this.#order = new Float64Array(size);
    this.#heap = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      this.#deadline[i] = this.#step(i);
      this.#order[i] = this.#seq++;
      this.#heap[i] = i;
    }
    for (let i = (size >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  /** Number of entries. */
  get size(): number {
    return this.#heap.length;
  }

  /** Picks the next entry and re-queues it; -1 when empty. */
  pick(): number {
    const heap = this.#heap;
    if (heap.length === 0) return -1;
    const top = heap[0] as number;
    this.#current = this.#deadline[top] as number;
    this.#deadline[top] = this.#current + this.#step(top);
    this.#order[top] = this.#seq++;
    this.#down(0);
    return top;
  }

  #step(i: number): number {
    const w = this.#weightOf(i);
    return w > 0 && w < Number.POSITIVE_INFINITY ? 1 / w : w === Number.POSITIVE_INFINITY ? 0 : Number.MAX_VALUE;
  }

  #less(a: number, b: number): boolean {
    const da = this.#deadline[a] as number;
    const db = this.#deadline[b] as number;
    return da < db || (da === db && (this.#order[a] as number) < (this.#order[b] as number));
  }

  #down(start: number): void {
    const heap = this.#heap;
    const n = heap.length;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      let m = l;
      if (r < n && this.#less(heap[r] as number, heap[l] as number)) m = r;
      if (!this.#less(heap[m] as number, heap[i] as number)) return;
      const t = heap[i] as number;
      heap[i] = heap[m] as number;
      heap[m] = t;
      i = m;
    }
  }
}
