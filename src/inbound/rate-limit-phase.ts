/**
 * The `rate-limit` admission phase: Envoy's local rate limit filter
 * (`envoy.filters.http.local_ratelimit`) as the EnvoyFilters of Istio's rate-limit task put it
 * on a sidecar's inbound side. For each rate limit filter active on the port a request arrived
 * on, in order:
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
 * DRAFT_VERSION_03` it adds `x-ratelimit-limit`, `-remaining` and `-reset` to every response,
 * which adapters take from {@link rateLimitResponseHeaders} for admitted requests.
 *
 * Buckets belong to the mesh (one set per workload, shared by every server it guards, per
 * inbound port as Envoy has one filter chain per port) and are kept across config reloads when
 * their settings do not change (`previous`).
 *
 * @module
 */
import type { Clock, Random } from '../core/clock.ts';
import { systemRandom } from '../core/clock.ts';
import { GRPC_STATUS, httpToGrpc } from '../core/grpc-status.ts';
import type { AnyResource } from '../config/resource.ts';
import type { FractionSettings, HeaderToAdd } from '../config/types/local-rate-limit.ts';
import type { RateLimitSite } from '../policies/rate-limit/descriptors.ts';
import type { Descriptor, LocalRateLimiter } from '../policies/rate-limit/local-rate-limiter.ts';
import type { TokenBucket } from '../policies/rate-limit/token-bucket.ts';
import type { Denial, InboundRequest, Phase, PhaseResult } from './pipeline.ts';
import { type ActiveFilter, CompiledRateLimits, type RateLimitWorkload } from './rate-limit-compile.ts';

export type { RateLimitWorkload } from './rate-limit-compile.ts';

/** Envoy's response flag for a local rate limit refusal. */
export const RATE_LIMITED_FLAG = 'RL';

/** Envoy's body (and gRPC message) for a local rate limit refusal. */
export const RATE_LIMITED_BODY = 'local_rate_limited';

/**
 * A refusal by the rate-limit phase: a {@link Denial} that also names Envoy's response flag.
 * @category Inbound
 */
export interface RateLimitDenial extends Denial {
  readonly phase: 'rate-limit';
  /** `RL`. */
  readonly flag: typeof RATE_LIMITED_FLAG;
}

/**
 * Counters of one `stat_prefix`, as Envoy's `<stat_prefix>.http_local_rate_limit.*`.
 * @category Inbound
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

/**
 * Options of {@link compileRateLimit}.
 * @category Inbound
 */
export interface RateLimitOptions {
  /** Draws for `filter_enabled` / `filter_enforced` percentages. @defaultValue the system random */
  readonly random?: Random;
  /** The phase of the config before; its buckets are kept where their settings did not change. */
  readonly previous?: RateLimitPhase;
}

const responseHeaders = new WeakMap<InboundRequest, Record<string, string>>();

const NO_DESCRIPTORS: Descriptor[] = [];

/**
 * The `x-ratelimit-*` headers to add to the response of an admitted request (filters with
 * `enable_x_ratelimit_headers: DRAFT_VERSION_03`), or undefined.
 * @category Inbound
 */
export function rateLimitResponseHeaders(req: InboundRequest): Readonly<Record<string, string>> | undefined {
  return responseHeaders.get(req);
}

function draw(f: FractionSettings, random: Random): boolean {
  if (f.numerator >= f.denominator) return true;
  if (f.numerator === 0) return false;
  return Math.floor(random.next() * f.denominator) < f.numerator;
}

type HeaderBag = Record<string, string | string[] | undefined>;

/** Applies Envoy's `HeaderValueOption`s to a header map. */
function addHeaders(into: HeaderBag, add: readonly HeaderToAdd[]): void {
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
 * The rate-limit phase of one workload.
 * @category Inbound
 */
export class RateLimitPhase implements Phase {
  readonly name = 'rate-limit' as const;
  readonly #compiled: CompiledRateLimits;
  readonly #random: Random;
  /** Active filters by local port, plaintext and mTLS, built on the first request to a port (ports the services name are built up front). */
  readonly #raw = new Map<number, readonly ActiveFilter[]>();
  readonly #tls = new Map<number, readonly ActiveFilter[]>();
  readonly #stats = new Map<string, RateLimitStats>();

  /** Use {@link compileRateLimit}. */
  constructor(compiled: CompiledRateLimits, random: Random, warmPorts: Iterable<string>) {
    this.#compiled = compiled;
    this.#random = random;
    for (const key of warmPorts) {
      const [port, tls] = key.split('/');
      this.#plan(Number(port), tls === 'tls');
    }
  }

  #plan(port: number, tls: boolean): readonly ActiveFilter[] {
    const plans = tls ? this.#tls : this.#raw;
    let p = plans.get(port);
    if (p === undefined) {
      p = this.#compiled.forPort(port, tls);
      plans.set(port, p);
    }
    return p;
  }

  #statsOf(prefix: string): RateLimitStats {
    let s = this.#stats.get(prefix);
    if (s === undefined) {
      s = { enabled: 0, ok: 0, rate_limited: 0, enforced: 0 };
      this.#stats.set(prefix, s);
    }
    return s;
  }

  run(req: InboundRequest): PhaseResult {
    const filters = this.#plan(req.localPort, req.scheme === 'https');
    if (filters.length === 0) return undefined;
    let site: RateLimitSite | undefined;
    let xHeaders: Record<string, string> | undefined;
    for (const f of filters) {
      const c = f.config;
      if (!draw(c.filterEnabled as FractionSettings, this.#random)) continue;
      const stats = this.#statsOf(c.statPrefix);
      stats.enabled++;
      let descriptors: Descriptor[] = NO_DESCRIPTORS;
      if (f.descriptors !== undefined) {
        site ??= { sourceCluster: this.#compiled.sourceCluster, destinationCluster: `inbound|${req.localPort}||` };
        descriptors = f.descriptors.build(req, site);
      }
      const result = f.limiter.requestAllowed(descriptors);
      if (c.enableXRateLimitHeaders && result.bucket !== undefined) {
        xHeaders ??= Object.create(null) as Record<string, string>;
        xRateLimit(xHeaders, result.bucket);
      }
      if (result.allowed) {
        stats.ok++;
        continue;
      }
      stats.rate_limited++;
      if (c.filterEnforced === undefined || !draw(c.filterEnforced, this.#random)) {
        addHeaders(req.headers, c.requestHeadersToAddWhenNotEnforced);
        req.headersChanged = true;
        continue;
      }
      stats.enforced++;
      const headers: Record<string, string> = Object.create(null);
      addHeaders(headers, c.responseHeadersToAdd);
      if (xHeaders !== undefined) Object.assign(headers, xHeaders);
      const denial: RateLimitDenial = {
        status: c.status,
        grpcStatus: c.rateLimitedAsResourceExhausted ? GRPC_STATUS.RESOURCE_EXHAUSTED : httpToGrpc(c.status),
        body: RATE_LIMITED_BODY,
        headers,
        reason: `local rate limit: ${f.name} from ${f.source}${result.bucket === undefined ? '' : ` (${result.bucket})`}`,
        phase: 'rate-limit',
        flag: RATE_LIMITED_FLAG,
      };
      return denial;
    }
    if (xHeaders !== undefined) responseHeaders.set(req, xHeaders);
    return undefined;
  }

  /** Envoy-style counters per `stat_prefix`. */
  get stats(): ReadonlyMap<string, Readonly<RateLimitStats>> {
    return this.#stats;
  }

  /** The active filters of a port, for `meshlet routes`-style explanations. */
  filtersFor(localPort: number, tls = false): readonly ActiveFilter[] {
    return this.#plan(localPort, tls);
  }

  /** @internal The limiters, for the next config's phase to keep. */
  get limiters(): ReadonlyMap<string, LocalRateLimiter> {
    return this.#compiled.limiters;
  }

  /** @internal The `port/tls` keys requests have reached, for the next config's phase to build up front. */
  get portKeys(): string[] {
    return [...[...this.#raw.keys()].map((p) => `${p}/raw`), ...[...this.#tls.keys()].map((p) => `${p}/tls`)];
  }

  toString(): string {
    const lines = [`rate-limit phase (${this.#compiled.sourceCluster})`];
    for (const [tls, plans] of [['plaintext', this.#raw], ['mTLS', this.#tls]] as const) {
      for (const [port, filters] of plans) for (const f of filters) lines.push(`  port ${port} (${tls}): ${f.name} from ${f.source}: ${f.limiter}`);
    }
    return lines.join('\n');
  }
}

/**
 * Compiles the local rate limits of `resources` (their local rate limit EnvoyFilters) for the
 * inbound side of `workload`: the rate-limit admission phase, or undefined when no rate limit
 * filter that can limit anything applies to it. `rootNamespace` holds the mesh-wide EnvoyFilters (Istio's default:
 * `istio-system`). Buckets run on `clock`.
 * @category Inbound
 */
export function compileRateLimit(
  resources: readonly AnyResource[],
  workload: RateLimitWorkload,
  rootNamespace: string,
  clock: Clock,
  options: RateLimitOptions = {},
): RateLimitPhase | undefined {
  const compiled = new CompiledRateLimits(resources, workload, rootNamespace, clock, options.previous?.limiters);
  if (!compiled.canLimit) return undefined;
  const warm = new Set<string>();
  for (const p of compiled.knownPorts) for (const t of ['raw', 'tls']) warm.add(`${p}/${t}`);
  if (options.previous !== undefined) for (const k of options.previous.portKeys) warm.add(k);
  return new RateLimitPhase(compiled, options.random ?? systemRandom, warm);
}
