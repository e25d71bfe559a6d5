/** createMesh({ network, meshNetworks }) and the istio ConfigMap's data.meshNetworks through meshConfig. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMesh, isMeshletError, type Mesh } from '../../src/index.ts';

const HOST = 'reviews.default.svc.cluster.local';
const quiet = { warn: () => undefined, error: () => undefined };
const config = [
  {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: { hosts: [HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '10.1.0.5', labels: { 'security.istio.io/tlsMode': 'istio' } }, { address: '10.2.0.5', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
  },
];
const MESH_NETWORKS = 'networks:\n  west:\n    endpoints: [{fromCidr: 10.1.0.0/16}]\n    gateways: [{address: 192.0.2.1, port: 15443}]\n  east:\n    endpoints: [{fromCidr: 10.2.0.0/16}]\n';

describe('createMesh: network and meshNetworks', () => {
  const meshes: Mesh[] = [];
  after(() => Promise.all(meshes.map((m) => m.close())));
  const mesh = async (o: object) => {
    const m = await createMesh({ service: 'productpage', config, logger: quiet, ...o });
    meshes.push(m);
    return m;
  };
  const explained = (m: Mesh) => String(m.explain({ url: `http://${HOST}:9080/` }));

  it('meshNetworks and network: the remote endpoint is the gateway', async () => {
    const text = explained(await mesh({ network: 'east', meshNetworks: MESH_NETWORKS }));
    assert.match(text, /network: multi-network: this workload is on network east; 1 endpoint\(s\) on other networks reached through gateway 192\.0\.2\.1:15443 \(meshNetworks networks\.west\.gateways\[0\]\)/);
    assert.match(text, /via: east-west gateway of network west \(meshNetworks networks\.west\.gateways\[0\]\) for 10\.1\.0\.5:9080/);
  });

  it('the network defaults to the topology.istio.io/network label of the mesh', async () => {
    assert.match(explained(await mesh({ labels: { 'topology.istio.io/network': 'east' }, meshNetworks: MESH_NETWORKS })), /this workload is on network east;/);
  });

  it('the istio ConfigMap given as meshConfig brings its data.meshNetworks; an explicit meshNetworks wins', async () => {
    const meshConfig = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'istio-system' }, data: { mesh: 'trustDomain: cluster.local\n', meshNetworks: MESH_NETWORKS } };
    assert.match(explained(await mesh({ network: 'east', meshConfig })), /reached through gateway 192\.0\.2\.1:15443/);
    const text = explained(await mesh({ network: 'east', meshConfig, meshNetworks: { networks: {} } }));
    assert.doesNotMatch(text, /network:/);
  });

  it('an invalid meshNetworks or network is refused at createMesh, naming what and where', async () => {
    const e = await createMesh({ service: 'p', config, meshNetworks: { networks: { west: { gateways: [{ address: '192.0.2.1' }] } } } as never }).then(
      () => assert.fail('expected a refusal'),
      (err: Error) => err,
    );
    assert.ok(isMeshletError(e, 'MESHLET_ERR_INVALID_ARG'));
    assert.equal(e.message, 'createMesh: `meshNetworks` is invalid: networks.west.gateways[0].port: must be a port number 1-65535, got undefined');
    await assert.rejects(createMesh({ service: 'p', config, network: 7 as never }), /createMesh: `network` must be a network name \(a string\), got 7/);
  });
});
