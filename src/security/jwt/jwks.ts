/**
 * A JSON Web Key Set as `jwt_verify_lib` reads it (`Jwks::createFromJwksCore`, `extractJwk`),
 * and the keys it yields, each usable only for the algorithms it declares.
 *
 * Keys are read leniently as a set (a bad key is skipped, the set is usable while one key is
 * good; none good is `JwksNoValidKeys`) and strictly one by one: an RSA key signs `RS*`/`PS*`, an
 * EC key the `ES*` of its curve, an `oct` key `HS*`, an Ed25519 key `EdDSA`; a key with an `alg`
 * member only that algorithm. So a token signed `HS256` with an RSA public key as the HMAC secret
 * finds no key that may check it and fails (`Jwt verification fails`), and `alg: none` never gets
 * this far (the parser refuses it). Only public members are imported; private ones (`d`, …) are
 * dropped. meshlet also skips keys whose `use` is not `sig` or whose `key_ops` leave out `verify`.
 *
 * The certificate map that Google publishes for service accounts (`{"<kid>": "-----BEGIN
 * CERTIFICATE-----…"}`) is read too, as the library does (RSA certificates).
 *
 * Signatures are checked with jose (`flattenedVerify`, WebCrypto underneath), which also refuses
 * RSA keys shorter than 2048 bits.
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import type { JWK } from 'jose';
import type { ParsedJwt } from './token.ts';

/** Algorithms per key type (or per curve). */
const RSA_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const HMAC_ALGS = ['HS256', 'HS384', 'HS512'];
const CURVE_ALG: Readonly<Record<string, string>> = Object.freeze({ 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' });

/** The public members of each key type (everything else, private material included, is dropped). */
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  RSA: ['n', 'e'],
  EC: ['crv', 'x', 'y'],
  oct: ['k'],
  OKP: ['crv', 'x'],
});

const CERT_PREFIX = '-----BEGIN CERTIFICATE-----\n';
const CERT_SUFFIX = '\n-----END CERTIFICATE-----\n';

type Jose = typeof import('jose');
type ImportedKey = Awaited<ReturnType<Jose['importJWK']>>;

let jose: Promise<Jose> | undefined;
/**
 * jose, loaded the first time a key is made (its 46 modules cost an app's start ~45 ms, and
 * most workloads have no RequestAuthentication): by the time a token is checked against a key,
 * the import has long finished.
 */
function loadJose(): Promise<Jose> {
  // A failed import fails every token closed ("Jwt verification fails"): said once, on the
  // process's warning channel (stderr unless the app listens), so a broken install is not silent.
  jose ??= import('jose').catch((e: unknown) => {
    process.emitWarning(`meshlet: importing jose failed, so every JWT fails verification: ${e instanceof Error ? e.message : String(e)}`, { code: 'MESHLET_JOSE_IMPORT' });
    throw e;
  });
  return jose;
}

/** One key of a set. */
export class VerificationKey {
  /** `kid`, '' when the key has none. */
  readonly kid: string;
  /** The declared `alg`, '' when none. */
  readonly alg: string;
  readonly kty: string;
  /** Identity across refreshes: the key's public members, kid and alg. */
  readonly id: string;
  /** The algorithms this key may verify. */
  readonly algorithms: ReadonlySet<string>;
  /**
   * Set when a refresh no longer lists this key: tokens it verified are verified again (and fail
   * if no other key vouches for them).
   */
  retired = false;
  readonly #jwk: JWK;
  readonly #imported = new Map<string, Promise<ImportedKey | undefined>>();

  constructor(jwk: JWK, kid: string, alg: string, algorithms: readonly string[]) {
    this.#jwk = jwk;
    this.kid = kid;
    this.alg = alg;
    this.kty = jwk.kty as string;
    this.algorithms = new Set(algorithms);
    this.id = JSON.stringify([jwk, kid, alg]);
    loadJose().catch(() => undefined);
  }

  /** Whether this key may check a token signed with `alg`. */
  supports(alg: string): boolean {
    return this.algorithms.has(alg);
  }

  /** Checks the token's signature with this key; false when it does not verify or the key cannot be used. */
  async verify(jwt: ParsedJwt): Promise<boolean> {
    if (!this.supports(jwt.alg)) return false;
    let key = this.#imported.get(jwt.alg);
    if (key === undefined) {
      key = loadJose()
        .then((j) => j.importJWK(this.#jwk, jwt.alg))
        .catch(() => undefined);
      this.#imported.set(jwt.alg, key);
    }
    const k = await key;
    if (k === undefined) return false;
    try {
      await (await loadJose()).flattenedVerify({ protected: jwt.headerB64, payload: jwt.payloadB64, signature: jwt.signatureB64 }, k, { algorithms: [jwt.alg] });
      return true;
    } catch {
      return false;
    }
  }

  toString(): string {
    return `${this.kty}${this.kid === '' ? '' : ` kid=${this.kid}`} [${[...this.algorithms].join(',')}]`;
  }
}

/** Why a single JWK was skipped, or the key it gives. */
function readJwk(raw: unknown): VerificationKey | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'not a JSON object';
  const k = raw as Record<string, unknown>;
  if (k.kty === undefined) return '[kty] is missing';
  if (typeof k.kty !== 'string') return '[kty] is not a string';
  const members = Object.hasOwn(PUBLIC_MEMBERS, k.kty) ? PUBLIC_MEMBERS[k.kty] : undefined;
  if (members === undefined) return `[kty] "${k.kty}" is not supported`;
  const kid = typeof k.kid === 'string' ? k.kid : '';
  const alg = typeof k.alg === 'string' ? k.alg : '';
  if (k.use !== undefined && k.use !== 'sig') return `[use] is "${String(k.use)}", not "sig"`;
  if (k.key_ops !== undefined && !(Array.isArray(k.key_ops) && k.key_ops.includes('verify'))) return '[key_ops] does not include "verify"';
  const jwk: JWK = { kty: k.kty };
  for (const m of members) {
    if (k[m] === undefined) continue;
    if (typeof k[m] !== 'string') return `[${m}] is not a string`;
    (jwk as Record<string, unknown>)[m] = k[m];
  }
  let algorithms: readonly string[];
  switch (k.kty) {
    case 'RSA':
      if (alg !== '' && !RSA_ALGS.includes(alg)) return `[alg] "${alg}" is not an RS or PS algorithm for an RSA key`;
      if (jwk.n === undefined || jwk.e === undefined) return '[n] or [e] is missing for an RSA key';
      algorithms = alg === '' ? RSA_ALGS : [alg];
      break;
    case 'EC': {
      if (alg !== '' && !alg.startsWith('ES')) return `[alg] "${alg}" is not an ES algorithm for an EC key`;
      // Neither alg nor crv: P-256, as the library assumes.
      const crv = jwk.crv ?? Object.keys(CURVE_ALG).find((c) => CURVE_ALG[c] === alg) ?? 'P-256';
      const curveAlg = Object.hasOwn(CURVE_ALG, crv) ? CURVE_ALG[crv] : undefined;
      if (curveAlg === undefined) return `[crv] "${crv}" is not supported for an EC key`;
      if (alg !== '' && alg !== curveAlg) return `[crv] "${crv}" is not compatible with [alg] "${alg}"`;
      if (jwk.x === undefined || jwk.y === undefined) return '[x] or [y] is missing for an EC key';
      jwk.crv = crv;
      algorithms = [curveAlg];
      break;
    }
    case 'oct':
      if (alg !== '' && !HMAC_ALGS.includes(alg)) return `[alg] "${alg}" is not an HS algorithm for an HMAC key`;
      if (jwk.k === undefined) return '[k] is missing for an HMAC key';
      if (!/^[A-Za-z0-9_-]*={0,2}$/.test(jwk.k)) return '[k] is not base64url';
      algorithms = alg === '' ? HMAC_ALGS : [alg];
      break;
    default:
      if (alg !== '' && alg !== 'EdDSA') return `[alg] "${alg}" is not EdDSA for an OKP key`;
      if (jwk.crv !== 'Ed25519') return `[crv] "${String(jwk.crv)}" is not supported for an OKP key (Ed25519 only)`;
      if (jwk.x === undefined || Buffer.from(jwk.x, 'base64url').length !== 32) return '[x] is missing or not 32 bytes for an Ed25519 key';
      algorithms = ['EdDSA'];
  }
  return new VerificationKey(jwk, kid, alg, algorithms);
}

/** Keys from Google's certificate map (`kid` → PEM certificate); RSA certificates only, as the library reads them. */
function readCertificateMap(doc: Record<string, unknown>): VerificationKey[] | undefined {
  const entries = Object.entries(doc);
  if (entries.length === 0) return undefined;
  if (!entries.every(([kid, v]) => kid !== '' && typeof v === 'string' && v.startsWith(CERT_PREFIX) && v.endsWith(CERT_SUFFIX))) return undefined;
  const keys: VerificationKey[] = [];
  for (const [kid, pem] of entries) {
    try {
      const pub = new X509Certificate(pem as string).publicKey;
      if (pub.asymmetricKeyType !== 'rsa') continue;
      const { n, e } = pub.export({ format: 'jwk' });
      keys.push(new VerificationKey({ kty: 'RSA', n, e }, kid, '', RSA_ALGS));
    } catch {
      // A certificate that does not parse is skipped.
    }
  }
  return keys;
}

/** A parsed key set. */
export class KeySet {
  readonly keys: readonly VerificationKey[];
  /** Why keys were skipped (for `toString` and debugging). */
  readonly skipped: readonly string[];
  readonly #kids: ReadonlySet<string>;

  constructor(keys: readonly VerificationKey[], skipped: readonly string[] = []) {
    this.keys = keys;
    this.skipped = skipped;
    this.#kids = new Set(keys.map((k) => k.kid).filter((k) => k !== ''));
  }

  /** Whether a key carries exactly this `kid`. */
  hasKid(kid: string): boolean {
    return this.#kids.has(kid);
  }

  /**
   * The keys that may have signed `jwt`, as `verifyJwtWithoutTimeChecking` picks them: a key
   * whose `kid` differs from the token's (both set) is passed over, and so is a key whose declared
   * `alg` differs. Empty means "Jwks doesn't have key to match kid or alg from Jwt".
   */
  candidates(jwt: ParsedJwt): VerificationKey[] {
    return this.keys.filter((k) => !(jwt.kid !== '' && k.kid !== '' && k.kid !== jwt.kid) && !(k.alg !== '' && k.alg !== jwt.alg));
  }

  /** Marks the keys of this set that `next` no longer has as retired. */
  retireMissingFrom(next: KeySet): void {
    const ids = new Set(next.keys.map((k) => k.id));
    for (const k of this.keys) if (!ids.has(k.id)) k.retired = true;
  }

  toString(): string {
    return `${this.keys.length} key(s): ${this.keys.map(String).join('; ')}${this.skipped.length > 0 ? `; skipped: ${this.skipped.join('; ')}` : ''}`;
  }
}

/** The result of reading a JWKS document. */
export type JwksParse = { readonly ok: true; readonly set: KeySet } | { readonly ok: false; readonly error: string };

/**
 * Reads a JWKS document. Keys that `previous` already holds (same members, kid and alg) are
 * reused, so their imported forms and the tokens they verified carry over a refresh.
 */
export function parseJwks(text: string, previous?: KeySet): JwksParse {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `Jwks is an invalid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, error: 'Jwks is not a JSON object' };
  const d = doc as Record<string, unknown>;
  let keys: VerificationKey[];
  const skipped: string[] = [];
  if (!Object.hasOwn(d, 'keys')) {
    const certs = readCertificateMap(d);
    if (certs === undefined) return { ok: false, error: 'Jwks does not have [keys] field' };
    keys = certs;
  } else {
    if (!Array.isArray(d.keys)) return { ok: false, error: '[keys] in Jwks is not an array' };
    keys = [];
    d.keys.forEach((raw, i) => {
      const k = readJwk(raw);
      if (typeof k === 'string') skipped.push(`keys[${i}]: ${k}`);
      else keys.push(k);
    });
  }
  if (previous !== undefined) {
    const byId = new Map(previous.keys.filter((k) => !k.retired).map((k) => [k.id, k]));
    keys = keys.map((k) => byId.get(k.id) ?? k);
  }
  return { ok: true, set: new KeySet(keys, skipped) };
}
