import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { context, ep, hostSet, key, NO_KEY, tally, uniformSet } from './fixtures.ts';
import { createPicker } from './picker.ts';

const RR = { simple: 'ROUND_ROBIN' } as const;

describe('ROUND_ROBIN', () => {
  it('with equal weights rotates through every host in turn', () => {
    const p = createPicker(uniformSet(4), RR, context());
    assert.equal(p.kind, 'ROUND_ROBIN');
    assert.equal(p.toString(), 'ROUND_ROBIN (rotation) over 4 hosts');
    const seq = Array.from({ length: 12 }, () => p.pick(NO_KEY)?.key);
    assert.equal(new Set(seq.slice(0, 4)).size, 4);
    for (let i = 4; i < seq.length; i++) assert.equal(seq[i], seq[i - 4]);
  });

  it('draws the starting point at random once', () => {
    const firsts = new Set<string | undefined>();
    for (let seed = 1; seed <= 20; seed++) firsts.add(createPicker(uniformSet(4), RR, context(seed)).pick(NO_KEY)?.key);
    // Twenty seeds all starting on the same host would be a (1/4)^19 accident.
    assert.ok(firsts.size >= 3, `first hosts: ${[...firsts].join(' ')}`);
  });

  it('gives exact shares by weight (EDF)', () => {
    const set = hostSet([ep('10.0.0.1', { weight: 1 }), ep('10.0.0.2', { weight: 2 }), ep('10.0.0.3', { weight: 3 })]);
    const p = createPicker(set, RR, context(9));
    assert.equal(p.toString(), 'ROUND_ROBIN (weighted EDF) over 3 hosts');
    const c = tally(p, 6000);
    for (const [i, w] of [
      [1, 1],
      [2, 2],
      [3, 3],
    ] as const) {
      assert.ok(Math.abs((c.get(key(i)) ?? 0) - 1000 * w) <= 1, `host ${i}: ${c.get(key(i))}`);
    }
  });

  it('skips ejected hosts and resumes them when restored', () => {
    const set = uniformSet(3);
    const p = createPicker(set, RR, context());
    set.setEjected(set.hosts[1]!, true, 30_000, 'consecutive 5xx');
    let c = tally(p, 300);
    assert.equal(c.get(key(2)), undefined);
    assert.equal(c.get(key(1)), 150);
    assert.equal(c.get(key(3)), 150);
    set.setEjected(set.hosts[1]!, false);
    c = tally(p, 300);
    for (let i = 1; i <= 3; i++) assert.equal(c.get(key(i)), 100);
  });
});
