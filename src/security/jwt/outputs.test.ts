import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Headers } from '../../core/handler.ts';
import { b64url } from './fixtures.test.ts';
import { claimHeaders, claimText, headerSafe, normalizeClaims, writeOutputs } from './outputs.ts';
import { type ClaimObject, parseJwt } from './token.ts';

function payloadOf(p: Record<string, unknown>): ClaimObject {
  const r = parseJwt(`${b64url({ alg: 'RS256' })}.${b64url(p)}.${b64url('s')}`);
  assert.ok(r.ok);
  return r.jwt.payload;
}

describe('claim to header text (Envoy addJWTClaimToHeader)', () => {
  const rows: { name: string; value: unknown; want: string | undefined }[] = [
    { name: 'string', value: 'alice', want: 'alice' },
    { name: 'empty string writes nothing', value: '', want: undefined },
    { name: 'integer', value: 1562182722, want: '1562182722' },
    { name: 'zero', value: 0, want: '0' },
    { name: 'large integer', value: 2 ** 53, want: '9007199254740992' },
    { name: 'negative integer prints as a double', value: -5, want: '-5.000000' },
    { name: 'fraction prints with six decimals', value: 1.5, want: '1.500000' },
    { name: 'true', value: true, want: 'true' },
    { name: 'false', value: false, want: 'false' },
    { name: 'null writes nothing', value: null, want: undefined },
    { name: 'list: base64 of its JSON', value: ['group-1', 'group-2'], want: Buffer.from('["group-1","group-2"]').toString('base64') },
    { name: 'object: base64 of its JSON', value: { a: 1 }, want: Buffer.from('{"a":1}').toString('base64') },
  ];
  for (const r of rows) it(r.name, () => assert.equal(claimText(payloadOf({ v: r.value }).v), r.want));
});

describe('header safety', () => {
  const rows: { name: string; text: string; want: string | undefined }[] = [
    { name: 'ASCII as is', text: 'alice@example.com', want: 'alice@example.com' },
    { name: 'tab is allowed', text: 'a\tb', want: 'a\tb' },
    { name: 'CR LF is refused', text: 'alice\r\nx-admin: true', want: undefined },
    { name: 'LF alone is refused', text: 'a\nb', want: undefined },
    { name: 'NUL is refused', text: 'a\u0000b', want: undefined },
    { name: 'DEL is refused', text: 'a\u007fb', want: undefined },
    { name: 'UTF-8 becomes its bytes, as Node reads a header a sidecar sent', text: 'José', want: Buffer.from('José', 'utf8').toString('latin1') },
    { name: 'non-Latin-1 too', text: '名前', want: Buffer.from('名前', 'utf8').toString('latin1') },
    { name: 'U+0085 (NEL) is not a control byte once UTF-8 encoded', text: 'a\u0085b', want: Buffer.from('a\u0085b', 'utf8').toString('latin1') },
  ];
  for (const r of rows) it(r.name, () => assert.equal(headerSafe(r.text), r.want));
});

describe('writing outputs', () => {
  const payload = payloadOf({
    iss: 'test-issuer-1@istio.io',
    iat: 1604008018,
    nested: { key2: 'valueC', 'nested-2': { key2: 'valueC' } },
    evil: 'x\r\nset-cookie: a=b',
    flag: true,
  });
  const claims = claimHeaders([
    { header: 'X-Jwt-Iss', claim: 'iss' },
    { header: 'x-jwt-iat', claim: 'iat' },
    { header: 'x-jwt-nested-claim', claim: 'nested.nested-2.key2' },
    { header: 'x-missing', claim: 'nested.nope' },
    { header: 'x-through-a-string', claim: 'iss.x' },
    { header: 'x-evil', claim: 'evil' },
    { header: 'x-flag', claim: 'flag' },
  ]);

  it('writes the payload and the claims, refuses CR/LF, skips missing claims', () => {
    const headers: Headers = Object.create(null);
    const report = writeOutputs(headers, 'x-test-payload', 'PAYLOAD', claims, payload);
    assert.deepEqual(
      { ...headers },
      { 'x-test-payload': 'PAYLOAD', 'x-jwt-iss': 'test-issuer-1@istio.io', 'x-jwt-iat': '1604008018', 'x-jwt-nested-claim': 'valueC', 'x-flag': 'true' },
    );
    assert.deepEqual(report.refused, ['evil → x-evil']);
  });
});

describe('space-delimited claims for authorization', () => {
  const rows: { name: string; payload: Record<string, unknown>; names: string[]; want: Record<string, unknown> }[] = [
    { name: 'scope split', payload: { scope: 'read  write', sub: 'a' }, names: ['scope', 'permission'], want: { scope: ['read', 'write'], sub: 'a' } },
    { name: 'a list stays a list', payload: { scope: ['a b'] }, names: ['scope'], want: { scope: ['a b'] } },
    { name: 'custom claim', payload: { roles: 'admin dev' }, names: ['roles', 'scope'], want: { roles: ['admin', 'dev'] } },
    { name: 'nested names are looked up literally (as Envoy)', payload: { provider: { scope: 'a b' } }, names: ['provider.scope'], want: { provider: { scope: 'a b' } } },
    { name: 'not listed: unchanged', payload: { roles: 'admin dev' }, names: ['scope'], want: { roles: 'admin dev' } },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const got = normalizeClaims(payloadOf(r.payload), new Set(r.names));
      assert.deepEqual(JSON.parse(JSON.stringify(got)), r.want);
      assert.equal(Object.getPrototypeOf(got), null);
    });
  }
});
