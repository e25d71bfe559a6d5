/**
 * Validation of `RequestAuthenticationSpec`, following Istio's `ValidateRequestAuthentication`
 * (`validateJwtRule`): issuers, key sources (`jwksUri` or an inline JWKS that is parsed
 * here), token locations, claim-to-header outputs and the JWKS fetch timeout.
 *
 * @module
 */
import type { JWTRule, RequestAuthenticationSpec } from '../types/security.ts';
import { checkHeaderName } from './common.ts';
import { checkScope, isSet, scopeFields } from './policy-scope.ts';
import { aliased, bool, fail, list, nonEmpty, obj, oneOf, req, str, strWith, warn, type Validator } from './schema.ts';
import { msDuration } from './shared-networking.ts';

/** Checks a `jwksUri`: an http:// or https:// URL (Istio's `ParseJwksURI`). */
export function checkJwksUri(s: string): string | undefined {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return `"${s}" is not a URL; jwksUri must be an http:// or https:// URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `URI scheme "${url.protocol.slice(0, -1)}" is not supported; jwksUri must be an http:// or https:// URL`;
  }
  return undefined;
}

/** Members each key type needs (RFC 7518 §6, RFC 8037). */
const KEY_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  RSA: ['n', 'e'],
  EC: ['crv', 'x', 'y'],
  oct: ['k'],
  OKP: ['crv', 'x'],
};

/** Checks an inline JWKS: a JSON object with a non-empty `keys` array of usable JWKs. */
export function checkJwks(s: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(s);
  } catch (err) {
    return `jwks is not valid JSON: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'jwks must be a JSON object with a "keys" array (a JWK Set)';
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) return 'jwks must have a "keys" array (a JWK Set, RFC 7517 §5)';
  if (keys.length === 0) return 'jwks "keys" must not be empty';
  for (const [i, key] of keys.entries()) {
    if (typeof key !== 'object' || key === null || Array.isArray(key)) return `jwks keys[${i}] must be a JSON object`;
    const k = key as Record<string, unknown>;
    if (typeof k.kty !== 'string') return `jwks keys[${i}] has no "kty"`;
    const members = Object.hasOwn(KEY_MEMBERS, k.kty) ? KEY_MEMBERS[k.kty] : undefined;
    if (members === undefined) return `jwks keys[${i}] has kty "${k.kty}"; supported: ${Object.keys(KEY_MEMBERS).join(', ')}`;
    const missing = members.filter((m) => typeof k[m] !== 'string' || k[m] === '');
    if (missing.length > 0) return `jwks keys[${i}] (kty ${k.kty}) is missing ${missing.map((m) => `"${m}"`).join(', ')}`;
  }
  return undefined;
}

const headerName = strWith(checkHeaderName);

/** The `keys` of a JWKS text, each an object or undefined (by index); none when it does not parse. */
function jwksKeys(jwks: string): (Record<string, unknown> | undefined)[] {
  let keys: unknown;
  try {
    keys = (JSON.parse(jwks) as { keys?: unknown }).keys;
  } catch {
    return [];
  }
  if (!Array.isArray(keys)) return [];
  return keys.map((k: unknown) => (typeof k === 'object' && k !== null ? (k as Record<string, unknown>) : undefined));
}

/** Members that make a JWK a private (or secret) key: `d` for RSA, EC and OKP; any `oct` key is a shared secret. */
function privateKeyIndexes(jwks: string): number[] {
  return jwksKeys(jwks).flatMap((key, i) => (key !== undefined && (key.kty === 'oct' || typeof key.d === 'string') ? [i] : []));
}

/** The bit length of a base64url big-endian unsigned integer (an RSA modulus `n`). */
function bitLength(b64url: string): number {
  const bytes = Buffer.from(b64url, 'base64url');
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i] as number));
}

/** RSA keys shorter than 2048 bits, by index: meshlet (jose) does not verify with them; Envoy does. */
function smallRsaKeys(jwks: string): { index: number; bits: number }[] {
  return jwksKeys(jwks).flatMap((key, index) => {
    if (key?.kty !== 'RSA' || typeof key.n !== 'string') return [];
    const bits = bitLength(key.n);
    return bits < 2048 ? [{ index, bits }] : [];
  });
}

const jwtRule = obj<JWTRule>(
  {
    issuer: nonEmpty,
    audiences: list(nonEmpty),
    jwksUri: aliased(strWith(checkJwksUri), 'jwks_uri'),
    jwks: strWith(checkJwks),
    fromHeaders: list(obj<{ name: string; prefix?: string }>({ name: req(headerName), prefix: str })),
    fromParams: list(nonEmpty),
    fromCookies: list(nonEmpty),
    outputPayloadToHeader: headerName,
    forwardOriginalToken: bool,
    outputClaimToHeaders: list(obj<{ header: string; claim: string }>({ header: req(headerName), claim: req(nonEmpty) })),
    timeout: msDuration(),
    spaceDelimitedClaims: list(nonEmpty),
    presence: oneOf(['OPTIONAL', 'REQUIRED']),
  },
  {
    oneOf: [['jwksUri', 'jwks']],
    check: (rule, path, ctx, raw) => {
      // Istio: "issuer or jwksUri must be non-empty string".
      if (!isSet(raw.issuer) && !isSet(raw.jwksUri)) fail(ctx, [...path, 'issuer'], 'is required unless jwksUri is set');
      for (const i of rule.jwks === undefined ? [] : privateKeyIndexes(rule.jwks)) {
        warn(ctx, [...path, 'jwks'], `jwks key at index ${i} contains private key material; only public keys are used for verification (Istio warns too)`);
      }
      for (const { index, bits } of rule.jwks === undefined ? [] : smallRsaKeys(rule.jwks)) {
        warn(ctx, [...path, 'jwks'], `jwks key at index ${index} is a ${bits}-bit RSA key: meshlet does not verify with RSA keys shorter than 2048 bits (Envoy does), so tokens signed with it fail with "Jwt verification fails"`);
      }
      if (rule.issuer === undefined || isSet(raw.jwksUri) || isSet(raw.jwks)) return;
      if (checkJwksUri(rule.issuer) !== undefined) {
        warn(
          ctx,
          [...path, 'issuer'],
          `no jwksUri or jwks: the keys would be found by OIDC discovery from the issuer, but "${rule.issuer}" is not an http(s) URL; set jwksUri or jwks`,
        );
      }
    },
  },
);

/** Validates a RequestAuthenticationSpec. */
export const requestAuthenticationSpec: Validator<RequestAuthenticationSpec> = obj<RequestAuthenticationSpec>(
  {
    ...scopeFields,
    jwtRules: list(jwtRule),
  },
  {
    check: (_spec, path, ctx, raw) => {
      checkScope(raw, path, ctx);
      const rawRules = Array.isArray(raw.jwtRules) ? raw.jwtRules : [];
      const seen = new Map<string, number>();
      rawRules.forEach((r, i) => {
        const issuer = typeof r === 'object' && r !== null ? (r as { issuer?: unknown }).issuer : undefined;
        if (typeof issuer !== 'string' || issuer === '') return;
        const first = seen.get(issuer);
        if (first === undefined) seen.set(issuer, i);
        else warn(ctx, [...path, 'jwtRules', i, 'issuer'], `issuer "${issuer}" is also used by jwtRules[${first}]; use one rule per issuer (it can list several audiences and token locations)`);
      });
    },
  },
);
