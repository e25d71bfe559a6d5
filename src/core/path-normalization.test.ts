import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizePath, type PathNormalization } from './path-normalization.ts';

// Rows from Envoy's test/common/http/path_utility_test.cc (NormalizeValidPaths, NormalizeCasePath,
// InvalidPaths, MergeSlashes, UnescapeSlashes), and the attacks the issue names.
describe('path normalization as Envoy (pathNormalization)', () => {
  const base: [string, string | undefined][] = [
    ['/xyz', '/xyz'],
    ['/x/y/z', '/x/y/z'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/./c', '/a/b/c'],
    ['a/b/../c', '/a/c'],
    ['/a/b/../../../../c', '/c'],
    ['/a/..\\c', '/c'],
    ['/%c0%af', '/%c0%af'],
    ['/%5c%25', '/%5c%25'],
    ['/a/b/%2E%2E/c', '/a/c'],
    ['/a/b/%2E./c', '/a/c'],
    ['/a/b/%2E/c', '/a/b/c'],
    ['..', '/'],
    ['/../a/b', '/a/b'],
    ['/./a/b', '/a/b'],
    ['/A/B/C', '/A/B/C'],
    ['/a/b/%2e%2e/c', '/a/c'],
    ['/a/%2F%2f/c', '/a/%2F%2f/c'],
    ['/xyz/.%00../abc', undefined],
    ['/xyz/%00.%00./abc', undefined],
    ['/xyz/AAAAA%%0000/abc', undefined],
    // The attacks of the issue: all of them are /admin once normalized.
    ['/public/../admin', '/admin'],
    ['/%2e%2e/admin', '/admin'],
    ['/./admin', '/admin'],
    ['/public/%2E%2e/admin?x=../y', '/admin?x=../y'],
    ['/a/b/.', '/a/b/'],
    ['/a/..', '/'],
    // BASE keeps double slashes.
    ['//admin', '//admin'],
    // Chromium's canonicalizer unescapes unreserved characters (kPathCharLookup UNESCAPE)…
    ['/%61dmin', '/admin'],
    ['/%41%42%7e%2D%5F%30', '/AB~-_0'],
    ['/public/%2e%2e/%61dmin', '/admin'],
    ['/a%2eb', '/a.b'],
    // …and no other escape, nor a `%` that begins none.
    ['/a%2fb%3F%20%C3%A9', '/a%2fb%3F%20%C3%A9'],
    ['/100%', '/100%'],
    ['/%zz/%4', '/%zz/%4'],
    // A literal `%` that would begin an escape once its neighbour is unescaped is written %25
    // (CheckForNestedEscapes), so a second decode downstream cannot make /admin of it.
    ['/%%361dmin', '/%2561dmin'],
    ['/%6%31dmin', '/%2561dmin'],
    ['/%%32e%%32e/admin', '/%252e%252e/admin'],
  ];
  for (const [input, want] of base) {
    it(`BASE ${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => assert.equal(normalizePath(input, 'BASE'), want));
  }

  const modes: [PathNormalization, string, string | undefined][] = [
    ['NONE', '/public/../admin', '/public/../admin'],
    ['NONE', '/a//b', '/a//b'],
    ['MERGE_SLASHES', '//a/b/c', '/a/b/c'],
    ['MERGE_SLASHES', '/a//b/c/', '/a/b/c/'],
    ['MERGE_SLASHES', '/a////b/c', '/a/b/c'],
    ['MERGE_SLASHES', '/a//b?a=///c', '/a/b?a=///c'],
    ['MERGE_SLASHES', '//a/?b', '/a/?b'],
    ['MERGE_SLASHES', '/a/%2F%2f/c', '/a/%2F%2f/c'],
    ['DECODE_AND_MERGE_SLASHES', '/a%2Fb%2fc/', '/a/b/c/'],
    ['DECODE_AND_MERGE_SLASHES', '/a/%2F%2f/c', '/a/c'],
    ['DECODE_AND_MERGE_SLASHES', '/public%2F..%2Fadmin', '/admin'],
    ['DECODE_AND_MERGE_SLASHES', '/a%5C..%5cb', '/b'],
    ['DECODE_AND_MERGE_SLASHES', '/x%2b', '/x%2b'],
  ];
  for (const [mode, input, want] of modes) {
    it(`${mode} ${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => assert.equal(normalizePath(input, mode), want));
  }

  it('normalizing twice changes nothing (idempotent), for every mode', () => {
    for (const [input] of base) {
      for (const mode of ['BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const) {
        const once = normalizePath(input, mode);
        if (once !== undefined) assert.equal(normalizePath(once, mode), once, `${mode} ${input}`);
      }
    }
  });

  it('drops a fragment before normalizing, in every mode, as an Istio sidecar does (its dot segments do not move the path)', () => {
    for (const mode of ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const) {
      assert.equal(normalizePath('/admin#/../pub', mode), '/admin', mode);
      assert.equal(normalizePath('/pub#/../admin', mode), '/pub', mode);
      assert.equal(normalizePath('/p?q=1#/../../admin', mode), '/p?q=1', mode);
      assert.equal(normalizePath('/p#x?q=1', mode), '/p', mode);
    }
  });
});
