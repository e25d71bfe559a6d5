/**
 * Workload, admin and viewer tokens: EdDSA (Ed25519) JWTs signed with one key kept in
 * `<dataDir>/signing-key.jwk` (private JWK, mode 0600). Replicas that share a
 * {@link SharedValues} agree on one key through `putIfAbsent('signing-key', …)` and watch it:
 * a new key there (the shared key deleted, a fresh one stored by the first replica to see it)
 * is used by every replica at once, and tokens of the old key are refused.
 *
 * @module
 */
import { writeFileAtomic } from '../core/write-file-atomic.ts';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, errors, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';
import { checkLabelKey, checkLabelValue } from '../config/validate/common.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { keepReplaced, readLocalFile } from './data-dir.ts';
import type { ServerLogger } from './logger.ts';
import type { SharedValues, SharedWatch } from './store.ts';

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
  | { readonly admin: true }
  /** A read-only token (as Kubernetes' `view` ClusterRole): the config, the status, the workload list and the CA, nothing it could change. */
  | { readonly viewer: true };

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
  | { readonly role: 'admin'; readonly subject: string }
  /** A read-only token: the router lets it make only the reads of its allow-list (viewer-gate.ts). */
  | { readonly role: 'viewer'; readonly subject: string };

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

/** A loaded signing key. */
interface SigningKey {
  readonly privateKey: KeyLike;
  readonly publicKey: KeyLike;
  /** JWK thumbprint of the public key. */
  readonly kid: string;
}

async function loadKey(jwk: JWK): Promise<SigningKey> {
  const { d: _d, ...pub } = jwk;
  return { privateKey: await importJWK(jwk, 'EdDSA'), publicKey: await importJWK(pub, 'EdDSA'), kid: await calculateJwkThumbprint(pub) };
}

/** The kid of a key file's text; undefined when it is not a private Ed25519 JWK. */
async function kidOf(text: string): Promise<string | undefined> {
  try {
    const { d: _d, ...pub } = parseJwk(text, '');
    return await calculateJwkThumbprint(pub);
  } catch {
    return undefined;
  }
}

/** Options of {@link TokenAuthority.open}. */
export interface TokenAuthorityOptions {
  /** Where a replaced local key and a key change are told. */
  readonly logger?: ServerLogger;
  /** How long to wait before storing a new shared key again after a failure. @defaultValue 1000 */
  readonly retryMs?: number;
}

/** Most verified tokens remembered (oldest forgotten first). */
const VERIFIED_MAX = 10_000;

/** Signs and verifies the control plane's tokens. Create with {@link TokenAuthority.open}. */
export class TokenAuthority {
  #key: SigningKey;
  /** The key file this {@link TokenAuthority.open} created (no key was there or shared); undefined when it loaded one. */
  readonly createdKeyFile: string | undefined;
  /**
   * Tokens that verified, with their expiry (ms): every watch, ACK and lease renewal carries
   * the workload's token, and an Ed25519 verification costs ~0.2 ms — a push to 100 workloads
   * brings 100 ACKs at once. A token is a signed, immutable string, so a verified one stays
   * valid until its `exp`, which is checked on every use — or until the key changes.
   */
  readonly #verified = new Map<string, { identity: Identity; expiresAt: number; notBefore: number }>();
  readonly #file: string;
  readonly #o: TokenAuthorityOptions;
  readonly #listeners = new Set<(kid: string) => void>();
  #watch: SharedWatch | undefined;
  /** Key changes are made one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(key: SigningKey, file: string, createdKeyFile: string | undefined, o: TokenAuthorityOptions) {
    this.createdKeyFile = createdKeyFile;
    this.#key = key;
    this.#file = file;
    this.#o = o;
  }

  /**
   * Loads the signing key from `<dataDir>/signing-key.jwk`, creating it (mode 0600) when absent.
   * With `shared`, the key stored there wins (the local key is offered when none is) and is
   * written to the data directory, so every replica signs and verifies with the same key; a
   * local key that differs is kept as `signing-key.jwk.replaced-<UTC time>`, with a warning. The
   * shared key is watched (when the store can): a new one replaces this one at once, and when it
   * is deleted a new key is generated and stored (the first replica's wins). {@link close} stops that.
   */
  static async open(dataDir: string, shared?: SharedValues, options: TokenAuthorityOptions = {}): Promise<TokenAuthority> {
    await mkdir(dataDir, { recursive: true });
    const file = join(dataDir, SIGNING_KEY_FILE);
    const local = await readLocalFile(file);
    const localKid = local === undefined ? undefined : await kidOf(local);
    // A damaged local key stops a single control plane (naming the file); replicas take the shared one.
    if (local !== undefined && localKid === undefined && shared === undefined) parseJwk(local, file);
    const generated = localKid === undefined ? JSON.stringify(newPrivateJwk()) : undefined;
    let text = generated ?? local!;
    if (shared !== undefined) text = await shared.putIfAbsent(SHARED_KEY_NAME, text);
    const jwk = parseJwk(text, text === local ? file : 'shared signing key');
    const key = await loadKey(jwk);
    if (text !== local) {
      if (local !== undefined && localKid !== key.kid) {
        const backup = await keepReplaced(file);
        options.logger?.warn(
          `token signing key: ${file} holds ${localKid === undefined ? 'a damaged key' : `key ${localKid}`}, not the key ${key.kid} the replicas share in etcd. This replica signs and verifies with the shared key (tokens of the local one are refused); the local key was kept as ${backup}.`,
        );
      }
      await writeFileAtomic(file, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
      if (local === undefined && text !== generated) {
        options.logger?.info?.(`token signing key: using key ${key.kid}, the one the replicas share in etcd (to rotate it, delete it there: docs/control-plane.md#rotating-the-signing-key)`);
      }
    }
    const auth = new TokenAuthority(key, file, text === generated ? file : undefined, options);
    if (shared !== undefined) {
      auth.#watch = shared.watch?.(
        SHARED_KEY_NAME,
        (value) => auth.#enqueue(() => auth.#adopt(value)),
        () => auth.#enqueue(() => auth.#replaceDeleted(shared)),
      );
    }
    return auth;
  }

  /** The key id (`kid`): the JWK thumbprint of the public key. */
  get keyId(): string {
    return this.#key.kid;
  }

  /** Calls `listener` with the new kid after the key changed (the shared key was replaced). */
  onKeyChange(listener: (kid: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching the shared key. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    await this.#watch?.close();
    await this.#queue.catch(() => undefined);
  }

  #enqueue(change: () => Promise<void>): void {
    this.#queue = this.#queue.then(change).catch((err: unknown) => this.#o.logger?.warn(`token signing key: ignoring a shared key change: ${(err as Error).message}`));
  }

  /** The shared key now (another replica's, or this one's seen again). */
  async #adopt(text: string): Promise<void> {
    if (this.#closed) return;
    const jwk = parseJwk(text, 'shared signing key');
    const key = await loadKey(jwk);
    const before = this.#key.kid;
    if (key.kid === before) return;
    this.#key = key;
    this.#verified.clear();
    await writeFileAtomic(this.#file, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
    this.#o.logger?.warn(`token signing key: the replicas' key changed (kid ${before} → ${key.kid}): tokens signed with the old key are refused from now on; mint new ones with 'meshlet token --data-dir <this data dir>'`);
    for (const l of [...this.#listeners]) l(key.kid);
  }

  /** The shared key was deleted (a rotation): stores a new one unless another replica did first, and uses what is stored. */
  async #replaceDeleted(shared: SharedValues): Promise<void> {
    if (this.#closed) return;
    const fresh = JSON.stringify(newPrivateJwk());
    let text: string;
    try {
      text = await shared.putIfAbsent(SHARED_KEY_NAME, fresh);
    } catch (err) {
      const retryMs = this.#o.retryMs ?? 1000;
      this.#o.logger?.warn(`token signing key: the shared key was deleted, and storing a new one failed (${(err as Error).message}); trying again in ${retryMs} ms`);
      this.#retry = setTimeout(() => this.#enqueue(() => this.#replaceDeleted(shared)), retryMs);
      this.#retry.unref();
      return;
    }
    if (text === fresh) this.#o.logger?.info?.('token signing key: the shared key was deleted (a rotation): generated and stored a new one');
    await this.#adopt(text);
  }

  /** Mints a token for a workload's service, an administrator, or a viewer (read-only). */
  async mintToken(subject: TokenSubject, options: MintOptions = {}): Promise<string> {
    const ttl = options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new InvalidArgumentError(`token ttl must be a positive number of seconds, got ${ttl}`);
    let claims: Record<string, unknown>;
    let sub: string;
    if ('admin' in subject || 'viewer' in subject) {
      sub = 'admin' in subject ? 'admin' : 'viewer';
      claims = { role: sub };
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
    const key = this.#key;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + Math.ceil(ttl))
      .sign(key.privateKey);
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
    const key = this.#key;
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, key.publicKey, { issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, algorithms: ['EdDSA'] }));
    } catch (err) {
      if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired', message: 'token expired' };
      if (err instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: 'bad-signature', message: 'token signature does not verify (signed by another key?)' };
      if (err instanceof errors.JWTClaimValidationFailed) return { ok: false, reason: 'wrong-claims', message: `token ${err.message}` };
      return { ok: false, reason: 'malformed', message: `malformed token: ${err instanceof Error ? err.message : String(err)}` };
    }
    const sub = typeof payload.sub === 'string' ? payload.sub : '';
    let identity: Identity;
    if (payload.role === 'admin') identity = { role: 'admin', subject: sub };
    else if (payload.role === 'viewer') identity = { role: 'viewer', subject: sub };
    else if (payload.role === 'workload' && typeof payload.svc === 'string' && typeof payload.ns === 'string') {
      const labels = payload.labels ?? {};
      if (labelMapProblem(labels) !== undefined) return { ok: false, reason: 'wrong-claims', message: `token labels claim is invalid: ${labelMapProblem(labels)}` };
      const sa = payload.sa ?? DEFAULT_SERVICE_ACCOUNT;
      if (typeof sa !== 'string' || !NAME.test(sa)) return { ok: false, reason: 'wrong-claims', message: 'token sa claim (service account) is not a DNS-1123 name' };
      identity = { role: 'workload', service: payload.svc, namespace: payload.ns, serviceAccount: sa, subject: sub, labels: labelCopy(labels as Record<string, string>) };
    } else return { ok: false, reason: 'wrong-claims', message: 'token has no valid role (workload with svc and ns, admin, or viewer)' };
    // Verified with a key replaced meanwhile: answered, not remembered.
    if (this.#key === key) this.#remember(token, identity, payload);
    return { ok: true, identity };
  }
}
