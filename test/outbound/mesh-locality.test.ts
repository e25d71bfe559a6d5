/**
 * MeshConfig's `localityLbSetting` (`createMesh({ localityLbSetting })`, or `meshConfig`), through
 * real calls: istiod's GetEffectiveLbSetting takes the DestinationRule's setting first, then the
 * Service's trafficDistribution, then the MeshConfig's. Mesh-wide `enabled: false` turns the
 * locality tiers off for a destination with outlier detection and no setting of its own; a mesh-wide
 * `failover` names the next region.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, InvalidArgumentError, type Mesh, seededRandom } from '../../src/index.ts';
import { call, destinationRule, startUpstream, type Upstream } from '../helpers/upstreams.ts';

const NET = 'networking.istio.io/v1';
const entry = (name: string, app: string, port: number, locality: string) => ({ apiVersion: NET, kind: 'WorkloadEntry', metadata: { name, namespace: 'default' }, spec: { address: '127.0.0.1', ports: { http: port }, labels: { app }, locality } });
const service = (name: string) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ name: 'http', port: 9080 }], selector: { app: name } } });
const OD = { outlierDetection: { consecutive5xxErrors: 5 } };

describe("MeshConfig's localityLbSetting", () => {
  const ups: Record<string, Upstream> = {};
  const meshes: Mesh[] = [];
  const config = () => {
    const p = (n: string) => (ups[n] as Upstream).port;
    return [
      service('a'),
      entry('a-near', 'a', p('a-near'), 'us-east/zone-a'),
      entry('a-far', 'a', p('a-far'), 'eu-west/zone-a'),
      destinationRule('a', 'a', { trafficPolicy: OD }),
      service('b'),
      entry('b-near', 'b', p('b-near'), 'us-east/zone-a'),
      entry('b-far', 'b', p('b-far'), 'eu-west/zone-a'),
      // The rule's own setting wins over the mesh's.
      destinationRule('b', 'b', { trafficPolicy: { ...OD, loadBalancer: { localityLbSetting: { enabled: true } } } }),
      service('c'),
      entry('c-eu', 'c', p('c-eu'), 'eu-west/zone-a'),
      entry('c-ap', 'c', p('c-ap'), 'ap-south/zone-a'),
      destinationRule('c', 'c', { trafficPolicy: OD }),
    ];
  };
  const tally = async (mesh: Mesh, host: string) => {
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add((await call(mesh, `http://${host}:9080/`)).body);
    return [...seen].sort();
  };

  before(async () => {
    for (const n of ['a-near', 'a-far', 'b-near', 'b-far', 'c-eu', 'c-ap']) ups[n] = await startUpstream(n);
  });
  after(async () => {
    for (const m of meshes) await m.close();
    for (const u of Object.values(ups)) await u.close();
  });

  it('enabled: false (given as MeshConfig) spreads calls over every locality; a DestinationRule setting still tiers', async () => {
    const mesh = await createMesh({ service: 'client', locality: 'us-east/zone-a', random: seededRandom(3), config: config(), meshConfig: 'localityLbSetting:\n  enabled: false\n' });
    meshes.push(mesh);
    assert.deepEqual(await tally(mesh, 'a'), ['a-far', 'a-near']);
    assert.deepEqual(await tally(mesh, 'b'), ['b-near']);
  });

  it('without it, the default (enabled) keeps calls in the caller locality', async () => {
    const mesh = await createMesh({ service: 'client', locality: 'us-east/zone-a', random: seededRandom(3), config: config() });
    meshes.push(mesh);
    assert.deepEqual(await tally(mesh, 'a'), ['a-near']);
  });

  it('a mesh-wide failover names the region to fail over to', async () => {
    const near = await createMesh({ service: 'client', locality: 'us-east/zone-a', random: seededRandom(3), config: config() });
    const toAp = await createMesh({ service: 'client', locality: 'us-east/zone-a', random: seededRandom(3), config: config(), localityLbSetting: { failover: [{ from: 'us-east', to: 'ap-south' }] } });
    meshes.push(near, toAp);
    // Without a failover rule both other regions are one tier; with it, ap-south comes first.
    assert.deepEqual(await tally(near, 'c'), ['c-ap', 'c-eu']);
    assert.deepEqual(await tally(toAp, 'c'), ['c-ap']);
    assert.match(String(toAp.explain({ url: 'http://c:9080/' })), /locality failover from us-east\/zone-a \(us-east→ap-south\): P0 1, P1 1/);
  });

  it('an invalid setting is refused, naming the field', async () => {
    await assert.rejects(
      () => createMesh({ service: 'client', config: [], localityLbSetting: { distribute: [{ from: 'us-east/*', to: { 'eu-west/*': 60 } }] } }),
      (e: unknown) => e instanceof InvalidArgumentError && /localityLbSetting.*distribute\[0\]\.to: weights must add up to 100, got 60/.test(e.message),
    );
  });
});

describe('mesh.explain input', () => {
  it('a URL string instead of a request, or a relative URL, is refused naming what to write', async () => {
    const mesh = await createMesh({ service: 'client', config: [] });
    try {
      assert.throws(() => mesh.explain('http://reviews:9080/' as never), (e: unknown) => e instanceof InvalidArgumentError && e.message.includes('write { url: "http://reviews:9080/" }'));
      assert.throws(() => mesh.explain({ url: '/reviews' }), (e: unknown) => e instanceof InvalidArgumentError && /url "\/reviews" is not an absolute URL/.test(e.message));
    } finally {
      await mesh.close();
    }
  });
});
