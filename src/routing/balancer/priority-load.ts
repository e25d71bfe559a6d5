/**
 * Envoy's priority-level and locality arithmetic with the default overprovisioning factor
 * 1.4 (`LoadBalancerBase::recalculatePerPriorityState`, `distributeLoad`,
 * `choosePriority`, `LocalityWrr::effectiveLocalityWeight`), in Envoy's integer percent.
 *
 * A tier with h% of its hosts healthy is `min(100, ⌊1.4·h⌋)`% available. Load goes to tiers
 * in order, each taking its availability until 100% is handed out; when the availabilities
 * add up to less than 100 they are scaled up to fill it, and rounding leftovers go to the
 * first available tier. With no healthy host anywhere there is no host, unless a panic
 * threshold is set (the cluster picker then loads tiers by host count).
 *
 * @module
 */

/** Envoy's default overprovisioning factor, in percent (1.4). */
export const OVERPROVISIONING_FACTOR = 140;

/** A tier's availability in percent: `min(100, ⌊140·healthy/total⌋)`; 0 for an empty tier. */
export function tierAvailability(healthy: number, total: number): number {
  if (total <= 0) return 0;
  return Math.min(100, Math.floor((OVERPROVISIONING_FACTOR * healthy) / total));
}

/**
 * Fills `loads` (integer percent per tier, summing to 100) from per-tier availabilities.
 * @returns false when nothing is available (every load is then 0)
 */
export function priorityLoads(availability: ArrayLike<number>, loads: Int32Array): boolean {
  let sum = 0;
  for (let i = 0; i < availability.length; i++) sum += availability[i] as number;
  const normalized = Math.min(100, sum);
  loads.fill(0);
  if (normalized === 0) return false;
  let remaining = 100;
  let first = -1;
  for (let i = 0; i < availability.length; i++) {
    const a = availability[i] as number;
    if (first < 0 && a > 0) first = i;
    const load = Math.min(remaining, Math.floor((a * 100) / normalized));
    loads[i] = load;
    remaining -= load;
  }
  if (remaining > 0 && first >= 0) loads[first] = (loads[first] as number) + remaining;
  return true;
}

/**
 * The tier for a draw, as Envoy's `choosePriority`: `hash % 100 + 1` against the cumulative
 * loads. Returns -1 when every load is 0.
 * @param loads from {@link priorityLoads}
 * @param draw a uint32 (the request hash, or a random draw)
 */
export function choosePriority(loads: Int32Array, draw: number): number {
  const x = ((draw >>> 0) % 100) + 1;
  let acc = 0;
  for (let i = 0; i < loads.length; i++) {
    acc += loads[i] as number;
    if (x <= acc) return i;
  }
  return -1;
}

/**
 * A locality's weight scaled by its availability, `weight · min(1, 1.4·healthy/total)`
 * (Envoy's `effectiveLocalityWeight`).
 */
export function effectiveLocalityWeight(weight: number, healthy: number, total: number): number {
  if (total <= 0) return 0;
  return weight * Math.min(1, (OVERPROVISIONING_FACTOR / 100) * (healthy / total));
}
