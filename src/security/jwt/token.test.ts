import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { b64url } from './fixtures.test.ts';
import { JwtStatus, statusText } from './status.ts';
import { audienceSet, audiencesAllowed, checkTime, parseJwt, sanitizeAudience } from './token.ts';

const H = b64url({ alg: 'RS256', kid: 'k1' });
const P = b64url({ iss: 'https://issuer.example', sub: 'alice', aud: 'api', exp: 2000, nbf: 1000 });
const SIG = b64url('signature-bytes');
const tok = (h: string, p: string, s = SIG) => `${h}.${p}.${s}`;
const pad = (s: string) => s + '='.repeat((4 - (s.length % 4)) % 4);

describe('parseJwt: jwt_verify_lib statuses', () => {
  const rows: { name: string; token: string; want: JwtStatus }[] = [
    { name: 'well formed', token: tok(H, P), want: JwtStatus.Ok },
    { name: 'two sections', token: `${H}.${P}`, want: JwtStatus.JwtBadFormat },
    { name: 'four sections', token: `${H}.${P}.${SIG}.x`, want: JwtStatus.JwtBadFormat },
    { name: 'empty sections are skipped, as absl::SkipEmpty does', token: `${H}..${P}.${SIG}`, want: JwtStatus.Ok },
    { name: 'not a token at all', token: 'Bearer', want: JwtStatus.JwtBadFormat },
    { name: 'header is not base64url', token: tok('a+b/', P), want: JwtStatus.JwtHeaderParseErrorBadBase64 },
    { name: 'header base64url of impossible length', token: tok('abcde', P), want: JwtStatus.JwtHeaderParseErrorBadBase64 },
    { name: 'header is not JSON', token: tok(b64url('nope'), P), want: JwtStatus.JwtHeaderParseErrorBadJson },
    { name: 'header is a JSON array', token: tok(b64url([1]), P), want: JwtStatus.JwtHeaderParseErrorBadJson },
    { name: 'no alg', token: tok(b64url({ typ: 'JWT' }), P), want: JwtStatus.JwtHeaderBadAlg },
    { name: 'alg not a string', token: tok(b64url({ alg: 256 }), P), want: JwtStatus.JwtHeaderBadAlg },
    { name: 'alg none is not implemented', token: tok(b64url({ alg: 'none' }), P, ''), want: JwtStatus.JwtBadFormat },
    { name: 'alg none with a signature', token: tok(b64url({ alg: 'none' }), P), want: JwtStatus.JwtHeaderNotImplementedAlg },
    { name: 'alg lower-case rs256', token: tok(b64url({ alg: 'rs256' }), P), want: JwtStatus.JwtHeaderNotImplementedAlg },
    { name: 'kid not a string', token: tok(b64url({ alg: 'RS256', kid: 7 }), P), want: JwtStatus.JwtHeaderBadKid },
    { name: 'payload not base64url', token: tok(H, 'p*'), want: JwtStatus.JwtPayloadParseErrorBadBase64 },
    { name: 'payload not JSON', token: tok(H, b64url('{')), want: JwtStatus.JwtPayloadParseErrorBadJson },
    { name: 'payload a JSON string', token: tok(H, b64url('"x"')), want: JwtStatus.JwtPayloadParseErrorBadJson },
    { name: 'payload nested deeper than protobuf allows', token: tok(H, b64url(`{"a":${'['.repeat(120)}${']'.repeat(120)}}`)), want: JwtStatus.JwtPayloadParseErrorBadJson },
    { name: 'iss not a string', token: tok(H, b64url({ iss: 1 })), want: JwtStatus.JwtPayloadParseErrorIssNotString },
    { name: 'sub not a string', token: tok(H, b64url({ sub: ['a'] })), want: JwtStatus.JwtPayloadParseErrorSubNotString },
    { name: 'iat a string', token: tok(H, b64url({ iat: '1' })), want: JwtStatus.JwtPayloadParseErrorIatNotInteger },
    { name: 'iat negative', token: tok(H, b64url({ iat: -1 })), want: JwtStatus.JwtPayloadParseErrorIatOutOfRange },
    { name: 'nbf a bool', token: tok(H, b64url({ nbf: true })), want: JwtStatus.JwtPayloadParseErrorNbfNotInteger },
    { name: 'nbf at 2^64', token: tok(H, b64url({ nbf: 2 ** 64 })), want: JwtStatus.JwtPayloadParseErrorNbfOutOfRange },
    { name: 'exp null', token: tok(H, b64url({ exp: null })), want: JwtStatus.JwtPayloadParseErrorExpNotInteger },
    { name: 'exp negative', token: tok(H, b64url({ exp: -5 })), want: JwtStatus.JwtPayloadParseErrorExpOutOfRange },
    { name: 'jti a number', token: tok(H, b64url({ jti: 5 })), want: JwtStatus.JwtPayloadParseErrorJtiNotString },
    { name: 'aud a number', token: tok(H, b64url({ aud: 5 })), want: JwtStatus.JwtPayloadParseErrorAudNotString },
    { name: 'aud a list with a number', token: tok(H, b64url({ aud: ['a', 5] })), want: JwtStatus.JwtPayloadParseErrorAudNotString },
    { name: 'aud an empty list', token: tok(H, b64url({ aud: [] })), want: JwtStatus.Ok },
    { name: 'signature not base64url', token: tok(H, P, 'sig=nature'), want: JwtStatus.JwtSignatureParseErrorBadBase64 },
    { name: 'padded sections are accepted (absl)', token: tok(pad(b64url({ alg: 'ES256' })), pad(b64url({ a: 12 })), 'QQ=='), want: JwtStatus.Ok },
    { name: 'padding in the wrong place', token: tok(H, P, 'Q=Q='), want: JwtStatus.JwtSignatureParseErrorBadBase64 },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const got = parseJwt(r.token);
      assert.equal(got.ok ? JwtStatus.Ok : got.status, r.want);
    });
  }

  it('reads the registered claims and hardens the payload', () => {
    const got = parseJwt(tok(H, b64url({ iss: 'i', sub: 's', aud: 'one', exp: 1999.9, nbf: 5, constructor: { __proto__: 'x' }, list: [{ a: 1 }] })));
    assert.ok(got.ok);
    const { jwt } = got;
    assert.deepEqual([jwt.iss, jwt.sub, jwt.audiences, jwt.exp, jwt.nbf, jwt.alg, jwt.kid], ['i', 's', ['one'], 1999, 5, 'RS256', 'k1']);
    assert.equal(Object.getPrototypeOf(jwt.payload), null);
    assert.equal(Object.getPrototypeOf(jwt.payload.constructor), null, 'a claim named constructor is a claim');
    assert.ok(Object.isFrozen(jwt.payload) && Object.isFrozen(jwt.payload.list));
  });

  it('has Envoy’s body texts', () => {
    assert.equal(statusText(JwtStatus.JwtExpired), 'Jwt is expired');
    assert.equal(statusText(JwtStatus.JwtVerificationFail), 'Jwt verification fails');
    assert.equal(statusText(JwtStatus.JwtUnknownIssuer), 'Jwt issuer is not configured');
    assert.equal(statusText(JwtStatus.JwtAudienceNotAllowed), 'Audiences in Jwt are not allowed');
    assert.equal(statusText(JwtStatus.JwksFetchFail), 'Jwks remote fetch is failed');
    assert.equal(statusText(JwtStatus.JwtMissed), 'Jwt is missing');
  });
});

describe('checkTime: nbf and exp with 60 s of skew', () => {
  const at = (nbf: number, exp: number) => {
    const p = parseJwt(tok(H, b64url({ nbf, exp })));
    assert.ok(p.ok);
    return p.jwt;
  };
  const rows: { name: string; nbf: number; exp: number; now: number; want: JwtStatus }[] = [
    { name: 'inside the window', nbf: 1000, exp: 2000, now: 1500, want: JwtStatus.Ok },
    { name: 'exp + 60 is still valid', nbf: 0, exp: 2000, now: 2060, want: JwtStatus.Ok },
    { name: 'exp + 61 has expired', nbf: 0, exp: 2000, now: 2061, want: JwtStatus.JwtExpired },
    { name: 'nbf - 60 is valid', nbf: 1000, exp: 0, now: 940, want: JwtStatus.Ok },
    { name: 'nbf - 61 is not yet valid', nbf: 1000, exp: 0, now: 939, want: JwtStatus.JwtNotYetValid },
    { name: 'no exp never expires', nbf: 0, exp: 0, now: 4_000_000_000, want: JwtStatus.Ok },
  ];
  for (const r of rows) it(r.name, () => assert.equal(checkTime(at(r.nbf, r.exp), r.now), r.want));
});

describe('audiences: CheckAudience', () => {
  const rows: { name: string; configured: string[]; token: string[]; want: boolean }[] = [
    { name: 'none configured accepts any', configured: [], token: ['x'], want: true },
    { name: 'none configured accepts a token without aud', configured: [], token: [], want: true },
    { name: 'configured refuses a token without aud', configured: ['foo'], token: [], want: false },
    { name: 'one of several matches', configured: ['foo', 'bar'], token: ['baz', 'bar'], want: true },
    { name: 'scheme and trailing slash ignored on both sides', configured: ['https://api.example.com/'], token: ['http://api.example.com'], want: true },
    { name: 'case matters', configured: ['Foo'], token: ['foo'], want: false },
    { name: 'a path is not ignored', configured: ['api.example.com/v1'], token: ['api.example.com'], want: false },
  ];
  for (const r of rows) it(r.name, () => assert.equal(audiencesAllowed(audienceSet(r.configured), r.token), r.want));
  it('sanitizes like jwt_verify_lib', () => {
    assert.deepEqual(['https://a/', 'http://a', 'a/', 'a', ''].map(sanitizeAudience), ['a', 'a', 'a', 'a', '']);
  });
});
