/**
 * A Kubernetes Service's `spec.trafficDistribution` (and Istio's
 * `networking.istio.io/traffic-distribution` annotation, also on a ServiceEntry), through real
 * calls: endpoints in the caller's zone get every call, with no DestinationRule and no outlier
 * detection (istiod's `GetLocalityLbSetting` forces the failover); the other zone gets calls only
 * when the caller's zone has no endpoint; a DestinationRule `localityLbSetting` wins over it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { call, destinationRule, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const workloadEntry = (name: string, app: string, port: number, locality: string, extra: Record<string, string> = {}) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default' },
  spec: { address: '127.0.0.1', ports: { http: port }, labels: { app, ...extra }, locality },
});

const service = (name: string, spec: Record<string, unknown> = {}, annotations?: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', ...(annotations === undefined ? {} : { annotations }) },
  spec: { ports: [{ name: 'http', port: 9080 }], selector: { app: name }, ...spec },
});

describe('trafficDistribution, through real calls', () => {
  const ups: Record<string, Upstream> = {};
  let mesh: Mesh;

  before(async () => {
    for (const n of ['a-near', 'a-far', 'b-near', 'b-far', 'c-near', 'c-far', 'c2-near', 'c2-far', 'd-region', 'd-far', 'e-near', 'e-far', 'f-node', 'f-zone']) ups[n] = await startUpstream(n);
    const up = (n: string) => (ups[n] as Upstream).port;
    mesh = await createMesh({
      service: 'client',
      locality: 'us-east/us-east-1a/rack-1',
      labels: { app: 'client', 'kubernetes.io/hostname': 'node-1' },
      random: seededRandom(11),
      config: [
        // a: spec.trafficDistribution PreferClose → same zone only.
        service('a', { trafficDistribution: 'PreferClose' }),
        workloadEntry('a-near', 'a', up('a-near'), 'us-east/us-east-1a/rack-9'),
        workloadEntry('a-far', 'a', up('a-far'), 'us-east/us-east-1b/rack-1'),
        // b: no preference → both.
        service('b'),
        workloadEntry('b-near', 'b', up('b-near'), 'us-east/us-east-1a/rack-1'),
        workloadEntry('b-far', 'b', up('b-far'), 'us-west/us-west-1a/rack-1'),
        // c: the annotation (any case), with a DestinationRule that turns locality off: the rule wins.
        service('c', {}, { 'networking.istio.io/traffic-distribution': 'preferclose' }),
        workloadEntry('c-near', 'c', up('c-near'), 'us-east/us-east-1a/rack-1'),
        workloadEntry('c-far', 'c', up('c-far'), 'us-west/us-west-1a/rack-1'),
        destinationRule('c', 'c', { trafficPolicy: { loadBalancer: { localityLbSetting: { enabled: false } } } }),
        // c2: the same annotation without a DestinationRule: applied.
        service('c2', {}, { 'networking.istio.io/traffic-distribution': 'preferclose' }),
        workloadEntry('c2-near', 'c2', up('c2-near'), 'us-east/us-east-1a/rack-1'),
        workloadEntry('c2-far', 'c2', up('c2-far'), 'us-west/us-west-1a/rack-1'),
        // d: nothing in the caller's zone: the next tier (same region, another zone) before another region.
        service('d', { trafficDistribution: 'PreferSameZone' }),
        workloadEntry('d-region', 'd', up('d-region'), 'us-east/us-east-1c/rack-1'),
        workloadEntry('d-far', 'd', up('d-far'), 'us-west/us-west-1a/rack-1'),
        // e: a ServiceEntry with the annotation.
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'e', namespace: 'default', annotations: { 'networking.istio.io/traffic-distribution': 'PreferSameZone' } },
          spec: { hosts: ['e.example.internal'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], workloadSelector: { labels: { app: 'e' } } },
        },
        workloadEntry('e-near', 'e', up('e-near'), 'us-east/us-east-1a'),
        workloadEntry('e-far', 'e', up('e-far'), 'eu-west/eu-west-1a'),
        // f: PreferSameNode: the endpoint on the caller's node (kubernetes.io/hostname) first.
        service('f', { trafficDistribution: 'PreferSameNode' }),
        workloadEntry('f-node', 'f', up('f-node'), 'us-east/us-east-1a/rack-1', { 'kubernetes.io/hostname': 'node-1' }),
        workloadEntry('f-zone', 'f', up('f-zone'), 'us-east/us-east-1a/rack-1', { 'kubernetes.io/hostname': 'node-2' }),
      ],
    });
  });

  after(async () => {
    await mesh.close();
    await Promise.all(Object.values(ups).map((u) => u.close()));
  });

  async function served(url: string, n = 16): Promise<string[]> {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await call(mesh, url);
      assert.equal(r.status, 200, `${r.status} ${r.flags}`);
      seen.add(r.body);
    }
    return [...seen].sort();
  }

  const rows: { name: string; url: string; served: string[] }[] = [
    { name: 'spec PreferClose: the caller’s zone only (another rack of it too), no outlier detection needed', url: 'http://a:9080/', served: ['a-near'] },
    { name: 'no trafficDistribution: every endpoint', url: 'http://b:9080/', served: ['b-far', 'b-near'] },
    { name: 'a DestinationRule localityLbSetting wins over the annotation', url: 'http://c:9080/', served: ['c-far', 'c-near'] },
    { name: 'the annotation (any case) without a DestinationRule', url: 'http://c2:9080/', served: ['c2-near'] },
    { name: 'PreferSameZone with nothing in the zone: the same region before another', url: 'http://d:9080/', served: ['d-region'] },
    { name: 'a ServiceEntry’s annotation', url: 'http://e.example.internal:9080/', served: ['e-near'] },
    { name: 'PreferSameNode: the caller’s node first', url: 'http://f:9080/', served: ['f-node'] },
  ];
  for (const r of rows) {
    it(r.name, async () => {
      assert.deepEqual(await served(r.url), r.served);
    });
  }

  it('a DNS ServiceEntry is tiered too (Istio 1.30 tiers DNS clusters, 225ab8ff1fc); a passthrough one is not', async () => {
    const m = await createMesh({
      service: 'client',
      locality: 'us-east/us-east-1a',
      config: ['DNS', 'NONE'].map((resolution) => ({
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: { name: resolution.toLowerCase(), namespace: 'default', annotations: { 'networking.istio.io/traffic-distribution': 'PreferClose' } },
        spec: { hosts: [`${resolution.toLowerCase()}.example.internal`], location: 'MESH_INTERNAL', resolution, ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], ...(resolution === 'DNS' ? { endpoints: [{ address: 'near.example.internal', locality: 'us-east/us-east-1a' }, { address: 'far.example.internal', locality: 'us-west/us-west-1a' }] } : {}) },
      })),
    });
    try {
      assert.equal(m.snapshot.clusters.get('outbound|80||dns.example.internal')?.settings.loadBalancer.trafficDistribution, 'PreferSameZone');
      assert.doesNotMatch(JSON.stringify(m.explain({ url: 'http://none.example.internal/' })), /trafficDistribution|failoverPriority/);
    } finally {
      await m.close();
    }
  });

  it('explain names it', () => {
    const x = mesh.explain({ url: 'http://a:9080/' });
    assert.match(x.outcome === 'routed' ? (x.targets[0]?.loadBalancer ?? '') : '', /trafficDistribution PreferSameZone: failoverPriority \[topology\.istio\.io\/network, topology\.kubernetes\.io\/region, topology\.kubernetes\.io\/zone\]: P0 1, P1 1$/);
  });
});
