/**
 * Envoy's healthy panic threshold, which Istio sets from `outlierDetection.minHealthPercent`:
 * a priority level with fewer healthy hosts than that percentage balances over all its hosts,
 * ejected ones included (`LoadBalancerBase::isHostSetInPanic`); when no level has a healthy host,
 * every level is in panic and levels are loaded by host count (`recalculateLoadInTotalPanic`).
 * With Istio's default 0 there is no panic: every host ejected is 503 UH.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadBalancerSettings } from '../../config/types/destination-rule.ts';
import type { ClusterPicker } from './cluster-picker.ts';
import { context, ep, hostSet, key, tally, uniformSet } from './fixtures.ts';
import { hash32 } from './hash.ts';
import { createPicker } from './picker.ts';

const RR: LoadBalancerSettings = { simple: 'ROUND_ROBIN' };

describe('panic threshold (minHealthPercent)', () => {
  it('uses only healthy hosts at or above the threshold, every host below it', () => {
    const set = uniformSet(4);
    const p = createPicker(set, RR, context(3, { outlierDetection: true, panicThreshold: 50 }));
    set.setEjected(set.hosts[0]!, true);
    set.setEjected(set.hosts[1]!, true);
    // 2 of 4 healthy = 50%: not below 50, so no panic.
    assert.deepEqual([...tally(p, 400).keys()].sort(), [key(3), key(4)]);
    assert.doesNotMatch(String(p), /in panic/);
    set.setEjected(set.hosts[2]!, true);
    // 1 of 4 healthy = 25% < 50: round robin over all four, ejected ones included.
    const c = tally(p, 400);
    assert.deepEqual([1, 2, 3, 4].map((i) => c.get(key(i))), [100, 100, 100, 100]);
    assert.match(String(p), /panic below 50% healthy \(in panic: all hosts, ejected hosts used\)/);
    set.setEjected(set.hosts[0]!, false);
    set.setEjected(set.hosts[1]!, false);
    assert.deepEqual([...tally(p, 400).keys()].sort(), [key(1), key(2), key(4)]);
  });

  it('every host ejected: threshold 0 has no host (503 UH), a threshold above 0 uses them all', () => {
    for (const [threshold, want] of [
      [0, ['none']],
      [1, [key(1), key(2), key(3)]],
    ] as const) {
      const set = uniformSet(3);
      const p = createPicker(set, undefined, context(5, { outlierDetection: true, panicThreshold: threshold }));
      for (const h of set.hosts) set.setEjected(h, true);
      assert.deepEqual([...tally(p, 3000).keys()].sort(), [...want], `minHealthPercent ${threshold}`);
    }
  });

  it('a tier in panic with no availability takes no load while another tier has healthy hosts', () => {
    const set = hostSet([
      ep('10.0.0.1', { locality: 'r1/z1/s1' }),
      ep('10.0.0.2', { locality: 'r1/z1/s1' }),
      ep('10.0.0.3', { locality: 'r2/z1/s1' }),
      ep('10.0.0.4', { locality: 'r2/z1/s1' }),
    ]);
    const p = createPicker(set, { ...RR, localityLbSetting: { failover: [{ from: 'r1', to: 'r2' }] } }, context(7, { locality: 'r1/z1/s1', outlierDetection: true, panicThreshold: 50 }));
    set.setEjected(set.hosts[0]!, true);
    set.setEjected(set.hosts[1]!, true);
    assert.deepEqual([...tally(p, 1000).keys()].sort(), [key(3), key(4)]);
    // Both tiers empty of healthy hosts: total panic, load by host count (2 and 2 → 50/50).
    set.setEjected(set.hosts[2]!, true);
    set.setEjected(set.hosts[3]!, true);
    const c = tally(p, 4000);
    assert.deepEqual([...c.keys()].sort(), [key(1), key(2), key(3), key(4)]);
    const p0 = (c.get(key(1)) ?? 0) + (c.get(key(2)) ?? 0);
    assert.ok(p0 > 1800 && p0 < 2200, `P0 share ${p0}/4000`);
  });

  it('no availability anywhere is total panic even with a healthy host left (Envoy rounds 1.4·healthy% down)', () => {
    // P0: 1 healthy of 150 → ⌊140·1/150⌋ = 0% available; P1: its one host ejected. Loads by host count,
    // in integer percent: ⌊100·150/151⌋ = 99 and ⌊100·1/151⌋ = 0, the rest to P0 (recalculateLoadInTotalPanic).
    const eps = Array.from({ length: 150 }, (_, i) => ep(`10.0.1.${i}`, { locality: 'r1/z1/s1' }));
    const set = hostSet([...eps, ep('10.0.2.1', { locality: 'r2/z1/s1' })]);
    const p = createPicker(set, { ...RR, localityLbSetting: { failover: [{ from: 'r1', to: 'r2' }] } }, context(13, { locality: 'r1/z1/s1', outlierDetection: true, panicThreshold: 5 }));
    for (const h of set.hosts.slice(1)) set.setEjected(h, true);
    assert.deepEqual((p as ClusterPicker).priorityLoads, [100, 0]);
    assert.equal(tally(p, 1000).get('none'), undefined);
  });

  it('a locality-weighted tier in panic balances over all its hosts', () => {
    const set = hostSet([ep('10.0.0.1', { locality: 'r1/z1/a' }), ep('10.0.0.2', { locality: 'r1/z1/a' }), ep('10.0.0.3', { locality: 'r1/z1/b' })]);
    const p = createPicker(set, { ...RR, localityLbSetting: { distribute: [{ from: 'r1/z1/*', to: { 'r1/z1/a': 50, 'r1/z1/b': 50 } }] } }, context(9, { locality: 'r1/z1/a', panicThreshold: 70 }));
    set.setEjected(set.hosts[0]!, true);
    // 2 of 3 healthy = 67% < 70: every host, by round robin (no locality split).
    const c = tally(p, 300);
    assert.deepEqual([1, 2, 3].map((i) => c.get(key(i))), [100, 100, 100]);
  });

  it('consistent hashing in panic keeps keys on ejected hosts', () => {
    const set = uniformSet(4);
    const p = createPicker(set, { consistentHash: { httpHeaderName: 'x-user' } }, context(11, { outlierDetection: true, panicThreshold: 80 }));
    const owner = new Map<string, string | undefined>();
    for (let i = 0; i < 200; i++) owner.set(`u${i}`, p.pick({ hash: hash32(`u${i}`), avoid: undefined })?.key);
    set.setEjected(set.hosts[1]!, true);
    // 3 of 4 healthy = 75% < 80: the ring keeps every host, so no key moves.
    for (const [k, host] of owner) assert.equal(p.pick({ hash: hash32(k), avoid: undefined })?.key, host, k);
    assert.ok([...owner.values()].includes(key(2)));
  });
});
