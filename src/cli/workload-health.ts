/**
 * The registered WorkloadEntries in `meshlet status`, with their health: whether the entry is
 * health-checked (`proxy.istio.io/health-checks-enabled`, a WorkloadGroup with a `probe`) and what
 * its `Healthy` status condition says — the condition istiod writes from the workload's probe
 * reports (`autoregistration/internal/health`), which `kubectl get workloadentry -o yaml` shows.
 *
 * @module
 */
import { healthChecked } from '../config/workloads.ts';
import type { RegisterResponse, WireResource } from '../control-plane/protocol.ts';

interface Condition {
  readonly type?: unknown;
  readonly status?: unknown;
  readonly message?: unknown;
  readonly lastProbeTime?: unknown;
}

function healthyCondition(entry: WireResource): Condition | undefined {
  const list = (entry.status as { conditions?: unknown } | undefined)?.conditions;
  return Array.isArray(list) ? (list as Condition[]).find((c) => typeof c === 'object' && c !== null && c.type === 'Healthy') : undefined;
}

/**
 * An entry's health as istiod judges it (`isHealthy`): `-` when it is not health-checked (it is an
 * endpoint whatever its conditions say); `healthy` when its `Healthy` condition is `True`;
 * otherwise `unhealthy`, with the condition's message (the probe's error), or why there is none.
 */
export function entryHealth(entry: WireResource): string {
  // What a server answered is data: annotations that are not an object are none.
  const a: unknown = entry.metadata.annotations;
  if (!healthChecked(typeof a === 'object' && a !== null && !Array.isArray(a) ? (a as Record<string, string>) : undefined)) return '-';
  const c = healthyCondition(entry);
  if (c === undefined) return 'unhealthy: no probe result reported yet';
  if (c.status === 'True') return 'healthy';
  const message = typeof c.message === 'string' && c.message !== '' ? c.message : undefined;
  if (c.status === 'False') return message === undefined ? 'unhealthy' : `unhealthy: ${message}`;
  const status = c.status === undefined ? 'has no status' : `is ${JSON.stringify(c.status)}`;
  return `unhealthy: Healthy condition ${status}${message === undefined ? '' : ` (${message})`}`;
}

/**
 * When the entry's health was last reported, in ms since the epoch (-Infinity when never or not
 * a time): an RFC 3339 time compared as a time, not as text (fractional seconds, offsets).
 */
function probedAt(entry: WireResource): number {
  const t = healthyCondition(entry)?.lastProbeTime;
  const ms = typeof t === 'string' ? Date.parse(t) : Number.NaN;
  return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
}

/**
 * The rows (NAMESPACE, NAME, ADDRESS, HEALTH) of the registrations several replicas list: each
 * entry once (replicas sharing etcd list the same ones), the most recently probed copy where a
 * replica's view lags; sorted by namespace and name.
 */
export function registeredRows(lists: readonly (readonly RegisterResponse[])[]): string[][] {
  const byName = new Map<string, WireResource>();
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    for (const r of list) {
      // What a server answered is data: anything not shaped like a registration is skipped.
      if (typeof r?.workload?.metadata?.name !== 'string') continue;
      const key = `${r.namespace}/${r.name}`;
      const known = byName.get(key);
      if (known === undefined || probedAt(r.workload) > probedAt(known)) byName.set(key, r.workload);
    }
  }
  return [...byName.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, e]) => {
      const address = (e.spec as { address?: unknown } | undefined)?.address;
      const ns: unknown = e.metadata.namespace;
      return [ns === undefined ? 'default' : typeof ns === 'string' ? ns : '-', e.metadata.name, typeof address === 'string' ? address : '-', entryHealth(e)];
    });
}
