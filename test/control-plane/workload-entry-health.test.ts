/**
 * A health-checked WorkloadEntry (`proxy.istio.io/health-checks-enabled: "true"`) served by the
 * control plane: its status travels with it, so a mesh leaves it out while its `Healthy`
 * condition is not `True` (istiod's `isHealthy`), and takes it in once a config change marks it healthy.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const NET = 'networking.istio.io/v1';
const HC = { 'proxy.istio.io/health-checks-enabled': 'true' };
const se = { apiVersion: NET, kind: 'ServiceEntry', metadata: { name: 'vm', namespace: 'default' }, spec: { hosts: ['vm.example.internal'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], workloadSelector: { labels: { app: 'vm' } } } };
const entry = (name: string, address: string, healthy: 'True' | 'False') => ({
  apiVersion: NET,
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default', annotations: HC },
  spec: { address, labels: { app: 'vm' } },
  status: { conditions: [{ type: 'Healthy', status: healthy, lastProbeTime: '2026-01-01T00:00:00Z' }] },
});

let t: TestControlPlane;
before(async () => {
  t = await startTestControlPlane({ vm: [se, entry('vm-a', '10.0.0.1', 'True'), entry('vm-b', '10.0.0.2', 'False')] });
});
after(async () => {
  await t.close();
});

const endpoints = (mesh: Mesh) => (mesh.snapshot.clusters.get('outbound|80||vm.example.internal')?.endpoints ?? []).map((e) => e.address).sort();

test('an unhealthy health-checked WorkloadEntry is no endpoint; marked healthy, it becomes one', async () => {
  const mesh = await createMesh({ service: 'client', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'client', namespace: 'default' }), logger: quietLogger });
  try {
    assert.deepEqual(endpoints(mesh), ['10.0.0.1']);
    await t.write('vm', [se, entry('vm-a', '10.0.0.1', 'True'), entry('vm-b', '10.0.0.2', 'True')]);
    await until(() => endpoints(mesh).length === 2, 'vm-b joins once healthy');
    assert.deepEqual(endpoints(mesh), ['10.0.0.1', '10.0.0.2']);
    await t.write('vm', [se, entry('vm-a', '10.0.0.1', 'False'), entry('vm-b', '10.0.0.2', 'True')]);
    await until(() => endpoints(mesh).length === 1 && endpoints(mesh)[0] === '10.0.0.2', 'vm-a leaves once unhealthy');
  } finally {
    await mesh.close();
  }
});
