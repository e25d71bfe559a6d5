import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WireResource } from '../control-plane/protocol.ts';
import { entryHealth, registeredRows } from './workload-health.ts';

const entry = (annotations: Record<string, string> | undefined, conditions?: unknown, address = '10.0.0.1', name = 'we'): WireResource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default', ...(annotations === undefined ? {} : { annotations }) },
  spec: { address },
  ...(conditions === undefined ? {} : { status: { conditions } }),
});
const HC = { 'proxy.istio.io/health-checks-enabled': 'true' };

test('entryHealth: as istiod isHealthy reads the entry (table)', () => {
  const cases: [WireResource, string][] = [
    [entry(undefined), '-'],
    [entry({ 'proxy.istio.io/health-checks-enabled': 'false' }, [{ type: 'Healthy', status: 'False', message: 'x' }]), '-'],
    [entry({ 'proxy.istio.io/health-checks-enabled': 'TRUE' }, [{ type: 'Healthy', status: 'True' }]), 'healthy'],
    [entry(HC, [{ type: 'Other', status: 'True' }]), 'unhealthy: no probe result reported yet'],
    [entry(HC), 'unhealthy: no probe result reported yet'],
    [entry(HC, [{ type: 'Healthy', status: 'False' }]), 'unhealthy'],
    [entry(HC, [{ type: 'Healthy', status: 'False', message: 'bad code 500' }]), 'unhealthy: bad code 500'],
    [entry(HC, [{ type: 'Healthy', status: 'Unknown', message: 'm' }]), 'unhealthy: Healthy condition is "Unknown" (m)'],
    [entry(HC, 'not a list'), 'unhealthy: no probe result reported yet'],
  ];
  for (const [e, want] of cases) assert.equal(entryHealth(e), want, JSON.stringify(e));
});

test('registeredRows: each entry once, the most recently probed copy, sorted; malformed items skipped', () => {
  const old = entry(HC, [{ type: 'Healthy', status: 'False', message: 'old', lastProbeTime: '2026-01-01T00:00:00.000Z' }], '10.0.0.2', 'b');
  const fresh = entry(HC, [{ type: 'Healthy', status: 'True', lastProbeTime: '2026-01-01T00:00:05.000Z' }], '10.0.0.2', 'b');
  const reg = (w: WireResource) => ({ name: w.metadata.name, namespace: 'default', leaseMs: 1, workload: w });
  const rows = registeredRows([[reg(old), reg(entry(undefined, undefined, '10.0.0.1', 'a'))], [reg(fresh), { nope: 1 } as never], 'junk' as never]);
  assert.deepEqual(rows, [
    ['default', 'a', '10.0.0.1', '-'],
    ['default', 'b', '10.0.0.2', 'healthy'],
  ]);
});
