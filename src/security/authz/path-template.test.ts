import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePathTemplate } from './path-template.ts';

function matches(template: string, path: string): boolean {
  const m = compilePathTemplate(template);
  if ('error' in m) throw new Error(m.error);
  const q = path.search(/[?#]/);
  return m.matchTo(path, q === -1 ? path.length : q);
}

describe('path templates as Envoy matches them', () => {
  // Istio's TestAuthz_PathTemplating (tests/integration/security/authz_test.go) against
  // paths: ["/allow/admin/{**}", "/foo/{*}/bar/{**}", "/store/{**}/cart"], every row.
  const policy = ['/allow/admin/{**}', '/foo/{*}/bar/{**}', '/store/{**}/cart'];
  const istio: [string, boolean][] = [
    ['/allow/admin/', true],
    ['/allow/admin', false],
    ['/allow/user/', false],
    ['/allow/admin?param=value', false],
    ['/allow', false],
    ['/allow/admin/temp', true],
    ['/allow/admin/temp.txt', true],
    ['/allow/admin/foo/temp.txt', true],
    ['/foo/buzz/bar/bat.txt', true],
    ['/foo/buzz/bar/bat.temp.txt', true],
    ['/foo/buzz/bar/bat/fuzz.txt', true],
    ['/foo/bar/bat.txt', false],
    ['/foo//bar/bat.txt', false],
    ['/foo/buzz/bar/bat', true],
    ['/store//cart', true],
    ['/store/cart', false],
    ['/store/foo/cart', true],
    ['/store/foo/bar/cart', true],
  ];
  for (const [path, want] of istio) {
    it(`Istio TestAuthz_PathTemplating: ${path} → ${want ? 'allow' : 'deny'}`, () => assert.equal(policy.some((t) => matches(t, path)), want));
  }

  const more: [string, string, boolean][] = [
    ['/foo/{*}', '/foo/bar', true],
    ['/foo/{*}', '/foo/', false], // {*} is at least one character
    ['/foo/{*}', '/foo/bar/baz', false], // and never a '/'
    ['/foo/{*}', '/foo/bar?x=/y', true], // the query is not part of the path
    ['/foo/{*}', '/foo/bar#frag/x', true],
    ['/foo/{*}', '/foo/a*b', false], // '*' is not a pchar Envoy's segment glob takes
    ['/foo/{*}', '/foo/a b', false],
    ["/foo/{*}", "/foo/a-._~%20!$&'()+,;:@=", true],
    ['/{*}/foo/{**}/bar', '/x/foo/bar', false],
    ['/{*}/foo/{**}/bar', '/x/foo//bar', true],
    ['/{*}/foo/{**}/bar', '/x/foo/a/b/bar', true],
    ['/{*}/{*}/foo/{**}/bar', '/a/b/foo/c/bar', true],
    ['/{**}', '/', true],
    ['/{**}', '/any/thing', true],
    ['/api/{*}/', '/api/v1/', true], // a trailing '/' is an empty last segment
    ['/api/{*}/', '/api/v1', false],
    ['/a.b/{*}', '/aXb/c', false], // '.' in a literal is literal
    ['/a+b/{*}', '/a+b/c', true],
  ];
  for (const [t, path, want] of more) {
    it(`${t} ${want ? 'matches' : 'does not match'} ${path}`, () => assert.equal(matches(t, path), want));
  }

  it('Istio’s rewrite of the operators (matcher.TestPathTemplateMatcher)', () => {
    for (const [t, envoy] of [
      ['/foo/bar/{*}', '/foo/bar/*'],
      ['/foo/{**}/bar', '/foo/**/bar'],
      ['/{*}/foo/{**}/bar', '/*/foo/**/bar'],
      ['/{*}/{*}/foo/{**}/bar', '/*/*/foo/**/bar'],
    ]) {
      assert.equal(String(compilePathTemplate(t as string)), `regex:uri_template:${envoy}`);
    }
  });

  it('templates Envoy would refuse are reported, never matched', () => {
    for (const [t, msg] of [
      ['//foo/{*}', /invalid literal ""/],
      ['/foo/{**}/{*}', /no operator may follow \{\*\*\}/],
      ['/foo/{*}//', /invalid literal ""/],
      ['/foo bar/{*}', /printable/],
      ['/foo/{x}/{*}', /variables/],
    ] as const) {
      const r = compilePathTemplate(t);
      assert.ok('error' in r, t);
      assert.match(r.error, msg);
    }
  });
});
