import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileRe2, fastPathRegExp, RE2_MEMO_SIZE } from './regex.ts';

describe('RE2 regexes', () => {
  const cases: [string, string, boolean][] = [
    ['/reviews/[0-9]+', '/reviews/12', true],
    ['/reviews/[0-9]+', '/reviews/12x', false], // full match, as Envoy
    ['/reviews/[0-9]+', 'x/reviews/12', false],
    ['^/api/v\\d+/.*$', '/api/v2/users', true],
    ['(?i)/API', '/api', true], // RE2 inline flags (re2js path)
    ['\\pL+', 'héllo', true], // Unicode classes (re2js path)
    ['[[:digit:]]+', '123', true],
    ['a\\sb', 'a b', true],
    ['a\\sb', 'a\u00a0b', false], // RE2 \s is ASCII whitespace only
    ['foo|bar', 'bar', true],
    ['foo|bar', 'foobar', false],
    ['(a+)+b', `${'a'.repeat(40)}c`, false], // would hang a backtracking engine
    ['(a|aa)*c', `${'a'.repeat(40)}b`, false],
    ['.*a.*a.*a.*b', `${'a'.repeat(5000)}`, false],
  ];
  for (const [pattern, input, expected] of cases) {
    it(`${JSON.stringify(pattern)} on ${JSON.stringify(input.slice(0, 20))} → ${expected}`, () => {
      const re = compileRe2(pattern);
      assert.ok(!('error' in re));
      assert.equal(re.matches(input), expected);
    });
  }

  it('takes the V8 fast path only for provably linear patterns', () => {
    for (const p of ['/reviews/[0-9]+', 'foo|bar', '/api/.*', 'a{2,5}b', '\\d{3}-\\d{4}', '(?:v1|v2)/x+']) assert.ok(fastPathRegExp(p) instanceof RegExp, p);
    for (const p of ['(a+)+b', '(a|aa)*c', '.*a.*b', '(?i)x', '\\pL', '[[:alpha:]]', 'a\\sb', '(ab){2,}', '\\Qa\\E', 'x{2,}y+']) assert.equal(fastPathRegExp(p), undefined, p);
  });

  it('rejects what RE2 rejects, with the reason', () => {
    for (const p of ['(a)\\1', '(?=a)', '(?<!a)b', 'a(']) {
      const re = compileRe2(p);
      assert.ok('error' in re, p);
      assert.match(re.error, /invalid RE2 regex/);
    }
    const long = compileRe2('a'.repeat(1025));
    assert.ok('error' in long && /limit is 1024/.test(long.error));
  });

  it('rewrites with RE2 \\1 references', () => {
    const re = compileRe2('^/v1/(.*)$');
    assert.ok(!('error' in re));
    assert.equal(re.replaceAll('/v1/users', '/v2/\\1'), '/v2/users');
  });

  // Envoy's regex_rewrite is RE2::GlobalReplace, whose rewrite string RE2::Rewrite reads: \0-\9 are
  // groups, \\ is a backslash, anything else is literal; a group the pattern lacks (MaxSubmatch) leaves
  // the input unchanged.
  const rows: [pattern: string, rewrite: string, input: string, want: string][] = [
    ['^/a/(.*)$', '/b/$1', '/a/x', '/b/$1'],
    ['^/a/(.*)$', '/b/$$1', '/a/x', '/b/$$1'],
    ['^/a/(.*)$', '/b/$&', '/a/x', '/b/$&'],
    ['^/a/(.*)$', '\\0/end', '/a/x', '/a/x/end'],
    ['^/a/(.*)$', '/b/\\\\1', '/a/x', '/b/\\1'],
    ['^/a/(.*)$', '/b/\\2', '/a/x', '/a/x'],
    ['^/(a)?(b)$', '/[\\1]\\2', '/b', '/[]b'],
    ['^/(.*)/(.*)$', '/\\2/\\1', '/p/q', '/q/p'],
    ['o', '0', '/foo/bool', '/f00/b00l'],
    // GlobalReplace skips an empty match that starts where the last replaced one ended (re2.cc).
    ['(.*)', '/api\\1', '/a/b', '/api/a/b'],
    ['.*', '/', '/anything', '/'],
    ['[^/]*$', 'index.html', '/a/b', '/a/index.html'],
    ['a*', '-', 'baaac', '-b-c-'],
    ['/*$', '/', '/docs//', '/docs/'],
    ['^(.*)$', '/x\\1', '/a', '/x/a'],
  ];
  for (const [pattern, rewrite, input, want] of rows) {
    it(`RE2 rewrite ${JSON.stringify(rewrite)} with ${pattern} on ${input} gives ${want}`, () => {
      const re = compileRe2(pattern);
      assert.ok(!('error' in re));
      assert.equal(re.replaceAll(input, rewrite), want);
    });
  }
});

describe('compileRe2 remembers what it compiled', () => {
  it('a pattern is compiled once: validating a config and compiling it share the result (a cold start compiled each regex twice)', () => {
    const a = compileRe2('/memo/[0-9]+');
    assert.equal(compileRe2('/memo/[0-9]+'), a);
    const bad = compileRe2('(memo');
    assert.equal(compileRe2('(memo'), bad);
    assert.ok('error' in bad);
    assert.ok(Object.isFrozen(a) && Object.isFrozen(bad));
  });

  it(`keeps at most ${RE2_MEMO_SIZE} patterns, forgetting the oldest`, () => {
    const first = compileRe2('/memo-first');
    for (let i = 0; i < RE2_MEMO_SIZE; i++) compileRe2(`/memo-fill-${i}`);
    const again = compileRe2('/memo-first');
    assert.notEqual(again, first);
    assert.ok(!('error' in again) && again.matches('/memo-first'));
  });
});
