/**
 * Which EnvoyFilters meshlet reads. Istio has no rate-limit resource: users write the EnvoyFilters
 * of Istio's rate limit task (local and global), and those are the EnvoyFilters meshlet applies. A
 * patch belongs to them when it is
 *
 * - `applyTo: HTTP_FILTER` whose `value.typed_config` is a LocalRateLimit or a (global) RateLimit
 *   (direct, or in a `TypedStruct`), or
 * - `applyTo: CLUSTER` `ADD` in an EnvoyFilter with a global RateLimit filter (its service's cluster), or
 * - `applyTo: HTTP_ROUTE` / `VIRTUAL_HOST` whose value sets only LocalRateLimit
 *   `typed_per_filter_config` entries and rate-limit actions (`route.rate_limits`,
 *   `route.include_vh_rate_limits`; `rate_limits` on a virtual host).
 *
 * This look is lenient on purpose (it reads only `applyTo` and type URLs): it decides what an
 * EnvoyFilter *is*; whether it is well-formed is validated afterwards. An EnvoyFilter with any
 * other patch is skipped as a whole, and the warning names what each such patch patches.
 *
 * @module
 */
import { isGlobalRateLimit, rateLimitClusterName } from './global-rate-limit.ts';
import { LOCAL_RATE_LIMIT_URL } from './local-rate-limit.ts';
import { isRateLimitPerRoute } from './per-filter-config.ts';
import { peekAny } from './proto-json.ts';

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function field(o: Record<string, unknown> | undefined, name: string, jsonName: string): unknown {
  return o?.[name] ?? o?.[jsonName];
}

/** The part of a type URL after the last `.` (`LocalRateLimit`). */
function shortType(url: string): string {
  return url.slice(url.lastIndexOf('.') + 1);
}

function isLocalRateLimit(v: unknown): boolean {
  return peekAny(v)?.typeUrl === LOCAL_RATE_LIMIT_URL;
}

/**
 * The clusters the global rate limit filters of an EnvoyFilter's raw patches call; undefined when
 * it has no global rate limit filter (then a CLUSTER patch is not one of the rate limit shapes).
 */
export function rateLimitServiceClusters(patches: readonly unknown[]): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (const raw of patches) {
    const p = record(raw);
    if (p?.applyTo !== 'HTTP_FILTER') continue;
    const typed = field(record(record(p.patch)?.value), 'typed_config', 'typedConfig');
    if (!isGlobalRateLimit(typed)) continue;
    out ??= new Set();
    const name = rateLimitClusterName(typed);
    if (name !== undefined) out.add(name);
  }
  return out;
}

function perFilterConfigIsRateLimit(v: unknown): boolean {
  const m = record(v);
  return m !== undefined && Object.keys(m).length > 0 && Object.values(m).every((c) => isLocalRateLimit(c) || isRateLimitPerRoute(c));
}

/** Whether an HTTP_ROUTE / VIRTUAL_HOST value is made only of local rate limit settings. */
function routeValueIsRateLimit(applyTo: string, value: Record<string, unknown>): boolean {
  const keys = Object.keys(value);
  if (keys.length === 0) return false;
  for (const k of keys) {
    const v = value[k];
    if (k === 'typed_per_filter_config' || k === 'typedPerFilterConfig') {
      if (!perFilterConfigIsRateLimit(v)) return false;
    } else if (applyTo === 'HTTP_ROUTE' && k === 'route') {
      const r = record(v);
      if (r === undefined || !Object.keys(r).every((rk) => ['rate_limits', 'rateLimits', 'include_vh_rate_limits', 'includeVhRateLimits'].includes(rk))) return false;
    } else if (!(applyTo === 'VIRTUAL_HOST' && (k === 'rate_limits' || k === 'rateLimits'))) {
      return false;
    }
  }
  return true;
}

/**
 * Whether a raw patch is one of the rate limit shapes: a local or global rate limit filter, route
 * rate limits, or (`rlsClusters`: the clusters the EnvoyFilter's global filters call, undefined
 * without one) a `CLUSTER` `ADD`.
 */
export function isRateLimitPatch(raw: unknown, rlsClusters?: ReadonlySet<string>): boolean {
  const p = record(raw);
  const applyTo = p?.applyTo;
  const value = record(record(p?.patch)?.value);
  if (value === undefined) return false;
  if (applyTo === 'HTTP_FILTER') {
    const typed = field(value, 'typed_config', 'typedConfig');
    return isLocalRateLimit(typed) || isGlobalRateLimit(typed);
  }
  // Beside a global filter, a CLUSTER ADD is read as its service's cluster (and checked: a malformed one is an error, not a skip).
  if (applyTo === 'CLUSTER') return rlsClusters !== undefined && record(p?.patch)?.operation === 'ADD';
  if (applyTo === 'HTTP_ROUTE' || applyTo === 'VIRTUAL_HOST') return routeValueIsRateLimit(applyTo, value);
  return false;
}

/** What a patch patches, for the skip warning: `HTTP_FILTER INSERT_BEFORE envoy.filters.http.lua (Lua)`. */
export function describePatch(raw: unknown): string {
  const p = record(raw);
  if (p === undefined) return `not a patch (${raw === null ? 'null' : typeof raw})`;
  const applyTo = typeof p.applyTo === 'string' ? p.applyTo : 'no applyTo';
  const patch = record(p.patch);
  const op = typeof patch?.operation === 'string' ? patch.operation : 'no operation';
  const value = record(patch?.value);
  const match = record(p.match);
  const parts = [applyTo, op];
  const name = value?.name;
  if (typeof name === 'string') parts.push(name);
  const typed = peekAny(field(value, 'typed_config', 'typedConfig'));
  if (typed !== undefined) parts.push(`(${shortType(typed.typeUrl)})`);
  if (applyTo === 'CLUSTER') {
    const svc = record(match?.cluster)?.service;
    if (typeof svc === 'string') parts.push(`for ${svc}`);
  }
  if ((applyTo === 'HTTP_ROUTE' || applyTo === 'VIRTUAL_HOST' || applyTo === 'ROUTE_CONFIGURATION') && value !== undefined && typed === undefined) {
    const keys = Object.keys(value);
    if (keys.length > 0) parts.push(`setting ${keys.join(', ')}`);
  }
  return parts.join(' ');
}
