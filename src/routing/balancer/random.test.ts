import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadBalancerSettings } from '../../config/types/destination-rule.ts';
import { assertShare, context, ep, hostSet, key, tally, uniformSet } from './fixtures.ts';
import { createPicker } from './picker.ts';

describe('RANDOM and PASSTHROUGH', () => {
  it('RANDOM splits evenly', () => {
    const p = createPicker(uniformSet(5), { simple: 'RANDOM' }, context(11));
    assert.equal(p.kind, 'RANDOM');
    assert.equal(p.toString(), 'RANDOM (uniform) over 5 hosts');
    const n = 50_000;
    const c = tally(p, n);
    for (let i = 1; i <= 5; i++) assertShare(c.get(key(i)) ?? 0, n, 0.2, `host ${i}`);
  });

  it('RANDOM ignores endpoint weights, as Envoy does (hosts_to_use[random % size])', () => {
    const set = hostSet([ep('10.0.0.1', { weight: 1 }), ep('10.0.0.2', { weight: 9 })]);
    const n = 20_000;
    const c = tally(createPicker(set, { simple: 'RANDOM' }, context(2)), n);
    assertShare(c.get(key(1)) ?? 0, n, 0.5, 'weight-1 host');
  });

  it('PASSTHROUGH is its own kind, picks like RANDOM and ignores locality settings', () => {
    const set = hostSet([ep('10.0.0.1', { locality: 'us-east/a' }), ep('10.0.0.2', { locality: 'us-west/a' })]);
    const settings: LoadBalancerSettings = {
      simple: 'PASSTHROUGH',
      localityLbSetting: { distribute: [{ from: 'us-east/*', to: { 'us-east/*': 100 } }] },
    };
    const p = createPicker(set, settings, context(4, { locality: 'us-east/a/1' }));
    assert.equal(p.kind, 'PASSTHROUGH');
    assert.equal(p.toString(), 'PASSTHROUGH (uniform) over 2 hosts');
    const n = 10_000;
    const c = tally(p, n);
    assertShare(c.get(key(1)) ?? 0, n, 0.5, 'us-east host');
  });
});
