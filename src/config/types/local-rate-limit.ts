/**
 * Envoy's local rate limit filter (`envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`)
 * and the route rate-limit actions that feed it descriptors (`config.route.v3.RateLimit`), as
 * meshlet reads them out of an EnvoyFilter's `patch.value`: defaults filled in, durations in
 * milliseconds, enums as names. These are what the rate-limit phase compiles; the EnvoyFilter
 * spec itself keeps the value as written.
 *
 * @module
 */
import type { ListenerMatch, PatchContext, RouteConfigurationMatch } from './envoy-filter.ts';

/** A token bucket (`type.v3.TokenBucket`). */
export interface TokenBucketSettings {
  /** Capacity, and the tokens the bucket starts with. */
  readonly maxTokens: number;
  /** Tokens added per `fillIntervalMs`. @defaultValue 1 */
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
}

/** A runtime fractional percent, read as its default value (meshlet has no Envoy runtime). */
export interface FractionSettings {
  readonly numerator: number;
  /** 100, 10 000 or 1 000 000 (HUNDRED, TEN_THOUSAND, MILLION). */
  readonly denominator: number;
}

/** How a header is added (`config.core.v3.HeaderValueOption.append_action`). */
export type AppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

/** A header to add. */
export interface HeaderToAdd {
  /** Lower-cased. */
  readonly key: string;
  readonly value: string;
  readonly action: AppendAction;
  /** Add the header even when its value is empty. @defaultValue false */
  readonly keepEmptyValue: boolean;
}

/** One descriptor entry: a key and a value (`''` in a configured descriptor: any value, one bucket per value). */
export interface DescriptorEntry {
  readonly key: string;
  readonly value: string;
}

/** A configured descriptor and its bucket (`common.ratelimit.v3.LocalRateLimitDescriptor`). */
export interface DescriptorSettings {
  readonly entries: readonly DescriptorEntry[];
  readonly tokenBucket: TokenBucketSettings;
}

/** An Envoy header matcher (`config.route.v3.HeaderMatcher`), as the rate-limit actions use it. */
export interface HeaderMatcherSettings {
  /** Lower-cased; may be a pseudo-header (`:path`, `:method`, `:authority`, `:scheme`). */
  readonly name: string;
  readonly match:
    | { readonly kind: 'present'; readonly present: boolean }
    | { readonly kind: 'string'; readonly op: 'exact' | 'prefix' | 'suffix' | 'contains' | 'regex'; readonly value: string; readonly ignoreCase: boolean }
    | { readonly kind: 'range'; readonly start: number; readonly end: number };
  readonly invert: boolean;
  readonly treatMissingAsEmpty: boolean;
}

/** A query-parameter matcher (`config.route.v3.QueryParameterMatcher`). */
export interface QueryMatcherSettings {
  readonly name: string;
  readonly match:
    | { readonly kind: 'present' }
    | { readonly kind: 'string'; readonly op: 'exact' | 'prefix' | 'suffix' | 'contains' | 'regex'; readonly value: string; readonly ignoreCase: boolean };
}

/** The request attributes a CEL descriptor may name (meshlet evaluates a single attribute, not full CEL). */
export type CelAttribute =
  | { readonly kind: 'request'; readonly field: 'path' | 'url_path' | 'host' | 'method' | 'scheme' | 'query' | 'id' | 'protocol' }
  | { readonly kind: 'request-header'; readonly name: string }
  | { readonly kind: 'source'; readonly field: 'address' | 'port' }
  | { readonly kind: 'destination'; readonly field: 'port' }
  | { readonly kind: 'connection'; readonly field: 'uri_san_peer_certificate' | 'mtls' };

/** One rate-limit action: what it appends to a descriptor. */
export type RateLimitAction =
  | { readonly type: 'source_cluster' }
  | { readonly type: 'destination_cluster' }
  | { readonly type: 'request_headers'; readonly headerName: string; readonly descriptorKey: string; readonly skipIfAbsent: boolean }
  | { readonly type: 'remote_address' }
  | { readonly type: 'masked_remote_address'; readonly v4PrefixLen: number; readonly v6PrefixLen: number }
  | { readonly type: 'generic_key'; readonly descriptorKey: string; readonly descriptorValue: string }
  | { readonly type: 'header_value_match'; readonly descriptorKey: string; readonly descriptorValue: string; readonly expectMatch: boolean; readonly headers: readonly HeaderMatcherSettings[] }
  | { readonly type: 'query_parameter_value_match'; readonly descriptorKey: string; readonly descriptorValue: string; readonly expectMatch: boolean; readonly queryParameters: readonly QueryMatcherSettings[] }
  | { readonly type: 'query_parameters'; readonly queryParameterName: string; readonly descriptorKey: string; readonly skipIfAbsent: boolean }
  | { readonly type: 'expression'; readonly descriptorKey: string; readonly attribute: CelAttribute; readonly skipIfError: boolean; readonly text: string };

/** One rate-limit policy entry (`config.route.v3.RateLimit`): its actions build one descriptor. */
export interface RateLimitPolicySettings {
  /** @defaultValue 0 */
  readonly stage: number;
  /** Entries with a disable key are skipped by the local rate limit filter. */
  readonly disableKey: string;
  readonly actions: readonly RateLimitAction[];
  /** `hits_addend`: the hits the descriptor counts for at a rate limit service (unset: the request's, one). */
  readonly hitsAddend?: HitsAddendSettings;
}

/**
 * A route rate limit's `hits_addend`: a fixed `number`, or the number a request header holds
 * (`format: "%REQ(header?alt):max%"`).
 */
export type HitsAddendSettings =
  | { readonly number: number }
  | {
      readonly header: string;
      /** The header read when `header` is absent (`REQ(X?Y)`). */
      readonly altHeader?: string;
      /** The value's length kept (`REQ(X):Z`). */
      readonly maxLength?: number;
    };

/** Which virtual-host rate limits a route uses (`common.ratelimit.v3.VhRateLimitsOptions`). */
export type VhRateLimits = 'OVERRIDE' | 'INCLUDE' | 'IGNORE';

/** One LocalRateLimit config, read with its defaults. */
export interface LocalRateLimitSettings {
  readonly statPrefix: string;
  /** HTTP status of a refusal. @defaultValue 429 */
  readonly status: number;
  /** The default bucket; undefined: no default bucket (only descriptors, or nothing, limit). */
  readonly tokenBucket: TokenBucketSettings | undefined;
  /** undefined: the filter is enabled for no request (Envoy's default, "0% for safety"). */
  readonly filterEnabled: FractionSettings | undefined;
  /** undefined: no refusal is enforced (shadow mode). */
  readonly filterEnforced: FractionSettings | undefined;
  readonly requestHeadersToAddWhenNotEnforced: readonly HeaderToAdd[];
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly descriptors: readonly DescriptorSettings[];
  /** @defaultValue 0 */
  readonly stage: number;
  readonly enableXRateLimitHeaders: boolean;
  /** @defaultValue 'OVERRIDE' */
  readonly vhRateLimits: VhRateLimits;
  /** @defaultValue true */
  readonly alwaysConsumeDefaultTokenBucket: boolean;
  /** Answer gRPC calls RESOURCE_EXHAUSTED instead of UNAVAILABLE. @defaultValue false */
  readonly rateLimitedAsResourceExhausted: boolean;
  /** The filter's own descriptor actions; when set, route and virtual-host rate limits are ignored. */
  readonly rateLimits: readonly RateLimitPolicySettings[];
  /** How many buckets a wildcard descriptor keeps (least recently used dropped). @defaultValue 20 */
  readonly maxDynamicDescriptors: number;
  /**
   * `local_rate_limit_per_downstream_connection`: the buckets are the downstream connection's —
   * one limiter per connection, made from the first config that asks for one on it and shared by
   * every such filter on it (Envoy keeps it under one filter-state key). Inbound only.
   * @defaultValue false
   */
  readonly perDownstreamConnection: boolean;
}

/** An HTTP_FILTER patch that inserts a local rate limit filter. */
export interface RateLimitFilterPatch {
  readonly applyTo: 'HTTP_FILTER';
  readonly context: PatchContext;
  readonly operation: 'INSERT_BEFORE' | 'INSERT_AFTER' | 'INSERT_FIRST';
  /** `match.listener`, as written (port, name, filter chain). */
  readonly listener: ListenerMatch | undefined;
  /** The HTTP filter's name (`value.name`); per-route configs are found under it. */
  readonly filterName: string;
  readonly config: LocalRateLimitSettings;
  /**
   * Set for Envoy's global rate limit filter (`envoy.filters.http.ratelimit`): the service it asks.
   * `config` then carries its stage, own rate limits and refusal settings for the shared engine
   * (enabled and enforced for every request, no buckets).
   */
  readonly global?: GlobalRateLimitSettings;
}

/** An HTTP_ROUTE or VIRTUAL_HOST MERGE patch: per-filter configs and/or rate-limit actions. */
export interface RateLimitRoutePatch {
  readonly applyTo: 'HTTP_ROUTE' | 'VIRTUAL_HOST';
  readonly context: PatchContext;
  readonly routeConfiguration: RouteConfigurationMatch | undefined;
  /** `typed_per_filter_config`: HTTP filter name → its config for this route (or virtual host). */
  readonly perFilterConfig: ReadonlyMap<string, LocalRateLimitSettings>;
  /** `typed_per_filter_config` entries that are a global filter's `RateLimitPerRoute`, by HTTP filter name. */
  readonly perRouteGlobal: ReadonlyMap<string, GlobalRateLimitPerRoute>;
  /** `route.rate_limits` (HTTP_ROUTE) or `rate_limits` (VIRTUAL_HOST), appended by the merge. */
  readonly rateLimits: readonly RateLimitPolicySettings[];
  /** `route.include_vh_rate_limits` (HTTP_ROUTE; deprecated in Envoy). */
  readonly includeVhRateLimits: boolean | undefined;
}

/** A patch of a local-rate-limit EnvoyFilter, read. */
export type RateLimitPatch = RateLimitFilterPatch | RateLimitRoutePatch;

/** A global rate limit filter's per-route config (`envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute`). */
export interface GlobalRateLimitPerRoute {
  /** `vh_rate_limits`: whether the virtual host's rate limits are used with the route's. @defaultValue 'OVERRIDE' */
  readonly vhRateLimits: VhRateLimits;
  /** `rate_limits`: when set, the only ones that build descriptors (the filter's, the route's and the virtual host's are not read). */
  readonly rateLimits: readonly RateLimitPolicySettings[];
  /** `domain`: replaces the filter's domain when set (non-empty). */
  readonly domain: string | undefined;
}

/** One global RateLimit config (`envoy.extensions.filters.http.ratelimit.v3.RateLimit`), read with its defaults. */
export interface GlobalRateLimitSettings {
  /** The rate limit domain sent with every request to the service. */
  readonly domain: string;
  /** Only route rate limits of this stage build descriptors. @defaultValue 0 */
  readonly stage: number;
  /** Which requests the filter looks at, by `x-envoy-internal`. @defaultValue 'both' */
  readonly requestType: 'internal' | 'external' | 'both';
  /** The rate limit service call's timeout. @defaultValue 20 */
  readonly timeoutMs: number;
  /** Refuse requests when the service fails or times out. @defaultValue false */
  readonly failureModeDeny: boolean;
  /** Answer gRPC callers RESOURCE_EXHAUSTED instead of UNAVAILABLE. @defaultValue false */
  readonly rateLimitedAsResourceExhausted: boolean;
  /** `rate_limit_service.grpc_service.envoy_grpc.cluster_name`, as written. */
  readonly clusterName: string;
  /** The `host:port` the service is called at (the cluster's socket address, or the Istio cluster's host and port). */
  readonly target: string;
  /** `enable_x_ratelimit_headers: DRAFT_VERSION_03`. @defaultValue false */
  readonly xRateLimitHeaders: boolean;
  /** `disable_x_envoy_ratelimited_header`. @defaultValue false */
  readonly disableXEnvoyRateLimitedHeader: boolean;
  /** The status of a refusal (`rate_limited_status`; below 400: 429). @defaultValue 429 */
  readonly rateLimitedStatus: number;
  /** Headers added to refusals (`response_headers_to_add`). */
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  /** The status when the service fails and `failure_mode_deny` (`status_on_error`). @defaultValue 500 */
  readonly statusOnError: number;
  /** The filter's own descriptor actions (`rate_limits`); when set, route and virtual-host rate limits are not read. */
  readonly rateLimits: readonly RateLimitPolicySettings[];
  /** `filter_enabled`: the fraction of requests the filter looks at (unset: all, Envoy's runtime default 100%). */
  readonly filterEnabled: FractionSettings | undefined;
  /** `filter_enforced`: the fraction of over-limit answers that refuse the request (unset: all). */
  readonly filterEnforced: FractionSettings | undefined;
  /** `failure_mode_deny_percent`: the fraction of failed calls that refuse the request; replaces `failure_mode_deny` when set. */
  readonly failureModeDenyPercent: FractionSettings | undefined;
}
