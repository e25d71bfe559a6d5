/**
 * istiod's EndpointsByNetworkFilter table (pilot/pkg/xds/endpoints/ep_filters_test.go), translated:
 * the same gateways and endpoints, and the same expected endpoints and weights from each network.
 * Left out of the translation: the ServiceEntry host endpoint `foo.bar` and the HBONE endpoint
 * 10.0.0.3 (meshlet has neither ambient nor HBONE); the ambient and IP-family cases.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkTopology, type NetworkGateway } from '../config/network-topology.ts';
import type { Endpoint } from '../config/registry.ts';
import { CLUSTER_LABEL, NETWORK_LABEL } from '../config/topology.ts';
import { filterByNetwork } from './network-filter.ts';

function ep(address: string, network: string, cluster: string, over: Partial<Endpoint> = {}): Endpoint {
  const labels: Record<string, string> = { app: 'example', 'security.istio.io/tlsMode': 'istio', [CLUSTER_LABEL]: cluster };
  if (network !== '') labels[NETWORK_LABEL] = network;
  return { address, port: 8080, labels, locality: '', weight: 1, origin: 'test', serviceAccount: 'default', namespace: 'ns', workloadName: 'example', key: `${address}:8080`, ...over };
}

const gw = (network: string, cluster: string, address: string, port: number): NetworkGateway => ({ network, cluster, address, port, origin: `test ${address}` });

// environment(): the gateways of ep_filters_test.go (HBONE ports do not matter to a sidecar).
const GATEWAYS = [gw('network1', 'cluster1a', '1.1.1.1', 80), gw('network2', 'cluster2a', '2.2.2.2', 80), gw('network2', 'cluster2b', '2.2.2.20', 80), gw('network2', 'cluster2b', '2.2.2.21', 80), gw('network3', 'cluster3', '3.3.3.3', 443)];
// testShards(), without foo.bar and the HBONE 10.0.0.3.
const ENDPOINTS = [ep('10.0.0.1', 'network1', 'cluster1a'), ep('10.0.0.2', 'network1', 'cluster1b'), ep('20.0.0.1', 'network2', 'cluster2a'), ep('20.0.0.2', 'network2', 'cluster2b'), ep('20.0.0.3', 'network2', 'cluster2b'), ep('40.0.0.1', 'network4', 'cluster4')];

const all = () => true;

function run(network: string, endpoints: readonly Endpoint[], gateways: readonly NetworkGateway[], mtls: (e: Endpoint) => boolean = all): [string, number][] {
  const topo = new NetworkTopology({ network }, [], gateways);
  const r = filterByNetwork(endpoints, topo, mtls);
  assert.ok(r !== undefined, 'multi-network is enabled');
  return r.endpoints.map((e): [string, number] => [e.address, e.weight]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

describe('EndpointsByNetworkFilter (Istio ep_filters_test.go)', () => {
  const cases: { name: string; network: string; want: [string, number][] }[] = [
    // from_network1_cluster1a / 1b: local endpoints, each remote cluster's gateways, network4 (no gateway) directly.
    { name: 'from_network1', network: 'network1', want: [['10.0.0.1', 6], ['10.0.0.2', 6], ['2.2.2.2', 6], ['2.2.2.20', 6], ['2.2.2.21', 6], ['40.0.0.1', 6]] },
    // from_network2_*: network1's two endpoints aggregated at its one gateway.
    { name: 'from_network2', network: 'network2', want: [['1.1.1.1', 12], ['20.0.0.1', 6], ['20.0.0.2', 6], ['20.0.0.3', 6], ['40.0.0.1', 6]] },
    { name: 'from_network3_cluster3', network: 'network3', want: [['1.1.1.1', 12], ['2.2.2.2', 6], ['2.2.2.20', 6], ['2.2.2.21', 6], ['40.0.0.1', 6]] },
    { name: 'from_network4_cluster4', network: 'network4', want: [['1.1.1.1', 12], ['2.2.2.2', 6], ['2.2.2.20', 6], ['2.2.2.21', 6], ['40.0.0.1', 6]] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(run(c.network, ENDPOINTS, GATEWAYS), c.want));

  it('mTLS disabled for the destination (TestEndpointsByNetworkFilter_WithConfig noCrossNetwork): remote endpoints are dropped, not dialled', () => {
    const none = () => false;
    assert.deepEqual(run('network1', ENDPOINTS, GATEWAYS, none), [['10.0.0.1', 6], ['10.0.0.2', 6], ['40.0.0.1', 6]]);
    assert.deepEqual(run('network2', ENDPOINTS, GATEWAYS, none), [['20.0.0.1', 6], ['20.0.0.2', 6], ['20.0.0.3', 6], ['40.0.0.1', 6]]);
    assert.deepEqual(run('network3', ENDPOINTS, GATEWAYS, none), [['40.0.0.1', 6]]);
    assert.deepEqual(run('network4', ENDPOINTS, GATEWAYS, none), [['40.0.0.1', 6]]);
  });

  it('a proxy with no network (TestEndpointsByNetworkFilter_ProxyWithEmptyNetwork): forceGateway for networks with gateways', () => {
    const gws = [gw('network-1', '', '1.1.1.1', 15443), gw('network-2', '', '2.2.2.2', 15443)];
    const eps = [ep('3.3.3.3', 'network-without-gateway', 'Kubernetes'), ep('10.10.10.10', 'network-1', 'Kubernetes'), ep('', 'network-2', 'Kubernetes'), ep('', 'network-without-gateway', 'Kubernetes')];
    assert.deepEqual(run('', eps, gws), [['1.1.1.1', 1], ['2.2.2.2', 1], ['3.3.3.3', 1]]);
  });

  it('multi-network not configured (no gateway anywhere): every endpoint as it is', () => {
    assert.equal(filterByNetwork(ENDPOINTS, new NetworkTopology({ network: 'network1' }, []), all), undefined);
  });

  it('a gateway endpoint: the gateway address, mTLS label, the locality of the endpoints it stands for, what it stands for', () => {
    const eps = [ep('20.0.0.1', 'network2', 'cluster2a', { locality: 'r/z' }), ep('20.0.0.9', 'network2', 'cluster2a', { locality: 'r/y' })];
    const r = filterByNetwork(eps, new NetworkTopology({ network: 'network1' }, [], [gw('network2', 'cluster2a', '2.2.2.2', 15443)]), all);
    assert.ok(r !== undefined);
    assert.deepEqual(
      r.endpoints.map((e) => [e.key, e.locality, e.labels['security.istio.io/tlsMode'], e.labels[NETWORK_LABEL], e.gateway?.endpoints]),
      [
        ['2.2.2.2:15443', 'r/z', 'istio', 'network2', ['20.0.0.1:8080']],
        ['2.2.2.2:15443@r/y', 'r/y', 'istio', 'network2', ['20.0.0.9:8080']],
      ],
    );
    assert.match(r.summary, /this workload is on network network1; 2 endpoint\(s\) on other networks reached through gateway 2\.2\.2\.2:15443/);
  });

  it('weights: scaled by the lcm of gateways per network and per network+cluster, split among the gateways, clipped at 2^32-1', () => {
    const eps = [ep('20.0.0.2', 'network2', 'cluster2b', { weight: 5 }), ep('10.0.0.1', 'network1', 'cluster1a', { weight: 4294967295 })];
    assert.deepEqual(run('network1', eps, GATEWAYS), [['10.0.0.1', 4294967295], ['2.2.2.20', 15], ['2.2.2.21', 15]]);
  });
});

describe('NetworkTopology: the network of an endpoint without one', () => {
  const meshNetworks = { networks: { west: { endpoints: [{ fromCidr: '10.1.0.0/16' }], gateways: [{ address: '192.0.2.1', port: 15443 }] }, east: { endpoints: [{ fromCidr: '10.2.0.0/16' }, { fromCidr: 'fd00::/8' }] } } };
  it('fromCidr: the network whose CIDR holds the address; a label wins; none matches → none', () => {
    const t = new NetworkTopology({ network: 'east', meshNetworks }, []);
    assert.equal(t.networkOf({ address: '10.1.2.3', labels: {} }), 'west');
    assert.equal(t.networkOf({ address: '10.2.2.3', labels: {} }), 'east');
    assert.equal(t.networkOf({ address: 'fd00::1', labels: {} }), 'east');
    assert.equal(t.networkOf({ address: '10.1.2.3', labels: { [NETWORK_LABEL]: 'other' } }), 'other');
    assert.equal(t.networkOf({ address: '172.16.0.1', labels: {} }), '');
    assert.equal(t.networkOf({ address: 'db.example.com', labels: {} }), '');
  });
  it('fromRegistry: Kubernetes puts every endpoint without a label on that network', () => {
    const t = new NetworkTopology({ network: 'a', meshNetworks: { networks: { b: { endpoints: [{ fromRegistry: 'Kubernetes' }] }, c: { endpoints: [{ fromCidr: '10.0.0.0/8' }] } } } }, []);
    assert.equal(t.networkOf({ address: '10.1.2.3', labels: {} }), 'b');
  });
});
