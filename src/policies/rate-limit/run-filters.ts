/**
 * Envoy's local rate limit filter (`envoy.filters.http.local_ratelimit`) deciding one request,
 * the same on a workload's inbound and outbound side. For each active filter, in order:
 *
 * 1. `filter_enabled` (default 0%: off) decides, per request, whether the filter looks at all;
 * 2. the request's descriptors are built (when the config has descriptors) and the buckets
 *    consulted ({@link LocalRateLimiter});
 * 3. a request with a token goes on; one without is refused when `filter_enforced` (default 0%)
 *    says so — 429 (or the configured `status`), body `local_rate_limited`, the
 *    `response_headers_to_add`, response flag `RL`, and for gRPC callers UNAVAILABLE (Envoy maps
 *    429 so) or RESOURCE_EXHAUSTED with `rate_limited_as_resource_exhausted` — and otherwise let
 *    through with `request_headers_to_add_when_not_enforced` added (shadow mode: counted, not
 *    refused).
 *
 * Envoy's filter does not set `x-envoy-ratelimited` (its global rate limit filter does), and adds
 * `response_headers_to_add` only to the refusals; with `enable_x_ratelimit_headers:
 * DRAFT_VERSION_03` it adds `x-ratelimit-limit`, `-remaining` and `-reset` to every response.
 *
 * @module
 */
import type { Random } from '../../core/clock.ts';
import { GRPC_STATUS, httpToGrpc } from '../../core/grpc-status.ts';
import type { FractionSettings, HeaderToAdd, LocalRateLimitSettings } from '../../config/types/local-rate-limit.ts';
import type { RateLimitRequest, RateLimitSite } from './descriptors.ts';
import type { GlobalRateLimitSettings } from '../../config/types/local-rate-limit.ts';
import { headerOf } from './descriptors.ts';
import type { ActiveFilter } from './envoy-filters.ts';
import type { RateLimitServiceClient, RlsOutcome } from './rls-client.ts';
import { xRateLimitHeaders } from './rls-wire.ts';
import type { Descriptor, LocalRateLimiter } from './local-rate-limiter.ts';
import type { TokenBucket } from './token-bucket.ts';

/** Envoy's response flag for a local rate limit refusal. */
export const RATE_LIMITED_FLAG = 'RL';

/** Envoy's body (and gRPC message) for a local rate limit refusal. */
export const RATE_LIMITED_BODY = 'local_rate_limited';

/**
 * Counters of one `stat_prefix`, as Envoy's `<stat_prefix>.http_local_rate_limit.*`.
 * @category Policies
 */
export interface RateLimitStats {
  /** Requests the filter was enabled for. */
  enabled: number;
  /** Of those, allowed by the buckets. */
  ok: number;
  /** Of those, out of tokens (refused, or let through in shadow mode). */
  rate_limited: number;
  /** Of the rate limited, refused. */
  enforced: number;
}

/** A refusal: Envoy's local reply. */
export interface RateLimitRefusal {
  /** 429, or the configured `status`. */
  readonly status: number;
  /** UNAVAILABLE (429 mapped as Envoy maps it), or RESOURCE_EXHAUSTED (`rate_limited_as_resource_exhausted`). */
  readonly grpcStatus: number;
  /** `response_headers_to_add`, and the `x-ratelimit-*` headers when asked for. */
  readonly headers: Record<string, string>;
  /** `local rate limit: <filter> from <source> (<bucket>)`, `rate limit service …`. */
  readonly reason: string;
  /** The body (a global filter's: the service's `raw_body`). @defaultValue `local_rate_limited` */
  readonly body?: string;
  /** Envoy's response flag: `RL`, or `RLSE` (the service failed, `failure_mode_deny`). @defaultValue `RL` */
  readonly flag?: 'RL' | 'RLSE';
}

/** What a run that had to ask a rate limit service resolves to: the verdict, and its own notes. */
export interface AsyncVerdict {
  readonly refusal: RateLimitRefusal | undefined;
  readonly notes: RunNotes;
}

/** What a run noted besides its verdict (one object, reused by its caller). */
export interface RunNotes {
  /** Headers for the response of a request let through: `x-ratelimit-*` when a filter asks for them, a rate limit service's `response_headers_to_add`. */
  xHeaders: Record<string, string> | undefined;
  /** Whether shadow mode added request headers. */
  headersChanged: boolean;
}

type HeaderBag = Record<string, string | string[] | undefined>;

const NO_DESCRIPTORS: Descriptor[] = [];

/** A `filter_enabled` / `filter_enforced` draw: `floor(random × denominator) < numerator`. */
export function draw(f: FractionSettings, random: Random): boolean {
  if (f.numerator >= f.denominator) return true;
  if (f.numerator === 0) return false;
  return Math.floor(random.next() * f.denominator) < f.numerator;
}

/** Applies Envoy's `HeaderValueOption`s to a header map. */
export function addHeaders(into: HeaderBag, add: readonly HeaderToAdd[]): void {
  for (const h of add) {
    if (h.value === '' && !h.keepEmptyValue) continue;
    const had = Object.hasOwn(into, h.key) && into[h.key] !== undefined;
    switch (h.action) {
      case 'APPEND_IF_EXISTS_OR_ADD': {
        const old = into[h.key];
        into[h.key] = !had ? h.value : Array.isArray(old) ? [...old, h.value] : `${old}, ${h.value}`;
        break;
      }
      case 'ADD_IF_ABSENT':
        if (!had) into[h.key] = h.value;
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        into[h.key] = h.value;
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (had) into[h.key] = h.value;
        break;
    }
  }
}

function xRateLimit(into: Record<string, string>, bucket: TokenBucket): void {
  const s = bucket.state();
  into['x-ratelimit-limit'] = String(s.maxTokens);
  into['x-ratelimit-remaining'] = String(s.remainingTokens);
  into['x-ratelimit-reset'] = String(s.resetSeconds);
}

/**
 * Runs active filters over requests, with the draws of one `random` and counters per
 * `stat_prefix`.
 * @category Policies
 */
export class RateLimitRunner {
  readonly #random: Random;
  readonly #stats: Map<string, RateLimitStats>;
  readonly #rls: RateLimitServiceClient | undefined;

  /**
   * `rls`: calls the rate limit services of global filters (none: every call fails, as a service
   * that cannot be reached). `previous`: the runner of the config before, whose counters go on
   * counting here — Envoy keeps a stat by its name across config reloads, so
   * `<stat_prefix>.http_local_rate_limit.*` does not start over when a reload keeps the filter.
   */
  constructor(random: Random, rls?: RateLimitServiceClient, previous?: RateLimitRunner) {
    this.#random = random;
    this.#rls = rls;
    this.#stats = previous === undefined ? new Map() : previous.#stats;
  }

  /** Envoy-style counters per `stat_prefix`. */
  get stats(): ReadonlyMap<string, Readonly<RateLimitStats>> {
    return this.#stats;
  }

  #statsOf(prefix: string): RateLimitStats {
    let s = this.#stats.get(prefix);
    if (s === undefined) {
      s = { enabled: 0, ok: 0, rate_limited: 0, enforced: 0 };
      this.#stats.set(prefix, s);
    }
    return s;
  }

  /**
   * Decides one request: the refusal, or undefined to let it through. Shadow mode adds its
   * headers to `req.headers` (the request sent on); `notes` gets what else the run found
   * (cleared first). `site` is asked for only when a filter builds descriptors. `perConnection`
   * gives the limiter of a config with buckets per downstream connection
   * (`local_rate_limit_per_downstream_connection`); without it, or when it gives none (a connection
   * that cannot be told apart), such a config uses the filter's.
   */
  run(
    filters: readonly ActiveFilter[],
    req: RateLimitRequest,
    site: () => RateLimitSite,
    notes: RunNotes,
    perConnection?: (config: LocalRateLimitSettings, req: RateLimitRequest) => LocalRateLimiter | undefined,
    signal?: AbortSignal,
  ): RateLimitRefusal | undefined | Promise<AsyncVerdict> {
    notes.xHeaders = undefined;
    notes.headersChanged = false;
    return this.#from(0, filters, req, site, notes, perConnection, signal);
  }

  /** Runs the filters from index `start` on; a global filter that calls its service makes the rest wait for its answer. */
  #from(
    start: number,
    filters: readonly ActiveFilter[],
    req: RateLimitRequest,
    site: () => RateLimitSite,
    notes: RunNotes,
    perConnection: ((config: LocalRateLimitSettings, req: RateLimitRequest) => LocalRateLimiter | undefined) | undefined,
    signal: AbortSignal | undefined,
  ): RateLimitRefusal | undefined | Promise<AsyncVerdict> {
    let where: RateLimitSite | undefined;
    for (let i = start; i < filters.length; i++) {
      const f = filters[i] as ActiveFilter;
      if (f.global !== undefined) {
        // filter_enabled (Envoy's decodeHeaders: not enabled, the filter does nothing for the request).
        if (f.global.filterEnabled !== undefined && !draw(f.global.filterEnabled, this.#random)) continue;
        const call = this.#ask(f, f.global, req, () => (where ??= site()), signal);
        if (call === undefined) continue;
        // The answer comes later: this run's notes are its own from here (the caller's object serves the next request).
        const own: RunNotes = { xHeaders: notes.xHeaders === undefined ? undefined : { ...notes.xHeaders }, headersChanged: notes.headersChanged };
        return call.then(async (outcome): Promise<AsyncVerdict> => {
          const refusal = this.#answer(f, f.global as GlobalRateLimitSettings, outcome, req, own);
          if (refusal !== undefined) return { refusal, notes: own };
          const rest = this.#from(i + 1, filters, req, site, own, perConnection, signal);
          return rest instanceof Promise ? rest : { refusal: rest, notes: own };
        });
      }
      const c = f.config;
      if (!draw(c.filterEnabled as FractionSettings, this.#random)) continue;
      const stats = this.#statsOf(c.statPrefix);
      stats.enabled++;
      let descriptors: Descriptor[] = NO_DESCRIPTORS;
      if (f.descriptors !== undefined) {
        where ??= site();
        descriptors = f.descriptors.build(req, where);
      }
      const limiter = (c.perDownstreamConnection && perConnection !== undefined ? perConnection(c, req) : undefined) ?? f.limiter;
      const result = limiter.requestAllowed(descriptors);
      if (c.enableXRateLimitHeaders && result.bucket !== undefined) {
        notes.xHeaders ??= Object.create(null) as Record<string, string>;
        xRateLimit(notes.xHeaders, result.bucket);
      }
      if (result.allowed) {
        stats.ok++;
        continue;
      }
      stats.rate_limited++;
      if (c.filterEnforced === undefined || !draw(c.filterEnforced, this.#random)) {
        addHeaders(req.headers as HeaderBag, c.requestHeadersToAddWhenNotEnforced);
        notes.headersChanged = true;
        continue;
      }
      stats.enforced++;
      const headers: Record<string, string> = Object.create(null);
      addHeaders(headers, c.responseHeadersToAdd);
      if (notes.xHeaders !== undefined) Object.assign(headers, notes.xHeaders);
      return {
        status: c.status,
        grpcStatus: c.rateLimitedAsResourceExhausted ? GRPC_STATUS.RESOURCE_EXHAUSTED : httpToGrpc(c.status),
        headers,
        reason: `local rate limit: ${f.name} from ${f.source}${result.bucket === undefined ? '' : ` (${result.bucket})`}`,
      };
    }
    return undefined;
  }

  /**
   * Starts a global filter's call (Envoy's `initiateCall`): none for a request of the other
   * `request_type` (`x-envoy-internal: true` is internal), or without descriptors.
   */
  #ask(f: ActiveFilter, g: GlobalRateLimitSettings, req: RateLimitRequest, site: () => RateLimitSite, signal: AbortSignal | undefined): Promise<RlsOutcome> | undefined {
    if (g.requestType !== 'both') {
      const internal = headerOf(req, 'x-envoy-internal') === 'true';
      if (internal !== (g.requestType === 'internal')) return undefined;
    }
    const descriptors = f.descriptors === undefined ? NO_DESCRIPTORS : f.descriptors.build(req, site());
    if (descriptors.length === 0) return undefined;
    if (this.#rls === undefined) return Promise.resolve({ status: 'error', reason: 'no gRPC client to call the rate limit service with' });
    return this.#rls.shouldRateLimit(g.target, g.domain, descriptors, g.timeoutMs, signal);
  }

  /** A global filter's answer, as Envoy's `Filter::complete`: the refusal, or undefined with the request and response headers noted. */
  #answer(f: ActiveFilter, g: GlobalRateLimitSettings, o: RlsOutcome, req: RateLimitRequest, notes: RunNotes): RateLimitRefusal | undefined {
    const stats = this.#statsOf(`ratelimit.${g.domain}`);
    stats.enabled++;
    const where = `rate limit service ${g.target} (domain ${g.domain}) of ${f.name} from ${f.source}`;
    if (o.status === 'error') {
      // failure_mode_deny_percent, when set, replaces failure_mode_deny with a draw.
      const deny = g.failureModeDenyPercent === undefined ? g.failureModeDeny : draw(g.failureModeDenyPercent, this.#random);
      if (!deny) {
        stats.ok++;
        return undefined;
      }
      stats.rate_limited++;
      stats.enforced++;
      return { status: g.statusOnError, grpcStatus: httpToGrpc(g.statusOnError), headers: Object.create(null) as Record<string, string>, reason: `${where} failed: ${o.reason}; failure_mode_deny`, body: '', flag: 'RLSE' };
    }
    const r = o.response;
    const headers: Record<string, string> = Object.create(null);
    for (const h of r.responseHeadersToAdd) headers[h.key] = h.key in headers ? `${headers[h.key]},${h.value}` : h.value;
    if (o.status === 'over' && !g.disableXEnvoyRateLimitedHeader) headers['x-envoy-ratelimited'] = 'true';
    if (g.xRateLimitHeaders) Object.assign(headers, xRateLimitHeaders(r.statuses));
    // filter_enforced: an over-limit answer not enforced lets the request through, as an OK one, with
    // the answer's headers (x-envoy-ratelimited included) on the response (Envoy's complete()).
    if (o.status === 'over' && (g.filterEnforced === undefined || draw(g.filterEnforced, this.#random))) {
      stats.rate_limited++;
      stats.enforced++;
      const out: Record<string, string> = Object.create(null);
      addHeaders(out, g.responseHeadersToAdd);
      if (notes.xHeaders !== undefined) Object.assign(out, notes.xHeaders);
      Object.assign(out, headers);
      const grpcStatus = g.rateLimitedAsResourceExhausted ? GRPC_STATUS.RESOURCE_EXHAUSTED : httpToGrpc(g.rateLimitedStatus);
      return { status: g.rateLimitedStatus, grpcStatus, headers: out, reason: `${where}: over limit`, body: r.rawBody, flag: 'RL' };
    }
    if (o.status === 'over') stats.rate_limited++;
    else stats.ok++;
    if (r.requestHeadersToAdd.length > 0) {
      addHeaders(req.headers as HeaderBag, r.requestHeadersToAdd.map((h) => ({ key: h.key, value: h.value, action: 'APPEND_IF_EXISTS_OR_ADD' as const, keepEmptyValue: true })));
      notes.headersChanged = true;
    }
    if (Object.keys(headers).length > 0) notes.xHeaders = { ...notes.xHeaders, ...headers };
    return undefined;
  }
}
