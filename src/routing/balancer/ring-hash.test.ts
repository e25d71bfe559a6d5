import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadBalancerSettings } from '../../config/types/destination-rule.ts';
import { context, ep, hostSet, key, tally, uniformSet } from './fixtures.ts';
import { hash32 } from './hash.ts';
import type { HostSet } from './host.ts';
import { createPicker, type Picker } from './picker.ts';
import { RingHash } from './ring-hash.ts';

const RING: LoadBalancerSettings = { consistentHash: { httpHeaderName: 'x-user' } };

/** Host key per request key `user-0..n-1`. */
function mapping(p: Picker, n: number): string[] {
  return Array.from({ length: n }, (_, i) => p.pick({ hash: hash32(`user-${i}`), avoid: undefined })?.key ?? 'none');
}

function shares(keys: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1 / keys.length);
  return m;
}

describe('RING_HASH', () => {
  it('is the default consistent hash and sends the same key to the same host', () => {
    const p = createPicker(uniformSet(5), RING, context());
    assert.equal(p.kind, 'RING_HASH');
    assert.equal(p.toString(), 'RING_HASH (ring of 1025) over 5 hosts, hash on header x-user');
    const first = mapping(p, 2000);
    assert.deepEqual(mapping(p, 2000), first);
    // And a fresh picker (another process) agrees.
    assert.deepEqual(mapping(createPicker(uniformSet(5), RING, context(99)), 2000), first);
  });

  it('spreads keys over hosts about evenly', () => {
    // 205 points per host: each host's arc is a sum of ~205 exponential gaps, so its share
    // has a relative sd of about 1/sqrt(205) = 7%. Bounds at ±35% of the fair share.
    const s = shares(mapping(createPicker(uniformSet(5), RING, context()), 20_000));
    assert.equal(s.size, 5);
    for (const [k, v] of s) assert.ok(v > 0.13 && v < 0.27, `${k}: ${v.toFixed(3)}`);
  });

  it('gives ring points, and so keys, in proportion to weight', () => {
    const set = hostSet([ep('10.0.0.1', { weight: 1 }), ep('10.0.0.2', { weight: 3 })]);
    const s = shares(mapping(createPicker(set, RING, context()), 20_000));
    const light = s.get(key(1)) ?? 0;
    assert.ok(light > 0.18 && light < 0.32, `weight-1 share ${light.toFixed(3)}`);
  });

  it('ejecting one of N hosts moves exactly that host\'s keys (≈1/N); restoring it moves them back', () => {
    const set = uniformSet(10);
    const p = createPicker(set, RING, context());
    const before = mapping(p, 10_000);
    const gone = set.hosts[3]!;
    set.setEjected(gone, true);
    const after = mapping(p, 10_000);
    let moved = 0;
    for (let i = 0; i < before.length; i++) {
      if (before[i] === gone.key) assert.notEqual(after[i], gone.key, 'keys of the ejected host must move');
      else assert.equal(after[i], before[i], `key ${i} did not belong to the ejected host and must stay`);
      if (before[i] !== after[i]) moved++;
    }
    assert.ok(moved / before.length > 0.05 && moved / before.length < 0.15, `moved ${(moved / before.length).toFixed(3)} of keys for N=10`);
    set.setEjected(gone, false);
    assert.deepEqual(mapping(p, 10_000), before);
  });

  it('removing one of N hosts from the config moves about 1/N of the keys', () => {
    // A new config rescales the ring over the remaining hosts as Envoy does (each keeps its
    // points and gains a few), so somewhat more than 1/N moves.
    const eps = Array.from({ length: 10 }, (_, i) => ep(`10.0.0.${i + 1}`));
    const before = mapping(createPicker(hostSet(eps), RING, context()), 10_000);
    const after = mapping(createPicker(hostSet(eps.filter((_, i) => i !== 3)), RING, context()), 10_000);
    let moved = 0;
    for (let i = 0; i < before.length; i++) {
      if (before[i] === key(4)) assert.notEqual(after[i], key(4));
      if (before[i] !== after[i]) moved++;
    }
    assert.ok(moved / before.length > 0.05 && moved / before.length < 0.2, `moved ${(moved / before.length).toFixed(3)} of keys for N=10`);
  });

  it('never returns an ejected host; undefined when all are ejected', () => {
    const set = uniformSet(3);
    const p = createPicker(set, RING, context());
    set.setEjected(set.hosts[0]!, true);
    set.setEjected(set.hosts[1]!, true);
    assert.deepEqual(new Set(mapping(p, 500)), new Set([key(3)]));
    set.setEjected(set.hosts[2]!, true);
    assert.deepEqual(new Set(mapping(p, 50)), new Set(['none']));
  });

  it('honours avoid by walking on along the ring (the balance layer passes it only for an explicit retryIgnorePreviousHosts: true)', () => {
    const p = createPicker(uniformSet(4), RING, context());
    const h = hash32('user-7');
    const first = p.pick({ hash: h, avoid: undefined });
    assert.ok(first !== undefined);
    assert.equal(p.pick({ hash: h, avoid: undefined }), first, 'without avoid a retry keeps its affinity');
    const next = p.pick({ hash: h, avoid: [first] });
    assert.ok(next !== undefined && next !== first);
    assert.equal(p.pick({ hash: h, avoid: [first] }), next, 'the reselection is deterministic too');
  });

  it('without a key (hash -1) draws at random among healthy hosts', () => {
    const set = uniformSet(4);
    const p = createPicker(set, RING, context(3));
    set.setEjected(set.hosts[0]!, true);
    const c = tally(p, 8000);
    assert.equal(c.get(key(1)), undefined);
    for (let i = 2; i <= 4; i++) assert.ok((c.get(key(i)) ?? 0) > 1500, `host ${i}: ${c.get(key(i))}`);
  });

  for (const [name, settings, size] of [
    ['ringHash.minimumRingSize', { consistentHash: { useSourceIp: true, ringHash: { minimumRingSize: 4096 } } }, 4096],
    ['the deprecated minimumRingSize', { consistentHash: { useSourceIp: true, minimumRingSize: 2048 } }, 2048],
    ['0 (unset)', { consistentHash: { useSourceIp: true, ringHash: { minimumRingSize: 0 } } }, 1024],
  ] as const) {
    it(`takes its size from ${name}`, () => {
      const p = createPicker(uniformSet(4), settings, context());
      assert.equal(p.toString(), `RING_HASH (ring of ${size}) over 4 hosts, hash on source IP`);
    });
  }
});

describe('RingHash', () => {
  it('scales the ring so the lightest host gets whole points (Envoy: ceil(min·size)/min)', () => {
    const set: HostSet = hostSet([ep('a', { weight: 1 }), ep('b', { weight: 2 }), ep('c', { weight: 4 })]);
    const r = new RingHash(1024);
    r.reset(set.hosts, undefined);
    // min normalised weight 1/7: ceil(1024/7) = 147 points for a, so 147·7 = 1029 in all.
    assert.equal(r.size, 1029);
  });

  it('respects the maximum ring size and handles no hosts', () => {
    const r = new RingHash(1 << 20, 5000);
    r.reset(uniformSet(3).hosts, undefined);
    assert.equal(r.size, 5000);
    r.reset([], undefined);
    assert.equal(r.size, 0);
    assert.equal(r.choose(123), undefined);
  });

  it('wraps round: a hash past the last point goes to the first', () => {
    const r = new RingHash(16);
    const hosts = uniformSet(2).hosts;
    r.reset(hosts, undefined);
    const owner = r.choose(0);
    assert.equal(r.choose(0xffffffff), owner);
  });

  it('a reselection (attempt n) takes the point n places further on, wrapping round (Envoy Ring::chooseHost)', () => {
    const r = new RingHash(16);
    const hosts = uniformSet(4).hosts;
    r.reset(hosts, undefined);
    // Walk the ring from hash 0: attempt n is the owner of point n (point 0 is the first at or after 0).
    const walk = Array.from({ length: r.size + 2 }, (_, n) => r.choose(0, n));
    assert.equal(walk[0], r.choose(0));
    assert.equal(walk[r.size], walk[0], 'attempt = ring size comes back to the first point');
    assert.equal(walk[r.size + 1], walk[1]);
    assert.ok(new Set(walk).size === 4, 'the walk visits every host');
  });
});
