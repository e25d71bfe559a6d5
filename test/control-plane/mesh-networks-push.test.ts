/**
 * The control plane's MeshNetworks (the `istio` ConfigMap's `data.meshNetworks`, given with
 * `--mesh-config` or `startControlPlane({ meshNetworks })`) reaches the meshes it feeds with its
 * MeshConfig, as istiod's proxies get the gateways of its MeshNetworks: a caller on another network
 * than a registered instance reaches it through the gateway the pushed MeshNetworks names, a
 * mesh's own `meshNetworks` wins whole, a change is compiled in live (istiod pushes on a networks
 * change: pilot/pkg/model/network.go reloadGateways), an invalid one is refused naming the field.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { ControlPlaneMeshConfig } from '../../src/mesh-config-push.ts';
import { quietLogger, shortJitter, startTestControlPlane, until } from './client-helpers.ts';

const reviewsEntry = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { hosts: ['reviews.example'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], workloadSelector: { labels: { app: 'reviews' } } },
};
const westGateway = (address: string) => ({ networks: { west: { gateways: [{ address, port: 15443 }] } } });

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

const endpoints = (m: Mesh) => (m.explain({ url: 'http://reviews.example:9080/' }).targets[0]?.endpoints ?? []).map((e) => `${e.endpoint}${e.gateway === undefined ? '' : ` ${e.gateway}`}`);

test("a fed mesh routes to another network through the control plane's MeshNetworks; its own wins; a change applies live; an invalid one is refused", async () => {
  const t = await startTestControlPlane({ reviews: [reviewsEntry] }, { meshConfig: {}, meshNetworks: westGateway('192.0.2.9') });
  open.push({ close: () => t.close() });
  assert.deepEqual(t.cp.status().meshConfig?.settings, ['meshNetworks']);
  const warnings: string[] = [];
  const mesh = async (service: string, o: object) => {
    const token = await t.cp.mintToken({ service, namespace: 'default' });
    const m = await createMesh({ service, controlPlane: t.cp.url, token, logger: quietLogger, random: shortJitter(9), ...o });
    open.unshift(m);
    return m;
  };
  const reviews = await mesh('reviews', { labels: { app: 'reviews' }, network: 'west' });
  const east = await mesh('productpage', { network: 'east', logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
  const own = await mesh('productpage', { network: 'east', meshNetworks: westGateway('192.0.2.50') });
  const west = await mesh('productpage', { network: 'west' });
  const reg = await reviews.register({ ports: { http: 9080 }, address: '10.2.0.7' });
  open.unshift(reg);
  await until(() => endpoints(east).length > 0 && endpoints(own).length > 0 && endpoints(west).length > 0, 'every caller sees the instance');
  assert.deepEqual(endpoints(east), ['192.0.2.9:15443 east-west gateway of network west (meshNetworks networks.west.gateways[0]) for 10.2.0.7:9080']);
  assert.deepEqual(endpoints(own), ['192.0.2.50:15443 east-west gateway of network west (meshNetworks networks.west.gateways[0]) for 10.2.0.7:9080'], 'its own meshNetworks wins');
  assert.deepEqual(endpoints(west), ['10.2.0.7:9080'], 'the same network: dialled directly');

  // The gateway moves: compiled in live, same config and endpoints versions.
  const before = east.snapshot;
  t.cp.setMeshConfig({}, 'test-mesh.yaml', westGateway('192.0.2.10'));
  await until(() => endpoints(east)[0]?.startsWith('192.0.2.10:15443') === true, 'the new gateway compiled in');
  assert.equal(east.snapshot.version, before.version);
  assert.deepEqual(endpoints(own), ['192.0.2.50:15443 east-west gateway of network west (meshNetworks networks.west.gateways[0]) for 10.2.0.7:9080']);

  // An invalid one (startControlPlane checks what it is given; a pushed one is checked again by the mesh).
  assert.throws(() => t.cp.setMeshConfig({}, 'test-mesh.yaml', 'networks:\n  west:\n    gateways:\n    - address: 192.0.2.11\n'), /meshNetworks.*port/);
  assert.equal(warnings.filter((w) => /not applied/.test(w)).length, 0);
  assert.match(endpoints(east)[0] ?? '', /^192\.0\.2\.10:15443/);
});

test('a pushed MeshNetworks the mesh cannot read is refused with the MeshConfig it came with, naming the field; the settings in use stay', () => {
  const warnings: string[] = [];
  const c = new ControlPlaneMeshConfig({ service: 'productpage', controlPlane: 'http://cp:15010' }, { network: 'east' }, { warn: (m: string) => warnings.push(m) });
  assert.equal(c.accept({ version: 'v1', meshConfig: { connectTimeout: '2s' }, meshNetworks: westGateway('192.0.2.9') }, 'http://cp:15010'), true);
  assert.equal(c.networks?.meshNetworks?.networks.west?.gateways?.[0]?.address, '192.0.2.9');
  assert.equal(c.networks?.network, 'east', "the mesh's own network stays");
  assert.equal(c.accept({ version: 'v2', meshConfig: { connectTimeout: '3s' }, meshNetworks: { networks: { west: { gateways: [{ address: '192.0.2.11' }] } } } }, 'http://cp:15010'), false);
  assert.match(warnings.join('\n'), /version v2 is not applied, the settings in use stay: `meshNetworks` is invalid: .*port/);
  assert.equal(c.networks?.meshNetworks?.networks.west?.gateways?.[0]?.address, '192.0.2.9');
  assert.equal(c.meshSettings.connectTimeoutMs, 2000);
  assert.equal(c.event?.version, 'v1');
});
