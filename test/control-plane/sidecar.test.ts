/**
 * A mesh fed by the control plane applies the Sidecar the control plane sends it: its egress
 * scope and its outboundTrafficPolicy; a Sidecar selecting other workloads is not sent.
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

const sidecar = (name: string, spec: object) => ({ apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name, namespace: 'default' }, spec });

test('the Sidecar for this workload arrives and applies; a change to it applies on the next call', async () => {
  const ratings = await startUpstream('ratings');
  const reviews = await startUpstream('reviews');
  ups.push(ratings, reviews);
  const other = serviceEntry('ratings', 'ratings.other.svc.cluster.local', 9080, [{ port: ratings.port }]) as { metadata: object };
  t = await startTestControlPlane({
    se: [{ ...other, metadata: { ...other.metadata, namespace: 'other' } }, serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: reviews.port }])],
    sc: [sidecar('local', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }), sidecar('for-others', { workloadSelector: { labels: { app: 'other' } }, egress: [{ hosts: ['*/*'] }] })],
  });
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, logger: quietLogger });
  meshes.push(mesh);
  assert.deepEqual(
    mesh.snapshot.resources.filter((r) => r.kind === 'Sidecar').map((r) => r.metadata.name),
    ['local'],
    'only the Sidecar that can apply to this workload is sent',
  );
  assert.equal(mesh.snapshot.sidecar?.ref, 'Sidecar default/local');
  assert.equal((await call(mesh, 'http://ratings.other:9080/')).status, 502);
  assert.equal(ratings.hits, 0);
  assert.equal((await call(mesh, 'http://reviews:9080/')).upstream, 'reviews');
  const before = mesh.configVersion;
  const changed = waitFor<{ version: string }>(mesh, 'config', (e) => e.version !== before);
  await t.write('sc', [sidecar('local', { egress: [{ hosts: ['./*', 'other/*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } })]);
  await changed;
  assert.equal((await call(mesh, 'http://ratings.other:9080/')).upstream, 'ratings');
});

test('the root namespace’s Sidecar is the default of a namespace without one, through the control plane', async () => {
  const ratings = await startUpstream('ratings-root');
  ups.push(ratings);
  const other = serviceEntry('ratings', 'ratings.other.svc.cluster.local', 9080, [{ port: ratings.port }]) as { metadata: object };
  const cp = await startTestControlPlane({
    se: [{ ...other, metadata: { ...other.metadata, namespace: 'other' } }],
    sc: [{ ...sidecar('default', { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }), metadata: { name: 'default', namespace: 'istio-system' } }],
  });
  try {
    const token = await cp.cp.mintToken({ service: 'web', namespace: 'shop' });
    const mesh = await createMesh({ service: 'web', namespace: 'shop', controlPlane: cp.cp.url, token, logger: quietLogger });
    meshes.push(mesh);
    assert.equal(mesh.snapshot.sidecar?.ref, 'Sidecar istio-system/default');
    assert.equal((await call(mesh, 'http://ratings.other:9080/')).status, 502);
    assert.equal(ratings.hits, 0);
    await mesh.close();
  } finally {
    await cp.close();
  }
});
