import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hitsOf } from './hits-addend.ts';

describe('hits_addend from a request header (format %REQ(x-hits)%)', () => {
  const of = (v: string | undefined) => hitsOf({ header: 'x-hits' } as never, { headers: v === undefined ? {} : { 'x-hits': v } });
  it('reads a number as Envoy does (SimpleAtod, 0..1e9, truncated)', () => {
    const rows: [string, number | undefined][] = [
      ['5', 5],
      ['2.5', 2],
      ['5.0', 5],
      ['+5', 5],
      ['1e3', 1000],
      ['00000000005', 5],
      [' 5 ', 5],
      ['0', 0],
      ['1000000000', 1_000_000_000],
      ['1000000001', undefined],
      ['-1', undefined],
      ['abc', undefined],
      ['NaN', undefined],
      ['Infinity', undefined],
      ['0x10', undefined],
      ['', undefined],
    ];
    for (const [v, want] of rows) assert.equal(of(v), want, JSON.stringify(v));
    assert.equal(of(undefined), undefined, 'no header: the descriptor is left out');
  });
});
