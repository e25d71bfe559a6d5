/**
 * Parsing a compact JWT as `jwt_verify_lib` (`Jwt::parseFromString`) does, with its statuses:
 * three dot-separated base64url sections, a JSON object header with a string `alg` that is one of
 * the implemented algorithms and an optional string `kid`, a JSON object payload whose registered
 * claims have the right types (`iss`, `sub`, `jti` strings; `iat`, `nbf`, `exp` non-negative
 * numbers; `aud` a string or a list of strings), and a base64url signature. Then the checks that
 * run before the signature: the time window with Envoy's 60 s clock skew, and the audiences
 * (`CheckAudience`, which ignores an `http://`/`https://` scheme and a trailing `/`).
 *
 * The payload's objects are rebuilt without a prototype and frozen, so a claim named
 * `constructor` or `__proto__` is only ever a claim.
 *
 * @module
 */
import { JwtStatus } from './status.ts';

/** Envoy's default clock skew (`kClockSkewInSecond`), applied to `nbf` and `exp`. */
export const CLOCK_SKEW_SECONDS = 60;

/** The algorithms `jwt_verify_lib` implements (`isImplemented`); anything else, `none` included, is refused. */
export const IMPLEMENTED_ALGS: ReadonlySet<string> = new Set([
  'ES256',
  'ES384',
  'ES512',
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
]);

/** Protobuf's JSON parser refuses nesting deeper than this (its default recursion limit), so Envoy does. */
const MAX_JSON_DEPTH = 100;

/** A JSON value from a token: objects have no prototype, everything is frozen. */
export type ClaimValue = string | number | boolean | null | readonly ClaimValue[] | ClaimObject;
/** A JSON object from a token. */
export type ClaimObject = { readonly [name: string]: ClaimValue };

/** A parsed, not yet verified token. */
export interface ParsedJwt {
  /** The three sections as received. */
  readonly headerB64: string;
  readonly payloadB64: string;
  readonly signatureB64: string;
  readonly alg: string;
  /** `kid`, '' when absent. */
  readonly kid: string;
  readonly header: ClaimObject;
  readonly payload: ClaimObject;
  /** `iss`, '' when absent. */
  readonly iss: string;
  /** `sub`, '' when absent. */
  readonly sub: string;
  /** `aud` as a list (a single string becomes one item; absent is empty). */
  readonly audiences: readonly string[];
  /** `nbf` and `exp` in Unix seconds, truncated as Envoy does; 0 when absent. */
  readonly nbf: number;
  readonly exp: number;
}

/** A parse result: the token, or why it is malformed. */
export type ParseResult = { readonly ok: true; readonly jwt: ParsedJwt } | { readonly ok: false; readonly status: JwtStatus };

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** Strict base64url (RFC 4648 §5; padding accepted, as absl's `WebSafeBase64Unescape` does). */
function decodeB64url(s: string): Buffer | undefined {
  if (!B64URL.test(s)) return undefined;
  const bare = s.replace(/=+$/, '');
  if (bare.length % 4 === 1) return undefined;
  if (s.length !== bare.length && s.length % 4 !== 0) return undefined;
  return Buffer.from(bare, 'base64url');
}

class TooDeep extends Error {}

/** Rebuilds parsed JSON with null-prototype objects and frozen arrays, refusing nesting past protobuf's limit. */
function harden(v: unknown, depth: number): ClaimValue {
  if (typeof v !== 'object' || v === null) return v as ClaimValue;
  if (depth > MAX_JSON_DEPTH) throw new TooDeep();
  if (Array.isArray(v)) return Object.freeze(v.map((x) => harden(x, depth + 1)));
  const out: Record<string, ClaimValue> = Object.create(null);
  for (const k of Object.keys(v)) out[k] = harden((v as Record<string, unknown>)[k], depth + 1);
  return Object.freeze(out);
}

/** Decodes one section into a JSON object; `undefined` for bad base64, `null` for bad JSON. */
function jsonObject(section: string): ClaimObject | undefined | null {
  const bytes = decodeB64url(section);
  if (bytes === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  try {
    return harden(parsed, 1) as ClaimObject;
  } catch (err) {
    if (err instanceof TooDeep) return null;
    throw err;
  }
}

const own = (o: ClaimObject, k: string): ClaimValue | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);

/** A numeric registered claim as `StructUtils::GetUInt64`: a number in [0, 2^64), truncated. */
function uint64(o: ClaimObject, k: string, wrongType: JwtStatus, outOfRange: JwtStatus): number | JwtStatus {
  const v = own(o, k);
  if (v === undefined) return 0;
  if (typeof v !== 'number') return wrongType;
  if (v < 0 || v >= 2 ** 64) return outOfRange;
  return Math.trunc(v);
}

function optString(o: ClaimObject, k: string): string | false {
  const v = own(o, k);
  if (v === undefined) return '';
  return typeof v === 'string' ? v : false;
}

/** Parses a compact JWT with `jwt_verify_lib`'s checks and statuses. */
export function parseJwt(token: string): ParseResult {
  const parts = token.split('.').filter((p) => p !== '');
  if (parts.length !== 3) return { ok: false, status: JwtStatus.JwtBadFormat };
  const [headerB64, payloadB64, signatureB64] = parts as [string, string, string];

  const header = jsonObject(headerB64);
  if (header === undefined) return { ok: false, status: JwtStatus.JwtHeaderParseErrorBadBase64 };
  if (header === null) return { ok: false, status: JwtStatus.JwtHeaderParseErrorBadJson };
  const alg = own(header, 'alg');
  if (typeof alg !== 'string') return { ok: false, status: JwtStatus.JwtHeaderBadAlg };
  if (!IMPLEMENTED_ALGS.has(alg)) return { ok: false, status: JwtStatus.JwtHeaderNotImplementedAlg };
  const kid = optString(header, 'kid');
  if (kid === false) return { ok: false, status: JwtStatus.JwtHeaderBadKid };

  const payload = jsonObject(payloadB64);
  if (payload === undefined) return { ok: false, status: JwtStatus.JwtPayloadParseErrorBadBase64 };
  if (payload === null) return { ok: false, status: JwtStatus.JwtPayloadParseErrorBadJson };
  const iss = optString(payload, 'iss');
  if (iss === false) return { ok: false, status: JwtStatus.JwtPayloadParseErrorIssNotString };
  const sub = optString(payload, 'sub');
  if (sub === false) return { ok: false, status: JwtStatus.JwtPayloadParseErrorSubNotString };
  const iat = uint64(payload, 'iat', JwtStatus.JwtPayloadParseErrorIatNotInteger, JwtStatus.JwtPayloadParseErrorIatOutOfRange);
  if (typeof iat === 'string') return { ok: false, status: iat };
  const nbf = uint64(payload, 'nbf', JwtStatus.JwtPayloadParseErrorNbfNotInteger, JwtStatus.JwtPayloadParseErrorNbfOutOfRange);
  if (typeof nbf === 'string') return { ok: false, status: nbf };
  const exp = uint64(payload, 'exp', JwtStatus.JwtPayloadParseErrorExpNotInteger, JwtStatus.JwtPayloadParseErrorExpOutOfRange);
  if (typeof exp === 'string') return { ok: false, status: exp };
  if (optString(payload, 'jti') === false) return { ok: false, status: JwtStatus.JwtPayloadParseErrorJtiNotString };
  const aud = own(payload, 'aud');
  let audiences: readonly string[] = [];
  if (typeof aud === 'string') audiences = [aud];
  else if (Array.isArray(aud)) {
    if (!aud.every((a) => typeof a === 'string')) return { ok: false, status: JwtStatus.JwtPayloadParseErrorAudNotString };
    audiences = aud as readonly string[];
  } else if (aud !== undefined) return { ok: false, status: JwtStatus.JwtPayloadParseErrorAudNotString };

  if (decodeB64url(signatureB64) === undefined) return { ok: false, status: JwtStatus.JwtSignatureParseErrorBadBase64 };
  return {
    ok: true,
    jwt: Object.freeze({ headerB64, payloadB64, signatureB64, alg, kid, header, payload, iss, sub, audiences: Object.freeze([...audiences]), nbf, exp }),
  };
}

/** The time window check (`Jwt::verifyTimeConstraint`): `nbf` and `exp` each get `skew` seconds of grace; `exp` 0 never expires. */
export function checkTime(jwt: ParsedJwt, nowSeconds: number, skewSeconds = CLOCK_SKEW_SECONDS): JwtStatus {
  if (nowSeconds + skewSeconds < jwt.nbf) return JwtStatus.JwtNotYetValid;
  if (jwt.exp !== 0 && nowSeconds > jwt.exp + skewSeconds) return JwtStatus.JwtExpired;
  return JwtStatus.Ok;
}

/** `sanitizeAudience`: drops an `http://` or `https://` prefix and one trailing `/`. */
export function sanitizeAudience(aud: string): string {
  let s = aud;
  if (s.startsWith('http://')) s = s.slice(7);
  else if (s.startsWith('https://')) s = s.slice(8);
  if (aud.endsWith('/')) s = s.slice(0, -1);
  return s;
}

/** The configured audiences, sanitized, for {@link audiencesAllowed}; empty means any audience (also none). */
export function audienceSet(configured: readonly string[] | undefined): ReadonlySet<string> {
  return new Set((configured ?? []).map(sanitizeAudience));
}

/** `CheckAudience::areAudiencesAllowed`: true when nothing is configured or one of the token's audiences is. */
export function audiencesAllowed(allowed: ReadonlySet<string>, audiences: readonly string[]): boolean {
  if (allowed.size === 0) return true;
  for (const a of audiences) if (allowed.has(sanitizeAudience(a))) return true;
  return false;
}
