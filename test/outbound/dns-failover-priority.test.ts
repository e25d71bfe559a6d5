/**
 * failoverPriority and a traffic distribution on a DNS ServiceEntry (a STRICT_DNS cluster), through
 * real calls: since Istio 1.30 istiod tiers a DNS cluster's endpoints by the labels as it tiers EDS
 * endpoints (cluster.go dnsWrappedLocalityLbEndpoints, 225ab8ff1fc; loadbalancer_simulation_test.go
 * TestFailoverPriorityWithDNSServiceEntry: the endpoint whose label matches the proxy's is P0).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type DnsAnswer, type Mesh, seededRandom } from '../../src/index.ts';
import { call, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const NAMES: Record<string, string> = { 'gold.example.test': '127.0.0.1', 'silver.example.test': '127.0.0.1' };
const resolve = async (name: string): Promise<DnsAnswer> => ({ addresses: [NAMES[name] ?? '127.0.0.9'] });

describe('failoverPriority on a DNS ServiceEntry', () => {
  let gold: Upstream;
  let silver: Upstream;
  const meshes: Mesh[] = [];
  before(async () => {
    gold = await startUpstream('gold');
    silver = await startUpstream('silver');
  });
  after(async () => {
    for (const m of meshes) await m.close();
    await gold.close();
    await silver.close();
  });
  const config = (lb: object, annotations?: Record<string, string>) => [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'db', namespace: 'default', ...(annotations === undefined ? {} : { annotations }) },
      spec: {
        hosts: ['db.example.test'],
        location: 'MESH_EXTERNAL',
        resolution: 'DNS',
        ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
        endpoints: [
          { address: 'gold.example.test', labels: { tier: 'gold' }, ports: { http: gold.port } },
          { address: 'silver.example.test', labels: { tier: 'silver' }, ports: { http: silver.port } },
        ],
      },
    },
    { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'db', namespace: 'default' }, spec: { host: 'db.example.test', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5 }, ...lb } } },
  ];
  const served = async (mesh: Mesh) => {
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add((await call(mesh, 'http://db.example.test/')).body);
    return [...seen].sort();
  };

  it("the endpoint whose label matches the caller's takes every call", async () => {
    const mesh = await createMesh({ service: 'client', labels: { tier: 'gold' }, random: seededRandom(5), dns: { resolve }, config: config({ loadBalancer: { localityLbSetting: { failoverPriority: ['tier'] } } }) });
    meshes.push(mesh);
    assert.deepEqual(await served(mesh), ['gold']);
    assert.match(String(mesh.explain({ url: 'http://db.example.test/' })), /failoverPriority \[tier\]: P0 1, P1 1/);
  });

  it("PreferClose on it prefers the caller's zone (endpoints that name their zone by label: one locality group, as istiod wraps it)", async () => {
    const withZones = config({}, { 'networking.istio.io/traffic-distribution': 'PreferClose' });
    const se = withZones[0] as { spec: { endpoints: { labels: Record<string, string> }[] } };
    Object.assign((se.spec.endpoints[0] as { labels: Record<string, string> }).labels, { 'topology.kubernetes.io/region': 'us-west', 'topology.kubernetes.io/zone': 'us-west-1a' });
    Object.assign((se.spec.endpoints[1] as { labels: Record<string, string> }).labels, { 'topology.kubernetes.io/region': 'us-east', 'topology.kubernetes.io/zone': 'us-east-1a' });
    const mesh = await createMesh({ service: 'client', locality: 'us-east/us-east-1a', random: seededRandom(5), dns: { resolve }, config: withZones });
    meshes.push(mesh);
    assert.deepEqual(await served(mesh), ['silver']);
  });
});
