import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { b64url, jwksOf, makeKey, mint, signInput, type TestKey } from './fixtures.test.ts';
import { parseJwks } from './jwks.ts';
import { parseJwt } from './token.ts';

const openssl = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p));
const rsa = makeKey('RS256', 'rsa-1');
const ec = makeKey('ES256', 'ec-1');
const ed = makeKey('EdDSA', 'ed-1');
const hs = makeKey('HS256', 'hs-1');

function parsed(token: string) {
  const p = parseJwt(token);
  assert.ok(p.ok, `token parses: ${token.slice(0, 20)}`);
  return p.jwt;
}

describe('reading a JWKS (extractJwk): bad keys are skipped with a reason', () => {
  const rows: { name: string; key: unknown; skip?: RegExp; algs?: string[] }[] = [
    { name: 'RSA without alg: RS* and PS*', key: rsa.jwk, algs: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] },
    { name: 'RSA with alg: only that', key: { ...rsa.jwk, alg: 'PS384' }, algs: ['PS384'] },
    { name: 'RSA with an ES alg', key: { ...rsa.jwk, alg: 'ES256' }, skip: /not an RS or PS algorithm/ },
    { name: 'RSA without n', key: { kty: 'RSA', e: 'AQAB' }, skip: /\[n\] or \[e\] is missing/ },
    { name: 'EC P-256: ES256 only', key: ec.jwk, algs: ['ES256'] },
    { name: 'EC P-384 by alg only', key: { ...makeKey('ES384', 'x', { withAlg: true }).jwk, crv: undefined }, algs: ['ES384'] },
    { name: 'EC with alg not matching crv', key: { ...ec.jwk, alg: 'ES512' }, skip: /not compatible/ },
    { name: 'EC secp256k1', key: { ...ec.jwk, crv: 'secp256k1' }, skip: /not supported for an EC key/ },
    { name: 'oct: HS*', key: hs.jwk, algs: ['HS256', 'HS384', 'HS512'] },
    { name: 'oct with an RS alg', key: { ...hs.jwk, alg: 'RS256' }, skip: /not an HS algorithm/ },
    { name: 'Ed25519: EdDSA', key: ed.jwk, algs: ['EdDSA'] },
    { name: 'X25519 is not for signatures', key: { kty: 'OKP', crv: 'X25519', x: ed.jwk.x }, skip: /Ed25519 only/ },
    { name: 'no kty', key: { n: 'x', e: 'AQAB' }, skip: /\[kty\] is missing/ },
    { name: 'unknown kty', key: { kty: 'AKP', pub: 'x' }, skip: /not supported/ },
    { name: 'use enc', key: { ...rsa.jwk, use: 'enc' }, skip: /\[use\]/ },
    { name: 'key_ops without verify', key: { ...rsa.jwk, key_ops: ['sign'] }, skip: /key_ops/ },
    { name: 'not an object', key: 'rsa', skip: /not a JSON object/ },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const got = parseJwks(JSON.stringify({ keys: [r.key] }));
      assert.ok(got.ok);
      if (r.skip) {
        assert.equal(got.set.keys.length, 0);
        assert.match(got.set.skipped.join('\n'), r.skip);
      } else assert.deepEqual([...(got.set.keys[0]?.algorithms ?? [])], r.algs);
    });
  }

  it('refuses documents that are not a key set', () => {
    for (const [text, why] of [
      ['{', /invalid JSON/],
      ['[]', /not a JSON object/],
      ['{"keys":{}}', /not an array/],
      ['{"a":1}', /does not have \[keys\]/],
    ] as const) {
      const got = parseJwks(text);
      assert.ok(!got.ok && why.test(got.error), text);
    }
  });

  it('reads Google’s certificate map (kid → PEM certificate)', { skip: openssl === undefined && 'needs the openssl binary to make a certificate' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-x509-'));
    try {
      execFileSync(openssl as string, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-subj', '/CN=jwt-test', '-days', '1'], { stdio: 'ignore' });
      const cert = readFileSync(join(dir, 'c.pem'), 'utf8');
      const key: TestKey = { alg: 'RS256', kid: 'cert-1', privateKey: createPrivateKey(readFileSync(join(dir, 'k.pem'))), jwk: {} };
      const got = parseJwks(JSON.stringify({ 'cert-1': cert.endsWith('\n') ? cert : `${cert}\n` }));
      assert.ok(got.ok);
      assert.deepEqual(got.set.keys.map((k) => [k.kid, k.kty]), [['cert-1', 'RSA']]);
      assert.equal(await got.set.keys[0]?.verify(parsed(mint(key, { sub: 'a' }))), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const notCert = parseJwks(JSON.stringify({ k: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }));
    assert.ok(notCert.ok);
    assert.equal(notCert.set.keys.length, 0, 'a certificate that does not parse is skipped');
  });

  it('drops private members: only the public key is imported', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const priv = privateKey.export({ format: 'jwk' });
    const key: TestKey = { alg: 'RS256', kid: 'p', privateKey, jwk: { ...(priv as Record<string, string>), kid: 'p' } };
    const got = parseJwks(jwksOf(key));
    assert.ok(got.ok);
    assert.equal(await got.set.keys[0]?.verify(parsed(mint(key, { sub: 'a' }))), true);
    assert.ok(!String(got.set.keys[0]?.id).includes('"d"'));
  });
});

describe('key selection and algorithm confusion', () => {
  const set = (() => {
    const s = parseJwks(jwksOf(rsa, ec, ed, hs));
    assert.ok(s.ok);
    return s.set;
  })();
  const verifies = async (token: string) => {
    const jwt = parsed(token);
    for (const k of set.candidates(jwt)) if (await k.verify(jwt)) return true;
    return false;
  };
  const input = (h: Record<string, unknown>, p: Record<string, unknown>) => `${b64url(h)}.${b64url(p)}`;
  const rows: { name: string; token: () => string; want: boolean }[] = [
    { name: 'RS256 by its key', token: () => mint(rsa, { sub: 'a' }), want: true },
    { name: 'PS256 by the same RSA key (no alg declared)', token: () => mint({ ...rsa, alg: 'PS256' }, { sub: 'a' }), want: true },
    { name: 'ES256 by its key', token: () => mint(ec, { sub: 'a' }), want: true },
    { name: 'EdDSA by its key', token: () => mint(ed, { sub: 'a' }), want: true },
    { name: 'HS256 by the oct key', token: () => mint(hs, { sub: 'a' }), want: true },
    {
      name: 'HS256 signed with the RSA public key (JWK JSON) as the secret',
      token: () => {
        const i = input({ alg: 'HS256', kid: 'rsa-1' }, { sub: 'a' });
        return `${i}.${signInput('HS256', Buffer.from(JSON.stringify(rsa.jwk)), i).toString('base64url')}`;
      },
      want: false,
    },
    {
      name: 'HS256 signed with the RSA public key (modulus bytes) as the secret, no kid',
      token: () => {
        const i = input({ alg: 'HS256' }, { sub: 'a' });
        return `${i}.${signInput('HS256', Buffer.from(rsa.jwk.n as string, 'base64url'), i).toString('base64url')}`;
      },
      want: false,
    },
    { name: 'a signature from another RSA key', token: () => mint({ ...makeKey('RS256', 'rsa-1'), kid: 'rsa-1' }, { sub: 'a' }), want: false },
    { name: 'ES384 header on a P-256 signature', token: () => mint({ ...ec, alg: 'ES384' }, { sub: 'a' }, { alg: 'ES384' }), want: false },
    { name: 'a tampered payload', token: () => mint(rsa, { sub: 'a' }).replace(/\.[^.]+\./, `.${b64url({ sub: 'admin' })}.`), want: false },
  ];
  for (const r of rows) it(r.name, async () => assert.equal(await verifies(r.token()), r.want));

  it('picks keys by kid, and by a declared alg', () => {
    const withAlg = parseJwks(JSON.stringify({ keys: [{ ...rsa.jwk, alg: 'RS256' }, { ...makeKey('RS256', 'other').jwk, alg: 'PS256' }, { ...ec.jwk, kid: '' }] }));
    assert.ok(withAlg.ok);
    const kids = (t: string) => withAlg.set.candidates(parsed(t)).map((k) => k.kid);
    assert.deepEqual(kids(mint(rsa, {})), ['rsa-1', ''], 'same kid, and a key without kid');
    assert.deepEqual(kids(mint(rsa, {}, { kid: undefined })), ['rsa-1', ''], 'no kid in the token: every key whose alg allows it');
    assert.deepEqual(kids(mint({ ...rsa, alg: 'PS256' }, {}, { kid: 'other' })), ['other', ''], 'alg PS256 passes the PS256 key over only on kid');
    assert.deepEqual(kids(mint(rsa, {}, { kid: 'unknown' })), [''], 'unknown kid: only the kid-less key');
    assert.equal(withAlg.set.hasKid('rsa-1'), true);
    assert.equal(withAlg.set.hasKid('unknown'), false);
  });

  it('refuses RSA keys shorter than 2048 bits (jose)', async () => {
    const small = makeKey('RS256', 'small', { rsaBits: 1024 });
    const s = parseJwks(jwksOf(small));
    assert.ok(s.ok);
    assert.equal(await s.set.keys[0]?.verify(parsed(mint(small, {}))), false);
  });

  it('keeps unchanged keys across a refresh and retires the removed ones', () => {
    const first = parseJwks(jwksOf(rsa, ec));
    assert.ok(first.ok);
    const second = parseJwks(jwksOf(rsa), first.set);
    assert.ok(second.ok);
    first.set.retireMissingFrom(second.set);
    assert.equal(second.set.keys[0], first.set.keys[0], 'the RSA key object is reused');
    assert.deepEqual(
      first.set.keys.map((k) => k.retired),
      [false, true],
    );
  });
});
