/**
 * The inbound benchmarks' policy set (bench/inbound/run.ts and inproc.ts measure the same thing):
 * one RequestAuthentication (inline JWKS, RS256) and one three-rule ALLOW AuthorizationPolicy for
 * `app: httpbin` in namespace `foo`, written into a new temporary directory as
 * `policies.yaml`, with a valid token for them.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, SignJWT } from 'jose';

/** The issuer of the benchmarks' tokens. */
export const ISSUER = 'https://issuer.bench.local';

/** Writes the policies into a new directory (`prefix` names it); returns it and the token. */
export async function writeBenchPolicies(prefix: string): Promise<{ dir: string; token: string }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256', use: 'sig' };
  const token = await new SignJWT({ scope: 'read', groups: ['dev'] })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench' })
    .setIssuer(ISSUER)
    .setSubject('alice')
    .setAudience('httpbin.foo.svc.cluster.local')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);
  const meta = (name: string) => ({ name, namespace: 'foo' });
  const selector = { matchLabels: { app: 'httpbin' } };
  const rules = [
    { from: [{ source: { requestPrincipals: [`${ISSUER}/alice`] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/items/*'] } }] },
    { to: [{ operation: { methods: ['GET'], paths: ['/healthz'] } }] },
    { from: [{ source: { requestPrincipals: ['*'] } }], to: [{ operation: { methods: ['POST'], paths: ['/api/admin/*'] } }], when: [{ key: 'request.auth.claims[groups]', values: ['admin'] }] },
  ];
  const docs = [
    { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: meta('jwt'), spec: { selector, jwtRules: [{ issuer: ISSUER, jwks: JSON.stringify({ keys: [jwk] }) }] } },
    { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('httpbin'), spec: { selector, action: 'ALLOW', rules } },
  ];
  // JSON is YAML: one document per resource.
  writeFileSync(join(dir, 'policies.yaml'), docs.map((d) => JSON.stringify(d)).join('\n---\n'));
  return { dir, token };
}
