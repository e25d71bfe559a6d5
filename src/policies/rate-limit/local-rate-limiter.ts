/**
 * Envoy's `LocalRateLimiterImpl`: a default token bucket and descriptor buckets, and the
 * decision for one request given the descriptors its rate-limit actions produced.
 *
 * - Every configured descriptor that a request descriptor equals (same entries, same order) is
 *   matched; a configured entry with an empty value matches any value, and each distinct value
 *   gets its own bucket, the `maxDynamic` most recently used kept (Envoy's dynamic descriptors).
 * - Matched buckets are consumed slowest-refilling first; the first that is empty refuses the
 *   request (and the later ones are not consumed).
 * - The default bucket is consumed when nothing matched, or always when
 *   `always_consume_default_token_bucket` (the default); with no default bucket that step allows.
 *
 * @module
 */
import type { Clock } from '../../core/clock.ts';
import type { DescriptorEntry, DescriptorSettings, TokenBucketSettings } from '../../config/types/local-rate-limit.ts';
import { type BucketState, TokenBucket } from './token-bucket.ts';

/**
 * A request descriptor: the entries one rate-limit policy entry produced, and the hits its
 * `hits_addend` gave (the tokens a matched bucket gives; a rate limit service is sent them).
 */
export type Descriptor = readonly DescriptorEntry[] & { readonly hitsAddend?: number };

/** The answer for one request. */
export interface LimitResult {
  readonly allowed: boolean;
  /** The bucket the `x-ratelimit-*` headers describe: the one that refused, else the first matched descriptor's, else the default. */
  readonly bucket: TokenBucket | undefined;
}

/** `key=value, …`: the identity of a descriptor. */
export function descriptorKey(entries: Descriptor): string {
  let s = '';
  for (const e of entries) s += `${s === '' ? '' : '\u0000'}${e.key}\u0001${e.value}`;
  return s;
}

/**
 * Which buckets a request would consume, without consuming any (for `meshlet explain`): the
 * configured descriptors its descriptors match, in the order they would be consumed, and
 * whether the default bucket is consumed too.
 */
export interface BucketMatch {
  /** Matched descriptors, slowest-refilling first (the order {@link LocalRateLimiter.requestAllowed} consumes them). */
  readonly descriptors: readonly { readonly entries: Descriptor; readonly bucket: TokenBucketSettings; readonly wildcard: boolean }[];
  /** The default bucket's settings when it is consumed too; undefined when it is not (or there is none). */
  readonly defaultBucket: TokenBucketSettings | undefined;
}

/** A wildcard descriptor: a bucket per distinct request descriptor it matches, least recently used dropped. */
class DynamicDescriptor {
  readonly entries: Descriptor;
  readonly settings: TokenBucketSettings;
  readonly #max: number;
  readonly #clock: Clock;
  /** Insertion order is recency order: a hit is deleted and set again. */
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(d: DescriptorSettings, max: number, clock: Clock) {
    this.entries = d.entries;
    this.settings = d.tokenBucket;
    this.#max = max;
    this.#clock = clock;
  }

  matches(request: Descriptor): boolean {
    const entries = this.entries;
    if (request.length !== entries.length) return false;
    for (let i = 0; i < entries.length; i++) {
      const c = entries[i] as DescriptorEntry;
      const r = request[i] as DescriptorEntry;
      if (c.key !== r.key || (c.value !== '' && c.value !== r.value)) return false;
    }
    return true;
  }

  bucketFor(request: Descriptor): TokenBucket {
    const key = descriptorKey(request);
    let b = this.#buckets.get(key);
    if (b !== undefined) {
      this.#buckets.delete(key);
      this.#buckets.set(key, b);
      return b;
    }
    b = new TokenBucket(this.settings, this.#clock);
    this.#buckets.set(key, b);
    if (this.#buckets.size > this.#max) {
      const oldest = this.#buckets.keys().next().value as string;
      this.#buckets.delete(oldest);
    }
    return b;
  }

  /** Whether this descriptor, with its buckets, can stand for `d` after a config reload. */
  reusableFor(d: DescriptorSettings, max: number): boolean {
    const s = this.settings;
    return max === this.#max && s.maxTokens === d.tokenBucket.maxTokens && s.tokensPerFill === d.tokenBucket.tokensPerFill && s.fillIntervalMs === d.tokenBucket.fillIntervalMs;
  }

  /** How many distinct values have a bucket now. */
  get size(): number {
    return this.#buckets.size;
  }
}

/** What a limiter is built from. */
export interface LimiterSettings {
  readonly tokenBucket: TokenBucketSettings | undefined;
  readonly descriptors: readonly DescriptorSettings[];
  readonly alwaysConsumeDefaultTokenBucket: boolean;
  readonly maxDynamicDescriptors: number;
}

/**
 * The buckets of one local rate limit config (a filter's, or a route's per-filter config).
 * @category Policies
 */
export class LocalRateLimiter {
  readonly #default: TokenBucket | undefined;
  readonly #exact = new Map<string, TokenBucket>();
  readonly #dynamic: DynamicDescriptor[] = [];
  readonly #alwaysConsumeDefault: boolean;

  constructor(settings: LimiterSettings, clock: Clock, reuse?: LocalRateLimiter) {
    this.#alwaysConsumeDefault = settings.alwaysConsumeDefaultTokenBucket;
    const tb = settings.tokenBucket;
    const oldDefault = reuse === undefined ? undefined : reuse.#default;
    this.#default = tb === undefined ? undefined : oldDefault?.sameAs(tb) === true ? oldDefault : new TokenBucket(tb, clock);
    const oldExact = reuse === undefined ? undefined : reuse.#exact;
    const oldDynamic = reuse === undefined ? [] : reuse.#dynamic;
    for (const d of settings.descriptors) {
      const key = descriptorKey(d.entries);
      if (d.entries.some((e) => e.value === '')) {
        const same = oldDynamic.find((o) => descriptorKey(o.entries) === key && o.reusableFor(d, settings.maxDynamicDescriptors));
        this.#dynamic.push(same ?? new DynamicDescriptor(d, settings.maxDynamicDescriptors, clock));
        continue;
      }
      const old = oldExact?.get(key);
      this.#exact.set(key, old?.sameAs(d.tokenBucket) === true ? old : new TokenBucket(d.tokenBucket, clock));
    }
  }

  /** Whether there are descriptors, so the request's descriptors are worth computing. */
  get hasDescriptors(): boolean {
    return this.#exact.size > 0 || this.#dynamic.length > 0;
  }

  /** Decides one request. */
  requestAllowed(requestDescriptors: readonly Descriptor[]): LimitResult {
    let matched: TokenBucket[] | undefined;
    /** Each matched descriptor's own hits_addend (parallel to `matched`), made at the first one that sets it. */
    let hits: number[] | undefined;
    if (requestDescriptors.length > 0 && this.hasDescriptors) {
      for (const rd of requestDescriptors) {
        const exact = this.#exact.size > 0 ? this.#exact.get(descriptorKey(rd)) : undefined;
        let b = exact;
        if (b === undefined) {
          for (const dyn of this.#dynamic) {
            if (dyn.matches(rd)) {
              b = dyn.bucketFor(rd);
              break;
            }
          }
        }
        if (b !== undefined) {
          matched ??= [];
          matched.push(b);
          // Envoy: each descriptor's own hits_addend tokens, else one (two descriptors of one bucket consume twice).
          if (rd.hitsAddend !== undefined && hits === undefined) hits = matched.map(() => 1);
          if (hits !== undefined) hits[matched.length - 1] = rd.hitsAddend ?? 1;
        }
      }
    }
    if (matched !== undefined) {
      // Slowest-refilling first, so a request refused by a strict bucket does not drain the others.
      if (hits === undefined) {
        if (matched.length > 1) matched.sort((a, b) => a.fillRate - b.fillRate);
        for (const b of matched) if (!b.consume()) return { allowed: false, bucket: b };
      } else {
        const h = hits;
        const m = matched;
        const order = m.map((_, i) => i).sort((i, j) => (m[i] as TokenBucket).fillRate - (m[j] as TokenBucket).fillRate);
        for (const i of order) {
          const b = m[i] as TokenBucket;
          if (!b.consume(h[i])) return { allowed: false, bucket: b };
        }
        matched = order.map((i) => m[i] as TokenBucket);
      }
    }
    const first = matched?.[0];
    if (matched === undefined || this.#alwaysConsumeDefault) {
      const d = this.#default;
      if (d === undefined) return { allowed: true, bucket: first };
      if (!d.consume()) return { allowed: false, bucket: d };
      return { allowed: true, bucket: first ?? d };
    }
    return { allowed: true, bucket: first };
  }

  /**
   * The buckets {@link requestAllowed} would consume for these request descriptors, found the
   * same way but touching no bucket (none is created for a new wildcard value, none is drained).
   */
  match(requestDescriptors: readonly Descriptor[]): BucketMatch {
    const matched: { entries: Descriptor; bucket: TokenBucketSettings; wildcard: boolean }[] = [];
    if (requestDescriptors.length > 0 && this.hasDescriptors) {
      for (const rd of requestDescriptors) {
        const exact = this.#exact.size > 0 ? this.#exact.get(descriptorKey(rd)) : undefined;
        if (exact !== undefined) {
          matched.push({ entries: rd, bucket: exact.settings, wildcard: false });
          continue;
        }
        const dyn = this.#dynamic.find((d) => d.matches(rd));
        if (dyn !== undefined) matched.push({ entries: rd, bucket: dyn.settings, wildcard: true });
      }
    }
    const rate = (b: TokenBucketSettings) => (b.tokensPerFill * 1000) / b.fillIntervalMs;
    matched.sort((a, b) => rate(a.bucket) - rate(b.bucket));
    const consumesDefault = matched.length === 0 || this.#alwaysConsumeDefault;
    return { descriptors: matched, defaultBucket: consumesDefault ? this.#default?.settings : undefined };
  }

  /** The default bucket's state, if there is one (for tests and diagnostics). */
  get defaultBucket(): BucketState | undefined {
    return this.#default?.state();
  }

  toString(): string {
    const parts: string[] = [];
    if (this.#default !== undefined) parts.push(`default ${this.#default}`);
    if (this.#exact.size > 0) parts.push(`${this.#exact.size} descriptor bucket(s)`);
    if (this.#dynamic.length > 0) parts.push(`${this.#dynamic.length} wildcard descriptor(s)`);
    return `local rate limiter: ${parts.length === 0 ? 'no buckets' : parts.join(', ')}`;
  }
}
