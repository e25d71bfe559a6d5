/**
 * JWTs for the parity table's RequestAuthentication rows: an RSA key pair made once per test
 * process with jose (its public half is the JWKS the rows' RequestAuthentication carries), and
 * tokens signed at the time of the workload's mesh clock — the mesh reads a token's `exp` as
 * `performance.timeOrigin + clock.now()` — so an expired token is expired, and a valid one valid,
 * whatever the wall clock says.
 */
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Clock } from '../../src/index.ts';

/** The issuer of the tokens (Istio's JWT task's). */
export const ISSUER = 'testing@secure.istio.io';

/** A token a call carries: valid (sub `alice`), expired 2 minutes ago, or signed with a key the JWKS does not hold. */
export type TokenKind = 'valid' | 'expired' | 'forged';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let keys: Promise<{ jwks: string; key: Key; other: Key }> | undefined;

function make(): Promise<{ jwks: string; key: Key; other: Key }> {
  keys ??= (async () => {
    const pair = await generateKeyPair('RS256');
    const other = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    return { jwks: JSON.stringify({ keys: [jwk] }), key: pair.privateKey, other: other.privateKey };
  })();
  return keys;
}

/** The JWKS (JSON text) of the key the valid and expired tokens are signed with. */
export async function jwks(): Promise<string> {
  return (await make()).jwks;
}

/** A token of `kind` at the time of `clock` (a workload mesh's clock). */
export async function token(kind: TokenKind, clock: Clock): Promise<string> {
  const k = await make();
  const now = Math.floor((performance.timeOrigin + clock.now()) / 1000);
  const exp = kind === 'expired' ? now - 120 : now + 3600;
  return new SignJWT({ iss: ISSUER, sub: 'alice', iat: now - 600, exp })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .sign(kind === 'forged' ? k.other : k.key);
}
