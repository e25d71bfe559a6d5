/**
 * A bound on how deeply a config document's lists and maps nest. Deeper documents are refused
 * when read: writing or comparing one recursed past the stack (a 5,000-level EnvoyFilter `value`
 * made the control plane's store answer 500 `internal error`). Real Istio resources nest a few
 * dozen levels at most.
 *
 * @module
 */

/**
 * Deepest nesting of lists and maps in one document. Go's encoding/json, which kubectl and the
 * Kubernetes API server read with, stops at 10,000; meshlet at 512 (docs/config.md).
 */
export const MAX_NESTING = 512;

/** True when `value` has lists or maps nested deeper than `max` levels; walks without recursion. */
export function nestedTooDeep(value: unknown, max = MAX_NESTING): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, depth] = top;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}
