/**
 * RING_HASH (Envoy's ketama ring): each host gets ring points in proportion to its
 * weight, at least `minimumRingSize` points in all (scaled so the lightest host gets a whole
 * number of points, capped at `maximumRingSize`), placed at `hash32("<address:port>_<i>")`.
 * A request goes to the first point at or after its hash, wrapping round.
 *
 * One deliberate difference from Envoy: the scale is computed over every host of the tier,
 * ejected ones included, so an ejection removes only the ejected host's points and moves only
 * its keys (≈1/N). Envoy rescales over the remaining healthy hosts, which gives every host
 * extra points and moves noticeably more keys (about 1.6/N for N = 10 at the default size).
 *
 * @module
 */
import type { Algorithm } from './algorithm.ts';
import { hash32 } from './hash.ts';
import type { HostState } from './host.ts';

/** Envoy's (and Istio's) default minimum ring size. */
export const DEFAULT_MIN_RING_SIZE = 1024;
/** Envoy's default maximum ring size (8M points). */
export const MAX_RING_SIZE = 8 * 1024 * 1024;

/** Host indexes are packed below the hash in one float64 for a fast native sort. */
const OWNER_BITS = 2 ** 21;

/** A consistent-hash ring over one list of hosts. */
export class RingHash implements Algorithm {
  readonly #minSize: number;
  readonly #maxSize: number;
  #hosts: readonly HostState[] = [];
  #points = new Uint32Array(0);
  #owners = new Uint32Array(0);

  /**
   * @param minRingSize minimum number of ring points; 0 or less = {@link DEFAULT_MIN_RING_SIZE}
   * @param maxRingSize maximum number of ring points
   */
  constructor(minRingSize: number, maxRingSize = MAX_RING_SIZE) {
    this.#minSize = minRingSize > 0 ? Math.floor(minRingSize) : DEFAULT_MIN_RING_SIZE;
    this.#maxSize = Math.max(1, Math.floor(maxRingSize));
  }

  /** Number of points on the ring. */
  get size(): number {
    return this.#points.length;
  }

  reset(hosts: readonly HostState[], weights: Float64Array | undefined, all?: readonly HostState[]): void {
    if (hosts.length >= OWNER_BITS) throw new RangeError(`ring hash supports fewer than ${OWNER_BITS} hosts, got ${hosts.length}`);
    const weightOf = (i: number): number => (weights === undefined ? (hosts[i] as HostState).weight : (weights[i] as number));
    const live: number[] = [];
    let liveSum = 0;
    for (let i = 0; i < hosts.length; i++) {
      const w = weightOf(i);
      if (w > 0) {
        live.push(i);
        liveSum += w;
      }
    }
    this.#hosts = hosts;
    if (live.length === 0) {
      this.#points = new Uint32Array(0);
      this.#owners = new Uint32Array(0);
      return;
    }
    // Envoy: the lightest host gets k = ceil(minRingSize · wMin / W) points and host i gets
    // k · w_i / wMin, so the ring has at least minRingSize points. Sized over every host of the
    // tier (when given) so that ejecting one removes only its points.
    let wMin = Number.POSITIVE_INFINITY;
    let wSum = 0;
    const basis = weights === undefined && all !== undefined && all.length > 0 ? all : undefined;
    if (basis !== undefined) {
      for (const h of basis) {
        wMin = Math.min(wMin, h.weight);
        wSum += h.weight;
      }
    } else {
      for (const i of live) wMin = Math.min(wMin, weightOf(i));
      wSum = liveSum;
    }
    const k = Math.ceil((this.#minSize * wMin) / wSum);
    // Points per unit of weight, capped so the ring stays within maxRingSize.
    const perWeight = Math.min(k / wMin, this.#maxSize / liveSum);
    const packed = new Float64Array(Math.ceil(perWeight * liveSum) + live.length);
    // Running sums, as Envoy does, so fractional shares stay stable across hosts.
    let count = 0;
    let cumulative = 0;
    for (const i of live) {
      const key = `${(hosts[i] as HostState).key}_`;
      cumulative += weightOf(i);
      // Rounded so float noise (103.00000000000001) does not add a point.
      const target = Math.round(perWeight * cumulative * 1e6) / 1e6;
      for (let j = 0; count < target; j++) packed[count++] = hash32(key + j) * OWNER_BITS + i;
    }
    const ring = packed.subarray(0, count).sort();
    this.#points = new Uint32Array(count);
    this.#owners = new Uint32Array(count);
    for (let j = 0; j < count; j++) {
      const p = ring[j] as number;
      const owner = p % OWNER_BITS;
      this.#owners[j] = owner;
      this.#points[j] = (p - owner) / OWNER_BITS;
    }
  }

  /**
   * The owner of the first point at or after `hash`; on a reselection (`attempt` > 0, made to
   * avoid hosts tried before) the point `attempt` places further on, as Envoy's
   * `Ring::chooseHost` does ("behave as if this host was not in the ring").
   */
  choose(hash: number, attempt = 0): HostState | undefined {
    const points = this.#points;
    const n = points.length;
    if (n === 0) return undefined;
    const h = hash >>> 0;
    // First point >= h (lower bound); past the end wraps to the first point.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((points[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    const at = lo === n ? 0 : lo;
    return this.#hosts[this.#owners[attempt > 0 ? (at + attempt) % n : at] as number];
  }

  describe(): string {
    return `ring of ${this.#points.length}`;
  }
}
