import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertShare, context, ep, hostSet, key, tally, uniformSet } from './fixtures.ts';
import { createPicker } from './picker.ts';

describe('LEAST_REQUEST', () => {
  for (const simple of [undefined, 'UNSPECIFIED', 'LEAST_CONN', 'LEAST_REQUEST'] as const) {
    it(`is what simple=${simple ?? '(absent)'} gives`, () => {
      const p = createPicker(uniformSet(3), simple === undefined ? undefined : { simple }, context());
      assert.equal(p.kind, 'LEAST_REQUEST');
      assert.equal(p.toString(), 'LEAST_REQUEST (P2C) over 3 hosts');
    });
  }

  it('P2C never picks the most loaded host when two others are idle', () => {
    const set = uniformSet(3);
    (set.hosts[0] as { active: number }).active = 10;
    const c = tally(createPicker(set, undefined, context()), 6000);
    assert.equal(c.get(key(1)) ?? 0, 0);
    assertShare(c.get(key(2)) ?? 0, 6000, 0.5, 'idle host 2');
  });

  it('P2C picks hosts by rank: with loads 0,1,2,3 the shares are 1/2, 1/3, 1/6, 0', () => {
    // Two distinct hosts are drawn; the less loaded wins. The host of rank k (0 = least
    // loaded) wins every pair it forms with a busier host: (n-1-k) of C(4,2) = 6 pairs.
    const set = uniformSet(4);
    set.hosts.forEach((h, i) => {
      h.active = i;
    });
    const n = 30_000;
    const c = tally(createPicker(set, undefined, context(7)), n);
    assertShare(c.get(key(1)) ?? 0, n, 3 / 6, 'rank 0');
    assertShare(c.get(key(2)) ?? 0, n, 2 / 6, 'rank 1');
    assertShare(c.get(key(3)) ?? 0, n, 1 / 6, 'rank 2');
    assert.equal(c.get(key(4)) ?? 0, 0);
  });

  it('P2C splits evenly when all hosts are equally loaded (ties go to the first draw)', () => {
    const n = 40_000;
    const c = tally(createPicker(uniformSet(4), undefined, context(3)), n);
    for (let i = 1; i <= 4; i++) assertShare(c.get(key(i)) ?? 0, n, 0.25, `host ${i}`);
  });

  it('P2C reacts to in-flight requests as the data plane counts them', () => {
    const set = uniformSet(2);
    const p = createPicker(set, undefined, context());
    // With two hosts both are always drawn, so the idle one always wins.
    for (let i = 0; i < 50; i++) {
      const h = p.pick({ hash: -1, avoid: undefined });
      assert.ok(h !== undefined);
      const other = set.hosts.find((x) => x !== h);
      assert.ok(other !== undefined && other.active >= h.active);
      h.active++;
    }
    assert.deepEqual(
      set.hosts.map((h) => h.active),
      [25, 25],
    );
  });

  it('unequal weights: weighted draw by weight / (active + 1)', () => {
    const set = hostSet([ep('10.0.0.1', { weight: 1 }), ep('10.0.0.2', { weight: 3 })]);
    const p = createPicker(set, { simple: 'LEAST_REQUEST' }, context(5));
    assert.equal(p.toString(), 'LEAST_REQUEST (weighted) over 2 hosts');
    const n = 20_000;
    let c = tally(p, n);
    assertShare(c.get(key(1)) ?? 0, n, 0.25, 'weight 1 of 4');
    // Host 2 has 2 in flight: 3 / (2 + 1) = 1, the same as host 1's 1 / (0 + 1).
    (set.hosts[1] as { active: number }).active = 2;
    c = tally(p, n);
    assertShare(c.get(key(1)) ?? 0, n, 0.5, 'equalised by load');
  });

  it('a single host is always chosen; none gives undefined', () => {
    assert.equal(createPicker(uniformSet(1), undefined, context()).pick({ hash: -1, avoid: undefined })?.key, key(1));
    assert.equal(createPicker(hostSet([]), undefined, context()).pick({ hash: -1, avoid: undefined }), undefined);
  });
});
