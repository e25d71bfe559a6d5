/**
 * The JWT engine end to end: policies validated as the loader validates them, compiled by a
 * runtime, keys served by a real HTTP server on 127.0.0.1, tokens made at test time, time from a
 * ManualClock. Each describe is one configuration (most are the templates of Istio's
 * `tests/integration/security/jwt_test.go`), each row one request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../core/clock.ts';
import type { Headers } from '../../core/handler.ts';
import type { RequestAuthenticationSpec } from '../../config/types/security.ts';
import type { JwtAuthenticator } from './authenticator.ts';
import type { JwtOutcome, JwtRequest } from './outcome.ts';
import { b64url, type JwksServer, jwksOf, makeKey, mint, ra, signInput, startJwksServer, validated } from './fixtures.test.ts';
import { JwtRuntime } from './runtime.ts';

const NOW = 1_700_000_000; // Unix seconds at clock 0
const ISS1 = 'test-issuer-1@istio.io';
const ISS2 = 'test-issuer-2@istio.io';
const rsa = makeKey('RS256', 'rsa-1');
const ec = makeKey('ES256', 'ec-1');
const iss2Key = makeKey('RS256', 'iss2-1');
const stranger = makeKey('RS256', 'rsa-1'); // same kid, other key
const hs = makeKey('HS256', 'hs-1');

const claims1 = { iss: ISS1, sub: 'sub-1', iat: 1562182722, exp: NOW + 3600, groups: ['group-1'] };
const T1 = mint(rsa, claims1);
const T1ec = mint(ec, { ...claims1, sub: 'sub-ec' });
const T1other = mint(rsa, { ...claims1, sub: 'sub-other' });
const T2 = mint(iss2Key, { iss: ISS2, sub: 'sub-2', exp: NOW + 3600 });
const T3 = mint(rsa, { iss: 'test-issuer-3@istio.io', sub: 'sub-3', exp: NOW + 3600 });
const expired = mint(rsa, { ...claims1, exp: NOW - 61 });
const expiredInSkew = mint(rsa, { ...claims1, exp: NOW - 59 });
const notYet = mint(rsa, { ...claims1, nbf: NOW + 61 });
const nested = mint(rsa, { iss: ISS1, sub: 'sub-1', iat: 1604008018, exp: NOW + 3600, nested: { key2: 'valueC', 'nested-2': { key2: 'valueC' } } });
const withAud = (aud: unknown) => mint(rsa, { ...claims1, aud });
const alg = (h: Record<string, unknown>, key: Buffer, algName: string) => {
  const input = `${b64url({ kid: 'rsa-1', ...h })}.${b64url(claims1)}`;
  return `${input}.${signInput(algName, key, input).toString('base64url')}`;
};

const clock = new ManualClock(0);
const server: JwksServer = await startJwksServer({
  '/jwks': { body: jwksOf(rsa, ec, iss2Key) },
  '/missing.json': { status: 404, body: 'nope' },
});
server.routes.set('/oidc/.well-known/openid-configuration', { body: JSON.stringify({ issuer: `${server.url}/oidc`, jwks_uri: `${server.url}/jwks` }) });
const runtime = new JwtRuntime({ clock, epochMs: NOW * 1000 });
after(async () => {
  await runtime.close();
  await server.close();
});

interface Req {
  readonly headers?: Record<string, string | string[]>;
  readonly path?: string;
  readonly method?: string;
}

interface Want {
  readonly status?: number;
  readonly body?: string;
  /** null: passes with no principal. */
  readonly principal?: string | null;
  readonly wwwAuthenticate?: string;
  /** Request headers after authentication (undefined: absent). */
  readonly headers?: Record<string, string | undefined>;
  readonly path?: string;
  readonly claims?: Record<string, unknown>;
  readonly audiences?: readonly string[];
  readonly presenter?: string;
  /** The outcome came without a promise. */
  readonly sync?: boolean;
}

interface Row {
  readonly name: string;
  readonly req: Req;
  readonly want: Want;
}

function compile(specs: Record<string, RequestAuthenticationSpec>): JwtAuthenticator {
  const policies = validated(Object.entries(specs).map(([name, spec]) => ra(name, 'foo', spec)));
  return runtime.compile(policies, { namespace: 'foo', labels: { app: 'httpbin' } });
}

async function call(auth: JwtAuthenticator, r: Req): Promise<{ out: JwtOutcome; req: JwtRequest; sync: boolean }> {
  const req: JwtRequest = { method: r.method ?? 'GET', scheme: 'http', authority: 'httpbin.foo:8000', path: r.path ?? '/headers', headers: Object.assign(Object.create(null) as Headers, r.headers) };
  const res = auth.authenticate(req);
  return { out: await res, req, sync: !(res instanceof Promise) };
}

function check(got: { out: JwtOutcome; req: JwtRequest; sync: boolean }, want: Want): void {
  const { out, req } = got;
  if (want.status !== undefined) {
    assert.ok(!out.ok, `expected a ${want.status}, the request passed (${out.ok ? out.detail : ''})`);
    assert.equal(out.httpStatus, want.status);
    if (want.body !== undefined) assert.equal(out.body, want.body, out.reason);
    if (want.wwwAuthenticate !== undefined) assert.equal(out.wwwAuthenticate, want.wwwAuthenticate);
    else assert.equal(out.wwwAuthenticate, `Bearer realm="http://httpbin.foo:8000${req.path.split('?')[0]}", error="invalid_token"`);
  } else {
    assert.ok(out.ok, `expected to pass, got ${out.ok ? '' : `${out.httpStatus} ${out.body}: ${out.reason}`}`);
    if (want.principal !== undefined) assert.equal(out.principal, want.principal ?? undefined, out.detail);
    if (want.claims !== undefined) assert.deepEqual(JSON.parse(JSON.stringify(out.claims)), want.claims);
    if (want.audiences !== undefined) assert.deepEqual(out.audiences, want.audiences);
    if (want.presenter !== undefined) assert.equal(out.presenter, want.presenter);
  }
  for (const [k, v] of Object.entries(want.headers ?? {})) assert.equal(req.headers[k], v, `header ${k}`);
  if (want.path !== undefined) assert.equal(req.path, want.path);
  if (want.sync !== undefined) assert.equal(got.sync, want.sync, 'synchronous');
}

function table(name: string, specs: () => Record<string, RequestAuthenticationSpec>, rows: readonly Row[]): void {
  describe(name, () => {
    let auth: JwtAuthenticator;
    before(() => {
      auth = compile(specs());
    });
    for (const r of rows) it(r.name, async () => check(await call(auth, r.req), r.want));
  });
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const payloadOf = (t: string) => t.split('.')[1];

table(
  'authn-only (Istio jwt_test authn-only): one issuer by jwksUri, payload and claims to headers',
  () => ({
    one: {
      jwtRules: [
        {
          issuer: ISS1,
          jwksUri: `${server.url}/jwks`,
          outputPayloadToHeader: 'x-test-payload',
          outputClaimToHeaders: [
            { header: 'x-jwt-iss', claim: 'iss' },
            { header: 'x-jwt-iat', claim: 'iat' },
            { header: 'x-jwt-nested-claim', claim: 'nested.nested-2.key2' },
            { header: 'x-jwt-evil', claim: 'evil' },
          ],
        },
      ],
    },
  }),
  [
    {
      name: 'valid-token-noauthz: principal, token removed, payload and claims written',
      req: { headers: bearer(T1) },
      want: { principal: `${ISS1}/sub-1`, headers: { authorization: undefined, 'x-test-payload': payloadOf(T1), 'x-jwt-iss': ISS1, 'x-jwt-iat': '1562182722' } },
    },
    { name: 'the same token again comes from the verified-token cache, synchronously', req: { headers: bearer(T1) }, want: { principal: `${ISS1}/sub-1`, sync: true } },
    { name: 'an ES256 token from the same JWKS', req: { headers: bearer(T1ec) }, want: { principal: `${ISS1}/sub-ec` } },
    {
      name: 'valid-nested-claim-token: a nested claim overwrites what the client sent',
      req: { headers: { ...bearer(nested), 'x-jwt-nested-claim': 'value_to_be_replaced' } },
      want: { principal: `${ISS1}/sub-1`, headers: { 'x-jwt-nested-claim': 'valueC', 'x-jwt-iat': '1604008018' } },
    },
    { name: 'no-token-noauthz: passes without a principal, synchronously', req: {}, want: { principal: null, sync: true } },
    { name: 'spoofed output headers are removed from a request without a token', req: { headers: { 'x-jwt-iss': 'admin', 'x-test-payload': 'e30' } }, want: { principal: null, headers: { 'x-jwt-iss': undefined, 'x-test-payload': undefined } } },
    { name: 'expired-token-noauthz: 401', req: { headers: bearer(expired) }, want: { status: 401, body: 'Jwt is expired' } },
    { name: 'expired 59 s ago is inside the 60 s skew', req: { headers: bearer(expiredInSkew) }, want: { principal: `${ISS1}/sub-1` } },
    { name: 'nbf 61 s ahead: not yet valid', req: { headers: bearer(notYet) }, want: { status: 401, body: 'Jwt not yet valid' } },
    { name: 'a signature by another key with the same kid', req: { headers: bearer(mint(stranger, claims1)) }, want: { status: 401, body: 'Jwt verification fails' } },
    { name: 'a tampered payload', req: { headers: bearer(T1.replace(/\.[^.]+\./, `.${b64url({ ...claims1, sub: 'admin' })}.`)) }, want: { status: 401, body: 'Jwt verification fails' } },
    { name: 'alg none', req: { headers: bearer(`${b64url({ alg: 'none' })}.${b64url(claims1)}.x`) }, want: { status: 401, body: 'Jwt header [alg] is not supported' } },
    {
      name: 'HS256 signed with the RSA public key as the secret',
      req: { headers: bearer(alg({ alg: 'HS256' }, Buffer.from(JSON.stringify(rsa.jwk)), 'HS256')) },
      want: { status: 401, body: 'Jwt verification fails' },
    },
    { name: 'HS256 signed with a secret the JWKS does not hold', req: { headers: bearer(mint(hs, claims1)) }, want: { status: 401, body: "Jwks doesn't have key to match kid or alg from Jwt" } },
    { name: 'another issuer', req: { headers: bearer(T3) }, want: { status: 401, body: 'Jwt issuer is not configured' } },
    { name: 'a kid the JWKS does not have (no refresh: the cooldown since the first fetch has not passed)', req: { headers: bearer(mint({ ...rsa, kid: 'rotated-away' }, claims1)) }, want: { status: 401, body: "Jwks doesn't have key to match kid or alg from Jwt" } },
    { name: 'not a JWT after Bearer', req: { headers: { authorization: 'Bearer abc' } }, want: { status: 401, body: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections' } },
    { name: 'Basic credentials are not a token', req: { headers: { authorization: 'Basic dXNlcjpwYXNz' } }, want: { principal: null, headers: { authorization: 'Basic dXNlcjpwYXNz' } } },
    { name: 'token in access_token: removed from the path', req: { path: `/p?a=1&access_token=${T1}` }, want: { principal: `${ISS1}/sub-1`, path: '/p?a=1' } },
    { name: 'one token at both default locations', req: { headers: bearer(T1), path: `/p?access_token=${T1}` }, want: { principal: `${ISS1}/sub-1`, path: '/p', headers: { authorization: undefined } } },
    {
      name: 'two different valid tokens: passes, principal unset, no outputs, both removed',
      req: { headers: bearer(T1), path: `/p?access_token=${T1other}` },
      want: { principal: null, path: '/p', headers: { authorization: undefined, 'x-test-payload': undefined } },
    },
    { name: 'a valid header token and an expired parameter token: 401', req: { headers: bearer(T1), path: `/p?access_token=${expired}` }, want: { status: 401, body: 'Jwt is expired' } },
    { name: 'two Authorization headers with different tokens', req: { headers: { authorization: [`Bearer ${T1}`, `Bearer ${T1other}`] } }, want: { status: 401, body: 'Found multiple Jwt tokens' } },
    { name: 'two Authorization headers with one token', req: { headers: { authorization: [`Bearer ${T1}`, `Bearer ${T1}`] } }, want: { principal: `${ISS1}/sub-1`, headers: { authorization: undefined } } },
    { name: 'access_token twice with different tokens', req: { path: `/p?access_token=${T1}&access_token=${T1other}` }, want: { status: 401, body: 'Found multiple Jwt tokens' } },
    { name: 'a token over the size limit is refused before parsing', req: { headers: bearer(`${'a'.repeat(17000)}.b.c`) }, want: { status: 401, body: 'Jwt is too large' } },
    {
      name: 'CR LF in a claim never reaches a header; the request still passes',
      req: { headers: bearer(mint(rsa, { ...claims1, evil: 'x\r\nx-admin: true' })) },
      want: { principal: `${ISS1}/sub-1`, headers: { 'x-jwt-evil': undefined, 'x-admin': undefined } },
    },
    {
      name: 'expired-token-cors-preflight-request-allowed',
      req: { method: 'OPTIONS', headers: { ...bearer(expired), origin: 'https://istio.io', 'access-control-request-method': 'POST' } },
      want: { principal: null },
    },
    { name: 'expired-token-bad-cors-preflight-request-rejected (no Origin)', req: { method: 'OPTIONS', headers: { ...bearer(expired), 'access-control-request-method': 'POST' } }, want: { status: 401, body: 'Jwt is expired' } },
    {
      name: 'the realm has no query string and quotes are escaped',
      req: { path: `/a"b?access_token=${expired}` },
      want: { status: 401, body: 'Jwt is expired', wwwAuthenticate: 'Bearer realm="http://httpbin.foo:8000/a\\"b", error="invalid_token"' },
    },
  ],
);

table(
  'aud (Istio jwt_test aud): two policies combined, audiences per rule',
  () => ({
    part1: {
      jwtRules: [
        { issuer: ISS1, jwksUri: `${server.url}/jwks`, audiences: ['foo'] },
        { issuer: ISS2, jwksUri: `${server.url}/jwks`, audiences: ['bar'] },
      ],
    },
    part2: { jwtRules: [{ issuer: ISS2, jwksUri: `${server.url}/jwks` }] },
  }),
  [
    { name: 'invalid-aud: a token without aud where foo is required: 403', req: { headers: bearer(T1) }, want: { status: 403, body: 'Audiences in Jwt are not allowed' } },
    { name: 'valid-aud', req: { headers: bearer(withAud('foo')) }, want: { principal: `${ISS1}/sub-1`, audiences: ['foo'] } },
    { name: 'aud with scheme and trailing slash', req: { headers: bearer(withAud(['x', 'https://foo/'])) }, want: { principal: `${ISS1}/sub-1` } },
    { name: 'verify-policies-are-combined: issuer 2 without aud passes by the rule without audiences', req: { headers: bearer(T2) }, want: { principal: `${ISS2}/sub-2` } },
    { name: 'issuer 3: not configured', req: { headers: bearer(T3) }, want: { status: 401, body: 'Jwt issuer is not configured' } },
    { name: 'expired and the wrong audience: the time is checked first (401, not 403)', req: { headers: bearer(mint(rsa, { ...claims1, aud: 'nope', exp: NOW - 3600 })) }, want: { status: 401, body: 'Jwt is expired' } },
    { name: 'the wrong audience again, now from the cache: still 403', req: { headers: bearer(T1) }, want: { status: 403, body: 'Audiences in Jwt are not allowed' } },
  ],
);

table(
  'headers-params (Istio jwt_test headers-params): custom headers and parameters only',
  () => ({
    hp: {
      jwtRules: [
        {
          issuer: ISS1,
          jwksUri: `${server.url}/jwks`,
          fromHeaders: [
            { name: 'x-jwt-token', prefix: 'Value ' },
            { name: 'auth-token', prefix: 'Token ' },
          ],
          fromParams: ['token', 'secondary_token'],
        },
      ],
    },
  }),
  [
    { name: 'valid-params', req: { path: `/valid-token?token=${T1}` }, want: { principal: `${ISS1}/sub-1`, path: '/valid-token' } },
    { name: 'valid-params-secondary', req: { path: `/valid-token?secondary_token=${T1}` }, want: { principal: `${ISS1}/sub-1` } },
    { name: 'invalid-params: an unknown parameter is no token (authz then answers 403)', req: { path: `/valid-token?token_value=${T1}` }, want: { principal: null } },
    { name: 'valid-token-set: one token in both parameters', req: { path: `/valid-token?token=${T1}&secondary_token=${T1}` }, want: { principal: `${ISS1}/sub-1`, path: '/valid-token' } },
    { name: 'invalid-token-set: valid and expired: 401', req: { path: `/valid-token?token=${T1}&secondary_token=${expired}` }, want: { status: 401, body: 'Jwt is expired' } },
    { name: 'valid-header', req: { headers: { 'x-jwt-token': `Value ${T1}` } }, want: { principal: `${ISS1}/sub-1`, headers: { 'x-jwt-token': undefined } } },
    { name: 'valid-header-secondary', req: { headers: { 'auth-token': `Token ${T1}` } }, want: { principal: `${ISS1}/sub-1` } },
    { name: 'invalid-header: another header is no token', req: { headers: { 'auth-header-param': `Bearer ${T1}` } }, want: { principal: null } },
    { name: 'Authorization is not a location once locations are configured', req: { headers: bearer(expired) }, want: { principal: null } },
  ],
);

table(
  'forward (Istio jwt_test forward): forwardOriginalToken keeps the token',
  () => ({ fwd: { jwtRules: [{ issuer: ISS1, jwksUri: `${server.url}/jwks`, outputPayloadToHeader: 'x-test-payload', forwardOriginalToken: true }] } }),
  [{ name: 'valid-token-forward', req: { headers: bearer(T1) }, want: { principal: `${ISS1}/sub-1`, headers: { authorization: `Bearer ${T1}`, 'x-test-payload': payloadOf(T1) } } }],
);

table(
  'global-jwt (Istio TestIngressRequestAuthentication policy): two issuers at the default locations',
  () => ({ global: { jwtRules: [{ issuer: ISS1, jwksUri: `${server.url}/jwks` }, { issuer: ISS2, jwksUri: `${server.url}/jwks` }] } }),
  [
    { name: 'sub-1 token', req: { headers: bearer(T1) }, want: { principal: `${ISS1}/sub-1` } },
    { name: 'sub-2 token', req: { headers: bearer(T2) }, want: { principal: `${ISS2}/sub-2` } },
    { name: 'in-mesh-with-expired-token', req: { headers: bearer(expired) }, want: { status: 401, body: 'Jwt is expired' } },
    { name: 'in-mesh-without-token', req: {}, want: { principal: null } },
    { name: 'an issuer neither rule names', req: { headers: bearer(T3) }, want: { status: 401, body: 'Jwt issuer is not configured' } },
    {
      name: 'issuer 1 in the header and issuer 2 in access_token: each rule sees a token of the other issuer (Envoy: 401)',
      req: { headers: bearer(T1), path: `/p?access_token=${T2}` },
      want: { status: 401, body: 'Jwt issuer is not configured' },
    },
  ],
);

table(
  'invalid-jwks (Istio jwt_test invalid-jwks): the jwksUri answers 404',
  () => ({ bad: { jwtRules: [{ issuer: ISS1, jwksUri: `${server.url}/missing.json` }] } }),
  [
    { name: 'invalid-jwks-valid-token-noauthz: fails closed', req: { headers: bearer(T1) }, want: { status: 401, body: 'Jwks remote fetch is failed' } },
    { name: 'invalid-jwks-expired-token-noauthz: the time is checked before the keys', req: { headers: bearer(expired) }, want: { status: 401, body: 'Jwt is expired' } },
    { name: 'invalid-jwks-no-token-noauthz', req: {}, want: { principal: null, sync: true } },
  ],
);

table(
  'cookies, space-delimited claims, audiences and presenter',
  () => ({ c: { jwtRules: [{ issuer: ISS1, jwksUri: `${server.url}/jwks`, fromCookies: ['session'], spaceDelimitedClaims: ['roles'] }] } }),
  [
    {
      name: 'a cookie token: removed, other cookies kept; claims normalized for authorization',
      req: { headers: { cookie: `a=1; session=${mint(rsa, { ...claims1, scope: 'read write', roles: 'admin dev', aud: ['x', 'y'], azp: 'web' })}; b=2` } },
      want: {
        principal: `${ISS1}/sub-1`,
        headers: { cookie: 'a=1; b=2' },
        audiences: ['x', 'y'],
        presenter: 'web',
        claims: { ...claims1, scope: ['read', 'write'], roles: ['admin', 'dev'], aud: ['x', 'y'], azp: 'web' },
      },
    },
    { name: 'a token without sub: claims but no principal', req: { headers: { cookie: `session=${mint(rsa, { iss: ISS1, exp: NOW + 60 })}` } }, want: { principal: null, claims: { iss: ISS1, exp: NOW + 60 } } },
  ],
);

table(
  'keys from OpenID discovery, and a rule without an issuer',
  () => ({
    d: { jwtRules: [{ issuer: `${server.url}/oidc` }] },
    'any-issuer': { jwtRules: [{ jwksUri: `${server.url}/jwks`, fromHeaders: [{ name: 'x-any' }] }] },
  }),
  [
    { name: 'discovery finds the jwks_uri', req: { headers: bearer(mint(rsa, { iss: `${server.url}/oidc`, sub: 'd', exp: NOW + 60 })) }, want: { principal: `${server.url}/oidc/d` } },
    { name: 'a rule without an issuer takes any issuer', req: { headers: { 'x-any': T2 } }, want: { principal: `${ISS2}/sub-2` } },
  ],
);

const inlineJwks = jwksOf(rsa);
table(
  'inline JWKS; presence REQUIRED',
  () => ({
    inline: { jwtRules: [{ issuer: ISS1, jwks: inlineJwks, presence: 'REQUIRED' }] },
    broken: { jwtRules: [{ issuer: ISS2, jwks: JSON.stringify({ keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB', alg: 'ES256' }] }), fromHeaders: [{ name: 'x-broken' }] }] },
  }),
  [
    { name: 'valid inline-verified token (synchronous after the first check)', req: { headers: bearer(T1) }, want: { principal: `${ISS1}/sub-1` } },
    { name: 'no token: Jwt is missing, without error="invalid_token"', req: {}, want: { status: 401, body: 'Jwt is missing', wwwAuthenticate: 'Bearer realm="http://httpbin.foo:8000/headers"' } },
    { name: 'an inline JWKS without a usable key', req: { headers: { 'x-broken': T2 } }, want: { status: 401, body: "Jwks doesn't have any valid public key" } },
  ],
);

it('prints what it compiled', () => {
  const auth = compile({ p: { jwtRules: [{ issuer: ISS1, jwksUri: `${server.url}/jwks`, outputPayloadToHeader: 'x-p', audiences: ['a'] }] } });
  assert.match(String(auth), /RequestAuthentication foo\/p jwtRules\[0\]: issuer test-issuer-1@istio\.io; audiences a; at header authorization \(prefix "Bearer "\), query parameter access_token; keys from http:\/\/127\.0\.0\.1:\d+\/jwks: .*; token removed; writes x-p/);
});

it("a success's detail names the rule, where the token was and the claims not written (made when read, the same on every read)", async () => {
  const auth = compile({ p: { jwtRules: [{ issuer: ISS1, jwks: inlineJwks, outputClaimToHeaders: [{ header: 'x-evil', claim: 'evil' }] }] } });
  const evil = mint(rsa, { ...claims1, evil: 'a\nb' });
  for (const [token, want] of [
    [T1, 'RequestAuthentication foo/p jwtRules[0]: verified (header authorization (prefix "Bearer "))'],
    [evil, 'RequestAuthentication foo/p jwtRules[0]: verified (header authorization (prefix "Bearer ")); not written (control characters): evil → x-evil'],
  ] as const) {
    const { out } = await call(auth, { headers: bearer(token) });
    assert.ok(out.ok);
    assert.equal(out.detail, want);
    assert.equal(out.detail, want);
  }
});

it('a token that waits for its signature check is looked up once, then comes from the cache without waiting (two rules, two tokens each)', async () => {
  const rt = new JwtRuntime({ clock, epochMs: NOW * 1000 });
  try {
    const at = (h: string) => ({ fromHeaders: [{ name: h }], forwardOriginalToken: true });
    const policies = validated([
      ra('one', 'foo', { jwtRules: [{ issuer: ISS2, jwks: jwksOf(iss2Key), ...at('x-two') }] }),
      ra('two', 'foo', { jwtRules: [{ issuer: ISS1, jwks: jwksOf(rsa, ec), fromHeaders: [{ name: 'x-a' }, { name: 'x-b' }], forwardOriginalToken: true }] }),
    ]);
    const auth = rt.compile(policies, { namespace: 'foo', labels: { app: 'httpbin' } });
    const req = { headers: { 'x-a': T1, 'x-b': T1ec } };
    const first = await call(auth, req);
    check(first, { principal: null, sync: false });
    assert.deepEqual([rt.cache.hits, rt.cache.misses], [0, 2], 'each token looked up once on the first request');
    const again = await call(auth, req);
    check(again, { principal: null, sync: true });
    assert.deepEqual([rt.cache.hits, rt.cache.misses], [2, 2]);
  } finally {
    await rt.close();
  }
});

it('a cached token at the place it was found before gets the same success object; found at another of the rule’s places, its own (that place named and its header removed)', async () => {
  const auth = compile({ p: { jwtRules: [{ issuer: ISS1, jwks: inlineJwks, fromHeaders: [{ name: 'x-a' }, { name: 'x-b' }] }] } });
  const seen: JwtOutcome[] = [];
  for (const name of ['x-a', 'x-a', 'x-b', 'x-a', 'x-a']) {
    const got = await call(auth, { headers: { [name]: T1, 'x-other': 'kept' } });
    check(got, { principal: `${ISS1}/sub-1` });
    assert.ok(got.out.ok);
    assert.equal(got.out.detail, `RequestAuthentication foo/p jwtRules[0]: verified (header ${name})`);
    assert.equal(got.req.headers[name], undefined, `the token's header ${name} is removed`);
    assert.equal(got.req.headers['x-other'], 'kept');
    seen.push(got.out);
  }
  assert.notEqual(seen[2], seen[1], 'found at another place: another success');
  assert.notEqual(seen[3], seen[2]);
  assert.equal(seen[4], seen[3], 'the same success object for the same token at the same place as the request before');
  // Shared between requests, so nobody can change another request's: frozen, down to its verified tokens.
  const shared = seen[4] as JwtOutcome & { verified?: readonly object[] };
  assert.ok(Object.isFrozen(shared));
  assert.throws(() => {
    (shared as { principal?: string }).principal = 'attacker';
  }, TypeError);
});
