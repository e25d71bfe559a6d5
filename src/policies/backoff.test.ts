import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Random, seededRandom } from '../core/clock.ts';
import { backoffDelayMs, DEFAULT_BACKOFF_BASE_MS, parseHttpDate, retryAfterMs } from './backoff.ts';

const fixed = (v: number): Random => ({ next: () => v });
const ALMOST_ONE = 0.999_999;

describe('backoffDelayMs: fully jittered exponential backoff, as Envoy runs it', () => {
  // Envoy draws `random() % interval`; a draw just below 1 gives the top of each range, interval − 1.
  const tops = (base: number, n: number, max?: number) => Array.from({ length: n }, (_, i) => backoffDelayMs(i + 1, base, fixed(ALMOST_ONE), max));

  it('retry_state_impl_test.cc Backoff: 25 ms base, the interval doubles per retry (0-24, 0-49, 0-99, 0-199) up to 10·base (0-249)', () => {
    assert.deepEqual(tops(DEFAULT_BACKOFF_BASE_MS, 7), [24, 49, 99, 199, 249, 249, 249]);
    // Envoy's rows: random() = 190 gives 15, 40, 90 (190 % 25, % 50, % 100).
    const draw = (x: number, interval: number): Random => fixed((x % interval) / interval + 1e-9);
    assert.deepEqual([1, 2, 3].map((n) => backoffDelayMs(n, 25, draw(190, 25 * 2 ** (n - 1)))), [15, 40, 90]);
    assert.equal(backoffDelayMs(3, 25, fixed(0)), 0);
  });

  it('retry_state_impl_test.cc CustomBackOffInterval: base 100 ms, max 1200 ms → intervals 100, 200, 400, 800, 1200', () => {
    assert.deepEqual(tops(100, 6, 1200), [99, 199, 399, 799, 1199, 1199]);
  });

  it('retry_state_impl_test.cc CustomBackOffIntervalDefaultMax: base 100 ms, default max 10·base → intervals 100, 200, 400, 800, 1000', () => {
    assert.deepEqual(tops(100, 6), [99, 199, 399, 799, 999, 999]);
  });

  const samples = 20_000;
  for (const [n, upper] of [
    [1, 25],
    [2, 50],
    [3, 100],
    [4, 200],
    [5, 250],
    [7, 250],
  ] as const) {
    it(`retry ${n} is uniform in [0, ${upper})`, () => {
      const rnd = seededRandom(1000 + n);
      let sum = 0;
      let max = -1;
      let min = Number.POSITIVE_INFINITY;
      for (let i = 0; i < samples; i++) {
        const d = backoffDelayMs(n, 25, rnd);
        assert.ok(Number.isInteger(d) && d >= 0 && d < upper, `retry ${n}: ${d} outside [0, ${upper})`);
        sum += d;
        if (d > max) max = d;
        if (d < min) min = d;
      }
      const mean = sum / samples;
      const expected = (upper - 1) / 2;
      assert.ok(Math.abs(mean - expected) < expected * 0.03 + 0.5, `retry ${n}: mean ${mean}, expected ≈ ${expected}`);
      assert.equal(min, 0);
      assert.equal(max, upper - 1);
    });
  }

  it('caps the interval, not the draw: capped retries stay uniform instead of piling up at the cap', () => {
    const rnd = seededRandom(7);
    let atTop = 0;
    let beyondRetry4 = 0;
    for (let i = 0; i < samples; i++) {
      const d = backoffDelayMs(5, 25, rnd); // uncapped interval would be 400
      if (d >= 240) atTop++;
      if (d >= 200) beyondRetry4++;
    }
    // Uniform on [0,250): P(d ≥ 240) = 4%. Clamping a [0,400) draw would give 40%.
    assert.ok(atTop / samples < 0.06, `share at the top ${atTop / samples}`);
    assert.ok(beyondRetry4 / samples > 0.15, `share above retry 4's range ${beyondRetry4 / samples}`);
  });

  it('honours a custom maximum below the default', () => {
    assert.equal(backoffDelayMs(10, 100, fixed(ALMOST_ONE), 400), 399);
  });

  it('treats retry numbers below 1 as the first retry, and a zero base as no wait', () => {
    assert.equal(backoffDelayMs(0, 25, fixed(ALMOST_ONE)), 24);
    assert.equal(backoffDelayMs(3, 0, fixed(ALMOST_ONE)), 0);
  });
});

describe('retryAfterMs', () => {
  const now = Date.UTC(2026, 0, 15, 12, 0, 0);
  const big = 3_600_000;
  it('reads delta-seconds', () => {
    assert.equal(retryAfterMs({ 'retry-after': '120' }, now, big), 120_000);
    assert.equal(retryAfterMs({ 'retry-after': ' 0 ' }, now, big), 0);
    assert.equal(retryAfterMs({ 'retry-after': ['3', '9'] }, now, big), 3000);
  });

  it('reads an IMF-fixdate, as wall-clock time relative to now', () => {
    assert.equal(retryAfterMs({ 'retry-after': 'Thu, 15 Jan 2026 12:00:30 GMT' }, now, big), 30_000);
  });

  it('reads the obsolete RFC 850 and asctime forms', () => {
    assert.equal(retryAfterMs({ 'retry-after': 'Thursday, 15-Jan-26 12:01:00 GMT' }, now, big), 60_000);
    assert.equal(retryAfterMs({ 'retry-after': 'Thu Jan 15 12:00:05 2026' }, now, big), 5000);
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), Date.UTC(1994, 10, 6, 8, 49, 37));
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', now), Date.UTC(1994, 10, 6, 8, 49, 37));
  });

  it('gives 0 for a date in the past', () => {
    assert.equal(retryAfterMs({ 'retry-after': 'Thu, 15 Jan 2026 11:00:00 GMT' }, now, big), 0);
  });

  it('caps the delay at the caller’s maximum', () => {
    assert.equal(retryAfterMs({ 'retry-after': '120' }, now, 5000), 5000);
    assert.equal(retryAfterMs({ 'retry-after': 'Thu, 15 Jan 2026 13:00:00 GMT' }, now, 10_000), 10_000);
  });

  it('ignores an absent or malformed header', () => {
    for (const v of ['', '12abc', '-5', '1.5', 'soon', 'Thu, 32 Jan 2026 12:00:00 GMT', 'Thu, 31 Feb 2026 12:00:00 GMT', 'Thu, 15 Jan 2026 12:00:00 CET']) {
      assert.equal(retryAfterMs({ 'retry-after': v }, now, big), undefined, JSON.stringify(v));
    }
    assert.equal(retryAfterMs({}, now, big), undefined);
    assert.equal(retryAfterMs(undefined, now, big), undefined);
  });
});
