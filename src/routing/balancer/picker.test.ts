import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadBalancerSettings } from '../../config/types/destination-rule.ts';
import { HOST_SELECTION_RETRIES } from './cluster-picker.ts';
import { assertShare, context, ep, hostSet, key, NO_KEY, tally, uniformSet } from './fixtures.ts';
import { hash32 } from './hash.ts';
import type { HostState } from './host.ts';
import { createPicker, pickerKind } from './picker.ts';

const ALL: readonly [string, LoadBalancerSettings | undefined][] = [
  ['LEAST_REQUEST', undefined],
  ['ROUND_ROBIN', { simple: 'ROUND_ROBIN' }],
  ['RANDOM', { simple: 'RANDOM' }],
  ['PASSTHROUGH', { simple: 'PASSTHROUGH' }],
  ['RING_HASH', { consistentHash: { httpHeaderName: 'x-user' } }],
  ['MAGLEV', { consistentHash: { httpHeaderName: 'x-user', maglev: { tableSize: 65537 } } }],
];

describe('createPicker: kinds', () => {
  it('maps settings to the algorithm Istio configures', () => {
    for (const [kind, settings] of ALL) assert.equal(pickerKind(settings), kind);
    assert.equal(pickerKind({ simple: 'LEAST_CONN' }), 'LEAST_REQUEST');
    assert.equal(pickerKind({ simple: 'UNSPECIFIED' }), 'LEAST_REQUEST');
  });
});

describe('createPicker: health', () => {
  for (const [kind, settings] of ALL) {
    it(`${kind}: splits evenly over many picks and never returns an ejected host`, () => {
      const set = uniformSet(4);
      const p = createPicker(set, settings, context(17));
      const hashed = kind === 'RING_HASH' || kind === 'MAGLEV';
      const req = (i: number) => ({ hash: hashed ? hash32(`k${i}`) : -1, avoid: undefined });
      const n = 20_000;
      const count = (): Map<string, number> => {
        const c = new Map<string, number>();
        for (let i = 0; i < n; i++) {
          const h = p.pick(req(i));
          assert.ok(h !== undefined && !h.ejected, `${kind} picked ${h}`);
          c.set(h.key, (c.get(h.key) ?? 0) + 1);
        }
        return c;
      };
      let c = count();
      for (let i = 1; i <= 4; i++) {
        const share = (c.get(key(i)) ?? 0) / n;
        // Ring hash shares vary with the ring (±~7% relative at 256 points per host).
        const tol = kind === 'RING_HASH' ? 0.06 : 0.02;
        assert.ok(Math.abs(share - 0.25) < tol, `${kind} host ${i}: ${share}`);
      }
      set.setEjected(set.hosts[0]!, true, 30_000, 'consecutive 5xx');
      set.setEjected(set.hosts[2]!, true, 30_000, 'consecutive 5xx');
      c = count();
      assert.deepEqual([...c.keys()].sort(), [key(2), key(4)]);
      for (const h of set.hosts) set.setEjected(h, true);
      assert.equal(p.pick(req(1)), undefined, 'every host ejected → no host (503 UH)');
      set.setEjected(set.hosts[3]!, false);
      assert.equal(p.pick(req(1))?.key, key(4));
    });
  }

  it('never returns an ejected host even when the data plane forgot to bump healthVersion', () => {
    for (const [kind, settings] of ALL) {
      const set = uniformSet(3);
      const p = createPicker(set, settings, context());
      set.hosts[0]!.ejected = true;
      set.hosts[1]!.ejected = true;
      for (let i = 0; i < 200; i++) assert.equal(p.pick({ hash: hash32(`k${i}`), avoid: undefined })?.key, key(3), kind);
    }
  });
});

describe('createPicker: avoid (previous hosts)', () => {
  it(`makes up to ${HOST_SELECTION_RETRIES} more selections to avoid tried hosts (random: fails (2/3)^6 of the time)`, () => {
    const set = uniformSet(3);
    const p = createPicker(set, { simple: 'RANDOM' }, context(23));
    const avoid = [set.hosts[0]!, set.hosts[1]!];
    const n = 20_000;
    const c = tally(p, n, { hash: -1, avoid });
    assertShare(c.get(key(3)) ?? 0, n, 1 - (2 / 3) ** (HOST_SELECTION_RETRIES + 1), 'the untried host');
  });

  it('round robin always finds the untried host within the retries', () => {
    const set = uniformSet(3);
    const p = createPicker(set, { simple: 'ROUND_ROBIN' }, context());
    const c = tally(p, 300, { hash: -1, avoid: [set.hosts[0]!, set.hosts[2]!] });
    assert.deepEqual([...c], [[key(2), 300]]);
  });

  it('P2C reselections draw with replacement (as Envoy), so even two hosts can escape a less-loaded tried host', () => {
    const set = uniformSet(2);
    const p = createPicker(set, undefined, context(31));
    set.hosts[1]!.active = 5;
    // The first selection and each reselection find the busier host 2 only when both draws hit
    // it (1/4): 1 - (3/4)^6 escape.
    const n = 20_000;
    const c = tally(p, n, { hash: -1, avoid: [set.hosts[0]!] });
    assertShare(c.get(key(2)) ?? 0, n, 1 - (3 / 4) ** (HOST_SELECTION_RETRIES + 1), 'the untried, busier host');
    // Without avoid, P2C over two hosts takes the idle one unless both draws hit the busy one.
    assertShare(tally(p, n).get(key(1)) ?? 0, n, 3 / 4, 'the idle host');
  });

  it('falls back to a tried host when every host was tried', () => {
    const set = uniformSet(2);
    const p = createPicker(set, { simple: 'ROUND_ROBIN' }, context());
    const h = p.pick({ hash: -1, avoid: set.hosts });
    assert.ok(h !== undefined && set.hosts.includes(h));
  });
});

describe('createPicker: locality failover tiers (outlier detection on)', () => {
  const eps = [
    ep('10.0.0.1', { locality: 'us-east/a/1' }),
    ep('10.0.0.2', { locality: 'us-east/a/1' }),
    ep('10.0.0.3', { locality: 'us-east/b/1' }),
    ep('10.0.0.4', { locality: 'us-east/b/1' }),
    ep('10.0.0.5', { locality: 'eu-west/a/1' }),
  ];
  const client = { locality: 'us-east/a/1', outlierDetection: true };

  it('keeps all traffic in the client subzone while it is healthy', () => {
    const p = createPicker(hostSet(eps), undefined, context(5, client));
    const c = tally(p, 5000);
    assert.deepEqual([...c.keys()].sort(), [key(1), key(2)]);
  });

  it('spills over by the 1.4 overprovisioning factor: half of P0 ejected → 70% P0, 30% P1', () => {
    const set = hostSet(eps);
    const p = createPicker(set, undefined, context(6, client));
    set.setEjected(set.hosts[0]!, true);
    const n = 40_000;
    const c = tally(p, n);
    assertShare(c.get(key(2)) ?? 0, n, 0.7, 'P0 (1 of 2 healthy)');
    assertShare((c.get(key(3)) ?? 0) + (c.get(key(4)) ?? 0), n, 0.3, 'P1');
    assert.equal(c.get(key(5)), undefined, 'P2 gets nothing while P1 is fully available');
    assert.match(p.toString(), /^LEAST_REQUEST \(P2C\) over 5 hosts \(1 ejected\), locality failover from us-east\/a\/1: P0 2, P1 2, P2 1, priority load P0 70% P1 30% P2 0%$/);
  });

  it('cascades: P0 gone and half of P1 gone → 70% P1, 30% P2; everything gone → undefined', () => {
    const set = hostSet(eps);
    const p = createPicker(set, { simple: 'ROUND_ROBIN' }, context(8, client));
    for (const i of [0, 1, 2]) set.setEjected(set.hosts[i]!, true);
    const n = 40_000;
    const c = tally(p, n);
    assertShare(c.get(key(4)) ?? 0, n, 0.7, 'P1');
    assertShare(c.get(key(5)) ?? 0, n, 0.3, 'P2');
    for (const h of set.hosts) set.setEjected(h, true);
    assert.equal(p.pick(NO_KEY), undefined);
  });

  it('ignores failover without outlier detection: one tier for all', () => {
    const set = hostSet(eps);
    const p = createPicker(set, undefined, context(9, { locality: 'us-east/a/1', outlierDetection: false }));
    assert.equal(tally(p, 5000).size, 5);
  });

  it('consistent hashing chooses the tier by hash % 100 and the host within the tier by the same hash', () => {
    const set = hostSet(eps);
    const p = createPicker(set, { consistentHash: { httpHeaderName: 'x-user' } }, context(9, client));
    const keys = Array.from({ length: 3000 }, (_, i) => hash32(`user-${i}`));
    for (const h of keys) assert.ok([key(1), key(2)].includes(p.pick({ hash: h, avoid: undefined })?.key ?? ''));
    set.setEjected(set.hosts[0]!, true); // P0 70%, P1 30%
    for (const h of keys) {
      const got = p.pick({ hash: h, avoid: undefined })?.key ?? '';
      const tier = h % 100 < 70 ? [key(2)] : [key(3), key(4)];
      assert.ok(tier.includes(got), `hash ${h} → ${got}`);
      assert.equal(p.pick({ hash: h, avoid: undefined })?.key, got);
    }
  });
});

describe('createPicker: distribute', () => {
  const eps = [
    ep('10.0.0.1', { locality: 'us-west/zone1/a' }),
    ep('10.0.0.2', { locality: 'us-west/zone1/b' }),
    ep('10.0.0.3', { locality: 'us-west/zone2/a' }),
    ep('10.0.0.4', { locality: 'us-east/zone1/a' }),
  ];
  const settings: LoadBalancerSettings = {
    simple: 'ROUND_ROBIN',
    localityLbSetting: { distribute: [{ from: 'us-west/zone1/*', to: { 'us-west/zone1/*': 80, 'us-west/zone2/*': 20 } }] },
  };

  it('splits traffic by the rule for the client locality, without outlier detection', () => {
    const p = createPicker(hostSet(eps), settings, context(12, { locality: 'us-west/zone1/a' }));
    const n = 10_000;
    const c = tally(p, n);
    // EDF over localities: exact shares. zone1's 80 splits over two subzones (40 each).
    assert.ok(Math.abs((c.get(key(1)) ?? 0) - 4000) <= 2, `zone1/a ${c.get(key(1))}`);
    assert.ok(Math.abs((c.get(key(2)) ?? 0) - 4000) <= 2, `zone1/b ${c.get(key(2))}`);
    assert.ok(Math.abs((c.get(key(3)) ?? 0) - 2000) <= 2, `zone2 ${c.get(key(3))}`);
    assert.equal(c.get(key(4)), undefined, 'localities outside the rule get nothing');
    assert.match(p.toString(), /locality distribute from us-west\/zone1\/\*: us-west\/zone1\/\* 80%, us-west\/zone2\/\* 20%$/);
  });

  it('scales a locality by its availability (1.4 factor): an ejected host shifts traffic away', () => {
    const set = hostSet(eps.concat(ep('10.0.0.5', { locality: 'us-west/zone1/a' })));
    const p = createPicker(set, settings, context(13, { locality: 'us-west/zone1/a' }));
    // zone1/a has 2 hosts (weight ceil(80·2/3) = 54), zone1/b 1 (27), zone2 20.
    set.setEjected(set.hosts[0]!, true); // zone1/a: 54 · min(1, 1.4 · 1/2) = 37.8
    const n = 20_000;
    const c = tally(p, n);
    const total = 37.8 + 27 + 20;
    assert.ok(Math.abs((c.get(key(5)) ?? 0) / n - 37.8 / total) < 0.002, `zone1/a ${c.get(key(5))}`);
    assert.ok(Math.abs((c.get(key(3)) ?? 0) / n - 20 / total) < 0.002, `zone2 ${c.get(key(3))}`);
  });

  it('a client whose locality no rule matches uses every locality', () => {
    const p = createPicker(hostSet(eps), settings, context(14, { locality: 'us-east/zone1/a' }));
    assert.equal(tally(p, 1000).size, 4);
  });
});

describe('createPicker: failoverPriority', () => {
  it('sends traffic to the hosts matching the most labels, then fails over', () => {
    const set = hostSet([
      ep('10.0.0.1', { labels: { version: 'v1', track: 'stable' } }),
      ep('10.0.0.2', { labels: { version: 'v1', track: 'canary' } }),
      ep('10.0.0.3', { labels: { version: 'v2', track: 'stable' } }),
    ]);
    const settings: LoadBalancerSettings = { localityLbSetting: { failoverPriority: ['version', 'track'] } };
    const p = createPicker(set, settings, context(15, { labels: { version: 'v1', track: 'stable' }, outlierDetection: true }));
    assert.deepEqual([...tally(p, 500)], [[key(1), 500]]);
    set.setEjected(set.hosts[0]!, true);
    assert.deepEqual([...tally(p, 500)], [[key(2), 500]]);
    set.setEjected(set.hosts[1]!, true);
    assert.deepEqual([...tally(p, 500)], [[key(3), 500]]);
    assert.match(p.toString(), /failoverPriority \[version, track\]: P0 1, P1 1, P2 1, priority load P0 0% P1 0% P2 100%$/);
    set.setEjected(set.hosts[2]!, true);
    assert.match(p.toString(), /P2 1, priority load: none \(no healthy endpoint\)$/);
  });
});

describe('createPicker: toString', () => {
  it('a cluster without endpoints describes no locality tiers', () => {
    const p = createPicker(hostSet([]), { localityLbSetting: { failover: [{ from: 'us-east', to: 'eu-west' }] } }, context(1, { outlierDetection: true }));
    assert.equal(p.toString(), 'LEAST_REQUEST (P2C) over 0 hosts');
  });
  it('describes algorithm, hosts, ejections and extras compactly', () => {
    const set = uniformSet(3);
    assert.equal(String(createPicker(set, undefined, context())), 'LEAST_REQUEST (P2C) over 3 hosts');
    set.setEjected(set.hosts[0]!, true);
    assert.equal(String(createPicker(set, { simple: 'ROUND_ROBIN', warmup: { duration: '30s' } }, context())), 'ROUND_ROBIN (rotation) over 3 hosts (1 ejected), warmup 30s (min 10%, aggression 1)');
    assert.equal(String(createPicker(uniformSet(1), { simple: 'RANDOM' }, context())), 'RANDOM (uniform) over 1 host');
  });
});

describe('createPicker: pick() allocates nothing on the common path', () => {
  it('keeps heap growth small over many picks', () => {
    // A coarse guard: a per-pick allocation of even one small array would add megabytes.
    // On a busy machine the optimised code may not be installed after the warm-up yet (the
    // compiler runs on a background thread) and unoptimised code boxes numbers, so each kind
    // gets a few trials; a real per-pick allocation fails every one of them.
    for (const [kind, settings] of ALL) {
      const set = uniformSet(8);
      const p = createPicker(set, settings, context());
      const req = { hash: 12345, avoid: undefined as readonly HostState[] | undefined };
      for (let i = 0; i < 20_000; i++) p.pick(req); // warm up (JIT)
      const trials: number[] = [];
      for (let t = 0; t < 5; t++) {
        const before = process.memoryUsage().heapUsed;
        for (let i = 0; i < 200_000; i++) {
          req.hash = i;
          p.pick(req);
        }
        trials.push(process.memoryUsage().heapUsed - before);
        if ((trials.at(-1) as number) < 2_000_000) break;
      }
      const grown = Math.min(...trials);
      assert.ok(grown < 2_000_000, `${kind}: heap grew ${trials.join(', ')} bytes over 200k picks in each trial`);
    }
  });
});
