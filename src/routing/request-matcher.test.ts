import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HTTPMatchRequest } from '../config/types/networking.ts';
import type { HeaderValue, RequestHead } from './request-head.ts';
import { isCatchAllMatch, RequestMatcher } from './request-matcher.ts';

interface Req {
  readonly path?: string;
  readonly method?: string;
  readonly scheme?: string;
  readonly authority?: string;
  readonly headers?: Readonly<Record<string, HeaderValue>>;
}

/** One row: a match block, a request, and whether the block accepts the request. */
interface Row {
  readonly name: string;
  readonly match: HTTPMatchRequest;
  readonly req: Req;
  readonly want: boolean;
}

function head(r: Req): RequestHead {
  return { method: r.method ?? 'GET', scheme: r.scheme ?? 'http', authority: r.authority ?? 'reviews:9080', path: r.path ?? '/', headers: r.headers ?? {} };
}

function matches(m: HTTPMatchRequest, r: Req): boolean {
  const h = head(r);
  return new RequestMatcher(m).matches(h, { queryStart: h.path.indexOf('?'), query: undefined });
}

function run(rows: readonly Row[]): void {
  for (const r of rows) {
    it(`${r.want ? 'matches' : 'rejects'}: ${r.name}`, () => {
      assert.equal(matches(r.match, r.req), r.want, `${JSON.stringify(r.match)} on ${JSON.stringify(head(r.req))}`);
    });
  }
}

describe('RequestMatcher: uri (§1.1, §6.2)', () => {
  run([
    { name: 'exact on the same path', match: { uri: { exact: '/a' } }, req: { path: '/a' }, want: true },
    { name: 'exact ignores the query string', match: { uri: { exact: '/a' } }, req: { path: '/a?x=1&y' }, want: true },
    { name: 'exact with an empty query', match: { uri: { exact: '/a' } }, req: { path: '/a?' }, want: true },
    { name: 'exact on a longer path', match: { uri: { exact: '/a' } }, req: { path: '/a/' }, want: false },
    { name: 'exact is case-sensitive', match: { uri: { exact: '/a' } }, req: { path: '/A' }, want: false },
    { name: 'exact containing "?" never matches (query removed)', match: { uri: { exact: '/a?b' } }, req: { path: '/a?b' }, want: false },
    { name: 'exact + ignoreUriCase', match: { uri: { exact: '/reviews' }, ignoreUriCase: true }, req: { path: '/REVIEWS?Q=1' }, want: true },
    { name: 'exact + ignoreUriCase on another path', match: { uri: { exact: '/reviews' }, ignoreUriCase: true }, req: { path: '/REVIEWS/1' }, want: false },
    { name: 'ignoreUriCase: false stays case-sensitive', match: { uri: { exact: '/a' }, ignoreUriCase: false }, req: { path: '/A' }, want: false },
    { name: 'prefix is a string prefix (/api matches /apiv2)', match: { uri: { prefix: '/api' } }, req: { path: '/apiv2' }, want: true },
    { name: 'prefix on a sub-path', match: { uri: { prefix: '/api' } }, req: { path: '/api/v1/x' }, want: true },
    { name: 'prefix with a query', match: { uri: { prefix: '/api' } }, req: { path: '/api?x=1' }, want: true },
    { name: 'prefix that only matches across the "?"', match: { uri: { prefix: '/api' } }, req: { path: '/ap?i' }, want: false },
    { name: 'prefix is case-sensitive', match: { uri: { prefix: '/api' } }, req: { path: '/API' }, want: false },
    { name: 'prefix + ignoreUriCase', match: { uri: { prefix: '/api' }, ignoreUriCase: true }, req: { path: '/API/V1' }, want: true },
    { name: 'prefix / matches everything', match: { uri: { prefix: '/' } }, req: { path: '/x/y?z' }, want: true },
    { name: 'regex must match the whole path', match: { uri: { regex: '/reviews/[0-9]+' } }, req: { path: '/reviews/12' }, want: true },
    { name: 'regex with a query string', match: { uri: { regex: '/reviews/[0-9]+' } }, req: { path: '/reviews/12?x=1' }, want: true },
    { name: 'regex on a longer path (not a search)', match: { uri: { regex: '/reviews/[0-9]+' } }, req: { path: '/reviews/12/x' }, want: false },
    { name: 'regex cannot see the query', match: { uri: { regex: '.*x=1' } }, req: { path: '/a?x=1' }, want: false },
    { name: 'regex + ignoreUriCase stays case-sensitive', match: { uri: { regex: '/reviews' }, ignoreUriCase: true }, req: { path: '/REVIEWS' }, want: false },
    { name: 'regex (?i) is case-insensitive', match: { uri: { regex: '(?i)/reviews' } }, req: { path: '/REVIEWS' }, want: true },
  ]);
});

describe('RequestMatcher: scheme, method, authority (§1.1)', () => {
  run([
    { name: 'scheme exact http', match: { scheme: { exact: 'http' } }, req: { scheme: 'http' }, want: true },
    { name: 'scheme exact http on https', match: { scheme: { exact: 'http' } }, req: { scheme: 'https' }, want: false },
    { name: 'scheme prefix http on https', match: { scheme: { prefix: 'http' } }, req: { scheme: 'https' }, want: true },
    { name: 'method exact GET', match: { method: { exact: 'GET' } }, req: { method: 'GET' }, want: true },
    { name: 'method exact GET on POST', match: { method: { exact: 'GET' } }, req: { method: 'POST' }, want: false },
    { name: 'method is case-sensitive', match: { method: { exact: 'GET' } }, req: { method: 'get' }, want: false },
    { name: 'method exact lower-case on upper-case', match: { method: { exact: 'post' } }, req: { method: 'POST' }, want: false },
    { name: 'method prefix', match: { method: { prefix: 'P' } }, req: { method: 'PUT' }, want: true },
    { name: 'method regex alternation', match: { method: { regex: 'GET|HEAD' } }, req: { method: 'HEAD' }, want: true },
    { name: 'method regex full match', match: { method: { regex: 'GET|HEAD' } }, req: { method: 'GETS' }, want: false },
    { name: 'authority exact with port', match: { authority: { exact: 'reviews:9080' } }, req: { authority: 'reviews:9080' }, want: true },
    { name: 'authority exact without the port', match: { authority: { exact: 'reviews:9080' } }, req: { authority: 'reviews' }, want: false },
    { name: 'authority prefix', match: { authority: { prefix: 'reviews' } }, req: { authority: 'reviews.default:9080' }, want: true },
    { name: 'authority regex', match: { authority: { regex: 'reviews(:[0-9]+)?' } }, req: { authority: 'reviews' }, want: true },
    { name: 'authority regex full match', match: { authority: { regex: 'reviews' } }, req: { authority: 'reviews:9080' }, want: false },
  ]);
});

describe('RequestMatcher: headers (§1.1, §6.10)', () => {
  const jason = { 'end-user': { exact: 'jason' } };
  run([
    { name: 'exact value', match: { headers: jason }, req: { headers: { 'end-user': 'jason' } }, want: true },
    { name: 'exact value is case-sensitive', match: { headers: jason }, req: { headers: { 'end-user': 'Jason' } }, want: false },
    { name: 'exact value, header missing', match: { headers: jason }, req: {}, want: false },
    { name: 'exact value, other header', match: { headers: jason }, req: { headers: { 'x-user': 'jason' } }, want: false },
    { name: 'config name in mixed case is looked up lower-case', match: { headers: { 'End-User': { exact: 'jason' } } }, req: { headers: { 'end-user': 'jason' } }, want: true },
    { name: 'config name in upper case', match: { headers: { 'X-TOKEN': { prefix: 'a' } } }, req: { headers: { 'x-token': 'abc' } }, want: true },
    { name: 'prefix value', match: { headers: { 'end-user': { prefix: 'ja' } } }, req: { headers: { 'end-user': 'jason' } }, want: true },
    { name: 'prefix value is case-sensitive', match: { headers: { 'end-user': { prefix: 'Ja' } } }, req: { headers: { 'end-user': 'jason' } }, want: false },
    { name: 'regex value (?i)', match: { headers: { 'end-user': { regex: '(?i)JASON' } } }, req: { headers: { 'end-user': 'jason' } }, want: true },
    { name: 'regex value is a full match', match: { headers: { 'end-user': { regex: 'jas' } } }, req: { headers: { 'end-user': 'jason' } }, want: false },
    { name: 'presence {} with a value', match: { headers: { 'x-debug': {} } }, req: { headers: { 'x-debug': '1' } }, want: true },
    { name: 'presence {} with an empty value', match: { headers: { 'x-debug': {} } }, req: { headers: { 'x-debug': '' } }, want: true },
    { name: 'presence {} when missing', match: { headers: { 'x-debug': {} } }, req: {}, want: false },
    { name: 'presence regex "*"', match: { headers: { 'x-debug': { regex: '*' } } }, req: { headers: { 'x-debug': 'anything' } }, want: true },
    { name: 'presence regex "*" when missing', match: { headers: { 'x-debug': { regex: '*' } } }, req: {}, want: false },
    { name: 'exact "" on an empty value', match: { headers: { 'x-e': { exact: '' } } }, req: { headers: { 'x-e': '' } }, want: true },
    { name: 'exact "" when missing', match: { headers: { 'x-e': { exact: '' } } }, req: {}, want: false },
    { name: 'several values are joined with ","', match: { headers: { 'x-v': { exact: 'a,b' } } }, req: { headers: { 'x-v': ['a', 'b'] } }, want: true },
    { name: 'several values: one of them alone does not match exact', match: { headers: { 'x-v': { exact: 'a' } } }, req: { headers: { 'x-v': ['a', 'b'] } }, want: false },
    { name: 'several values: regex sees the joined value', match: { headers: { 'x-v': { regex: 'a,.*' } } }, req: { headers: { 'x-v': ['a', 'b', 'c'] } }, want: true },
    { name: 'two headers, both present', match: { headers: { a: { exact: '1' }, b: { exact: '2' } } }, req: { headers: { a: '1', b: '2' } }, want: true },
    { name: 'two headers, one missing', match: { headers: { a: { exact: '1' }, b: { exact: '2' } } }, req: { headers: { a: '1' } }, want: false },
    { name: 'two headers, one wrong', match: { headers: { a: { exact: '1' }, b: { exact: '2' } } }, req: { headers: { a: '1', b: '3' } }, want: false },
    { name: 'the key "method" is ignored in headers', match: { headers: { method: { exact: 'POST' } } }, req: { method: 'GET' }, want: true },
    { name: 'the keys uri/scheme/authority are ignored in headers', match: { headers: { uri: { exact: '/x' }, scheme: { exact: 'ftp' }, authority: { exact: 'x' } } }, req: {}, want: true },
    // Pseudo-headers (Istio accepts them as header match keys; Envoy matches them as headers).
    { name: ':authority matches the authority', match: { headers: { ':authority': { prefix: 'reviews' } } }, req: { authority: 'reviews:9080' }, want: true },
    { name: ':authority, another authority', match: { headers: { ':authority': { prefix: 'ratings' } } }, req: { authority: 'reviews:9080' }, want: false },
    { name: ':method matches the method', match: { headers: { ':method': { exact: 'POST' } } }, req: { method: 'POST' }, want: true },
    { name: ':method, another method', match: { headers: { ':method': { exact: 'POST' } } }, req: { method: 'GET' }, want: false },
    { name: ':path is the path with the query', match: { headers: { ':path': { exact: '/a?b=1' } } }, req: { path: '/a?b=1' }, want: true },
    { name: ':scheme matches the scheme', match: { headers: { ':scheme': { exact: 'https' } } }, req: { scheme: 'https' }, want: true },
    { name: ':status is never present on a request', match: { headers: { ':status': {} } }, req: { headers: { ':status': '200' } }, want: false },
    // Envoy looks a `host` header up as :authority (its header map's legacy-Host alias): the Host a call is routed by.
    { name: 'host matches the authority (no host header on the request)', match: { headers: { host: { exact: 'reviews:9080' } } }, req: { authority: 'reviews:9080' }, want: true },
    { name: 'Host (any case), another authority', match: { headers: { Host: { prefix: 'ratings' } } }, req: { authority: 'reviews:9080' }, want: false },
    { name: 'host presence', match: { headers: { host: {} } }, req: { authority: 'reviews:9080' }, want: true },
    { name: 'without host ratings on reviews', match: { withoutHeaders: { host: { prefix: 'ratings' } } }, req: { authority: 'reviews:9080' }, want: true },
    { name: 'an ordinary ":method" header does not stand in for the method', match: { headers: { ':method': { exact: 'POST' } } }, req: { method: 'GET', headers: { ':method': 'POST' } }, want: false },
  ]);
});

describe('RequestMatcher: withoutHeaders (§1.1, §6.11: missing header = "")', () => {
  run([
    { name: '{x: exact a} when x is absent', match: { withoutHeaders: { x: { exact: 'a' } } }, req: {}, want: true },
    { name: '{x: exact a} when x is a', match: { withoutHeaders: { x: { exact: 'a' } } }, req: { headers: { x: 'a' } }, want: false },
    { name: '{x: exact a} when x is b', match: { withoutHeaders: { x: { exact: 'a' } } }, req: { headers: { x: 'b' } }, want: true },
    { name: '{x: exact a} when x is empty', match: { withoutHeaders: { x: { exact: 'a' } } }, req: { headers: { x: '' } }, want: true },
    { name: '{x: exact a} is case-sensitive on the value', match: { withoutHeaders: { x: { exact: 'a' } } }, req: { headers: { x: 'A' } }, want: true },
    { name: '{X: exact a}: the name is looked up lower-case', match: { withoutHeaders: { X: { exact: 'a' } } }, req: { headers: { x: 'a' } }, want: false },
    { name: '{x: prefix a} when x is absent', match: { withoutHeaders: { x: { prefix: 'a' } } }, req: {}, want: true },
    { name: '{x: prefix a} when x is ab', match: { withoutHeaders: { x: { prefix: 'a' } } }, req: { headers: { x: 'ab' } }, want: false },
    { name: '{x: exact ""} when x is absent (absent counts as "")', match: { withoutHeaders: { x: { exact: '' } } }, req: {}, want: false },
    { name: '{x: exact ""} when x is empty', match: { withoutHeaders: { x: { exact: '' } } }, req: { headers: { x: '' } }, want: false },
    { name: '{x: exact ""} when x has a value', match: { withoutHeaders: { x: { exact: '' } } }, req: { headers: { x: 'v' } }, want: true },
    { name: '{x: regex .*} when x is absent (.* matches "")', match: { withoutHeaders: { x: { regex: '.*' } } }, req: {}, want: false },
    { name: '{x: regex .+} when x is absent', match: { withoutHeaders: { x: { regex: '.+' } } }, req: {}, want: true },
    { name: '{x: regex .+} when x has a value', match: { withoutHeaders: { x: { regex: '.+' } } }, req: { headers: { x: 'v' } }, want: false },
    { name: '{x: {}} presence, x absent', match: { withoutHeaders: { x: {} } }, req: {}, want: true },
    { name: '{x: {}} presence, x present', match: { withoutHeaders: { x: {} } }, req: { headers: { x: 'v' } }, want: false },
    { name: '{x: {}} presence, x present but empty', match: { withoutHeaders: { x: {} } }, req: { headers: { x: '' } }, want: false },
    { name: '{x: regex "*"} presence, x absent', match: { withoutHeaders: { x: { regex: '*' } } }, req: {}, want: true },
    { name: '{x: regex "*"} presence, x present', match: { withoutHeaders: { x: { regex: '*' } } }, req: { headers: { x: 'v' } }, want: false },
    { name: 'several values joined with ","', match: { withoutHeaders: { x: { exact: 'a,b' } } }, req: { headers: { x: ['a', 'b'] } }, want: false },
    { name: 'two withoutHeaders, neither present', match: { withoutHeaders: { x: { exact: 'a' }, y: { exact: 'b' } } }, req: {}, want: true },
    { name: 'two withoutHeaders, the second matches', match: { withoutHeaders: { x: { exact: 'a' }, y: { exact: 'b' } } }, req: { headers: { y: 'b' } }, want: false },
    { name: 'headers and withoutHeaders together', match: { headers: { u: { exact: 'jason' } }, withoutHeaders: { x: {} } }, req: { headers: { u: 'jason' } }, want: true },
    { name: 'headers and withoutHeaders together, x present', match: { headers: { u: { exact: 'jason' } }, withoutHeaders: { x: {} } }, req: { headers: { u: 'jason', x: '1' } }, want: false },
    { name: 'without :method POST on a GET', match: { withoutHeaders: { ':method': { exact: 'POST' } } }, req: { method: 'GET' }, want: true },
    { name: 'without :method POST on a POST', match: { withoutHeaders: { ':method': { exact: 'POST' } } }, req: { method: 'POST' }, want: false },
  ]);
});

describe('RequestMatcher: queryParams (§1.1, §6.12)', () => {
  run([
    { name: 'exact value', match: { queryParams: { a: { exact: '1' } } }, req: { path: '/?a=1' }, want: true },
    { name: 'exact value among others', match: { queryParams: { a: { exact: '1' } } }, req: { path: '/x?b=2&a=1&c' }, want: true },
    { name: 'exact value, wrong value', match: { queryParams: { a: { exact: '1' } } }, req: { path: '/?a=12' }, want: false },
    { name: 'exact value, param missing', match: { queryParams: { a: { exact: '1' } } }, req: { path: '/?b=1' }, want: false },
    { name: 'exact value, no query at all', match: { queryParams: { a: { exact: '1' } } }, req: { path: '/a=1' }, want: false },
    { name: 'name is case-sensitive', match: { queryParams: { A: { exact: '1' } } }, req: { path: '/?a=1' }, want: false },
    { name: 'value is case-sensitive', match: { queryParams: { a: { exact: 'x' } } }, req: { path: '/?a=X' }, want: false },
    { name: 'exact "" matches ?key', match: { queryParams: { debug: { exact: '' } } }, req: { path: '/p?debug' }, want: true },
    { name: 'exact "" matches ?key=', match: { queryParams: { debug: { exact: '' } } }, req: { path: '/p?debug=' }, want: true },
    { name: 'exact "" does not match ?key=1', match: { queryParams: { debug: { exact: '' } } }, req: { path: '/p?debug=1' }, want: false },
    { name: 'exact "" when the param is missing', match: { queryParams: { debug: { exact: '' } } }, req: { path: '/p?x' }, want: false },
    { name: 'regex must match the whole value (\\d+$ on 123)', match: { queryParams: { id: { regex: '\\d+$' } } }, req: { path: '/?id=123' }, want: true },
    { name: 'regex must match the whole value (\\d+$ on a123)', match: { queryParams: { id: { regex: '\\d+$' } } }, req: { path: '/?id=a123' }, want: false },
    { name: 'regex "*" means present (with a value)', match: { queryParams: { a: { regex: '*' } } }, req: { path: '/?a=1' }, want: true },
    { name: 'regex "*" means present (no value)', match: { queryParams: { a: { regex: '*' } } }, req: { path: '/?a' }, want: true },
    { name: 'regex "*" when missing', match: { queryParams: { a: { regex: '*' } } }, req: { path: '/?b' }, want: false },
    { name: 'presence {} with ?key', match: { queryParams: { a: {} } }, req: { path: '/?a' }, want: true },
    { name: 'presence {} when missing', match: { queryParams: { a: {} } }, req: { path: '/' }, want: false },
    // Envoy matches the query as sent (QueryParamsMulti::parseQueryString, decode_params=false).
    { name: 'the value is not URL-decoded (%20): the raw text matches', match: { queryParams: { q: { exact: 'a%20b' } } }, req: { path: '/?q=a%20b' }, want: true },
    { name: 'the value is not URL-decoded (%20): the decoded text does not', match: { queryParams: { q: { exact: 'a b' } } }, req: { path: '/?q=a%20b' }, want: false },
    { name: 'the value is not URL-decoded (%2F)', match: { queryParams: { q: { exact: 'a/b' } } }, req: { path: '/?q=a%2Fb' }, want: false },
    { name: '+ is not a space', match: { queryParams: { q: { exact: 'a b' } } }, req: { path: '/?q=a+b' }, want: false },
    { name: '+ is matched as written', match: { queryParams: { q: { exact: 'a+b' } } }, req: { path: '/?q=a+b' }, want: true },
    { name: 'the name is not URL-decoded', match: { queryParams: { 'my key': { exact: 'v' } } }, req: { path: '/?my%20key=v' }, want: false },
    { name: 'the name as sent', match: { queryParams: { 'my%20key': { exact: 'v' } } }, req: { path: '/?my%20key=v' }, want: true },
    { name: 'two params, both present', match: { queryParams: { a: { exact: '1' }, b: { exact: '2' } } }, req: { path: '/?a=1&b=2' }, want: true },
    { name: 'two params, one missing', match: { queryParams: { a: { exact: '1' }, b: { exact: '2' } } }, req: { path: '/?a=1' }, want: false },
    { name: 'uri and query matched together', match: { uri: { exact: '/p' }, queryParams: { a: { exact: '1' } } }, req: { path: '/p?a=1' }, want: true },
  ]);
});

describe('RequestMatcher: conditions in one block are ANDed', () => {
  const all: HTTPMatchRequest = {
    uri: { prefix: '/api' },
    method: { exact: 'POST' },
    scheme: { exact: 'http' },
    authority: { prefix: 'reviews' },
    headers: { 'end-user': { exact: 'jason' } },
    withoutHeaders: { 'x-canary': {} },
    queryParams: { v: { exact: '2' } },
  };
  const ok: Req = { path: '/api/x?v=2', method: 'POST', scheme: 'http', authority: 'reviews:9080', headers: { 'end-user': 'jason' } };
  run([
    { name: 'every condition holds', match: all, req: ok, want: true },
    { name: 'uri differs', match: all, req: { ...ok, path: '/web?v=2' }, want: false },
    { name: 'method differs', match: all, req: { ...ok, method: 'GET' }, want: false },
    { name: 'scheme differs', match: all, req: { ...ok, scheme: 'https' }, want: false },
    { name: 'authority differs', match: all, req: { ...ok, authority: 'ratings:9080' }, want: false },
    { name: 'header missing', match: all, req: { ...ok, headers: {} }, want: false },
    { name: 'excluded header present', match: all, req: { ...ok, headers: { 'end-user': 'jason', 'x-canary': '1' } }, want: false },
    { name: 'query param differs', match: all, req: { ...ok, path: '/api/x?v=1' }, want: false },
    { name: 'an empty block matches any request', match: {}, req: ok, want: true },
    { name: 'name only: matches any request', match: { name: 'named' }, req: {}, want: true },
  ]);

  it('exposes the block name and describes the conditions', () => {
    const m = new RequestMatcher({ name: 'jason', uri: { prefix: '/api' }, headers: { 'End-User': { exact: 'jason' } } });
    assert.equal(m.name, 'jason');
    assert.equal(String(m), 'uri prefix "/api" and header end-user exact "jason"');
    assert.equal(String(new RequestMatcher({})), 'any request');
  });

  it('one scratch object serves several blocks for the same request', () => {
    const h = head({ path: '/p?a=1&b=2' });
    const scratch = { queryStart: h.path.indexOf('?'), query: undefined };
    assert.equal(new RequestMatcher({ queryParams: { a: { exact: '2' } } }).matches(h, scratch), false);
    assert.equal(new RequestMatcher({ queryParams: { b: { exact: '2' } } }).matches(h, scratch), true);
    assert.equal(new RequestMatcher({ uri: { exact: '/p' } }).matches(h, scratch), true);
  });
});

describe('isCatchAllMatch (§6.1)', () => {
  const rows: { name: string; m: HTTPMatchRequest | undefined; want: boolean }[] = [
    { name: 'no match block', m: undefined, want: true },
    { name: 'empty block', m: {}, want: true },
    { name: 'name only', m: { name: 'all' }, want: true },
    { name: 'uri prefix /', m: { uri: { prefix: '/' } }, want: true },
    { name: 'uri regex .*', m: { uri: { regex: '.*' } }, want: true },
    { name: 'uri prefix / with ignoreUriCase', m: { uri: { prefix: '/' }, ignoreUriCase: true }, want: true },
    { name: 'uri prefix /api', m: { uri: { prefix: '/api' } }, want: false },
    { name: 'uri exact /', m: { uri: { exact: '/' } }, want: false },
    { name: 'uri regex /.+', m: { uri: { regex: '/.+' } }, want: false },
    { name: 'prefix / plus a header', m: { uri: { prefix: '/' }, headers: { x: {} } }, want: false },
    { name: 'prefix / plus withoutHeaders', m: { uri: { prefix: '/' }, withoutHeaders: { x: {} } }, want: false },
    { name: 'prefix / plus a query param', m: { uri: { prefix: '/' }, queryParams: { a: {} } }, want: false },
    { name: 'method only', m: { method: { exact: 'GET' } }, want: false },
    { name: 'scheme only', m: { scheme: { exact: 'http' } }, want: false },
    { name: 'authority only', m: { authority: { exact: 'reviews' } }, want: false },
    { name: 'port only', m: { port: 9080 }, want: false },
    { name: 'sourceLabels only', m: { sourceLabels: { app: 'productpage' } }, want: false },
    { name: 'sourceNamespace only', m: { sourceNamespace: 'default' }, want: false },
    { name: 'gateways only', m: { gateways: ['mesh'] }, want: false },
    { name: 'regex .* plus a header', m: { uri: { regex: '.*' }, headers: { 'end-user': { exact: 'jason' } } }, want: false },
  ];
  for (const r of rows) {
    it(`${r.name} → ${r.want}`, () => assert.equal(isCatchAllMatch(r.m), r.want));
  }
});
