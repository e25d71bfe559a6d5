/**
 * The verified-token cache: a bounded LRU keyed by the token string, so a token seen again costs
 * a map lookup and a few comparisons instead of a parse and a signature check.
 *
 * An entry holds the parsed token and, per key source, the key that verified it (or the key-set
 * version under which no key did). It is never trusted past what the token itself allows: the
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
import type { VerificationKey } from './jwks.ts';
import type { JwtStatus } from './status.ts';
import type { ParsedJwt } from './token.ts';

/** Tokens longer than this are verified every time (Envoy's `kMaxJwtSizeForCache`, 4 KiB). */
export const MAX_CACHED_TOKEN_CHARS = 4096;

/** What a key source said about a token. */
export type SourceVerdict = { readonly key: VerificationKey } | { readonly failed: JwtStatus; readonly version: number };

/** One cached token. */
export interface CachedToken {
  readonly jwt: ParsedJwt;
  readonly verdicts: Map<JwksSource, SourceVerdict>;
}

/** A bounded LRU of parsed (and, per source, verified) tokens. */
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

  /** The entry for `token`, made most recently used. */
  get(token: string): CachedToken | undefined {
    const e = this.#map.get(token);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.#map.delete(token);
    this.#map.set(token, e);
    return e;
  }

  /** Adds a parsed token (if it is small enough and the cache is on); returns the entry to record verdicts on. */
  add(token: string, jwt: ParsedJwt): CachedToken {
    const entry: CachedToken = { jwt, verdicts: new Map() };
    if (this.#max === 0 || token.length > MAX_CACHED_TOKEN_CHARS) return entry;
    this.#map.delete(token);
    this.#map.set(token, entry);
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value as string;
      this.#map.delete(oldest);
    }
    return entry;
  }

  delete(token: string): void {
    this.#map.delete(token);
  }

  clear(): void {
    this.#map.clear();
  }
}
