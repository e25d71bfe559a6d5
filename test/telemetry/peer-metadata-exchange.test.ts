/**
 * Istio's HTTP metadata exchange between real meshes: outbound calls to in-mesh services carry
 * `x-envoy-peer-metadata-id` / `x-envoy-peer-metadata` (this workload's name, namespace,
 * canonical service, app, version, cluster), calls to MESH_EXTERNAL services and passthrough
 * destinations do not; with `telemetry.metrics.enabled: false` nothing is added.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { decodePeerMetadata } from '../../src/telemetry/metrics/peer-metadata.ts';
import { call, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';

describe('peer metadata exchange on outbound calls', () => {
  let up: Upstream;
  let mesh: Mesh;
  let quiet: Mesh;
  before(async () => {
    up = await startUpstream('up');
    const config = [
      serviceEntry('internal', 'internal.default.svc.cluster.local', 80, [{ port: up.port }]),
      serviceEntry('external', 'api.example.com', 80, [{ port: up.port }], { location: 'MESH_EXTERNAL' }),
    ];
    mesh = await createMesh({ service: 'productpage', workloadName: 'productpage-v1', labels: { app: 'productpage', version: 'v1' }, namespace: 'default', config, identity: 'none' });
    quiet = await createMesh({ service: 'productpage', labels: { app: 'productpage' }, config, identity: 'none', telemetry: { metrics: { enabled: false } } });
  });
  after(async () => {
    await mesh.close();
    await quiet.close();
    await up.close();
  });

  it('an in-mesh destination gets the headers, with what Istio puts in them', async () => {
    assert.equal((await call(mesh, 'http://internal/x')).status, 200);
    const h = up.seen.at(-1)?.headers ?? {};
    assert.equal(h['x-envoy-peer-metadata-id'], 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local');
    assert.deepEqual(decodePeerMetadata(h['x-envoy-peer-metadata'] as string), {
      instance: 'productpage-v1',
      namespace: 'default',
      workload: 'productpage-v1',
      cluster: 'Kubernetes',
      canonicalName: 'productpage',
      canonicalRevision: 'v1',
      app: 'productpage',
      version: 'v1',
    });
  });

  it('a MESH_EXTERNAL service and a passthrough destination do not', async () => {
    assert.equal((await call(mesh, 'http://api.example.com/x')).status, 200);
    assert.equal(up.seen.at(-1)?.headers['x-envoy-peer-metadata'], undefined);
    assert.equal(up.seen.at(-1)?.headers['x-envoy-peer-metadata-id'], undefined);
    assert.equal((await call(mesh, `http://127.0.0.1:${up.port}/direct`)).status, 200);
    assert.equal(up.seen.at(-1)?.url, '/direct');
    assert.equal(up.seen.at(-1)?.headers['x-envoy-peer-metadata'], undefined);
  });

  it('metrics off: no metadata exchange either', async () => {
    assert.equal((await call(quiet, 'http://internal/y')).status, 200);
    assert.equal(up.seen.at(-1)?.url, '/y');
    assert.equal(up.seen.at(-1)?.headers['x-envoy-peer-metadata'], undefined);
  });
});
