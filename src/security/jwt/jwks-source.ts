/**
 * Where a JWT rule's keys come from, and how long they are trusted.
 *
 * - **Inline** (`jwks`): parsed once; never refreshed. A set with no usable key answers
 *   `Jwks doesn't have any valid public key`, as Envoy does for a bad inline JWKS.
 * - **Remote** (`jwksUri`, or OpenID discovery from the issuer when neither is given): fetched at
 *   first use by a token that needs it (never by a request without a token), with the rule's
 *   `timeout`; concurrent requests wait on the same fetch. The keys are fresh for the cache
 *   duration (5 min: the `cache_duration` Istio gives Envoy's `remote_jwks`); after that the next
 *   token starts a refresh in the background and is checked with the keys in hand, so a refresh
 *   never stalls traffic. A token whose `kid` is not in the set starts a refresh at once (and
 *   waits for it), at most once per cooldown, so a key rotation is picked up without waiting for
 *   the cache to expire and a stream of made-up `kid`s costs one fetch per cooldown.
 *
 * When a fetch fails: with no keys yet, tokens fail closed (`Jwks remote fetch is failed`), and
 * the next attempt waits for the retry interval (requests in between fail at once instead of
 * queuing on a server that is down). With keys from an earlier fetch, those keys stay in use —
 * what istiod's resolver does with the last good JWKS, for at most its eviction time (7 days)
 * since the last successful fetch, after which they are dropped and tokens fail closed.
 *
 * @module
 */
import type { Clock } from '../../core/clock.ts';
import type { Dispatcher } from 'undici';
import { discoverJwksUri, fetchDocument } from './fetch.ts';
import { KeySet, parseJwks } from './jwks.ts';
import { JwtStatus } from './status.ts';

/** How remote key sets are cached and refreshed. */
export interface JwksTiming {
  /** How long fetched keys are fresh. @defaultValue 300000 (Istio's `remote_jwks.cache_duration`, 5 min) */
  readonly cacheDurationMs: number;
  /** The least time between two fetches started by an unknown `kid`. @defaultValue 30000 */
  readonly kidRefreshCooldownMs: number;
  /** After a failed fetch, the time before another is tried. @defaultValue 1000 */
  readonly retryAfterFailureMs: number;
  /** Keys that could not be refreshed are dropped this long after their last successful fetch. @defaultValue 604800000 (istiod's 7 days) */
  readonly maxStaleMs: number;
}

/** The keys of a source as a request sees them: a set, or why there is none. */
export type KeysOrStatus = KeySet | JwtStatus;

/** What the source needs from its runtime. */
export interface SourceContext {
  readonly clock: Clock;
  readonly timing: JwksTiming;
  /** The dispatcher key fetches go through (created on first use). */
  dispatcher(): Dispatcher;
}

/** A key source. `version` changes whenever the set in use changes. */
export interface JwksSource {
  readonly key: string;
  readonly version: number;
  /** The keys to check a token with now, or a promise when the request must wait for a fetch. */
  keys(): KeysOrStatus | Promise<KeysOrStatus>;
  /** Called when a token's `kid` is not in the set: refreshes if allowed, else returns undefined. */
  refreshForKid(): Promise<KeysOrStatus> | undefined;
  /** Resolves when no fetch is in flight. */
  idle(): Promise<void>;
  /** Why the last fetch failed ('' when it did not), for `toString` and logs. */
  readonly lastError: string;
  toString(): string;
}

/** An inline JWKS. */
export class InlineJwksSource implements JwksSource {
  readonly key: string;
  readonly version = 1;
  readonly lastError: string;
  readonly #keys: KeysOrStatus;

  constructor(jwks: string) {
    this.key = `inline:${jwks}`;
    const parsed = parseJwks(jwks);
    this.#keys = parsed.ok && parsed.set.keys.length > 0 ? parsed.set : JwtStatus.JwksNoValidKeys;
    this.lastError = parsed.ok ? (parsed.set.keys.length > 0 ? '' : `no usable key (${parsed.set.skipped.join('; ')})`) : parsed.error;
  }

  keys(): KeysOrStatus {
    return this.#keys;
  }

  refreshForKid(): undefined {
    return undefined;
  }

  idle(): Promise<void> {
    return Promise.resolve();
  }

  toString(): string {
    return typeof this.#keys === 'string' ? `inline JWKS (unusable: ${this.lastError})` : `inline JWKS, ${this.#keys}`;
  }
}

/** A JWKS fetched from `jwksUri`, or from the URI an issuer's OpenID discovery document names. */
export class RemoteJwksSource implements JwksSource {
  readonly key: string;
  /** The configured URI, or undefined for discovery from {@link issuer}. */
  readonly uri: string | undefined;
  readonly issuer: string;
  /** The fetch timeout of the rule that created this source. */
  timeoutMs: number;
  readonly #ctx: SourceContext;
  #set: KeySet | undefined;
  #version = 0;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #lastFailed = false;
  #lastError = '';
  #discovered: string | undefined;
  #inflight: Promise<KeysOrStatus> | undefined;
  /** Fetches completed (successful or not); for tests and stats. */
  fetches = 0;

  constructor(ctx: SourceContext, uri: string | undefined, issuer: string, timeoutMs: number) {
    this.#ctx = ctx;
    this.uri = uri;
    this.issuer = issuer;
    this.timeoutMs = timeoutMs;
    this.key = uri === undefined ? `discovery:${issuer}` : `uri:${uri}`;
  }

  get version(): number {
    return this.#version;
  }

  get lastError(): string {
    return this.#lastError;
  }

  keys(): KeysOrStatus | Promise<KeysOrStatus> {
    const now = this.#ctx.clock.now();
    const { cacheDurationMs, maxStaleMs, retryAfterFailureMs } = this.#ctx.timing;
    if (this.#set !== undefined && now - this.#fetchedAt > maxStaleMs) this.#drop();
    if (this.#set !== undefined) {
      if (now - this.#fetchedAt >= cacheDurationMs && this.#inflight === undefined && now - this.#lastAttemptAt >= retryAfterFailureMs) {
        void this.#fetch();
      }
      return this.#set;
    }
    if (this.#inflight !== undefined) return this.#inflight;
    if (this.#lastFailed && now - this.#lastAttemptAt < retryAfterFailureMs) return JwtStatus.JwksFetchFail;
    return this.#fetch();
  }

  refreshForKid(): Promise<KeysOrStatus> | undefined {
    if (this.#inflight !== undefined) return this.#inflight;
    if (this.#ctx.clock.now() - this.#lastAttemptAt < this.#ctx.timing.kidRefreshCooldownMs) return undefined;
    return this.#fetch();
  }

  async idle(): Promise<void> {
    while (this.#inflight !== undefined) await this.#inflight;
  }

  #drop(): void {
    this.#set?.retireMissingFrom(new KeySet([]));
    this.#set = undefined;
    this.#version++;
  }

  #fetch(): Promise<KeysOrStatus> {
    this.#lastAttemptAt = this.#ctx.clock.now();
    const p = this.#load().then(
      (set) => {
        this.fetches++;
        this.#set?.retireMissingFrom(set);
        this.#set = set;
        this.#version++;
        this.#fetchedAt = this.#ctx.clock.now();
        this.#lastFailed = false;
        this.#lastError = '';
        return set;
      },
      (err: unknown) => {
        this.fetches++;
        this.#lastFailed = true;
        this.#lastError = err instanceof Error ? err.message : String(err);
        // Discovery is done again next time: the issuer may have moved its keys.
        this.#discovered = undefined;
        return this.#set ?? JwtStatus.JwksFetchFail;
      },
    );
    const done = p.finally(() => {
      if (this.#inflight === done) this.#inflight = undefined;
    });
    this.#inflight = done;
    return done;
  }

  async #load(): Promise<KeySet> {
    const clock = this.#ctx.clock;
    const dispatcher = this.#ctx.dispatcher();
    let uri = this.uri ?? this.#discovered;
    if (uri === undefined) {
      uri = await discoverJwksUri(dispatcher, this.issuer, this.timeoutMs, clock);
      this.#discovered = uri;
    }
    let text: string;
    try {
      text = await fetchDocument(dispatcher, uri, this.timeoutMs, clock);
    } catch (err) {
      throw new Error(`fetching the JWKS from ${uri} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    const parsed = parseJwks(text, this.#set);
    if (!parsed.ok) throw new Error(`the JWKS from ${uri} is unusable: ${parsed.error}`);
    if (parsed.set.keys.length === 0) throw new Error(`the JWKS from ${uri} has no usable key (${parsed.set.skipped.join('; ') || 'empty [keys]'})`);
    return parsed.set;
  }

  toString(): string {
    const where = this.uri ?? `OpenID discovery from ${this.issuer}${this.#discovered === undefined ? '' : ` (${this.#discovered})`}`;
    const state = this.#set === undefined ? 'no keys yet' : String(this.#set);
    return `${where}: ${state}${this.#lastError === '' ? '' : `; last fetch failed: ${this.#lastError}`}`;
  }
}
