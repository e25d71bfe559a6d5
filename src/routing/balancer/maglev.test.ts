import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadBalancerSettings } from '../../config/types/destination-rule.ts';
import { context, ep, hostSet, key, uniformSet } from './fixtures.ts';
import { hash32 } from './hash.ts';
import { isPrime, Maglev, nextPrime } from './maglev.ts';
import { createPicker, type Picker } from './picker.ts';

const MAGLEV: LoadBalancerSettings = { consistentHash: { httpCookie: { name: 'session' }, maglev: { tableSize: 65537 } } };

function mapping(p: Picker, n: number): string[] {
  return Array.from({ length: n }, (_, i) => p.pick({ hash: hash32(`session-${i}`), avoid: undefined })?.key ?? 'none');
}

/** Table entries per host, found by probing every slot. */
function entries(m: Maglev, size: number): Map<string, number> {
  const c = new Map<string, number>();
  for (let i = 0; i < size; i++) {
    const k = m.choose(i)?.key ?? 'none';
    c.set(k, (c.get(k) ?? 0) + 1);
  }
  return c;
}

describe('MAGLEV', () => {
  it('sends the same key to the same host, across pickers', () => {
    const p = createPicker(uniformSet(6), MAGLEV, context());
    assert.equal(p.kind, 'MAGLEV');
    assert.equal(p.toString(), 'MAGLEV (table of 65537) over 6 hosts, hash on cookie session');
    const first = mapping(p, 3000);
    assert.deepEqual(mapping(p, 3000), first);
    assert.deepEqual(mapping(createPicker(uniformSet(6), MAGLEV, context(42)), 3000), first);
  });

  it('fills the table almost perfectly evenly (each host within one entry of M/N)', () => {
    const m = new Maglev(65537);
    m.reset(uniformSet(7).hosts, undefined);
    const c = entries(m, 65537);
    assert.equal(c.size, 7);
    for (const [k, n] of c) assert.ok(Math.abs(n - 65537 / 7) <= 1, `${k}: ${n}`);
  });

  it('gives table entries in proportion to weight', () => {
    const m = new Maglev(65537);
    m.reset(hostSet([ep('10.0.0.1', { weight: 1 }), ep('10.0.0.2', { weight: 3 })]).hosts, undefined);
    const share = (entries(m, 65537).get(key(1)) ?? 0) / 65537;
    assert.ok(Math.abs(share - 0.25) < 0.005, `weight-1 share ${share}`);
  });

  it('ejecting one of N hosts moves about 1/N of the keys; the table is rebuilt and restored', () => {
    const set = uniformSet(10);
    const p = createPicker(set, MAGLEV, context());
    const before = mapping(p, 10_000);
    const gone = set.hosts[6]!;
    set.setEjected(gone, true);
    const after = mapping(p, 10_000);
    let moved = 0;
    for (let i = 0; i < before.length; i++) {
      assert.notEqual(after[i], gone.key);
      if (before[i] !== after[i]) moved++;
    }
    // Maglev trades a little extra disruption for balance; the paper reports a few percent.
    const frac = moved / before.length;
    assert.ok(frac > 0.08 && frac < 0.16, `moved ${frac.toFixed(3)} of keys for N=10`);
    set.setEjected(gone, false);
    assert.deepEqual(mapping(p, 10_000), before);
  });

  it('does not depend on host order', () => {
    const a = new Maglev(251);
    const b = new Maglev(251);
    const hosts = uniformSet(5).hosts;
    a.reset(hosts, undefined);
    b.reset([...hosts].reverse(), undefined);
    for (let i = 0; i < 251; i++) assert.equal(a.choose(i), b.choose(i));
  });

  it('all ejected → undefined', () => {
    const set = uniformSet(2);
    const p = createPicker(set, MAGLEV, context());
    for (const h of set.hosts) set.setEjected(h, true);
    assert.equal(p.pick({ hash: 5, avoid: undefined }), undefined);
  });

  it('uses the configured table size, raising a non-prime one to the next prime', () => {
    const p = createPicker(uniformSet(3), { consistentHash: { useSourceIp: true, maglev: { tableSize: 251 } } }, context());
    assert.equal(p.toString(), 'MAGLEV (table of 251) over 3 hosts, hash on source IP');
    assert.equal(new Maglev(100).tableSize, 101);
    assert.equal(new Maglev(0).tableSize, 65537);
  });
});

describe('isPrime / nextPrime', () => {
  it('agree with Envoy on small numbers and the defaults', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 9, 65537, 65536].map(isPrime),
      [true, true, true, false, true, false, true, false],
    );
    assert.equal(nextPrime(65536), 65537);
    assert.equal(nextPrime(90), 97);
  });
});
