/**
 * Subsets that select on the topology labels Istio adds to every endpoint (region, zone,
 * subzone from the locality; the cluster; the network), through real calls: a Kubernetes
 * Service selects WorkloadEntries in two zones, and a VirtualService sends each request to
 * the zone subset it names.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { call, destinationRule, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const workloadEntry = (name: string, port: number, spec: Record<string, unknown>) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default' },
  spec: { address: '127.0.0.1', ports: { http: port }, ...spec },
});

describe('subsets on topology labels, through real calls', () => {
  let east: Upstream;
  let west: Upstream;
  let westRack: Upstream;
  let mesh: Mesh;

  before(async () => {
    east = await startUpstream('east');
    west = await startUpstream('west');
    westRack = await startUpstream('west-rack-2');
    mesh = await createMesh({
      service: 'productpage',
      random: seededRandom(7), // endpoint picks are deterministic: the test never depends on luck
      config: [
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 9080 }], selector: { app: 'reviews' } } },
        workloadEntry('reviews-east', east.port, { labels: { app: 'reviews' }, locality: 'us-east/us-east-1a' }),
        workloadEntry('reviews-west', west.port, { labels: { app: 'reviews' }, locality: 'us-west/us-west-1b/rack-1', network: 'net-west' }),
        // Locality given as a label, as Kubernetes labels must spell it (`.` for `/`).
        workloadEntry('reviews-west-2', westRack.port, { labels: { app: 'reviews', 'topology.istio.io/locality': 'us-west.us-west-1b.rack-2' } }),
        destinationRule('reviews', 'reviews', {
          subsets: [
            { name: 'east', labels: { 'topology.kubernetes.io/zone': 'us-east-1a' } },
            { name: 'west', labels: { 'topology.kubernetes.io/region': 'us-west' } },
            { name: 'rack-2', labels: { 'topology.istio.io/subzone': 'rack-2' } },
            { name: 'net-west', labels: { 'topology.istio.io/network': 'net-west' } },
            { name: 'cluster', labels: { 'topology.istio.io/cluster': 'Kubernetes', app: 'reviews' } },
          ],
        }),
        virtualService('reviews', ['reviews'], [
          ...['east', 'west', 'rack-2', 'net-west', 'cluster'].map((subset) => ({
            match: [{ headers: { 'x-subset': { exact: subset } } }],
            route: [{ destination: { host: 'reviews', subset } }],
          })),
          { route: [{ destination: { host: 'reviews', subset: 'east' } }] },
        ]),
      ],
    });
  });

  after(async () => {
    await mesh.close();
    await Promise.all([east, west, westRack].map((u) => u.close()));
  });

  const rows: { subset: string; served: string[] }[] = [
    { subset: 'east', served: ['east'] },
    { subset: 'west', served: ['west', 'west-rack-2'] },
    { subset: 'rack-2', served: ['west-rack-2'] },
    { subset: 'net-west', served: ['west'] },
    { subset: 'cluster', served: ['east', 'west', 'west-rack-2'] },
  ];
  for (const r of rows) {
    test(`subset ${r.subset} reaches ${r.served.join(', ')}`, async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const res = await call(mesh, 'http://reviews:9080/', { headers: { 'x-subset': r.subset } });
        assert.equal(res.status, 200, `${res.status} ${res.flags}`);
        seen.add(res.body);
      }
      assert.deepEqual([...seen].sort(), [...r.served].sort());
    });
  }
});
