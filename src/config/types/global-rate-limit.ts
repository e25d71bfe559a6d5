/**
 * Envoy's global rate limit filter (`envoy.extensions.filters.http.ratelimit.v3.RateLimit`), as
 * meshlet reads it out of an EnvoyFilter's `patch.value`: defaults filled in, the rate limit
 * service's cluster resolved to the `host:port` meshlet calls.
 *
 * @module
 */
import type { HeaderToAdd, RateLimitPolicySettings } from './local-rate-limit.ts';

/** One RateLimit config, read with its defaults. */
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
}
