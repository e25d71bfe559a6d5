/**
 * Multi-network in control-plane mode: a workload registers on its mesh's network (`network`, or
 * its `topology.istio.io/network` label); a caller on another network, given MeshNetworks with
 * that network's gateway, reaches the registered instance through the gateway; a caller on the
 * same network dials it directly.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createMesh, type DnsAnswer, ManualClock, type Mesh } from '../../src/index.ts';
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

test('a gateway given by host name: resolved before the first snapshot; a new answer installs the same versions with the new gateway', async () => {
  const clock = new ManualClock();
  let answer: DnsAnswer = { addresses: ['192.0.2.20'], ttlMs: 30_000 };
  const asked: string[] = [];
  const resolve = async (name: string): Promise<DnsAnswer> => {
    asked.push(name);
    return answer;
  };
  const named = { networks: { west: { gateways: [{ address: 'eastwest.west.example', port: 15443 }] } } };
  const reviews = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'reviews', namespace: 'default' }), logger: quietLogger, labels: { app: 'reviews' }, network: 'west' });
  meshes.push(reviews);
  const east = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'productpage', namespace: 'default' }), logger: quietLogger, network: 'east', meshNetworks: named, clock, dns: { resolve } });
  meshes.push(east);
  assert.deepEqual(asked, ['eastwest.west.example']);
  const reg = await reviews.register({ ports: { http: 9080 }, address: '10.2.0.8' });
  try {
    await until(() => endpoints(east).some((e) => e.includes('10.2.0.8')), 'the caller sees the instance');
    assert.deepEqual(
      endpoints(east).filter((e) => e.includes('10.2.0.8')),
      ['192.0.2.20:15443 east-west gateway of network west (meshNetworks networks.west.gateways[0], host name eastwest.west.example) for 10.2.0.8:9080'],
    );
    const before = east.snapshot;
    const versions = [east.configVersion, before.version];
    answer = { addresses: ['192.0.2.21', '192.0.2.22'], ttlMs: 30_000 };
    clock.advance(30_000);
    await until(() => east.snapshot !== before, 'a new snapshot');
    assert.deepEqual([east.configVersion, east.snapshot.version], versions);
    assert.deepEqual(
      endpoints(east).filter((e) => e.includes('10.2.0.8')).map((e) => e.split(' ')[0]),
      ['192.0.2.21:15443', '192.0.2.22:15443'],
    );
  } finally {
    await reg.close();
  }
});
