import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StringMatch } from '../config/types/common.ts';
import { compileStringMatch, PRESENT } from './string-matcher.ts';

/** One row: a StringMatch, optional ignoreCase, an input (optionally sliced by `end`) and the expected result. */
interface Row {
  readonly m: StringMatch;
  readonly ignoreCase?: boolean;
  readonly value: string;
  readonly end?: number;
  readonly want: boolean;
  /** Why the row matters (reference section). */
  readonly why?: string;
}

function label(r: Row): string {
  const kind = JSON.stringify(r.m);
  const ic = r.ignoreCase === true ? ' ignoreCase' : '';
  const end = r.end === undefined ? '' : ` end=${r.end}`;
  return `${kind}${ic} ${r.want ? 'matches' : 'rejects'} ${JSON.stringify(r.value)}${end}${r.why ? ` (${r.why})` : ''}`;
}

function run(rows: readonly Row[]): void {
  for (const r of rows) {
    it(label(r), () => {
      const matcher = compileStringMatch(r.m, r.ignoreCase);
      const got = r.end === undefined ? matcher.matches(r.value) : matcher.matches(r.value, r.end);
      assert.equal(got, r.want);
    });
  }
}

describe('compileStringMatch: exact', () => {
  run([
    { m: { exact: '/a' }, value: '/a', want: true },
    { m: { exact: '/a' }, value: '/a/', want: false },
    { m: { exact: '/a' }, value: '/ab', want: false },
    { m: { exact: '/a' }, value: '/', want: false },
    { m: { exact: '/a' }, value: '', want: false },
    { m: { exact: '/a' }, value: 'x/a', want: false },
    { m: { exact: '/a' }, value: '/A', want: false, why: 'case-sensitive by default' },
    { m: { exact: 'jason' }, value: 'Jason', want: false, why: '§6.10 values are case-sensitive' },
    { m: { exact: '' }, value: '', want: true },
    { m: { exact: '' }, value: 'x', want: false },
    // ignoreCase (ignoreUriCase, §6.2)
    { m: { exact: '/a' }, ignoreCase: true, value: '/A', want: true },
    { m: { exact: '/Reviews/X' }, ignoreCase: true, value: '/rEVIEWS/x', want: true },
    { m: { exact: '/a' }, ignoreCase: true, value: '/AB', want: false },
    { m: { exact: '/a' }, ignoreCase: true, value: '/b', want: false },
    { m: { exact: '/a-1_[z]' }, ignoreCase: true, value: '/A-1_[Z]', want: true, why: 'non-letters compared as-is' },
    { m: { exact: '/@' }, ignoreCase: true, value: '/`', want: false, why: 'only A-Z fold' },
    // end slicing: value[0, end) (the router passes the index of "?")
    { m: { exact: '/a' }, value: '/a?x=1', end: 2, want: true, why: 'query excluded' },
    { m: { exact: '/a' }, value: '/ab?x=1', end: 3, want: false },
    { m: { exact: '/a' }, value: '/a', end: 1, want: false },
    { m: { exact: '/a?x' }, value: '/a?x', end: 2, want: false, why: 'the query is never part of the path' },
    { m: { exact: '/A' }, ignoreCase: true, value: '/a?q', end: 2, want: true },
    { m: { exact: '/a' }, ignoreCase: true, value: '/A?', end: 3, want: false },
  ]);
});

describe('compileStringMatch: prefix', () => {
  run([
    { m: { prefix: '/api' }, value: '/api', want: true },
    { m: { prefix: '/api' }, value: '/api/v1', want: true },
    { m: { prefix: '/api' }, value: '/apiv2', want: true, why: '§6.2 a plain string prefix, not a path segment' },
    { m: { prefix: '/api' }, value: '/ap', want: false },
    { m: { prefix: '/api' }, value: '', want: false },
    { m: { prefix: '/api' }, value: '/v1/api', want: false },
    { m: { prefix: '/api' }, value: '/API/v1', want: false, why: 'case-sensitive by default' },
    { m: { prefix: '/' }, value: '/', want: true },
    { m: { prefix: '/' }, value: '/anything', want: true },
    { m: { prefix: 'ja' }, value: 'jason', want: true },
    { m: { prefix: 'ja' }, value: 'JAson', want: false },
    // ignoreCase
    { m: { prefix: '/api' }, ignoreCase: true, value: '/API/v1', want: true },
    { m: { prefix: '/API' }, ignoreCase: true, value: '/apiv2', want: true },
    { m: { prefix: '/api' }, ignoreCase: true, value: '/AP', want: false },
    { m: { prefix: '/api' }, ignoreCase: true, value: '/xpi', want: false },
    // end slicing
    { m: { prefix: '/api' }, value: '/api?x=1', end: 4, want: true },
    { m: { prefix: '/api' }, value: '/ap?i', end: 3, want: false, why: 'prefix must end before the query' },
    { m: { prefix: '/a?b' }, value: '/a?b', end: 2, want: false },
    { m: { prefix: '/api' }, value: '/apix?y', end: 5, want: true },
    { m: { prefix: '/API' }, ignoreCase: true, value: '/api?', end: 4, want: true },
    { m: { prefix: '/API' }, ignoreCase: true, value: '/ap?i', end: 3, want: false },
  ]);
});

describe('compileStringMatch: regex (RE2, full match)', () => {
  run([
    { m: { regex: '/reviews/[0-9]+' }, value: '/reviews/12', want: true },
    { m: { regex: '/reviews/[0-9]+' }, value: '/reviews/12/x', want: false, why: 'must match the whole value' },
    { m: { regex: '/reviews/[0-9]+' }, value: 'x/reviews/12', want: false, why: 'must match from the start' },
    { m: { regex: '\\d+$' }, value: '123', want: true, why: '§1.1 queryParams example' },
    { m: { regex: '\\d+$' }, value: 'a123', want: false, why: '§1.1 queryParams example' },
    { m: { regex: 'a|ab' }, value: 'ab', want: true, why: 'full match tries every alternative' },
    { m: { regex: 'ab|a' }, value: 'a', want: true },
    { m: { regex: '/a.*' }, value: '/a', want: true },
    { m: { regex: '.*' }, value: '', want: true },
    { m: { regex: '' }, value: '', want: true },
    { m: { regex: '' }, value: 'x', want: false },
    { m: { regex: '/reviews' }, value: '/Reviews', want: false, why: 'case-sensitive' },
    { m: { regex: '(?i)/reviews' }, value: '/REVIEWS', want: true, why: '(?i) gives case-insensitivity' },
    { m: { regex: '(?i)JASON' }, value: 'jason', want: true },
    { m: { regex: '/a' }, ignoreCase: true, value: '/A', want: false, why: '§6.2 ignoreUriCase does not apply to regex' },
    { m: { regex: 'GET|HEAD' }, value: 'HEAD', want: true },
    { m: { regex: 'GET|HEAD' }, value: 'GETX', want: false },
    { m: { regex: 'x' }, value: 'xx', want: false },
    // end slicing: the regex sees only value[0, end)
    { m: { regex: '/reviews/[0-9]+' }, value: '/reviews/12?x=1', end: 11, want: true, why: '§6.2 query removed' },
    { m: { regex: '/a.*' }, value: '/ab?x', end: 3, want: true },
    { m: { regex: '.*x' }, value: '/ab?x', end: 3, want: false, why: 'the query is not visible to the regex' },
    { m: { regex: '.*\\?.*' }, value: '/a?b', end: 2, want: false },
    { m: { regex: '/a' }, value: '/ab', end: 2, want: true },
  ]);
});

describe('compileStringMatch: presence', () => {
  it('`{}` compiles to the PRESENT matcher, which matches any value', () => {
    const m = compileStringMatch({});
    assert.equal(m, PRESENT);
    for (const v of ['', 'x', 'anything at all']) assert.equal(m.matches(v), true);
    assert.equal(m.toString(), 'present');
  });

  it('`regex: "*"` is presence, not an RE2 pattern', () => {
    const m = compileStringMatch({ regex: '*' });
    assert.equal(m, PRESENT);
    assert.equal(m.matches(''), true);
    assert.equal(m.matches('*'), true);
    assert.equal(m.matches('abc'), true);
  });

  it('ignoreCase does not change presence', () => {
    assert.equal(compileStringMatch({}, true), PRESENT);
    assert.equal(compileStringMatch({ regex: '*' }, true), PRESENT);
  });

  it('PRESENT is frozen', () => {
    assert.ok(Object.isFrozen(PRESENT));
  });
});

describe('compileStringMatch: errors and descriptions', () => {
  it('throws on a regex that does not compile', () => {
    assert.throws(() => compileStringMatch({ regex: '(' }), /invalid RE2 regex/);
    assert.throws(() => compileStringMatch({ regex: '(?<=a)b' }), Error, 'look-behind is not RE2');
  });

  it('throws on a regex longer than 1024 characters', () => {
    assert.throws(() => compileStringMatch({ regex: 'a'.repeat(1025) }), /limit is 1024/);
  });

  const descriptions: { m: StringMatch; ignoreCase?: boolean; want: string }[] = [
    { m: { exact: '/a' }, want: 'exact "/a"' },
    { m: { exact: '/a' }, ignoreCase: true, want: 'exact "/a" (ignore case)' },
    { m: { prefix: '/api' }, want: 'prefix "/api"' },
    { m: { prefix: '/api' }, ignoreCase: true, want: 'prefix "/api" (ignore case)' },
    { m: { regex: '/r/\\d+' }, want: 'regex "/r/\\\\d+"' },
    { m: {}, want: 'present' },
  ];
  for (const d of descriptions) {
    it(`describes ${JSON.stringify(d.m)}${d.ignoreCase ? ' ignoreCase' : ''} as ${d.want}`, () => {
      assert.equal(String(compileStringMatch(d.m, d.ignoreCase)), d.want);
    });
  }
});
