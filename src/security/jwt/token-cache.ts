/**
 * The verified-token cache: bounded, keyed by the token (the map hashes its last 32 characters
 * and a hit compares the whole token), least recently used evicted first (approximately), so a
 * token seen again costs a map lookup and a few comparisons instead of a parse and a signature
 * check.
 *
 * An entry holds the parsed token, per key source the key that verified it (or the key-set
 * version under which no key did), and per compiled rule what does not change with time (issuer
 * and audience checks, the principal, claims and output headers). It is never trusted past what the token itself allows: the
 * time window (with the clock skew) and the audiences are checked on every use, and an entry
 * whose token has expired is dropped when it is next looked at. It is also never trusted past its
 * key: a key that a JWKS refresh no longer lists is marked retired, and a token it verified is
 * verified again against the current set (so removing a key from the JWKS revokes its tokens
 * within one refresh). Tokens longer than {@link MAX_CACHED_TOKEN_CHARS} are not cached (Envoy's
 * `jwt_cache` limit), which bounds the memory to about `size × 4 KiB`.
 *
 * @module
 */
import type { JwksSource } from './jwks-source.ts';
import { isJwtRun } from './locations.ts';
import type { VerificationKey } from './jwks.ts';
import type { JwtStatus } from './status.ts';
import type { ParsedJwt } from './token.ts';

/** Tokens longer than this are verified every time (Envoy's `kMaxJwtSizeForCache`, 4 KiB). */
export const MAX_CACHED_TOKEN_CHARS = 4096;

/** What a key source said about a token. */
export type SourceVerdict = { readonly key: VerificationKey } | { readonly failed: JwtStatus; readonly version: number };

/**
 * The map key of a token: its last 32 characters (the end of the signature), so a lookup hashes
 * 32 characters rather than the whole token; the entry holds the whole token and a hit compares
 * it. Two tokens sharing a tail take turns in one slot (a miss, never a wrong hit).
 */
const KEY_CHARS = 32;

function keyOf(token: string): string {
  return token.length <= 2 * KEY_CHARS ? token : token.slice(-KEY_CHARS);
}

/** One cached token. */
export interface CachedToken {
  /** The whole token. */
  readonly token: string;
  readonly jwt: ParsedJwt;
  readonly verdicts: Map<JwksSource, SourceVerdict>;
  /** Used since the eviction sweep last passed it (the CLOCK algorithm's reference bit). */
  used: boolean;
  /** What each compiled rule concluded about this token that does not change with time (its issuer and audience checks, its outputs). */
  readonly views: WeakMap<object, unknown>;
  /** The token is one whole run of JWT characters ({@link isJwtRun}): found after a header's prefix, it is the token as it is. */
  readonly run: boolean;
}

/**
 * A bounded cache of parsed (and, per source, verified) tokens, evicting the least recently used
 * approximately (CLOCK, "second chance"): a hit only sets a bit — one map lookup, no reordering,
 * which matters because every lookup hashes the whole token — and an insertion into a full
 * cache passes over recently used entries (clearing their bit, moving them to the back) and
 * evicts the first one not used since the last pass.
 */
export class TokenCache {
  readonly #max: number;
  readonly #map = new Map<string, CachedToken>();
  hits = 0;
  misses = 0;

  /** @param size - the most tokens kept; 0 disables the cache. */
  constructor(size: number) {
    this.#max = Math.max(0, Math.floor(size));
  }

  get size(): number {
    return this.#map.size;
  }

  get capacity(): number {
    return this.#max;
  }

  /**
   * The entry {@link knownRun} found last, kept for the `get` of the same token that follows it
   * (one map lookup per request instead of two); cleared whenever an entry leaves the map.
   */
  #found: CachedToken | undefined;
  /** The string {@link knownRun} was asked about when it found {@link #found}: the same string object again needs no comparison of its ~700 characters. */
  #foundFor: string | undefined;

  /**
   * True when `s` is a cached token that is one whole run of JWT characters. Not a use of the entry
   * (no hit counted, no reference bit): the `get` that follows is.
   */
  knownRun(s: string): boolean {
    const e = this.#map.get(keyOf(s));
    if (e === undefined || !e.run || e.token !== s) return false;
    this.#found = e;
    this.#foundFor = s;
    return true;
  }

  /** The entry for `token`, marked as used. */
  get(token: string): CachedToken | undefined {
    const f = this.#found;
    const e = f !== undefined && (this.#foundFor === token || f.token === token) ? f : this.#map.get(keyOf(token));
    if (e === undefined || e.token !== token) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    e.used = true;
    return e;
  }

  /** Adds a parsed token (if it is small enough and the cache is on); returns the entry to record verdicts on. */
  add(token: string, jwt: ParsedJwt): CachedToken {
    const entry: CachedToken = { token, jwt, verdicts: new Map(), used: false, views: new WeakMap(), run: isJwtRun(token) };
    if (this.#max === 0 || token.length > MAX_CACHED_TOKEN_CHARS) return entry;
    const key = keyOf(token);
    this.#found = undefined;
    this.#foundFor = undefined;
    this.#map.delete(key);
    while (this.#map.size >= this.#max) this.#evictOne();
    this.#map.set(key, entry);
    return entry;
  }

  #evictOne(): void {
    // At most one full pass clears every bit, so this ends within two passes.
    for (const [k, e] of this.#map) {
      this.#map.delete(k);
      if (!e.used) return;
      e.used = false;
      this.#map.set(k, e);
    }
  }

  delete(token: string): void {
    this.#found = undefined;
    this.#foundFor = undefined;
    const key = keyOf(token);
    if (this.#map.get(key)?.token === token) this.#map.delete(key);
  }

  clear(): void {
    this.#found = undefined;
    this.#foundFor = undefined;
    this.#map.clear();
  }
}
