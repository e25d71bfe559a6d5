import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EdfScheduler } from './edf.ts';

function counts(s: EdfScheduler, picks: number): number[] {
  const c = new Array<number>(s.size).fill(0);
  for (let i = 0; i < picks; i++) {
    const k = s.pick();
    c[k] = (c[k] as number) + 1;
  }
  return c;
}

describe('EdfScheduler', () => {
  it('gives each entry picks in proportion to its weight', () => {
    const w = [1, 2, 3];
    const c = counts(new EdfScheduler(3, (i) => w[i] as number), 600);
    // EDF is deterministic: off by at most one pick per entry.
    c.forEach((n, i) => {
      assert.ok(Math.abs(n - 100 * (w[i] as number)) <= 1, `entry ${i}: ${n}`);
    });
  });

  it('with equal weights rotates in entry order', () => {
    const s = new EdfScheduler(4, () => 1);
    const seq = Array.from({ length: 12 }, () => s.pick());
    assert.deepEqual(seq, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  });

  it('interleaves rather than bursts (smooth weighted round robin)', () => {
    const w = [1, 3];
    const s = new EdfScheduler(2, (i) => w[i] as number);
    const seq = Array.from({ length: 8 }, () => s.pick());
    // Entry 0 never runs twice in a row and appears once per four picks.
    assert.deepEqual(
      seq.filter((x) => x === 0).length,
      2,
    );
    for (let i = 1; i < seq.length; i++) assert.ok(!(seq[i] === 0 && seq[i - 1] === 0));
  });

  it('reads weights again when an entry is re-queued', () => {
    const w = [1, 1];
    const s = new EdfScheduler(2, (i) => w[i] as number);
    counts(s, 10);
    w[1] = 4;
    const c = counts(s, 500);
    assert.ok(Math.abs((c[1] as number) - 400) <= 2, `entry 1: ${c[1]}`);
  });

  it('treats non-positive weights as the smallest weight, and handles empty and single sets', () => {
    const w = [0, 1];
    const c = counts(new EdfScheduler(2, (i) => w[i] as number), 100);
    assert.ok((c[0] as number) <= 1, `zero-weight entry picked ${c[0]} times`);
    assert.equal(new EdfScheduler(0, () => 1).pick(), -1);
    const one = new EdfScheduler(1, () => 5);
    assert.deepEqual([one.pick(), one.pick()], [0, 0]);
  });
});
