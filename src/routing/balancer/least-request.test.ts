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

  it('load_balancer_impl_test.cc PNC: the two draws are independent, so both may hit the most loaded host, which is then chosen', () => {
    // Envoy's row: loads 4,3,2,1 and every random() = 0 → both draws are host 0 → host 0.
    const set = uniformSet(4);
    set.hosts.forEach((h, i) => {
      h.active = 4 - i;
    });
    const p = createPicker(set, undefined, { ...context(), random: { next: () => 0 } });
    assert.equal(p.pick({ hash: -1, avoid: undefined })?.key, key(1));
    // Draws 0 then 3 (of 4): host 3 (1 in flight) beats host 0 (4 in flight).
    const draws = [0, 0.8];
    let k = 0;
    const q = createPicker(set, undefined, { ...context(), random: { next: () => draws[k++ % 2] as number } });
    assert.equal(q.pick({ hash: -1, avoid: undefined })?.key, key(4));
  });

  it('P2C picks the most loaded of three hosts only when both draws hit it (1/9)', () => {
    const set = uniformSet(3);
    (set.hosts[0] as { active: number }).active = 10;
    const n = 18_000;
    const c = tally(createPicker(set, undefined, context()), n);
    assertShare(c.get(key(1)) ?? 0, n, 1 / 9, 'loaded host 1');
    assertShare(c.get(key(2)) ?? 0, n, 4 / 9, 'idle host 2');
  });

  it('P2C picks hosts by rank: with loads 0,1,2,3 the shares are 7/16, 5/16, 3/16, 1/16', () => {
    // Two independent draws; the less loaded wins. The host of rank k (0 = least loaded) wins
    // when the better of the two draws is it: ((4−k)² − (3−k)²) / 16.
    const set = uniformSet(4);
    set.hosts.forEach((h, i) => {
      h.active = i;
    });
    const n = 40_000;
    const c = tally(createPicker(set, undefined, context(7)), n);
    assertShare(c.get(key(1)) ?? 0, n, 7 / 16, 'rank 0');
    assertShare(c.get(key(2)) ?? 0, n, 5 / 16, 'rank 1');
    assertShare(c.get(key(3)) ?? 0, n, 3 / 16, 'rank 2');
    assertShare(c.get(key(4)) ?? 0, n, 1 / 16, 'rank 3');
  });

  it('P2C splits evenly when all hosts are equally loaded (ties go to the first draw)', () => {
    const n = 40_000;
    const c = tally(createPicker(uniformSet(4), undefined, context(3)), n);
    for (let i = 1; i <= 4; i++) assertShare(c.get(key(i)) ?? 0, n, 0.25, `host ${i}`);
  });

  it('P2C reacts to in-flight requests as the data plane counts them', () => {
    const set = uniformSet(2);
    const p = createPicker(set, undefined, context());
    // Of two hosts, the idle one wins unless both draws hit the busy one (1/4): the loads stay close.
    for (let i = 0; i < 200; i++) {
      const h = p.pick({ hash: -1, avoid: undefined });
      assert.ok(h !== undefined);
      h.active++;
    }
    const [a, b] = set.hosts.map((h) => h.active) as [number, number];
    assert.equal(a + b, 200);
    assert.ok(Math.abs(a - b) <= 12, `loads ${a} and ${b}`);
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
