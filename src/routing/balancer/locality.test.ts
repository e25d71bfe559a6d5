import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LocalityLoadBalancerSetting } from '../../config/types/destination-rule.ts';
import { ep, hostSet } from './fixtures.ts';
import type { HostState } from './host.ts';
import { type LocalityClient, type LocalityPlan, localityMatches, localityPriority, planLocality, withTopologyLabels } from './locality.ts';
import { choosePriority, effectiveLocalityWeight, priorityLoads, tierAvailability } from './priority-load.ts';

const CLIENT: LocalityClient = { locality: 'us-east/a/1', labels: {}, outlierDetection: true };

/** Hosts named by locality: `us-east/a/1#2` is the second host in us-east/a/1. */
const HOSTS: readonly HostState[] = hostSet([
  ep('10.0.0.1', { locality: 'us-east/a/1' }),
  ep('10.0.0.2', { locality: 'us-east/a/2' }),
  ep('10.0.0.3', { locality: 'us-east/b/1' }),
  ep('10.0.0.4', { locality: 'us-west/a/1' }),
  ep('10.0.0.5', { locality: 'eu-west/a/1' }),
  ep('10.0.0.6', { locality: 'us-east/a/1' }),
]).hosts;

/** Tier → locality → host addresses, for compact comparisons. */
function shape(plan: LocalityPlan): string[][] {
  return plan.tiers.map((t) => t.groups.map((g) => `${g.locality || '(none)'}=${g.hosts.map((h) => h.endpoint.address.slice(7)).join('+')}@${g.weight}`));
}

describe('localityMatches (Istio LocalityMatch)', () => {
  const rows: [string, string, boolean][] = [
    ['us-east/a/1', '*', true],
    ['us-east/a/1', 'us-east', true],
    ['us-east/a/1', 'us-east/*', true],
    ['us-east/a/1', 'us-east/a', true],
    ['us-east/a/1', 'us-east/a/*', true],
    ['us-east/a/1', 'us-east/a/1', true],
    ['us-east/a/1', 'us-east/b', false],
    ['us-east/a/1', 'us-east/a/2', false],
    ['us-east/a/1', 'us-west/*', false],
    ['us-east/a/1', '*/a', true],
    ['us-east', 'us-east/a', false],
    ['', '*', true],
    ['', 'us-east', false],
    // A '*' inside a part is literal, as in Istio.
    ['us-east/a/1', 'us-e*', false],
  ];
  for (const [loc, pattern, want] of rows) {
    it(`${JSON.stringify(loc)} ${want ? 'matches' : 'does not match'} ${JSON.stringify(pattern)}`, () => {
      assert.equal(localityMatches(loc, pattern), want);
    });
  }
});

describe('localityPriority (Istio LbPriority)', () => {
  it('ranks subzone, zone, region, other', () => {
    assert.deepEqual(
      ['us-east/a/1', 'us-east/a/2', 'us-east/b/1', 'us-west/a/1', ''].map((l) => localityPriority('us-east/a/1', l)),
      [0, 1, 2, 3, 3],
    );
  });
});

describe('tierAvailability / priorityLoads / choosePriority (Envoy, overprovisioning 1.4)', () => {
  it('availability is min(100, ⌊140·healthy/total⌋)', () => {
    assert.deepEqual(
      [
        [2, 2],
        [1, 2],
        [4, 5],
        [3, 5],
        [1, 5],
        [0, 3],
        [0, 0],
      ].map(([h, t]) => tierAvailability(h as number, t as number)),
      [100, 70, 100, 84, 28, 0, 0],
    );
  });

  const cases: [string, number[], number[]][] = [
    ['a healthy first tier takes everything', [100, 100, 100], [100, 0, 0]],
    ['70% available spills 30% to the next tier', [70, 100], [70, 30]],
    ['spill skips empty tiers', [28, 0, 100], [28, 0, 72]],
    ['availability under 100 in total is scaled up', [20, 30], [40, 60]],
    ['rounding leftovers go to the first available tier', [10, 20, 3], [31, 60, 9]],
    ['only a later tier is available', [0, 0, 84], [0, 0, 100]],
  ];
  for (const [name, availability, want] of cases) {
    it(name, () => {
      const loads = new Int32Array(availability.length);
      assert.equal(priorityLoads(availability, loads), true);
      assert.deepEqual(Array.from(loads), want);
      assert.equal(
        Array.from(loads).reduce((a, b) => a + b, 0),
        100,
      );
    });
  }

  it('nothing available → false and no tier', () => {
    const loads = new Int32Array(2);
    assert.equal(priorityLoads([0, 0], loads), false);
    assert.equal(choosePriority(loads, 42), -1);
  });

  it('choosePriority maps draw % 100 + 1 onto cumulative loads', () => {
    const loads = Int32Array.from([70, 30]);
    assert.equal(choosePriority(loads, 0), 0);
    assert.equal(choosePriority(loads, 69), 0);
    assert.equal(choosePriority(loads, 70), 1);
    assert.equal(choosePriority(loads, 199), 1);
    assert.equal(choosePriority(loads, 170), 1);
    assert.equal(choosePriority(loads, 4294967295), 1); // 95
  });

  it('effective locality weight is weight · min(1, 1.4·healthy/total)', () => {
    assert.equal(effectiveLocalityWeight(80, 2, 2), 80);
    assert.equal(effectiveLocalityWeight(80, 3, 4), 80);
    assert.ok(Math.abs(effectiveLocalityWeight(80, 1, 2) - 56) < 1e-9);
    assert.equal(effectiveLocalityWeight(80, 0, 2), 0);
  });
});

describe('planLocality', () => {
  it('default failover (outlier detection on): P0 subzone, P1 zone, P2 region, P3 elsewhere; no locality weighting', () => {
    const plan = planLocality(HOSTS, undefined, CLIENT);
    assert.deepEqual(shape(plan), [['us-east/a/1=1+6@2'], ['us-east/a/2=2@1'], ['us-east/b/1=3@1'], ['us-west/a/1=4@1', 'eu-west/a/1=5@1']]);
    assert.equal(plan.localityWeighted, false);
    assert.equal(plan.description, 'locality failover from us-east/a/1: P0 2, P1 1, P2 1, P3 2');
  });

  it('failover names the next region; other regions come last; locality weighting turns on', () => {
    const plan = planLocality(HOSTS, { failover: [{ from: 'us-east', to: 'eu-west' }] }, CLIENT);
    assert.deepEqual(shape(plan), [['us-east/a/1=1+6@2'], ['us-east/a/2=2@1'], ['us-east/b/1=3@1'], ['eu-west/a/1=5@1'], ['us-west/a/1=4@1']]);
    assert.equal(plan.localityWeighted, true);
  });

  it('only the first failover entry for the client region counts', () => {
    const plan = planLocality(
      HOSTS,
      {
        failover: [
          { from: 'us-east', to: 'us-west' },
          { from: 'us-east', to: 'eu-west' },
        ],
      },
      CLIENT,
    );
    assert.deepEqual(shape(plan).slice(3), [['us-west/a/1=4@1'], ['eu-west/a/1=5@1']]);
  });

  const single = (plan: LocalityPlan) => assert.equal(plan.tiers.length, 1, JSON.stringify(shape(plan)));
  it('without outlier detection there is one tier (failover needs it)', () => {
    const plan = planLocality(HOSTS, { failover: [{ from: 'us-east', to: 'eu-west' }] }, { ...CLIENT, outlierDetection: false });
    single(plan);
    assert.equal(plan.description, 'locality failover off (no outlierDetection)');
    assert.equal(planLocality(HOSTS, undefined, { ...CLIENT, outlierDetection: false }).description, '');
  });
  it('failoverPriority without a client locality or labels still makes Envoy pick a locality first (LocalityWeightedLbConfig)', () => {
    const none = planLocality(HOSTS, { failoverPriority: ['x'] }, { locality: '', labels: {}, outlierDetection: true });
    single(none);
    assert.equal(none.localityWeighted, true);
  });

  it('enabled: false turns locality off', () => single(planLocality(HOSTS, { enabled: false }, CLIENT)));
  it('a client without a locality gets one tier when every endpoint has a locality', () => single(planLocality(HOSTS, undefined, { ...CLIENT, locality: '' })));
  it('a client without a locality prefers endpoints without one (istiod: the proxy locality is empty, LbPriority 0 vs 3)', () => {
    const mixed = hostSet([ep('10.0.0.1', { locality: 'us-east/a/1' }), ep('10.0.0.2'), ep('10.0.0.3', { locality: 'eu-west/a/1' }), ep('10.0.0.4')]).hosts;
    const plan = planLocality(mixed, undefined, { ...CLIENT, locality: '' });
    assert.deepEqual(shape(plan), [['(none)=2+4@2'], ['us-east/a/1=1@1', 'eu-west/a/1=3@1']]);
    assert.equal(plan.description, 'locality failover from (no locality): P0 2, P1 2');
    // With failoverPriority and failover both set, istiod applies the locality tiers too.
    const both = planLocality(mixed, { failoverPriority: ['x'], failover: [{ from: 'us-east', to: 'eu-west' }] }, { locality: '', labels: { x: '1' }, outlierDetection: true });
    assert.deepEqual(shape(both), [['(none)=2+4@2'], ['us-east/a/1=1@1', 'eu-west/a/1=3@1']]);
    // Without outlier detection there are still no tiers.
    single(planLocality(mixed, undefined, { ...CLIENT, locality: '', outlierDetection: false }));
  });

  it('distribute: the first matching rule splits traffic by locality; unnamed localities get none', () => {
    const setting: LocalityLoadBalancerSetting = {
      distribute: [
        { from: 'us-west/*', to: { 'us-west/*': 100 } },
        { from: 'us-east/a/*', to: { 'us-east/a/*': 70, 'us-east/b/*': 20, 'eu-west/*': 10 } },
      ],
    };
    // Needs no outlier detection.
    const plan = planLocality(HOSTS, setting, { ...CLIENT, outlierDetection: false });
    // us-east/a/* has two localities of endpoint weight 2 and 1: 70 splits as ceil(70·2/3) = 47 and ceil(70·1/3) = 24.
    assert.deepEqual(shape(plan), [['us-east/a/1=1+6@47', 'us-east/a/2=2@24', 'us-east/b/1=3@20', 'eu-west/a/1=5@10']]);
    assert.equal(plan.localityWeighted, true);
    assert.equal(plan.description, 'locality distribute from us-east/a/*: us-east/a/* 70%, us-east/b/* 20%, eu-west/* 10%');
  });

  it('distribute applies to a client without a locality when a rule is from every locality (istiod matches its empty locality)', () => {
    const setting: LocalityLoadBalancerSetting = { distribute: [{ from: '*', to: { 'us-east/*': 80, 'eu-west/*': 20 } }] };
    const plan = planLocality(HOSTS, setting, { ...CLIENT, locality: '', outlierDetection: false });
    // us-east/* is three localities of endpoint weight 2, 1 and 1: ceil(80·2/4), ceil(80·1/4), ceil(80·1/4).
    assert.deepEqual(shape(plan), [['us-east/a/1=1+6@40', 'us-east/a/2=2@20', 'us-east/b/1=3@20', 'eu-west/a/1=5@20']]);
    assert.equal(plan.localityWeighted, true);
    // A rule from a named region does not match it: every locality, by endpoint weight (Envoy's locality-weighted balancing stays on).
    const none = planLocality(HOSTS, { distribute: [{ from: 'us-east/*', to: { 'us-east/*': 100 } }] }, { ...CLIENT, locality: '' });
    assert.equal(none.tiers[0]?.groups.length, 5);
    assert.equal(none.localityWeighted, true);
  });

  it('distribute with no rule for the client keeps every locality, weighted by endpoint weight, and no failover', () => {
    const plan = planLocality(HOSTS, { distribute: [{ from: 'ap-south/*', to: { 'ap-south/*': 100 } }] }, CLIENT);
    assert.equal(plan.tiers.length, 1);
    assert.equal(plan.tiers[0]?.groups.length, 5);
    assert.equal(plan.localityWeighted, true);
  });

  describe('failoverPriority', () => {
    const NET = 'topology.istio.io/network';
    const hosts = hostSet([
      ep('10.0.0.1', { labels: { [NET]: 'n1', version: 'v1' }, locality: 'r1/z1' }),
      ep('10.0.0.2', { labels: { [NET]: 'n1', version: 'v2' }, locality: 'r1/z1' }),
      ep('10.0.0.3', { labels: { [NET]: 'n2', version: 'v1' }, locality: 'r1/z2' }),
      ep('10.0.0.4', { labels: { version: 'v1' }, locality: 'r2/z1' }),
    ]).hosts;
    const client: LocalityClient = { locality: 'r1/z1', labels: { [NET]: 'n1', version: 'v1' }, outlierDetection: true };

    it('tiers by the longest matching prefix of the listed labels', () => {
      const plan = planLocality(hosts, { failoverPriority: [NET, 'version'] }, client);
      // all match → P0; network only → P1; nothing → P2 (host 3 and 4 differ on network).
      assert.deepEqual(shape(plan), [['r1/z1=1@1'], ['r1/z1=2@1'], ['r1/z2=3@1', 'r2/z1=4@1']]);
      assert.equal(plan.localityWeighted, true);
      assert.equal(plan.description, `failoverPriority [${NET}, version]: P0 1, P1 1, P2 2`);
    });

    it('key=value compares with the given value instead of the client label', () => {
      const plan = planLocality(hosts, { failoverPriority: ['version=v2'] }, client);
      assert.deepEqual(shape(plan), [['r1/z1=2@1'], ['r1/z1=1@1', 'r1/z2=3@1', 'r2/z1=4@1']]);
    });

    it('can use the topology labels derived from localities', () => {
      const plan = planLocality(hosts, { failoverPriority: ['topology.kubernetes.io/region', 'topology.kubernetes.io/zone'] }, client);
      assert.deepEqual(shape(plan), [['r1/z1=1+2@2'], ['r1/z2=3@1'], ['r2/z1=4@1']]);
    });

    it('with failover too, tiers combine as label tier · 5 + locality tier', () => {
      const plan = planLocality(hosts, { failoverPriority: ['version'], failover: [{ from: 'r1', to: 'r2' }] }, client);
      // version match: host 1 (same zone), 3 (same region), 4 (other region); no match: host 2.
      assert.deepEqual(shape(plan), [['r1/z1=1@1'], ['r1/z2=3@1'], ['r2/z1=4@1'], ['r1/z1=2@1']]);
    });

    // Istio 1.31 (b6787c126ec, "Network locality is preferred but not required"): a leading network
    // label ranks another network's endpoints by the remaining labels, after every same-network tier.
    it('a leading network label is preferred, not required (Istio TestApplyLocalitySetting "FailoverPriority including locality")', () => {
      const six = hostSet([
        ep('10.0.0.1', { labels: { [NET]: 'n1', region: 'region1', zone: 'zone1' } }),
        ep('10.0.0.2', { labels: { [NET]: 'n2', region: 'region1', zone: 'zone2' } }),
        ep('10.0.0.3', { labels: { [NET]: 'n1', region: 'region2', zone: 'zone2' } }),
        ep('10.0.0.4', { labels: { [NET]: 'n2', region: 'region3', zone: 'zone3' } }),
        ep('10.0.0.5', { labels: { [NET]: 'n2', region: 'region2', zone: 'zone2' } }),
        ep('10.0.0.6', { labels: { [NET]: 'n1', region: 'region3', zone: 'zone3' } }),
      ]).hosts;
      const c: LocalityClient = { locality: '', labels: { [NET]: 'n1', region: 'region2', zone: 'zone2' }, outlierDetection: true };
      // Istio's priorities: 3.3.3.3 → 0, 1.1.1.1 and 6.6.6.6 → 1, 5.5.5.5 → 2, 2.2.2.2 and 4.4.4.4 → 3.
      assert.deepEqual(shape(planLocality(six, { failoverPriority: [NET, 'region', 'zone'] }, c)), [['(none)=3@1'], ['(none)=1+6@2'], ['(none)=5@1'], ['(none)=2+4@2']]);
    });

    it('a caller on no network still prefers its region and zone among endpoints that name one (Istio "not match the first n label")', () => {
      const cluster = 'topology.istio.io/cluster';
      const eps = hostSet([
        ep('10.0.0.1', { labels: { [NET]: 'n1', [cluster]: 'c1' } }),
        ep('10.0.0.2', { labels: { [NET]: 'n2', [cluster]: 'c2' } }),
        ep('10.0.0.3', { labels: { [NET]: 'n1', [cluster]: 'c1' } }),
      ]).hosts;
      const c: LocalityClient = { locality: '', labels: { [NET]: 'test', [cluster]: 'c1' }, outlierDetection: true };
      assert.deepEqual(shape(planLocality(eps, { failoverPriority: [NET, cluster] }, c)), [['(none)=1+3@2'], ['(none)=2@1']]);
      // PreferSameZone's list, for a caller whose network is unset: same zone first, then same region, then the rest.
      const zoned = hostSet([
        ep('10.0.0.1', { labels: { [NET]: 'n1' }, locality: 'r1/z2' }),
        ep('10.0.0.2', { labels: { [NET]: 'n1' }, locality: 'r1/z1' }),
        ep('10.0.0.3', { labels: { [NET]: 'n1' }, locality: 'r2/z1' }),
      ]).hosts;
      const fp = [NET, 'topology.kubernetes.io/region', 'topology.kubernetes.io/zone'];
      assert.deepEqual(shape(planLocality(zoned, { failoverPriority: fp }, { locality: 'r1/z1', labels: {}, outlierDetection: true })), [['r1/z1=2@1'], ['r1/z2=1@1'], ['r2/z1=3@1']]);
    });

    it('network=value as the first entry is an ordinary required label (istiod compares the raw entry)', () => {
      const plan = planLocality(hosts, { failoverPriority: [`${NET}=n2`, 'version'] }, client);
      // host 3 is on n2 with version v1 → P0; every other host misses the first label → one last tier.
      assert.deepEqual(shape(plan), [['r1/z2=3@1'], ['r1/z1=1+2@2', 'r2/z1=4@1']]);
    });

    it('a client with no labels and no locality gets one tier', () => {
      assert.equal(planLocality(hosts, { failoverPriority: ['version'] }, { locality: '', labels: {}, outlierDetection: true }).tiers.length, 1);
    });
  });
});

describe('withTopologyLabels', () => {
  it('adds region, zone and subzone labels from a locality', () => {
    assert.deepEqual(withTopologyLabels({ app: 'x' }, 'r/z/s'), {
      app: 'x',
      'topology.kubernetes.io/region': 'r',
      'topology.kubernetes.io/zone': 'z',
      'topology.istio.io/subzone': 's',
    });
    assert.deepEqual(withTopologyLabels({ app: 'x' }, 'r'), { app: 'x', 'topology.kubernetes.io/region': 'r' });
    const labels = { a: 'b' };
    assert.equal(withTopologyLabels(labels, ''), labels);
  });
});
