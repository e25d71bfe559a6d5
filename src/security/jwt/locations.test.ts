import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Headers } from '../../core/handler.ts';
import { DEFAULT_LOCATIONS, extractJwtRun, RequestTokens, removeToken, ruleLocations, type TokenLocation } from './locations.ts';

const T = 'aaa.bbb.ccc';
const U = 'ddd.eee.fff';
const hdr = (name: string, prefix = ''): TokenLocation => ({ kind: 'header', name, prefix });
const param = (name: string): TokenLocation => ({ kind: 'param', name });
const cookie = (name: string): TokenLocation => ({ kind: 'cookie', name });
const req = (headers: Record<string, string | string[]> = {}, path = '/') => ({ path, headers: Object.assign(Object.create(null), headers) as Headers });

describe('extraction (Envoy extractor)', () => {
  const rows: { name: string; loc: TokenLocation; headers?: Record<string, string | string[]>; path?: string; want: string[] }[] = [
    { name: 'Authorization: Bearer', loc: DEFAULT_LOCATIONS[0] as TokenLocation, headers: { authorization: `Bearer ${T}` }, want: [T] },
    { name: 'the prefix is case-sensitive', loc: DEFAULT_LOCATIONS[0] as TokenLocation, headers: { authorization: `bearer ${T}` }, want: [] },
    { name: 'another scheme is no token', loc: DEFAULT_LOCATIONS[0] as TokenLocation, headers: { authorization: 'Basic dXNlcjpwYXNz' }, want: [] },
    { name: 'the prefix is found anywhere in the value', loc: hdr('authorization', 'Bearer '), headers: { authorization: `Foo x, Bearer ${T}` }, want: [T] },
    { name: 'spaces after the prefix are skipped, the run stops at a comma', loc: hdr('authorization', 'Bearer '), headers: { authorization: `Bearer    ${T},next` }, want: [T] },
    { name: 'a prefix with nothing after it gives the whole value', loc: hdr('authorization', 'Bearer '), headers: { authorization: 'Bearer ' }, want: ['Bearer '] },
    { name: 'custom header and prefix', loc: hdr('x-jwt-token', 'Value '), headers: { 'x-jwt-token': `Value ${T}` }, want: [T] },
    { name: 'custom prefix missing: no token', loc: hdr('x-jwt-token', 'Value '), headers: { 'x-jwt-token': T }, want: [] },
    { name: 'empty prefix takes the whole value', loc: hdr('x-token'), headers: { 'x-token': ` ${T} ` }, want: [` ${T} `] },
    { name: 'repeated header with one token', loc: hdr('authorization', 'Bearer '), headers: { authorization: [`Bearer ${T}`, `Bearer ${T}`] }, want: [T] },
    { name: 'repeated header with two tokens', loc: hdr('authorization', 'Bearer '), headers: { authorization: [`Bearer ${T}`, `Bearer ${U}`] }, want: [T, U] },
    { name: 'repeated header, one without the prefix', loc: hdr('authorization', 'Bearer '), headers: { authorization: ['Basic x', `Bearer ${U}`] }, want: [U] },
    { name: 'access_token parameter', loc: param('access_token'), path: `/p?x=1&access_token=${T}`, want: [T] },
    { name: 'parameter percent-decoded', loc: param('token'), path: '/p?token=a%2Eb.c', want: ['a.b.c'] },
    { name: 'parameter name percent-decoded', loc: param('my token'), path: `/p?my%20token=${T}`, want: [T] },
    { name: 'parameter without a value', loc: param('token'), path: '/p?token', want: [''] },
    { name: 'parameter repeated with two tokens', loc: param('token'), path: `/p?token=${T}&token=${U}`, want: [T, U] },
    { name: 'parameter repeated with one token', loc: param('token'), path: `/p?token=${T}&token=${T}`, want: [T] },
    { name: 'a malformed escape is kept as is', loc: param('token'), path: '/p?token=%zz', want: ['%zz'] },
    { name: 'no query', loc: param('token'), path: '/p', want: [] },
    { name: 'a query that does not name the parameter', loc: param('token'), path: '/p?x=1&y=2', want: [] },
    { name: 'an encoded parameter name is still found', loc: param('access_token'), path: `/p?access%5Ftoken=${T}`, want: [T] },
    { name: 'cookie', loc: cookie('session'), headers: { cookie: `a=1; session=${T}; b=2` }, want: [T] },
    { name: 'quoted cookie value', loc: cookie('session'), headers: { cookie: `session="${T}"` }, want: [T] },
    { name: 'two cookies of one name: the first counts', loc: cookie('session'), headers: { cookie: `session=${T}; session=${U}` }, want: [T] },
    { name: 'cookies over several headers', loc: cookie('session'), headers: { cookie: ['a=1', `session=${U}`] }, want: [U] },
    { name: 'cookie name is exact', loc: cookie('session'), headers: { cookie: `session2=${T}` }, want: [] },
  ];
  for (const r of rows) {
    it(r.name, () => assert.deepEqual([...new RequestTokens(req(r.headers, r.path)).at(r.loc)], r.want));
  }
  // With the verified-token cache's knowledge (T and U known as whole runs, as the cache holds them): the same tokens.
  const knownRun = (s: string) => s === T || s === U;
  for (const r of rows) {
    it(`${r.name} (T and U known as whole runs)`, () => assert.deepEqual([...new RequestTokens(req(r.headers, r.path), knownRun).at(r.loc)], r.want));
  }
  it('a known run is the token as it is; what is not known is scanned (the run stops at a comma)', () => {
    const seen: string[] = [];
    const tokens = new RequestTokens(req({ authorization: [`Bearer ${T}`, `Bearer ${U},next`] }), (s) => {
      seen.push(s);
      return s === T || s === U;
    });
    assert.deepEqual([...tokens.at(hdr('authorization', 'Bearer '))], [T, U]);
    assert.deepEqual(seen, [T, `${U},next`]);
  });

  it('extractJwtRun returns the value when no token character follows', () => {
    assert.equal(extractJwtRun('Bearer  !!', 7), 'Bearer  !!');
    assert.equal(extractJwtRun('Bearer a.b-c_d', 7), 'a.b-c_d');
  });
});

describe('locations of a rule (Envoy order)', () => {
  it('defaults when none is configured', () => assert.deepEqual(ruleLocations({}), DEFAULT_LOCATIONS));
  it('headers by name+prefix, then params, then cookies, each sorted; names lower-cased', () => {
    assert.deepEqual(ruleLocations({ fromCookies: ['z', 'a'], fromParams: ['token', 'secondary_token'], fromHeaders: [{ name: 'X-Jwt-Token', prefix: 'Value ' }, { name: 'auth-token', prefix: 'Token ' }] }), [
      hdr('auth-token', 'Token '),
      hdr('x-jwt-token', 'Value '),
      param('secondary_token'),
      param('token'),
      cookie('a'),
      cookie('z'),
    ]);
  });
  it('only cookies configured: no default header', () => assert.deepEqual(ruleLocations({ fromCookies: ['c'] }), [cookie('c')]));
});

describe('removing a token', () => {
  const rows: { name: string; loc: TokenLocation; headers?: Record<string, string | string[]>; path?: string; wantHeaders: Record<string, string | string[]>; wantPath?: string }[] = [
    { name: 'the whole header', loc: hdr('authorization', 'Bearer '), headers: { authorization: `Bearer ${T}`, other: '1' }, wantHeaders: { other: '1' } },
    { name: 'every occurrence of the parameter, the rest kept raw', loc: param('token'), path: `/p?a=%20&token=${T}&b=2&token=${T}`, wantHeaders: {}, wantPath: '/p?a=%20&b=2' },
    { name: 'the only parameter: no query left', loc: param('access_token'), path: `/p?access_token=${T}`, wantHeaders: {}, wantPath: '/p' },
    { name: 'one cookie of several', loc: cookie('session'), headers: { cookie: `a=1; session=${T}; b=2` }, wantHeaders: { cookie: 'a=1; b=2' } },
    { name: 'the only cookie: no Cookie header left', loc: cookie('session'), headers: { cookie: `session=${T}` }, wantHeaders: {} },
    { name: 'every cookie of that name, over several headers', loc: cookie('s'), headers: { cookie: [`s=${T}`, `a=1; s=${U}`] }, wantHeaders: { cookie: 'a=1' } },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const q = req(r.headers, r.path ?? '/');
      removeToken(q, r.loc);
      assert.deepEqual({ ...q.headers }, r.wantHeaders);
      if (r.wantPath !== undefined) assert.equal(q.path, r.wantPath);
    });
  }
});
