/**
 * The JWT engine's state that outlives a config snapshot: the key sources (keyed by where the
 * keys come from, so a reload that keeps a `jwksUri` keeps its fetched keys), the verified-token
 * cache, and the dedicated agent key fetches go through. A mesh owns one; each snapshot compiles
 * its {@link JwtAuthenticator} through it.
 *
 * @module
 */
import { type Clock, systemClock, unixMsOf } from '../../core/clock.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { DEFAULT_ROOT_NAMESPACE, type Resource } from '../../config/resource.ts';
import type { Dispatcher } from 'undici';
import { JwtAuthenticator } from './authenticator.ts';
import { type CompiledRule, compileRule, type JwtWorkload, placedRules, selectRequestAuthentications, timeoutOf } from './compile.ts';
import { createJwksAgent } from './fetch.ts';
import { InlineJwksSource, type JwksSource, type JwksTiming, RemoteJwksSource, type SourceContext } from './jwks-source.ts';
import { TokenCache } from './token-cache.ts';

/** Options of {@link JwtRuntime}. */
export interface JwtRuntimeOptions {
  /** Time for token validity, key caching and fetch timeouts. @defaultValue systemClock */
  readonly clock?: Clock;
  /** Unix time in ms when `clock.now()` is 0 (token times are Unix seconds). @defaultValue unset: tokens are checked against `Date.now()` with the system clock (NTP steps included), against `epochOf(clock) + clock.now()` with an injected clock */
  readonly epochMs?: number;
  /** Tokens kept in the verified-token cache; 0 turns it off. @defaultValue 1000 */
  readonly tokenCacheSize?: number;
  /**
   * Tokens longer than this many characters are refused (`Jwt is too large`) before they are
   * parsed. @defaultValue 16384
   */
  readonly maxTokenChars?: number;
  /** How long fetched keys are fresh. @defaultValue 300000 */
  readonly jwksCacheDurationMs?: number;
  /** The least time between two fetches started by an unknown `kid`. @defaultValue 30000 */
  readonly jwksKidRefreshCooldownMs?: number;
  /** After a failed fetch, the time before another is tried. @defaultValue 1000 */
  readonly jwksRetryAfterFailureMs?: number;
  /** Keys that cannot be refreshed are dropped this long after their last good fetch. @defaultValue 604800000 */
  readonly jwksMaxStaleMs?: number;
  /**
   * The dispatcher key fetches go through. By default a dedicated undici `Agent` that refuses
   * link-local and cloud-metadata addresses and follows redirects; give one to add a proxy or
   * extra CAs (then the address guard is yours to keep).
   */
  readonly dispatcher?: Dispatcher;
}

/** Where a compile finds its policies. */
export interface JwtCompileOptions {
  /** The namespace whose policies apply mesh-wide. @defaultValue 'istio-system' */
  readonly rootNamespace?: string;
}

function positive(name: string, v: number | undefined, def: number, allowZero = false): number {
  if (v === undefined) return def;
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidArgumentError(`JWT runtime: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${v}`);
  }
  return v;
}

/** The state of one mesh's JWT authentication. */
export class JwtRuntime {
  readonly clock: Clock;
  /** The wall clock token times are checked against (Unix ms). */
  readonly unixNowMs: () => number;
  readonly cache: TokenCache;
  readonly maxTokenChars: number;
  readonly timing: JwksTiming;
  readonly #sources = new Map<string, JwksSource>();
  readonly #ctx: SourceContext;
  #dispatcher: Dispatcher | undefined;
  readonly #ownDispatcher: boolean;
  #closed = false;

  constructor(options: JwtRuntimeOptions = {}) {
    this.clock = options.clock ?? systemClock;
    const epochMs = options.epochMs;
    const clock = this.clock;
    // With the system clock, Date.now: the wall clock as it is now, NTP steps included.
    this.unixNowMs = epochMs !== undefined ? () => epochMs + clock.now() : clock === systemClock ? () => Date.now() : unixMsOf(clock);
    this.cache = new TokenCache(positive('tokenCacheSize', options.tokenCacheSize, 1000, true));
    this.maxTokenChars = positive('maxTokenChars', options.maxTokenChars, 16384);
    this.timing = Object.freeze({
      cacheDurationMs: positive('jwksCacheDurationMs', options.jwksCacheDurationMs, 300_000),
      kidRefreshCooldownMs: positive('jwksKidRefreshCooldownMs', options.jwksKidRefreshCooldownMs, 30_000, true),
      retryAfterFailureMs: positive('jwksRetryAfterFailureMs', options.jwksRetryAfterFailureMs, 1000, true),
      maxStaleMs: positive('jwksMaxStaleMs', options.jwksMaxStaleMs, 7 * 24 * 3600 * 1000),
    });
    this.#dispatcher = options.dispatcher;
    this.#ownDispatcher = options.dispatcher === undefined;
    const self = this;
    this.#ctx = {
      clock: this.clock,
      timing: this.timing,
      dispatcher(): Dispatcher {
        if (self.#closed) throw new Error('the JWT runtime is closed');
        self.#dispatcher ??= createJwksAgent();
        return self.#dispatcher;
      },
    };
  }

  /**
   * Compiles the JWT rules that apply to `workload` from a snapshot's RequestAuthentications.
   * Key sources the new rules still use are kept (with their keys); the others are let go.
   */
  compile(policies: readonly Resource<'RequestAuthentication'>[], workload: JwtWorkload, options: JwtCompileOptions = {}): JwtAuthenticator {
    const selected = selectRequestAuthentications(policies, workload, options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE);
    const used = new Map<string, JwksSource>();
    const rules: CompiledRule[] = placedRules(selected).map((placed) => {
      const source = this.#source(placed.rule.jwks, placed.rule.jwksUri, placed.rule.issuer ?? '', timeoutOf(placed.rule));
      used.set(source.key, source);
      return compileRule(placed, source);
    });
    this.#sources.clear();
    for (const [k, s] of used) this.#sources.set(k, s);
    return new JwtAuthenticator(rules, { clock: this.clock, unixNowMs: this.unixNowMs, cache: this.cache, maxTokenChars: this.maxTokenChars });
  }

  #source(jwks: string | undefined, uri: string | undefined, issuer: string, timeoutMs: number): JwksSource {
    const key = jwks !== undefined ? `inline:${jwks}` : uri !== undefined ? `uri:${uri}` : `discovery:${issuer}`;
    const existing = this.#sources.get(key);
    if (existing !== undefined) {
      if (existing instanceof RemoteJwksSource) existing.timeoutMs = timeoutMs;
      return existing;
    }
    const created = jwks !== undefined ? new InlineJwksSource(jwks) : new RemoteJwksSource(this.#ctx, uri, issuer, timeoutMs);
    this.#sources.set(key, created);
    return created;
  }

  /** The key sources in use (for `toString`, debugging and tests). */
  get sources(): readonly JwksSource[] {
    return [...this.#sources.values()];
  }

  /** Resolves when no key fetch is in flight. */
  async whenIdle(): Promise<void> {
    await Promise.all([...this.#sources.values()].map((s) => s.idle()));
  }

  /**
   * Closes the key-fetch agent (if the runtime made it), ending a fetch still in flight (its
   * requests fail closed, as with no keys) rather than waiting up to its timeout for it: a
   * closing mesh does not wait on a key server. Compiled authenticators keep working on the keys
   * they have.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const d = this.#dispatcher;
    this.#dispatcher = undefined;
    if (d !== undefined && this.#ownDispatcher) await d.destroy();
  }
}
