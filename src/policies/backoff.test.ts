import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Random, seededRandom } from '../core/clock.ts';
import { backoffDelayMs, DEFAULT_BACKOFF_BASE_MS, parseHttpDate, retryAfterMs } from './backoff.ts';

const fixed = (v: number): Random => ({ next: () => v });
const ALMOST_ONE = 0.999_999;

describe('backoffDelayMs: fully jittered exponential backoff', () => {
  it('matches the Envoy docs examples at the top of each range (25ms base: 0-24, 0-74, 0-174, capped 0-249)', () => {
    const top = [1, 2, 3, 4, 5, 9].map((n) => backoffDelayMs(n, DEFAULT_BACKOFF_BASE_MS, fixed(ALMOST_ONE)));
    assert.deepEqual(top, [24, 74, 174, 249, 249, 249]);
    assert.equal(backoffDelayMs(3, 25, fixed(0)), 0);
  });

  const samples = 20_000;
  for (const [n, upper] of [
    [1, 25],
    [2, 75],
    [3, 175],
    [4, 250],
    [6, 250],
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
    let beyondRetry3 = 0;
    for (let i = 0; i < samples; i++) {
      const d = backoffDelayMs(4, 25, rnd); // uncapped range would be [0, 375)
      if (d >= 240) atTop++;
      if (d >= 175) beyondRetry3++;
    }
    // Uniform on [0,250): P(d ≥ 240) = 4%. Clamping a [0,375) draw would give 36%.
    assert.ok(atTop / samples < 0.06, `share at the top ${atTop / samples}`);
    assert.ok(beyondRetry3 / samples > 0.25, `share above retry 3's range ${beyondRetry3 / samples}`);
  });

  it('honours a custom base and maximum', () => {
    assert.equal(backoffDelayMs(2, 100, fixed(ALMOST_ONE)), 299);
    assert.equal(backoffDelayMs(10, 100, fixed(ALMOST_ONE)), 999);
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
