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
  if (!healthChecked(entry.metadata.annotations)) return '-';
  const c = healthyCondition(entry);
  if (c === undefined) return 'unhealthy: no probe result reported yet';
  if (c.status === 'True') return 'healthy';
  const message = typeof c.message === 'string' && c.message !== '' ? c.message : undefined;
  if (c.status === 'False') return message === undefined ? 'unhealthy' : `unhealthy: ${message}`;
  return `unhealthy: Healthy condition is ${JSON.stringify(c.status)}${message === undefined ? '' : ` (${message})`}`;
}

/** When the entry's health was last reported ('' when never). */
function probedAt(entry: WireResource): string {
  const t = healthyCondition(entry)?.lastProbeTime;
  return typeof t === 'string' ? t : '';
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
      return [e.metadata.namespace ?? 'default', e.metadata.name, typeof address === 'string' ? address : '-', entryHealth(e)];
    });
}
