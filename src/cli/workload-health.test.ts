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

test('malformed registration data is shown, not fatal: annotations not an object, a namespace not a string, a condition without status', () => {
  const bad = (metadata: Record<string, unknown>, conditions?: unknown): WireResource => ({ ...entry(undefined, conditions), metadata: { name: 'a', ...metadata } as never });
  assert.equal(entryHealth(bad({ annotations: null })), '-');
  assert.equal(entryHealth(bad({ annotations: 'x' })), '-');
  assert.equal(entryHealth(bad({ annotations: ['proxy.istio.io/health-checks-enabled'] })), '-');
  assert.equal(entryHealth(entry(HC, [{ type: 'Healthy' }])), 'unhealthy: Healthy condition has no status');
  const rows = registeredRows([[{ name: 'a', namespace: 'x', leaseMs: 1, workload: bad({ namespace: 5 }) }]]);
  assert.deepEqual(rows, [['-', 'a', '10.0.0.1', '-']]);
});

test('registeredRows: lastProbeTime compared as a time (an offset, fractional seconds), not as text', () => {
  const reg = (w: WireResource) => ({ name: w.metadata.name, namespace: 'default', leaseMs: 1, workload: w });
  // 09:00+09:00 is 00:00Z: earlier than 00:00:05Z, though it sorts after it as text.
  const old = entry(HC, [{ type: 'Healthy', status: 'False', message: 'old', lastProbeTime: '2026-01-01T09:00:00+09:00' }], '10.0.0.2', 'b');
  const fresh = entry(HC, [{ type: 'Healthy', status: 'True', lastProbeTime: '2026-01-01T00:00:05Z' }], '10.0.0.2', 'b');
  assert.deepEqual(registeredRows([[reg(old)], [reg(fresh)]]), [['default', 'b', '10.0.0.2', 'healthy']]);
  assert.deepEqual(registeredRows([[reg(fresh)], [reg(old)]]), [['default', 'b', '10.0.0.2', 'healthy']]);
  // '…:05Z' against '…:05.5Z': the later one by half a second.
  const half = entry(HC, [{ type: 'Healthy', status: 'False', message: 'later', lastProbeTime: '2026-01-01T00:00:05.5Z' }], '10.0.0.2', 'b');
  assert.deepEqual(registeredRows([[reg(half)], [reg(fresh)]]), [['default', 'b', '10.0.0.2', 'unhealthy: later']]);
});
