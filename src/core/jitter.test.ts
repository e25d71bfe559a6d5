import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Random } from './clock.ts';
import { jitterMs } from './jitter.ts';

const fixed = (x: number): Random => ({ next: () => x });
const ALMOST_ONE = 1 - 2 ** -53;

test('jitterMs: uniform in [min, max), whole ms, empty ranges give the floor', () => {
  const rows: [string, number, number, number | undefined, number][] = [
    // name, draw, maxMs, minMs, expected
    ['full jitter, lowest draw', 0, 250, undefined, 0],
    ['full jitter, middle draw', 0.5, 250, undefined, 125],
    ['full jitter, highest draw stays below max', ALMOST_ONE, 250, undefined, 249],
    ['fractional bounds round down', 0.5, 10.8, undefined, 5],
    ['a band: lowest draw is min', 0, 125, 75, 75],
    ['a band: highest draw stays below max', ALMOST_ONE, 125, 75, 124],
    ['a band: middle', 0.5, 125, 75, 100],
    ['empty range (max = 0)', 0.7, 0, undefined, 0],
    ['empty range (max < min) gives min', 0.7, 10, 20, 20],
    ['negative max', 0.7, -5, undefined, 0],
    ['NaN max', 0.7, Number.NaN, undefined, 0],
    ['negative min counts as 0', 0.5, 100, -50, 50],
  ];
  for (const [name, draw, max, min, want] of rows) {
    assert.equal(min === undefined ? jitterMs(fixed(draw), max) : jitterMs(fixed(draw), max, min), want, name);
  }
});

test('jitterMs draws exactly once per call, and only when the range is not empty', () => {
  let draws = 0;
  const counting: Random = {
    next: () => {
      draws++;
      return 0.25;
    },
  };
  jitterMs(counting, 100);
  assert.equal(draws, 1);
  jitterMs(counting, 0);
  jitterMs(counting, 5, 5);
  assert.equal(draws, 1);
});
