import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ep } from './fixtures.ts';
import { HostSet, HostState } from './host.ts';

describe('HostState', () => {
  it('exposes the key, a sanitised weight and a compact string', () => {
    const h = new HostState(ep('10.0.0.1', { port: 9080, weight: 3 }));
    assert.equal(h.key, '10.0.0.1:9080');
    assert.equal(h.weight, 3);
    assert.equal(h.warmingSince, Number.NEGATIVE_INFINITY);
    assert.equal(String(h), '10.0.0.1:9080');
    h.ejected = true;
    assert.equal(String(h), '10.0.0.1:9080 (ejected)');
    assert.equal(new HostState(ep('x', { weight: 0 })).weight, 1);
    assert.equal(new HostState(ep('x', { weight: Number.NaN })).weight, 1);
    assert.equal(new HostState(ep('x'), 1234).warmingSince, 1234);
  });
});

describe('HostSet', () => {
  it('bumps healthVersion only when a host actually changes state', () => {
    const set = new HostSet([new HostState(ep('a')), new HostState(ep('b'))]);
    const a = set.hosts[0]!;
    set.setEjected(a, true, 30_000, 'consecutive 5xx');
    assert.equal(set.healthVersion, 1);
    assert.deepEqual([a.ejected, a.ejectedUntil, a.ejectReason], [true, 30_000, 'consecutive 5xx']);
    set.setEjected(a, true, 60_000, 'consecutive 5xx');
    assert.equal(set.healthVersion, 1);
    assert.equal(a.ejectedUntil, 60_000);
    assert.equal(set.healthyCount, 1);
    set.setEjected(a, false);
    assert.equal(set.healthVersion, 2);
    assert.deepEqual([a.ejected, a.ejectedUntil, a.ejectReason], [false, 0, '']);
    set.startWarming(a, 5);
    assert.deepEqual([set.healthVersion, a.warmingSince], [3, 5]);
  });

  it('copies and freezes its host list', () => {
    const list = [new HostState(ep('a'))];
    const set = new HostSet(list);
    list.push(new HostState(ep('b')));
    assert.equal(set.hosts.length, 1);
    assert.ok(Object.isFrozen(set.hosts));
  });

  it('from(): surviving keys keep their HostState; new hosts warm up only in a live cluster', () => {
    const first = HostSet.from([ep('a'), ep('b')], undefined, 100);
    assert.deepEqual(
      first.hosts.map((h) => h.warmingSince),
      [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY],
    );
    const [a, b] = first.hosts as [HostState, HostState];
    a.active = 3;
    first.setEjected(b, true, 9000, 'gateway errors');
    const second = HostSet.from([ep('b'), ep('a'), ep('c')], first, 500);
    assert.equal(second.hosts[1], a, 'unchanged endpoint → same object (in-flight count carries over)');
    assert.equal(second.hosts[0], b);
    assert.equal(second.hosts[0]?.ejected, true);
    assert.equal(second.hosts[2]?.warmingSince, 500);
  });

  it('from(): a surviving key whose endpoint changed gets a new HostState that keeps ejection and warmup', () => {
    const first = HostSet.from([ep('a', { weight: 1 })], undefined, 0);
    const a = first.hosts[0]!;
    first.setEjected(a, true, 9000, 'consecutive 5xx');
    a.warmingSince = 42;
    a.active = 2;
    const second = HostSet.from([ep('a', { weight: 5 })], first, 100);
    const a2 = second.hosts[0]!;
    assert.notEqual(a2, a);
    assert.deepEqual([a2.weight, a2.ejected, a2.ejectedUntil, a2.ejectReason, a2.warmingSince, a2.active], [5, true, 9000, 'consecutive 5xx', 42, 0]);
    // Same labels in another object: still the same host.
    const third = HostSet.from([ep('a', { weight: 5, labels: {} })], second, 200);
    assert.equal(third.hosts[0], a2);
    const fourth = HostSet.from([ep('a', { weight: 5, labels: { v: '2' } })], third, 300);
    assert.notEqual(fourth.hosts[0], a2);
  });
});
