import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { POOL_SIZE } from './random-pool.ts';
import { newRequestId } from './request-id.ts';

describe('x-request-id', () => {
  it('a random version 4 UUID, lower-case, new for each request (past several refills of the pool)', () => {
    const seen = new Set<string>();
    // Each position of the 30 random hex digits takes every value over enough ids.
    const perPosition: Set<string>[] = Array.from({ length: 36 }, () => new Set());
    const n = 3 * (POOL_SIZE / 16);
    for (let i = 0; i < n; i++) {
      const id = newRequestId();
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(id);
      for (let j = 0; j < 36; j++) perPosition[j]?.add(id[j] as string);
    }
    assert.equal(seen.size, n);
    for (let j = 0; j < 36; j++) {
      const want = j === 8 || j === 13 || j === 18 || j === 23 ? 1 : j === 14 ? 1 : j === 19 ? 4 : 16;
      assert.equal(perPosition[j]?.size, want, `position ${j}`);
    }
  });

  it('a string that is not kept and written over: each id stays as it was returned', () => {
    const a = newRequestId();
    const copy = `${a}`;
    newRequestId();
    assert.equal(a, copy);
  });
});
