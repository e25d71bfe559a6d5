import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenCache } from './token-cache.ts';
import type { ParsedJwt } from './token.ts';

// The cache never reads the parsed token; a stand-in object is enough here.
const JWT = {} as ParsedJwt;
const RUN = `eyJhbGciOiJSUzI1NiJ9.${'a'.repeat(80)}.${'b'.repeat(90)}`;
const OTHER = `eyJhbGciOiJSUzI1NiJ9.${'c'.repeat(80)}.${'d'.repeat(90)}`;

describe('TokenCache.knownRun (a header rest the cache holds as a whole JWT run)', () => {
  const rows: { name: string; cached: string[]; ask: string; want: boolean }[] = [
    { name: 'a cached token of JWT characters only', cached: [RUN], ask: RUN, want: true },
    { name: 'a cached token with another character is not a run', cached: ['aaa.bbb ccc'], ask: 'aaa.bbb ccc', want: false },
    { name: 'a cached token with a comma is not a run', cached: [`${RUN},x`], ask: `${RUN},x`, want: false },
    { name: 'a token that is not cached', cached: [RUN], ask: OTHER, want: false },
    { name: 'a cached token followed by more is not that token', cached: [RUN], ask: `${RUN},next`, want: false },
    { name: 'a token sharing the cached one\'s tail is not it', cached: [RUN], ask: `x${RUN.slice(1)}`, want: false },
    { name: 'nothing is known with the cache off', cached: [], ask: RUN, want: false },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const c = new TokenCache(r.cached.length === 0 ? 0 : 10);
      for (const t of r.cached) c.add(t, JWT);
      if (r.cached.length === 0) c.add(r.ask, JWT);
      assert.equal(c.knownRun(r.ask), r.want);
    });
  }

  it('is not a use: no hit or miss counted; the get that follows counts one hit and returns the entry', () => {
    const c = new TokenCache(10);
    const e = c.add(RUN, JWT);
    assert.equal(c.knownRun(RUN), true);
    assert.equal(c.knownRun(OTHER), false);
    assert.deepEqual([c.hits, c.misses], [0, 0]);
    assert.equal(c.get(RUN), e);
    assert.deepEqual([c.hits, c.misses], [1, 0]);
  });

  it('an entry deleted after knownRun found it is not handed out by get', () => {
    const c = new TokenCache(10);
    c.add(RUN, JWT);
    assert.equal(c.knownRun(RUN), true);
    c.delete(RUN);
    assert.equal(c.get(RUN), undefined);
  });

  it('an entry evicted after knownRun found it is not handed out by get', () => {
    const c = new TokenCache(1);
    c.add(RUN, JWT);
    assert.equal(c.knownRun(RUN), true);
    c.add(OTHER, JWT);
    assert.equal(c.get(RUN), undefined);
    assert.notEqual(c.get(OTHER), undefined);
  });

  it('a get of another token after knownRun looks that token up', () => {
    const c = new TokenCache(10);
    c.add(RUN, JWT);
    const o = c.add(OTHER, JWT);
    assert.equal(c.knownRun(RUN), true);
    assert.equal(c.get(OTHER), o);
  });
});
