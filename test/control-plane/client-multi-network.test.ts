/**
 * Multi-network in control-plane mode: a workload registers on its mesh's network (`network`, or
 * its `topology.istio.io/network` label); a caller on another network, given MeshNetworks with
 * that network's gateway, reaches the registered instance through the gateway; a caller on the
 * same network dials it directly.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const reviewsEntry = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { hosts: ['reviews.example'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], workloadSelector: { labels: { app: 'reviews' } } },
};
const meshNetworks = { networks: { west: { gateways: [{ address: '192.0.2.9', port: 15443 }] } } };

let t: TestControlPlane;
const meshes: Mesh[] = [];
before(async () => {
  t = await startTestControlPlane({ reviews: [reviewsEntry] });
});
after(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  await t.close();
});

const endpoints = (m: Mesh) => (m.explain({ url: 'http://reviews.example:9080/' }).targets[0]?.endpoints ?? []).map((e) => `${e.endpoint}${e.gateway === undefined ? '' : ` ${e.gateway}`}`);

test('a registration is on the mesh network; callers elsewhere go through its gateway, callers there dial it', async () => {
  const token = async (service: string) => t.cp.mintToken({ service, namespace: 'default' });
  const mesh = async (service: string, o: object) => {
    const m = await createMesh({ service, controlPlane: t.cp.url, token: await token(service), logger: quietLogger, ...o });
    meshes.push(m);
    return m;
  };
  // The control plane's CA gives it an identity: registered as accepting mTLS, so it may cross a gateway.
  const reviews = await mesh('reviews', { labels: { app: 'reviews' }, network: 'west' });
  const east = await mesh('productpage', { network: 'east', meshNetworks });
  const west = await mesh('productpage', { network: 'west', meshNetworks });
  const reg = await reviews.register({ ports: { http: 9080 }, address: '10.2.0.7' });
  try {
    await until(() => endpoints(east).length > 0 && endpoints(west).length > 0, 'both callers see the instance');
    assert.deepEqual(endpoints(east), ['192.0.2.9:15443 east-west gateway of network west (meshNetworks networks.west.gateways[0]) for 10.2.0.7:9080']);
    assert.deepEqual(endpoints(west), ['10.2.0.7:9080']);
  } finally {
    await reg.close();
  }
});
