/**
 * A mesh fed by the control plane compiles what it receives with its own
 * `defaultHttpRetryPolicy` (createMesh's option, as MeshConfig's is a workload's mesh setting):
 * the first config and every change after it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane, waitFor } from './client-helpers.ts';

const ups: Upstream[] = [];
const meshes: Mesh[] = [];
let t: TestControlPlane | undefined;
after(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  await t?.close();
  await Promise.all(ups.map((u) => u.close()));
});

test('control-plane mode: routes without retries get the mesh default, before and after a config change', async () => {
  const bad = await startUpstream('bad', (_req, res) => {
    res.statusCode = 503;
    res.end('down');
  });
  ups.push(bad);
  const reviews = serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: bad.port }]);
  t = await startTestControlPlane({ se: [reviews] });
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, logger: quietLogger, defaultHttpRetryPolicy: { attempts: 2, retryOn: '503', retryIgnorePreviousHosts: false } });
  meshes.push(mesh);
  const r = await call(mesh, 'http://reviews:9080/');
  assert.equal(r.flags, 'URX');
  assert.deepEqual(bad.seen.map((s) => s.headers['x-envoy-attempt-count']), ['1', '2', '3']);
  const before = mesh.configVersion;
  const changed = waitFor<{ version: string }>(mesh, 'config', (e) => e.version !== before);
  await t.write('se', [reviews, serviceEntry('ratings', 'ratings.default.svc.cluster.local', 9080, [{ port: bad.port }])]);
  await changed;
  const route = mesh.snapshot.routes.virtualHost('ratings:9080')?.routes[0];
  assert.equal(route?.retry.attempts, 2);
  assert.equal(route?.retry.meshDefault, true);
});
