/** The validator's EnvoyFilter rules beyond the shapes it reads (envoy-filter.test.ts): what it skips, and what it refuses. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateYaml } from '../../../test/helpers/config.ts';
import { bucket, direct, ef, filterPatch, hundred, LRL, routePatch, TYPED_STRUCT, typedStruct } from '../../../test/helpers/envoy-filter-patches.ts';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/istio/ratelimit');
describe('EnvoyFilter: any other EnvoyFilter is skipped whole, with one warning and never an error', () => {
  const rows: { name: string; spec: object; want: RegExp }[] = [
    {
      name: 'a global rate limit filter whose cluster is neither added by the EnvoyFilter nor an Istio cluster',
      spec: {
        configPatches: [
          {
            applyTo: 'HTTP_FILTER',
            match: { context: 'SIDECAR_OUTBOUND', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } },
            patch: {
              operation: 'INSERT_BEFORE',
              value: {
                name: 'envoy.filters.http.ratelimit',
                typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit', domain: 'ratelimit', rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: 'elsewhere' } }, transport_api_version: 'V3' } },
              },
            },
          },
        ],
      },
      want: /EnvoyFilter istio-system\/rl: spec\.configPatches: skipped: .*configPatches\[0\]\.patch\.value\.typed_config\.rate_limit_service\.grpc_service\.envoy_grpc\.cluster_name uses a rate limit service cluster "elsewhere" that meshlet cannot find \(add it with a CLUSTER ADD patch in this EnvoyFilter, with a socket_address, or name an Istio cluster outbound\|<port>\|\|<host>\)/,
    },
    {
      name: 'a CLUSTER ADD that no global rate limit filter of the EnvoyFilter calls',
      spec: { configPatches: [{ applyTo: 'CLUSTER', match: { cluster: { service: 'ratelimit.default.svc.cluster.local' } }, patch: { operation: 'ADD', value: { name: 'rate_limit_cluster' } } }] },
      want: /there is no Envoy to patch; configPatches\[0\] patches CLUSTER ADD rate_limit_cluster for ratelimit\.default\.svc\.cluster\.local/,
    },
    {
      name: 'a Lua filter',
      spec: { configPatches: [{ applyTo: 'HTTP_FILTER', patch: { operation: 'INSERT_BEFORE', value: { name: 'envoy.lua', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua', inlineCode: 'x' } } } }] },
      want: /configPatches\[0\] patches HTTP_FILTER INSERT_BEFORE envoy\.lua \(Lua\)/,
    },
    {
      name: 'a local rate limit beside a Lua filter: all or nothing',
      spec: {
        configPatches: [filterPatch(direct()), { applyTo: 'HTTP_FILTER', patch: { operation: 'INSERT_BEFORE', value: { name: 'envoy.lua', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua' } } } }],
      },
      want: /skipped: meshlet applies an EnvoyFilter only when it can apply every patch as Envoy would \(put the local rate limit patches in an EnvoyFilter of their own\); configPatches\[1\] patches HTTP_FILTER INSERT_BEFORE envoy\.lua \(Lua\)/,
    },
    {
      name: 'a route patch setting a timeout beside the rate limits',
      spec: { configPatches: [filterPatch(direct()), routePatch({ route: { timeout: '5s', rate_limits: [{ actions: [{ remote_address: {} }] }] } })] },
      want: /configPatches\[1\] patches HTTP_ROUTE MERGE setting route/,
    },
    {
      name: 'an EnvoyFilter that is not even well formed (null patch, missing applyTo): still a skip, not an error',
      spec: { workloadSelector: 'not-an-object', configPatches: [null, { patch: { operation: 'ADD' } }] },
      want: /configPatches\[0\] patches not a patch \(null\); configPatches\[1\] patches no applyTo ADD/,
    },
    // Local rate limits with what meshlet does not implement.
    {
      name: 'a bucket per connection on outbound calls',
      spec: { configPatches: [filterPatch(direct({ local_rate_limit_per_downstream_connection: true }), { context: 'SIDECAR_OUTBOUND' })] },
      want: /configPatches\[0\]\.match\.context uses local_rate_limit_per_downstream_connection \(a bucket per downstream connection\) for outbound calls: the app's calls have no downstream connection; meshlet applies it in SIDECAR_INBOUND patches/,
    },
    {
      name: 'a bucket per connection in a per-route config of any context',
      spec: { configPatches: [filterPatch(direct()), routePatch({ typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': direct({ local_rate_limit_per_downstream_connection: true }) } }, { routeConfiguration: { vhost: { name: 'inbound|http|9080' } } })] },
      want: /configPatches\[1\]\.match\.context uses local_rate_limit_per_downstream_connection \(a bucket per downstream connection\) for any context, which includes outbound calls/,
    },
    { name: 'buckets shared across the local cluster', spec: { configPatches: [filterPatch(direct({ local_cluster_rate_limit: {} }))] }, want: /uses local_cluster_rate_limit/ },
    {
      name: 'a metadata action',
      spec: { configPatches: [filterPatch(direct()), routePatch({ route: { rate_limits: [{ actions: [{ metadata: { descriptor_key: 'k', metadata_key: { key: 'x', path: [{ key: 'y' }] } } }] }] } })] },
      want: /route\.rate_limits\[0\]\.actions\[0\]\.metadata uses the metadata rate-limit action/,
    },
    {
      name: 'a CEL expression beyond one attribute',
      spec: {
        configPatches: [
          filterPatch(direct()),
          routePatch({
            route: {
              rate_limits: [
                {
                  actions: [
                    {
                      extension: {
                        name: 'custom',
                        typed_config: { '@type': TYPED_STRUCT, type_url: 'type.googleapis.com/envoy.extensions.rate_limit_descriptors.expr.v3.Descriptor', value: { descriptor_key: 'k', text: "request.headers['a'] + 'x'" } },
                      },
                    },
                  ],
                },
              ],
            },
          }),
        ],
      },
      want: /uses the CEL expression "request\.headers\['a'\] \+ 'x'" \(meshlet evaluates one attribute/,
    },
    { name: 'match.proxy', spec: { configPatches: [filterPatch(direct(), { context: 'SIDECAR_INBOUND', proxy: { proxyVersion: '^1\\.2.*' } })] }, want: /match\.proxy uses match\.proxy \(meshlet is not an Istio proxy/ },
    { name: 'a filter chain SNI match', spec: { configPatches: [filterPatch(direct(), { listener: { filterChain: { sni: 'a.example' } } })] }, want: /filterChain\.sni uses filter chain sni matches/ },
    { name: 'REPLACE on an HTTP filter', spec: { configPatches: [filterPatch(direct(), { listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'x' } } } } }, 'REPLACE')] }, want: /uses operation REPLACE on an HTTP filter/ },
    { name: 'ADD of a route', spec: { configPatches: [filterPatch(direct()), routePatch({ typed_per_filter_config: { x: direct() } }, {}, 'ADD')] }, want: /uses operation ADD on a route \(meshlet applies MERGE\)/ },
  ];
  for (const r of rows) {
    it(`skips ${r.name}`, () => {
      const { errors, warnings, resources, issues } = validateYaml(ef(r.spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 0);
      const skips = issues.all.filter((i) => i.code === 'MESHLET0003');
      assert.equal(skips.length, 1, warnings.join('\n'));
      assert.equal(skips[0]?.level, 'warning');
      assert.match(String(skips[0]), r.want);
    });
  }
});

describe('EnvoyFilter: a malformed local rate limit is refused, naming the field', () => {
  const rows: { name: string; spec: object; error: RegExp }[] = [
    // The token bucket.
    { name: 'max_tokens 0', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, max_tokens: 0 } }))] }, error: /spec\.configPatches\[0\]\.patch\.value\.typed_config\.token_bucket\.max_tokens: must be >= 1 \(Envoy: max_tokens must be greater than 0\), got 0/ },
    { name: 'max_tokens missing', spec: { configPatches: [filterPatch(direct({ token_bucket: { fill_interval: '1s' } }))] }, error: /token_bucket\.max_tokens: is required/ },
    { name: 'max_tokens not a number', spec: { configPatches: [filterPatch(typedStruct({ token_bucket: { ...bucket, max_tokens: 'ten' } }))] }, error: /typed_config\.value\.token_bucket\.max_tokens: must be a whole number, got "ten"/ },
    { name: 'max_tokens negative', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, max_tokens: -1 } }))] }, error: /max_tokens: must be >= 1/ },
    { name: 'max_tokens beyond uint32', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, max_tokens: 4294967296 } }))] }, error: /max_tokens: must be <= 4294967295/ },
    { name: 'tokens_per_fill 0', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, tokens_per_fill: 0 } }))] }, error: /token_bucket\.tokens_per_fill: must be >= 1/ },
    { name: 'fill_interval missing', spec: { configPatches: [filterPatch(direct({ token_bucket: { max_tokens: 1 } }))] }, error: /token_bucket\.fill_interval: is required/ },
    { name: 'fill_interval in minutes', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, fill_interval: '1m' } }))] }, error: /token_bucket\.fill_interval: "1m" is not a duration: Envoy takes protobuf durations, seconds with an "s" suffix/ },
    { name: 'fill_interval in milliseconds', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, fill_interval: '500ms' } }))] }, error: /"500ms" is not a duration/ },
    { name: 'fill_interval a number', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, fill_interval: 60 } }))] }, error: /fill_interval: must be a duration such as "60s" or "0\.5s", got 60/ },
    { name: 'fill_interval under 50ms', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, fill_interval: '0.01s' } }))] }, error: /fill_interval: must be at least 50ms \(Envoy refuses token buckets that refill more often\), got "0\.01s"/ },
    { name: 'a misspelt token bucket field', spec: { configPatches: [filterPatch(direct({ token_bucket: { max_token: 1, fill_interval: '1s' } }))] }, error: /token_bucket\.max_token: unknown field "max_token" \(did you mean "max_tokens"\?\)/ },
    { name: 'both spellings of a field', spec: { configPatches: [filterPatch(direct({ token_bucket: { ...bucket, maxTokens: 3 } }))] }, error: /token_bucket\.maxTokens: "maxTokens" is another spelling of "max_tokens"; give only one of them/ },
    // Percentages.
    { name: 'an unknown denominator', spec: { configPatches: [filterPatch(direct({ filter_enabled: { default_value: { numerator: 1, denominator: 'THOUSAND' } } }))] }, error: /filter_enabled\.default_value\.denominator: must be one of HUNDRED, TEN_THOUSAND, MILLION; got "THOUSAND"/ },
    { name: 'a denominator number out of range', spec: { configPatches: [filterPatch(direct({ filter_enforced: { default_value: { numerator: 1, denominator: 3 } } }))] }, error: /filter_enforced\.default_value\.denominator: must be one of HUNDRED, TEN_THOUSAND, MILLION; got 3/ },
    { name: 'a negative numerator', spec: { configPatches: [filterPatch(direct({ filter_enabled: { default_value: { numerator: -5 } } }))] }, error: /filter_enabled\.default_value\.numerator: must be >= 0, got -5/ },
    { name: 'a runtime percent without default_value', spec: { configPatches: [filterPatch(direct({ filter_enabled: { runtime_key: 'k' } }))] }, error: /filter_enabled\.default_value: is required/ },
    // The rest of the LocalRateLimit.
    { name: 'no stat_prefix', spec: { configPatches: [filterPatch({ '@type': LRL, token_bucket: bucket })] }, error: /typed_config\.stat_prefix: is required/ },
    { name: 'an unknown field', spec: { configPatches: [filterPatch(direct({ filter_enforce: hundred }))] }, error: /typed_config\.filter_enforce: unknown field "filter_enforce" \(did you mean "filter_enforced"\?\)/ },
    { name: 'an HTTP status Envoy does not define', spec: { configPatches: [filterPatch(direct({ status: { code: 999 } }))] }, error: /status\.code: must be an HTTP status Envoy's StatusCode enum defines/ },
    { name: 'a stage over 10', spec: { configPatches: [filterPatch(direct({ stage: 11 }))] }, error: /typed_config\.stage: must be <= 10/ },
    { name: 'more than 10 response headers', spec: { configPatches: [filterPatch(direct({ response_headers_to_add: Array.from({ length: 11 }, (_, i) => ({ header: { key: `x-${i}`, value: 'v' } })) }))] }, error: /response_headers_to_add: must have at most 10 items, got 11/ },
    { name: 'a pseudo-header to add', spec: { configPatches: [filterPatch(direct({ response_headers_to_add: [{ header: { key: ':status', value: '200' } }] }))] }, error: /response_headers_to_add\[0\]\.header\.key: ":status" cannot be set by a filter/ },
    { name: 'append and append_action both', spec: { configPatches: [filterPatch(direct({ response_headers_to_add: [{ append: false, append_action: 'ADD_IF_ABSENT', header: { key: 'x', value: 'v' } }] }))] }, error: /response_headers_to_add\[0\]: append and append_action are both set; Envoy refuses that/ },
    { name: 'an unknown append_action', spec: { configPatches: [filterPatch(direct({ request_headers_to_add_when_not_enforced: [{ append_action: 'REPLACE', header: { key: 'x', value: 'v' } }] }))] }, error: /request_headers_to_add_when_not_enforced\[0\]\.append_action: must be one of APPEND_IF_EXISTS_OR_ADD/ },
    { name: 'a header value with an unterminated formatter', spec: { configPatches: [filterPatch(direct({ response_headers_to_add: [{ header: { key: 'x', value: '100%' } }] }))] }, error: /header\.value: header value "100%" ends with an unescaped "%"/ },
    { name: 'descriptors without entries', spec: { configPatches: [filterPatch(direct({ descriptors: [{ entries: [], token_bucket: bucket }] }))] }, error: /descriptors\[0\]\.entries: must have at least one item/ },
    { name: 'a descriptor without a bucket', spec: { configPatches: [filterPatch(direct({ descriptors: [{ entries: [{ key: 'k', value: 'v' }] }] }))] }, error: /descriptors\[0\]\.token_bucket: is required/ },
    { name: 'a descriptor entry without a key', spec: { configPatches: [filterPatch(direct({ descriptors: [{ entries: [{ value: 'v' }], token_bucket: bucket }] }))] }, error: /descriptors\[0\]\.entries\[0\]\.key: is required/ },
    {
      name: 'duplicate descriptors',
      spec: { configPatches: [filterPatch(direct({ descriptors: [{ entries: [{ key: 'k', value: 'v' }], token_bucket: bucket }, { entries: [{ key: 'k', value: 'v' }], token_bucket: bucket }] }))] },
      error: /typed_config\.descriptors\[1\]: duplicates descriptor 0 \(k=v\); Envoy refuses duplicate descriptors/,
    },
    { name: 'a per-route config without a token bucket', spec: { configPatches: [filterPatch(direct()), routePatch({ typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'p' } } })] }, error: /typed_per_filter_config\["envoy\.filters\.http\.local_ratelimit"\]\.token_bucket: is required in a per-route config/ },
    { name: 'a malformed bucket in a per-route TypedStruct', spec: { configPatches: [filterPatch(direct()), routePatch({ typed_per_filter_config: { a: direct(), b: { '@type': TYPED_STRUCT, type_url: LRL, value: { stat_prefix: 'p', token_bucket: { ...bucket, max_tokens: 0 } } } } })] }, error: /typed_per_filter_config\.b\.value\.token_bucket\.max_tokens: must be >= 1/ },
    // Actions.
    { name: 'an action with two kinds', spec: { configPatches: [filterPatch(direct()), routePatch({ route: { rate_limits: [{ actions: [{ remote_address: {}, generic_key: { descriptor_value: 'v' } }] }] } })] }, error: /rate_limits\[0\]\.actions\[0\]: only one of .* may be set, got remote_address and generic_key/ },
    { name: 'a rate limit without actions', spec: { configPatches: [filterPatch(direct()), routePatch({ route: { rate_limits: [{ actions: [] }] } })] }, error: /rate_limits\[0\]\.actions: must have at least one item/ },
    { name: 'a generic_key without a value', spec: { configPatches: [filterPatch(direct()), routePatch({ route: { rate_limits: [{ actions: [{ generic_key: {} }] }] } })] }, error: /generic_key\.descriptor_value: is required/ },
    { name: 'a header matcher with a bad regex', spec: { configPatches: [filterPatch(direct()), routePatch({ route: { rate_limits: [{ actions: [{ header_value_match: { descriptor_value: 'v', headers: [{ name: 'x', safe_regex_match: { regex: '(' } }] } }] }] } })] }, error: /headers\[0\]\.safe_regex_match\.regex: / },
    { name: 'a header matcher with two match kinds', spec: { configPatches: [filterPatch(direct()), routePatch({ route: { rate_limits: [{ actions: [{ header_value_match: { descriptor_value: 'v', headers: [{ name: 'x', exact_match: 'a', present_match: true }] } }] }] } })] }, error: /headers\[0\]: only one of .* may be set, got exact_match and present_match/ },
    { name: 'a masked remote address prefix over 32', spec: { configPatches: [filterPatch(direct()), routePatch({ route: { rate_limits: [{ actions: [{ masked_remote_address: { v4_prefix_mask_len: 33 } }] }] } })] }, error: /masked_remote_address\.v4_prefix_mask_len: must be <= 32, got 33/ },
    {
      name: 'a CEL expression that does not parse',
      spec: {
        configPatches: [
          filterPatch(direct()),
          routePatch({ route: { rate_limits: [{ actions: [{ extension: { name: 'c', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.rate_limit_descriptors.expr.v3.Descriptor', descriptor_key: 'k', text: 'request.headers[' } } }] }] } }),
        ],
      },
      error: /actions\[0\]\.extension\.typed_config\.text: CEL: /,
    },
    // A filter istiod puts after the router: Envoy rejects the listener (Utility::validateTerminalFilters).
    { name: 'ADD on an HTTP filter (after the router)', spec: { configPatches: [filterPatch(direct(), {}, 'ADD')] }, error: /spec\.configPatches\[0\]\.patch\.operation: ADD appends the HTTP filter after the router \(istiod\), and Envoy rejects the listener: "terminal filter named envoy\.filters\.http\.router .* must be the last filter in a http filter chain"/ },
    { name: 'INSERT_AFTER without a sub-filter', spec: { configPatches: [filterPatch(direct(), {}, 'INSERT_AFTER')] }, error: /spec\.configPatches\[0\]\.patch\.operation: INSERT_AFTER without a subFilter appends the filter after the router \(istiod\), and Envoy rejects the listener: "terminal filter named envoy\.filters\.http\.router/ },
    {
      name: 'INSERT_AFTER the router',
      spec: { configPatches: [filterPatch(direct(), { listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } }, 'INSERT_AFTER')] },
      error: /spec\.configPatches\[0\]\.patch\.operation: INSERT_AFTER envoy\.filters\.http\.router puts the filter after the router, and Envoy rejects the listener: "terminal filter named envoy\.filters\.http\.router .* must be the last filter/,
    },
    // Istio's own rules (CRD schema, ValidateEnvoyFilter).
    { name: 'no patch operation', spec: { configPatches: [{ applyTo: 'HTTP_FILTER', patch: { value: { name: 'x', typed_config: direct() } } }] }, error: /spec\.configPatches\[0\]\.patch\.operation: Envoy filter: missing patch operation/ },
    { name: 'an unknown operation', spec: { configPatches: [filterPatch(direct(), {}, 'PREPEND')] }, error: /patch\.operation: must be one of INVALID, MERGE/ },
    { name: 'an unknown context', spec: { configPatches: [filterPatch(direct(), { context: 'INBOUND' })] }, error: /match\.context: must be one of ANY, SIDECAR_INBOUND, SIDECAR_OUTBOUND, GATEWAY, WAYPOINT/ },
    { name: 'a route configuration match on an HTTP filter', spec: { configPatches: [filterPatch(direct(), { routeConfiguration: { portNumber: 80 } })] }, error: /Envoy filter: applyTo for listener class objects cannot have non listener match/ },
    { name: 'a listener match on a route', spec: { configPatches: [filterPatch(direct()), routePatch({ typed_per_filter_config: { x: direct() } }, { listener: { portNumber: 80 } })] }, error: /Envoy filter: applyTo for http route class objects cannot have non route configuration match/ },
    { name: 'a sub-filter match under another network filter', spec: { configPatches: [filterPatch(direct(), { listener: { filterChain: { filter: { name: 'envoy.filters.network.tcp_proxy', subFilter: { name: 'x' } } } } })] }, error: /subfilter match requires filter match with envoy\.filters\.network\.http_connection_manager/ },
    { name: 'a filter match without a name', spec: { configPatches: [filterPatch(direct(), { listener: { filterChain: { filter: {} } } })] }, error: /filter: Envoy filter: filter match has no name to match on/ },
    { name: 'two object matches', spec: { configPatches: [filterPatch(direct(), { listener: {}, routeConfiguration: {} })] }, error: /match: only one of listener, routeConfiguration, cluster, waypoint may be set/ },
    { name: 'workloadSelector and targetRefs', spec: { workloadSelector: { labels: { app: 'a' } }, targetRefs: [{ kind: 'Gateway', name: 'g' }], configPatches: [filterPatch(direct())] }, error: /spec: only one of targetRefs or workloadSelector can be set/ },
    { name: 'a wildcard selector label', spec: { workloadSelector: { labels: { app: 'a*' } }, configPatches: [filterPatch(direct())] }, error: /spec\.workloadSelector\.labels\.app: invalid label value "a\*"/ },
    { name: 'a cross-namespace targetRef', spec: { targetRefs: [{ kind: 'Gateway', name: 'g', namespace: 'other' }], configPatches: [filterPatch(direct())] }, error: /targetRefs\[0\]\.namespace: cross namespace referencing is not currently supported/ },
    { name: 'a priority beyond int32', spec: { priority: 2147483648, configPatches: [filterPatch(direct())] }, error: /spec\.priority: must be <= 2147483647/ },
    { name: 'an unknown spec field', spec: { workloadSelektor: {}, configPatches: [filterPatch(direct())] }, error: /spec\.workloadSelektor: unknown field "workloadSelektor" \(did you mean "workloadSelector"\?\)/ },
  ];
  for (const r of rows) {
    it(`rejects ${r.name}`, () => {
      const { errors, resources } = validateYaml(ef(r.spec));
      assert.equal(resources.length, 0);
      assert.ok(errors.some((e) => r.error.test(e)), `no error matching ${r.error}:\n${errors.join('\n')}`);
    });
  }

  it('says where the error is in the file', () => {
    const yaml = readFileSync(join(FIXTURES, 'enable_envoy_local_ratelimit.yaml'), 'utf8').replace('fill_interval: 600s', 'fill_interval: 10m');
    const { errors } = validateYaml(yaml, 'rl.yaml');
    assert.equal(errors.length, 1);
    assert.match(errors[0] as string, /^rl\.yaml: EnvoyFilter istio-system\/filter-local-ratelimit-svc: spec\.configPatches\[0\]\.patch\.value\.typed_config\.value\.token_bucket\.fill_interval: "10m" is not a duration.* \(line 26\)$/);
  });
});
