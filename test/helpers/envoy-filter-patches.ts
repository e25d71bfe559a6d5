/**
 * Builders of EnvoyFilter documents and patches for the validator's local rate limit tests
 * (src/config/validate/envoy-filter*.test.ts).
 */

/** An EnvoyFilter document with this spec (an object, written as JSON, which is YAML). */
export function ef(spec: object, name = 'rl', namespace = 'istio-system'): string {
  return `apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec: ${JSON.stringify(spec)}\n`;
}

export const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
export const TYPED_STRUCT = 'type.googleapis.com/udpa.type.v1.TypedStruct';

export const bucket = { max_tokens: 10, tokens_per_fill: 10, fill_interval: '60s' };
export const hundred = { runtime_key: 'k', default_value: { numerator: 100, denominator: 'HUNDRED' } };
/** The LocalRateLimit of Istio's task, with overrides. */
export const config = (over: Record<string, unknown> = {}) => ({ stat_prefix: 'http_local_rate_limiter', token_bucket: bucket, filter_enabled: hundred, filter_enforced: hundred, ...over });

/** An HTTP_FILTER patch inserting the local rate limit filter; `typed` is the value of typed_config. */
export const filterPatch = (typed: object, match: object = { context: 'SIDECAR_INBOUND' }, operation = 'INSERT_BEFORE') => ({
  applyTo: 'HTTP_FILTER',
  match,
  patch: { operation, value: { name: 'envoy.filters.http.local_ratelimit', typed_config: typed } },
});
export const direct = (over: Record<string, unknown> = {}) => ({ '@type': LRL, ...config(over) });
export const typedStruct = (over: Record<string, unknown> = {}) => ({ '@type': TYPED_STRUCT, type_url: LRL, value: config(over) });
export const routePatch = (value: object, match: object = { context: 'SIDECAR_INBOUND', routeConfiguration: { vhost: { name: 'inbound|http|9080', route: { action: 'ANY' } } } }, operation = 'MERGE') => ({
  applyTo: 'HTTP_ROUTE',
  match,
  patch: { operation, value },
});

