/**
 * Istio's "local rate limit" task EnvoyFilter (HTTP_FILTER `envoy.filters.http.local_ratelimit`
 * inserted on SIDECAR_INBOUND, enabled and enforced for 100 %), as the server-side tests apply it.
 */

/** The filter's `value` beyond its token bucket (response headers, gRPC status, x-ratelimit headers, …). */
export type LocalRateLimitExtra = Readonly<Record<string, unknown>>;

/**
 * The EnvoyFilter of Istio's local rate limit task: `maxTokens` per `fillInterval`, refilled
 * whole; `selector`: its `workloadSelector` labels (none: every workload of its namespace).
 */
export function localRateLimitFilter(metadata: object, maxTokens: number, fillInterval: string, extra: LocalRateLimitExtra = {}, selector?: Readonly<Record<string, string>>): object {
  return {
    apiVersion: 'networking.istio.io/v1alpha3',
    kind: 'EnvoyFilter',
    metadata,
    spec: {
      ...(selector === undefined ? {} : { workloadSelector: { labels: selector } }),
      configPatches: [
        {
          applyTo: 'HTTP_FILTER',
          match: { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager' } } } },
          patch: {
            operation: 'INSERT_BEFORE',
            value: {
              name: 'envoy.filters.http.local_ratelimit',
              typed_config: {
                '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
                type_url: 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
                value: {
                  stat_prefix: 'http_local_rate_limiter',
                  token_bucket: { max_tokens: maxTokens, tokens_per_fill: maxTokens, fill_interval: fillInterval },
                  filter_enabled: { runtime_key: 'local_rate_limit_enabled', default_value: { numerator: 100, denominator: 'HUNDRED' } },
                  filter_enforced: { runtime_key: 'local_rate_limit_enforced', default_value: { numerator: 100, denominator: 'HUNDRED' } },
                  ...extra,
                },
              },
            },
          },
        },
      ],
    },
  };
}
