import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fmix32, hash32, hash32b, requestHash } from './hash.ts';

function popcount(x: number): number {
  let v = x >>> 0;
  let n = 0;
  while (v !== 0) {
    v &= v - 1;
    n++;
  }
  return n;
}

/** Chi-square statistic of `values` bucketed by `v % buckets`. */
function chiSquare(values: readonly number[], buckets: number): number {
  const counts = new Array<number>(buckets).fill(0);
  for (const v of values) counts[v % buckets] = (counts[v % buckets] as number) + 1;
  const expected = values.length / buckets;
  return counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
}

describe('hash32 / hash32b', () => {
  it('are deterministic uint32 values', () => {
    for (const s of ['', 'a', 'ab', 'user-42', '10.0.0.1:8080_17', 'ünïcødé ✓']) {
      const a = hash32(s);
      assert.equal(a, hash32(s));
      assert.ok(Number.isInteger(a) && a >= 0 && a < 2 ** 32, `${s}: ${a}`);
      const b = hash32b(s);
      assert.equal(b, hash32b(s));
      assert.ok(Number.isInteger(b) && b >= 0 && b < 2 ** 32);
    }
  });

  it('matches the published MurmurHash3 x86_32 value for the empty string', () => {
    // MurmurHash3_x86_32("", seed) = fmix32(seed): 0 for seed 0, 0x514E28B7 for seed 1.
    assert.equal(hash32(''), 0);
    assert.equal(hash32('', 1), 0x514e28b7);
    assert.equal(fmix32(1), 0x514e28b7);
  });

  it('seeds and the second hash give different values', () => {
    let same = 0;
    for (let i = 0; i < 1000; i++) {
      const s = `key-${i}`;
      if (hash32(s) === hash32(s, 1)) same++;
      if (hash32(s) === hash32b(s)) same++;
    }
    assert.equal(same, 0);
  });

  for (const [name, fn] of [
    ['hash32', (s: string) => hash32(s)],
    ['hash32b', hash32b],
  ] as const) {
    it(`${name} spreads sequential keys evenly (chi-square over 64 buckets)`, () => {
      const values = Array.from({ length: 64_000 }, (_, i) => fn(`key-${i}`));
      // 63 degrees of freedom: the 99.9% quantile is about 103.4.
      const chi = chiSquare(values, 64);
      assert.ok(chi < 103.4, `chi-square ${chi.toFixed(1)}`);
      // High bits too (ring hash compares whole values).
      const high = chiSquare(
        values.map((v) => v >>> 26),
        64,
      );
      assert.ok(high < 103.4, `chi-square of the top 6 bits ${high.toFixed(1)}`);
    });

    it(`${name} avalanches: one changed character flips about half of the 32 bits`, () => {
      let bits = 0;
      const n = 2000;
      for (let i = 0; i < n; i++) bits += popcount(fn(`session-${i}a`) ^ fn(`session-${i}b`));
      const mean = bits / n;
      // Binomial(32, 1/2) has sd 2.83; the mean of 2000 has sd 0.063.
      assert.ok(Math.abs(mean - 16) < 0.4, `mean flipped bits ${mean}`);
    });
  }

  it('hash32 and hash32b are independent: low bits do not correlate', () => {
    // Maglev needs offset (hash32) and skip (hash32b) to be unrelated.
    const pairs = new Map<string, number>();
    for (let i = 0; i < 16_000; i++) {
      const s = `10.1.${i >> 8}.${i & 255}:8080`;
      const k = `${hash32(s) & 7},${hash32b(s) & 7}`;
      pairs.set(k, (pairs.get(k) ?? 0) + 1);
    }
    assert.equal(pairs.size, 64);
    const expected = 16_000 / 64;
    const chi = [...pairs.values()].reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    assert.ok(chi < 103.4, `chi-square ${chi.toFixed(1)}`);
  });
});

describe('requestHash', () => {
  it('is -1 without a key and hash32 of the key otherwise', () => {
    assert.equal(requestHash(undefined), -1);
    assert.equal(requestHash('jason'), hash32('jason'));
    assert.equal(requestHash(''), hash32(''));
  });
});
