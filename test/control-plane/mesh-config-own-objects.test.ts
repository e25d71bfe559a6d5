/**
 * A mesh whose own options hold objects with cycles (an OpenTelemetry MeterProvider in
 * `telemetry.ownMetrics`) takes the control plane's MeshConfig changes live like any other: the
 * check of its start-time settings compared them with JSON.stringify, which threw on the cycle, so
 * every MeshConfig after the first was taken as a malformed event and never compiled in.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { serviceEntry } from '../helpers/upstreams.ts';
import { shortJitter, startTestControlPlane, until } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

test("a mesh with its own telemetry.ownMetrics.meterProvider follows a changed MeshConfig, and names a changed start-time setting", async () => {
  const t = await startTestControlPlane({ se: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: 1 }])] }, { meshConfig: { connectTimeout: '1s' } });
  open.push({ close: () => t.close() });
  const own = sdk();
  open.push({ close: () => own.shutdown() });
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const warnings: string[] = [];
  const mesh = await createMesh({
    service: 'productpage',
    controlPlane: t.cp.url,
    token,
    random: shortJitter(5),
    logger: { warn: (m: string) => warnings.push(m), info: () => undefined },
    telemetry: { ownMetrics: { meterProvider: own.provider } },
  });
  open.push(mesh);
  assert.equal(mesh.snapshot.meshSettings?.connectTimeoutMs, 1000);
  t.cp.setMeshConfig({ connectTimeout: '2s' }, 'test-mesh.yaml');
  await until(() => mesh.snapshot.meshSettings?.connectTimeoutMs === 2000, 'the new connect timeout compiled in');
  t.cp.setMeshConfig({ connectTimeout: '2s', enableTracing: true }, 'test-mesh.yaml');
  await until(() => warnings.some((w) => /changes accessLog\*\/enableTracing\/defaultConfig\.tracing, which this mesh reads when it starts/.test(w)), 'the start-time change named');
  assert.deepEqual(warnings.filter((w) => /malformed/.test(w)), []);
});
