/**
 * A route's or virtual host's `typed_per_filter_config` in a rate limit EnvoyFilter: each entry a
 * local rate limit filter's config (`LocalRateLimit`) or a global one's `RateLimitPerRoute`
 * (`envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute`: `vh_rate_limits`,
 * `rate_limits`, `domain`; `override_option` is `[#not-implemented-hide:]` in Envoy, whose filter
 * never reads it). Envoy finds a filter's per-route config by the filter's name and type
 * (`resolveMostSpecificPerFilterConfig<FilterConfigPerRoute>`): a config of the other filter's
 * type under a name is not that filter's.
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { GlobalRateLimitPerRoute, LocalRateLimitSettings, RateLimitPolicySettings } from '../types/local-rate-limit.ts';
import { readLocalRateLimitAny } from './local-rate-limit.ts';
import { anyValue, enumOf, message, peekAny, text } from './proto-json.ts';
import { routeRateLimit } from './rate-limit-actions.ts';
import { fail, list, map, warn, type Ctx, type Validator } from './schema.ts';

/** The type URL of the global rate limit filter's per-route config. */
export const RATE_LIMIT_PER_ROUTE_URL = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute';

/** Whether a `typed_per_filter_config` entry is a global filter's RateLimitPerRoute (direct, or in a TypedStruct). */
export function isRateLimitPerRoute(v: unknown): boolean {
  return peekAny(v)?.typeUrl === RATE_LIMIT_PER_ROUTE_URL;
}

/** A RateLimitPerRoute's `rate_limits[]` entry: as a route's, but Envoy's RateLimitPolicy refuses `stage` and `disable_key` there ("'stage' field and 'disable_key' field are not supported"). */
const perRouteRateLimit: Validator<RateLimitPolicySettings> = (v, path, ctx) => {
  if (v !== null && typeof v === 'object') {
    for (const k of ['stage', 'disable_key']) {
      if (Object.hasOwn(v, k)) return fail(ctx, [...path, k], `is not supported in a RateLimitPerRoute's rate_limits (Envoy refuses the config: 'stage' field and 'disable_key' field are not supported)`);
    }
  }
  return routeRateLimit(v, path, ctx);
};

const perRoute = message<{ vh_rate_limits?: 'OVERRIDE' | 'INCLUDE' | 'IGNORE'; override_option?: string; rate_limits?: RateLimitPolicySettings[]; domain?: string }>({
  vh_rate_limits: enumOf(['OVERRIDE', 'INCLUDE', 'IGNORE'] as const),
  override_option: (v, p, c) => {
    const o = enumOf(['DEFAULT', 'OVERRIDE_POLICY', 'INCLUDE_POLICY', 'IGNORE_POLICY'] as const)(v, p, c);
    if (o !== undefined && o !== 'DEFAULT') warn(c, p, 'has no effect: Envoy does not implement override_option (it is hidden as not implemented; the filter reads vh_rate_limits)');
    return o;
  },
  rate_limits: list(perRouteRateLimit),
  domain: text,
});

function readPerRoute(v: unknown, path: FieldPath, ctx: Ctx): GlobalRateLimitPerRoute | undefined {
  const any = anyValue(v, path, ctx);
  if (any === undefined) return undefined;
  const r = perRoute(any.fields, any.path, ctx);
  if (r === undefined) return undefined;
  const rateLimits = r.rate_limits ?? [];
  return { vhRateLimits: r.vh_rate_limits ?? 'OVERRIDE', rateLimits, domain: r.domain === '' ? undefined : r.domain };
}

/** Both kinds of per-filter config, by HTTP filter name. */
export interface PerFilterConfigs {
  readonly local: Map<string, LocalRateLimitSettings>;
  readonly global: Map<string, GlobalRateLimitPerRoute>;
}

/** Reads a `typed_per_filter_config` map. */
export function readPerFilterConfigs(v: unknown, path: FieldPath, ctx: Ctx): PerFilterConfigs | undefined {
  const m = map<LocalRateLimitSettings | GlobalRateLimitPerRoute>((x, p, c) => (isRateLimitPerRoute(x) ? readPerRoute(x, p, c) : readLocalRateLimitAny(x, p, c, true)))(v, path, ctx);
  if (m === undefined) return undefined;
  const out: PerFilterConfigs = { local: new Map(), global: new Map() };
  for (const [name, c] of Object.entries(m)) {
    if ('statPrefix' in c) out.local.set(name, c);
    else out.global.set(name, c);
  }
  return out;
}
