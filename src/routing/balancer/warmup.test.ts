import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadBalancerSettings } from '../../config/types/destination-rule.ts';
import { assertShare, context, ep, key, tally } from './fixtures.ts';
import { HostSet, HostState } from './host.ts';
import { createPicker } from './picker.ts';
import { slowStartFactor, slowStartFrom } from './warmup.ts';

describe('slowStartFrom', () => {
  it('reads warmup with Istio defaults (10%, aggression 1)', () => {
    assert.deepEqual(slowStartFrom({ warmup: { duration: '10s' } }), { windowMs: 10_000, minWeight: 0.1, aggression: 1 });
    assert.deepEqual(slowStartFrom({ warmup: { duration: '1m', minimumPercent: 25, aggression: 2 } }), { windowMs: 60_000, minWeight: 0.25, aggression: 2 });
  });

  it('falls back to the deprecated warmupDurationSecs; warmup wins when both are set', () => {
    assert.deepEqual(slowStartFrom({ warmupDurationSecs: '100s' }), { windowMs: 100_000, minWeight: 0.1, aggression: 1 });
    assert.equal(slowStartFrom({ warmupDurationSecs: '100s', warmup: { duration: '5s' } })?.windowMs, 5000);
  });

  it('is undefined without a usable duration', () => {
    assert.equal(slowStartFrom(undefined), undefined);
    assert.equal(slowStartFrom({}), undefined);
    assert.equal(slowStartFrom({ warmup: { duration: '0s' } }), undefined);
    assert.equal(slowStartFrom({ warmup: { duration: 'soon' } }), undefined);
  });
});

describe('slowStartFactor (Envoy applySlowStartFactor)', () => {
  const ss = { windowMs: 10_000, minWeight: 0.1, aggression: 1 };
  it('ramps linearly from the minimum to 1 over the window', () => {
    assert.equal(slowStartFactor(ss, Number.NEGATIVE_INFINITY, 0), 1);
    assert.equal(slowStartFactor(ss, 0, 0), 0.1); // max(1ms/10s, 10%)
    assert.equal(slowStartFactor(ss, 0, 500), 0.1);
    assert.equal(slowStartFactor(ss, 0, 2500), 0.25);
    assert.equal(slowStartFactor(ss, 0, 9999), 0.9999);
    assert.equal(slowStartFactor(ss, 0, 10_000), 1);
    assert.equal(slowStartFactor(ss, 1000, 6000), 0.5);
  });

  it('aggression bends the ramp: (t/window)^(1/aggression)', () => {
    assert.equal(slowStartFactor({ ...ss, aggression: 2 }, 0, 2500), 0.5);
    assert.ok(Math.abs(slowStartFactor({ ...ss, aggression: 4 }, 0, 625) - 0.5) < 1e-12);
    assert.equal(slowStartFactor({ ...ss, minWeight: 0.6, aggression: 2 }, 0, 2500), 0.6);
  });
});

/** One established host and one that started warming at t=0. */
function warmingPair(): HostSet {
  return new HostSet([new HostState(ep('10.0.0.1')), new HostState(ep('10.0.0.2'), 0)]);
}

describe('warmup in pickers', () => {
  const WARMUP = { warmup: { duration: '10s' } };

  for (const simple of ['ROUND_ROBIN', 'LEAST_REQUEST'] as const) {
    it(`${simple}: a new host's share ramps up with its weight factor`, () => {
      const ctx = context(41);
      const p = createPicker(warmingPair(), { simple, ...WARMUP }, ctx);
      const n = 30_000;
      for (const [at, factor] of [
        [1000, 0.1],
        [5000, 0.5],
        [8000, 0.8],
      ] as const) {
        ctx.clock.advance(at - ctx.clock.now());
        const c = tally(p, n);
        const want = factor / (1 + factor);
        if (simple === 'ROUND_ROBIN') {
          // EDF is deterministic; weights catch up within one turn of the new host.
          assert.ok(Math.abs((c.get(key(2)) ?? 0) / n - want) < 0.005, `t=${at}: ${c.get(key(2))}`);
        } else {
          assertShare(c.get(key(2)) ?? 0, n, want, `t=${at}`);
        }
      }
      ctx.clock.advance(10_000);
      const c = tally(p, n);
      assert.ok(Math.abs((c.get(key(2)) ?? 0) / n - 0.5) < 0.01, `after the window: ${c.get(key(2))}`);
      if (simple === 'LEAST_REQUEST') assert.equal(p.toString(), 'LEAST_REQUEST (P2C) over 2 hosts, warmup 10s (min 10%, aggression 1)');
    });
  }

  it('aggression 2 gives a host a quarter into the window half its weight', () => {
    const ctx = context(43);
    const p = createPicker(warmingPair(), { warmup: { duration: '10s', aggression: 2 } }, ctx);
    ctx.clock.advance(2500);
    assert.equal(p.toString(), 'LEAST_REQUEST (weighted) over 2 hosts, warmup 10s (min 10%, aggression 2)');
    const n = 30_000;
    assertShare(tally(p, n).get(key(2)) ?? 0, n, 0.5 / 1.5, 'factor 0.5');
  });

  it('the deprecated warmupDurationSecs works the same', () => {
    const ctx = context(44);
    const p = createPicker(warmingPair(), { simple: 'ROUND_ROBIN', warmupDurationSecs: '10s' }, ctx);
    ctx.clock.advance(5000);
    const n = 9000;
    assert.ok(Math.abs((tally(p, n).get(key(2)) ?? 0) / n - 1 / 3) < 0.005);
  });

  for (const settings of [{ simple: 'RANDOM', ...WARMUP }, { consistentHash: { useSourceIp: true }, ...WARMUP }] as LoadBalancerSettings[]) {
    it(`is ignored by ${settings.simple ?? 'consistent hashing'} (Istio: ROUND_ROBIN and LEAST_REQUEST only)`, () => {
      const ctx = context(45);
      const p = createPicker(warmingPair(), settings, ctx);
      ctx.clock.advance(1000);
      const n = 20_000;
      const share = (tally(p, n).get(key(2)) ?? 0) / n;
      assert.ok(share > 0.35, `new host share ${share}`);
      assert.doesNotMatch(p.toString(), /warmup/);
    });
  }

  it('HostSet.startWarming puts an established host into slow start', () => {
    const ctx = context(46);
    const set = new HostSet([new HostState(ep('10.0.0.1')), new HostState(ep('10.0.0.2'))]);
    const p = createPicker(set, { simple: 'ROUND_ROBIN', ...WARMUP }, ctx);
    assert.equal(p.toString(), 'ROUND_ROBIN (rotation) over 2 hosts, warmup 10s (min 10%, aggression 1)');
    ctx.clock.advance(60_000);
    set.startWarming(set.hosts[1]!, ctx.clock.now());
    ctx.clock.advance(2000);
    const n = 12_000;
    assert.ok(Math.abs((tally(p, n).get(key(2)) ?? 0) / n - 0.2 / 1.2) < 0.005);
    assert.equal(p.toString(), 'ROUND_ROBIN (weighted EDF) over 2 hosts, warmup 10s (min 10%, aggression 1)');
  });
});
