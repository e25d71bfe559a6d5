/**
 * Workload and admin tokens: EdDSA (Ed25519) JWTs signed with one key kept in
 * `<dataDir>/signing-key.jwk` (private JWK, mode 0600). Replicas that share a
 * {@link SharedValues} agree on one key through `putIfAbsent('signing-key', …)`.
 *
 * @module
 */
import { writeFileAtomic } from '../core/write-file-atomic.ts';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, errors, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';
import { checkLabelKey, checkLabelValue } from '../config/validate/common.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import type { SharedValues } from './store.ts';

/** `iss` of every token. */
export const TOKEN_ISSUER = 'meshlet-control-plane';
/** `aud` of every token. */
export const TOKEN_AUDIENCE = 'meshlet';
/** File name of the signing key inside the data directory. */
export const SIGNING_KEY_FILE = 'signing-key.jwk';
/** Key under which replicas share the signing key. */
export const SHARED_KEY_NAME = 'signing-key';
/** Default token lifetime: one year. */
export const DEFAULT_TOKEN_TTL_SECONDS = 365 * 24 * 3600;

/**
 * Who a token names: one workload's service (optionally with the labels the workload has, which
 * the token then proves: the control plane filters the workload's policies by them), or an administrator.
 */
export type TokenSubject =
  | {
      readonly service: string;
      readonly namespace: string;
      readonly labels?: Readonly<Record<string, string>>;
      /** The workload's service account: its SPIFFE identity `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. @defaultValue 'default' */
      readonly serviceAccount?: string;
    }
  | { readonly admin: true };

/** The service account of a token without an `sa` claim (Kubernetes gives every pod `default`). */
export const DEFAULT_SERVICE_ACCOUNT = 'default';

/** A verified token's identity. */
export type Identity =
  | {
      readonly role: 'workload';
      readonly service: string;
      readonly namespace: string;
      /** The service account the token proves (its `sa` claim; {@link DEFAULT_SERVICE_ACCOUNT} when it has none): the workload's certificate names it. */
      readonly serviceAccount: string;
      readonly subject: string;
      /** The labels the token proves (its `labels` claim; `{}` when it has none). */
      readonly labels: Readonly<Record<string, string>>;
    }
  | { readonly role: 'admin'; readonly subject: string };

/** Why a token was refused. */
export type TokenFailure = 'expired' | 'bad-signature' | 'malformed' | 'wrong-claims';

/** The outcome of {@link TokenAuthority.verifyToken}. */
export type VerifyResult = { readonly ok: true; readonly identity: Identity } | { readonly ok: false; readonly reason: TokenFailure; readonly message: string };

/** Options of {@link TokenAuthority.mintToken}. */
export interface MintOptions {
  /** Lifetime in seconds. @defaultValue one year */
  readonly ttlSeconds?: number;
}

type KeyLike = Awaited<ReturnType<typeof importJWK>>;

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Why `labels` is not a valid label map (Kubernetes label keys and values), or undefined. */
export function labelMapProblem(labels: unknown): string | undefined {
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) return 'labels must be an object of strings';
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== 'string') return `label ${JSON.stringify(k)} must have a string value`;
    const problem = checkLabelKey(k) ?? checkLabelValue(v);
    if (problem !== undefined) return `label ${JSON.stringify(k)}: ${problem}`;
  }
  return undefined;
}

/** A null-prototype copy of a label map (keys come from outside). */
function labelCopy(labels: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(labels)) out[k] = v;
  return out;
}

function newPrivateJwk(): JWK {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'jwk' }) as JWK;
}

function parseJwk(text: string, where: string): JWK {
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch (err) {
    throw new InvalidArgumentError(`${where}: not a JSON Web Key`, { cause: err });
  }
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string' || typeof jwk.x !== 'string') {
    throw new InvalidArgumentError(`${where}: expected a private Ed25519 JWK (kty OKP, crv Ed25519, with d and x)`);
  }
  return jwk;
}

async function readKeyFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Most verified tokens remembered (oldest forgotten first). */
const VERIFIED_MAX = 10_000;

/** Signs and verifies the control plane's tokens. Create with {@link TokenAuthority.open}. */
export class TokenAuthority {
  readonly #privateKey: KeyLike;
  readonly #publicKey: KeyLike;
  readonly #kid: string;
  /** The key file this {@link TokenAuthority.open} created (no key was there or shared); undefined when it loaded one. */
  readonly createdKeyFile: string | undefined;
  /**
   * Tokens that verified, with their expiry (ms): every watch, ACK and lease renewal carries
   * the workload's token, and an Ed25519 verification costs ~0.2 ms — a push to 100 workloads
   * brings 100 ACKs at once. A token is a signed, immutable string, so a verified one stays
   * valid until its `exp`, which is checked on every use.
   */
  readonly #verified = new Map<string, { identity: Identity; expiresAt: number; notBefore: number }>();

  private constructor(privateKey: KeyLike, publicKey: KeyLike, kid: string, createdKeyFile: string | undefined) {
    this.createdKeyFile = createdKeyFile;
    this.#privateKey = privateKey;
    this.#publicKey = publicKey;
    this.#kid = kid;
  }

  /**
   * Loads the signing key from `<dataDir>/signing-key.jwk`, creating it (mode 0600) when absent.
   * With `shared`, the key stored there wins (the local key is offered when none is) and is
   * written to the data directory, so every replica signs and verifies with the same key.
   */
  static async open(dataDir: string, shared?: SharedValues): Promise<TokenAuthority> {
    await mkdir(dataDir, { recursive: true });
    const file = join(dataDir, SIGNING_KEY_FILE);
    const local = await readKeyFile(file);
    const generated = local === undefined ? JSON.stringify(newPrivateJwk()) : undefined;
    let text = local ?? generated!;
    if (shared !== undefined) text = await shared.putIfAbsent(SHARED_KEY_NAME, text);
    const jwk = parseJwk(text, local !== undefined && text === local ? file : 'shared signing key');
    if (text !== local) await writeFileAtomic(file, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
    const { d: _d, ...pub } = jwk;
    const kid = await calculateJwkThumbprint(pub);
    return new TokenAuthority(await importJWK(jwk, 'EdDSA'), await importJWK(pub, 'EdDSA'), kid, text === generated ? file : undefined);
  }

  /** The key id (`kid`): the JWK thumbprint of the public key. */
  get keyId(): string {
    return this.#kid;
  }

  /** Mints a token for a workload's service or for an administrator. */
  async mintToken(subject: TokenSubject, options: MintOptions = {}): Promise<string> {
    const ttl = options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new InvalidArgumentError(`token ttl must be a positive number of seconds, got ${ttl}`);
    let claims: Record<string, unknown>;
    let sub: string;
    if ('admin' in subject) {
      claims = { role: 'admin' };
      sub = 'admin';
    } else {
      for (const [k, v] of [
        ['service', subject.service],
        ['namespace', subject.namespace],
      ] as const) {
        if (typeof v !== 'string' || !NAME.test(v)) throw new InvalidArgumentError(`token ${k} must be a DNS-1123 name, got "${v}"`);
      }
      const sa = subject.serviceAccount ?? DEFAULT_SERVICE_ACCOUNT;
      if (typeof sa !== 'string' || !NAME.test(sa)) throw new InvalidArgumentError(`token serviceAccount must be a DNS-1123 name, got "${String(sa)}"`);
      claims = { role: 'workload', svc: subject.service, ns: subject.namespace, sa };
      if (subject.labels !== undefined && Object.keys(subject.labels).length > 0) {
        const problem = labelMapProblem(subject.labels);
        if (problem !== undefined) throw new InvalidArgumentError(`token ${problem}`);
        if (subject.labels.app !== undefined && subject.labels.app !== subject.service) {
          throw new InvalidArgumentError(`token label app must be the service "${subject.service}" (or left out), got "${subject.labels.app}"`);
        }
        claims.labels = { ...subject.labels };
      }
      sub = `${subject.namespace}/${subject.service}`;
    }
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: this.#kid, typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + Math.ceil(ttl))
      .sign(this.#privateKey);
  }

  /** Verifies a token: its identity, or why it is refused. */
  async verifyToken(token: string): Promise<VerifyResult> {
    const hit = this.#verified.get(token);
    if (hit !== undefined) {
      const now = Date.now();
      if (now < hit.expiresAt && now >= hit.notBefore) return { ok: true, identity: hit.identity };
      this.#verified.delete(token);
    }
    return this.#verify(token);
  }

  /** Remembers a verified token until its `exp` (seconds since the epoch in the verified payload). */
  #remember(token: string, identity: Identity, payload: Record<string, unknown>): void {
    const exp = typeof payload.exp === 'number' ? payload.exp * 1000 : Number.POSITIVE_INFINITY;
    const nbf = typeof payload.nbf === 'number' ? payload.nbf * 1000 : 0;
    if (this.#verified.size >= VERIFIED_MAX) this.#verified.delete(this.#verified.keys().next().value as string);
    this.#verified.set(token, { identity, expiresAt: exp, notBefore: nbf });
  }

  async #verify(token: string): Promise<VerifyResult> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.#publicKey, { issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, algorithms: ['EdDSA'] }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired', message: 'token expired' };
      if (err instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: 'bad-signature', message: 'token signature does not verify (signed by another key?)' };
      if (err instanceof errors.JWTClaimValidationFailed) return { ok: false, reason: 'wrong-claims', message: `token ${err.message}` };
      return { ok: false, reason: 'malformed', message: `malformed token: ${err instanceof Error ? err.message : String(err)}` };
    }
    const sub = typeof payload.sub === 'string' ? payload.sub : '';
    let identity: Identity;
    if (payload.role === 'admin') identity = { role: 'admin', subject: sub };
    else if (payload.role === 'workload' && typeof payload.svc === 'string' && typeof payload.ns === 'string') {
      const labels = payload.labels ?? {};
      if (labelMapProblem(labels) !== undefined) return { ok: false, reason: 'wrong-claims', message: `token labels claim is invalid: ${labelMapProblem(labels)}` };
      const sa = payload.sa ?? DEFAULT_SERVICE_ACCOUNT;
      if (typeof sa !== 'string' || !NAME.test(sa)) return { ok: false, reason: 'wrong-claims', message: 'token sa claim (service account) is not a DNS-1123 name' };
      identity = { role: 'workload', service: payload.svc, namespace: payload.ns, serviceAccount: sa, subject: sub, labels: labelCopy(labels as Record<string, string>) };
    } else return { ok: false, reason: 'wrong-claims', message: 'token has no valid role (workload with svc and ns, or admin)' };
    this.#remember(token, identity, payload);
    return { ok: true, identity };
  }
}
