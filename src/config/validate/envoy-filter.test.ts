import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateYaml } from '../../../test/helpers/config.ts';
import type { EnvoyFilterSpec } from '../types/envoy-filter.ts';
import type { RateLimitFilterPatch, RateLimitRoutePatch } from '../types/local-rate-limit.ts';
import { IssueList } from '../issues.ts';
import { fromObjects } from '../load.ts';
import { rateLimitPatches } from './envoy-filter.ts';
import { validateDocuments } from './index.ts';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/istio/ratelimit');

/** An EnvoyFilter document with this spec (an object, written as JSON, which is YAML). */
function ef(spec: object, name = 'rl', namespace = 'istio-system'): string {
  return `apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec: ${JSON.stringify(spec)}\n`;
}

const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const TYPED_STRUCT = 'type.googleapis.com/udpa.type.v1.TypedStruct';

const bucket = { max_tokens: 10, tokens_per_fill: 10, fill_interval: '60s' };
const hundred = { runtime_key: 'k', default_value: { numerator: 100, denominator: 'HUNDRED' } };
/** The LocalRateLimit of Istio's task, with overrides. */
const config = (over: Record<string, unknown> = {}) => ({ stat_prefix: 'http_local_rate_limiter', token_bucket: bucket, filter_enabled: hundred, filter_enforced: hundred, ...over });

/** An HTTP_FILTER patch inserting the local rate limit filter; `typed` is the value of typed_config. */
const filterPatch = (typed: object, match: object = { context: 'SIDECAR_INBOUND' }, operation = 'INSERT_BEFORE') => ({
  applyTo: 'HTTP_FILTER',
  match,
  patch: { operation, value: { name: 'envoy.filters.http.local_ratelimit', typed_config: typed } },
});
const direct = (over: Record<string, unknown> = {}) => ({ '@type': LRL, ...config(over) });
const typedStruct = (over: Record<string, unknown> = {}) => ({ '@type': TYPED_STRUCT, type_url: LRL, value: config(over) });
const routePatch = (value: object, match: object = { context: 'SIDECAR_INBOUND', routeConfiguration: { vhost: { name: 'inbound|http|9080', route: { action: 'ANY' } } } }, operation = 'MERGE') => ({
  applyTo: 'HTTP_ROUTE',
  match,
  patch: { operation, value },
});

describe('EnvoyFilter: the local rate limit shapes are read', () => {
  for (const file of readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml'))) {
    it(`Istio's ${file} validates, with no error`, () => {
      const { resources, errors } = validateYaml(readFileSync(join(FIXTURES, file), 'utf8'), file);
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.equal(resources[0]?.kind, 'EnvoyFilter');
      assert.ok(rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec).length > 0);
    });
  }

  it('keeps the spec as written, so it validates again the same where the control plane sends it', () => {
    for (const file of readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml'))) {
      const first = validateYaml(readFileSync(join(FIXTURES, file), 'utf8'), file).resources[0];
      assert.ok(first !== undefined);
      const issues = new IssueList();
      // What the control plane sends (control-plane/protocol.ts toWire), through JSON.
      const wire = { apiVersion: first.apiVersion, kind: first.kind, metadata: first.metadata, spec: first.spec };
      const again = validateDocuments(fromObjects([JSON.parse(JSON.stringify(wire))]), {}, issues);
      assert.deepEqual(issues.ofLevel('error').map(String), []);
      assert.deepEqual(again.resources[0]?.spec, first.spec);
      assert.deepEqual(rateLimitPatches(again.resources[0]?.spec as EnvoyFilterSpec), rateLimitPatches(first.spec as EnvoyFilterSpec));
    }
  });

  it('reads the TypedStruct and the direct @type forms to the same settings, with Envoy\'s defaults', () => {
    const a = validateYaml(ef({ configPatches: [filterPatch(typedStruct())] }));
    const b = validateYaml(ef({ configPatches: [filterPatch(direct())] }));
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
    const pa = rateLimitPatches(a.resources[0]?.spec as EnvoyFilterSpec)[0] as RateLimitFilterPatch;
    const pb = rateLimitPatches(b.resources[0]?.spec as EnvoyFilterSpec)[0] as RateLimitFilterPatch;
    assert.deepEqual(pa, pb);
    assert.deepEqual(pa.config, {
      statPrefix: 'http_local_rate_limiter',
      status: 429,
      tokenBucket: { maxTokens: 10, tokensPerFill: 10, fillIntervalMs: 60_000 },
      filterEnabled: { numerator: 100, denominator: 100 },
      filterEnforced: { numerator: 100, denominator: 100 },
      requestHeadersToAddWhenNotEnforced: [],
      responseHeadersToAdd: [],
      descriptors: [],
      stage: 0,
      enableXRateLimitHeaders: false,
      vhRateLimits: 'OVERRIDE',
      alwaysConsumeDefaultTokenBucket: true,
      rateLimitedAsResourceExhausted: false,
      rateLimits: [],
      maxDynamicDescriptors: 20,
    });
    assert.equal(pa.filterName, 'envoy.filters.http.local_ratelimit');
    assert.equal(pa.context, 'SIDECAR_INBOUND');
  });

  it('takes protobuf JSON as Envoy does: lowerCamelCase names, uint32 as strings, enums by number', () => {
    const { errors, resources } = validateYaml(
      ef({
        configPatches: [
          filterPatch({
            '@type': LRL,
            statPrefix: 'p',
            tokenBucket: { maxTokens: '5', tokensPerFill: 1, fillInterval: '0.5s' },
            filterEnabled: { defaultValue: { numerator: 5, denominator: 1 } },
            responseHeadersToAdd: [{ appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD', header: { key: 'X-Limited', value: '100%%' } }],
            status: { code: 'ServiceUnavailable' },
            rateLimitedAsResourceExhausted: true,
          }),
        ],
      }),
    );
    assert.deepEqual(errors, []);
    const p = rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec)[0] as RateLimitFilterPatch;
    assert.deepEqual(p.config.tokenBucket, { maxTokens: 5, tokensPerFill: 1, fillIntervalMs: 500 });
    assert.deepEqual(p.config.filterEnabled, { numerator: 5, denominator: 10_000 });
    assert.equal(p.config.filterEnforced, undefined);
    assert.deepEqual(p.config.responseHeadersToAdd, [{ key: 'x-limited', value: '100%', action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmptyValue: false }]);
    assert.equal(p.config.status, 503);
    assert.equal(p.config.rateLimitedAsResourceExhausted, true);
  });

  it('reads per-route configs, route actions and virtual host patches', () => {
    const { errors, resources } = validateYaml(
      ef({
        configPatches: [
          filterPatch({ '@type': TYPED_STRUCT, type_url: LRL, value: { stat_prefix: 'p' } }),
          routePatch({
            typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': direct({ descriptors: [{ entries: [{ key: 'header_match', value: 'pp' }], token_bucket: { max_tokens: 1, fill_interval: '60s' } }] }) },
            route: {
              rate_limits: [
                { actions: [{ remote_address: {} }] },
                { actions: [{ header_value_match: { descriptor_value: 'pp', headers: [{ name: ':path', string_match: { prefix: '/pp', ignore_case: true } }] } }] },
                { stage: 1, actions: [{ request_headers: { header_name: 'X-User', descriptor_key: 'user' } }] },
              ],
            },
          }),
          {
            applyTo: 'VIRTUAL_HOST',
            match: { context: 'SIDECAR_INBOUND', routeConfiguration: { vhost: { name: 'inbound|http|9080' } } },
            patch: { operation: 'MERGE', value: { rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'all' } }] }] } },
          },
        ],
      }),
    );
    assert.deepEqual(errors, []);
    const [f, r, v] = rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec) as [RateLimitFilterPatch, RateLimitRoutePatch, RateLimitRoutePatch];
    assert.equal(f.config.filterEnabled, undefined, 'a filter without filter_enabled is enabled for 0% of requests');
    assert.equal(f.config.tokenBucket, undefined);
    assert.deepEqual([...r.perFilterConfig.keys()], ['envoy.filters.http.local_ratelimit']);
    assert.deepEqual(r.perFilterConfig.get('envoy.filters.http.local_ratelimit')?.descriptors, [{ entries: [{ key: 'header_match', value: 'pp' }], tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 60_000 } }]);
    assert.deepEqual(r.rateLimits, [
      { stage: 0, disableKey: '', actions: [{ type: 'remote_address' }] },
      {
        stage: 0,
        disableKey: '',
        actions: [
          {
            type: 'header_value_match',
            descriptorKey: 'header_match',
            descriptorValue: 'pp',
            expectMatch: true,
            headers: [{ name: ':path', match: { kind: 'string', op: 'prefix', value: '/pp', ignoreCase: true }, invert: false, treatMissingAsEmpty: false }],
          },
        ],
      },
      { stage: 1, disableKey: '', actions: [{ type: 'request_headers', headerName: 'x-user', descriptorKey: 'user', skipIfAbsent: false }] },
    ]);
    assert.equal(v.applyTo, 'VIRTUAL_HOST');
    assert.deepEqual(v.rateLimits, [{ stage: 0, disableKey: '', actions: [{ type: 'generic_key', descriptorKey: 'generic_key', descriptorValue: 'all' }] }]);
  });

  it('reads every rate-limit action Envoy defines that meshlet evaluates, and every header matcher form', () => {
    const expr = (text: string, more: object = {}) => ({
      extension: { name: 'e', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.rate_limit_descriptors.expr.v3.Descriptor', descriptor_key: 'k', text, ...more } },
    });
    const actions = [
      { source_cluster: {} },
      { destinationCluster: {} },
      { masked_remote_address: {} },
      { masked_remote_address: { v4_prefix_mask_len: 24, v6_prefix_mask_len: '64' } },
      { generic_key: { descriptor_value: 'v', descriptor_key: 'gk' } },
      { request_headers: { header_name: ':authority', descriptor_key: 'host', skip_if_absent: true } },
      { query_parameters: { query_parameter_name: 'u', descriptor_key: 'user' } },
      { query_parameter_value_match: { descriptor_value: 'q', expect_match: false, query_parameters: [{ name: 'a', string_match: { suffix: 'x', ignore_case: true } }, { name: 'b', present_match: true }] } },
      expr("request.headers['X-Id']", { skip_if_error: true }),
      expr('connection.mtls'),
    ];
    const headers = [
      { name: 'a', exact_match: 'x' },
      { name: 'b', prefix_match: 'p' },
      { name: 'c', suffix_match: 's' },
      { name: 'd', contains_match: 'm' },
      { name: 'e', safe_regex_match: { regex: 'r.*' }, invert_match: true },
      { name: 'f', range_match: { start: '1', end: 5 } },
      { name: 'g', present_match: false },
      { name: 'h', string_match: { contains: 'z' }, treat_missing_header_as_empty: true },
      { name: 'I' },
    ];
    const spec = { configPatches: [filterPatch(direct()), routePatch({ route: { rate_limits: [{ actions }, { disable_key: 'off', actions: [{ header_value_match: { descriptor_value: 'hv', headers } }] }] } })] };
    const { errors, resources } = validateYaml(ef(spec));
    assert.deepEqual(errors, []);
    const r = rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec)[1] as RateLimitRoutePatch;
    assert.deepEqual(r.rateLimits[0]?.actions, [
      { type: 'source_cluster' },
      { type: 'destination_cluster' },
      { type: 'masked_remote_address', v4PrefixLen: 32, v6PrefixLen: 128 },
      { type: 'masked_remote_address', v4PrefixLen: 24, v6PrefixLen: 64 },
      { type: 'generic_key', descriptorKey: 'gk', descriptorValue: 'v' },
      { type: 'request_headers', headerName: ':authority', descriptorKey: 'host', skipIfAbsent: true },
      { type: 'query_parameters', queryParameterName: 'u', descriptorKey: 'user', skipIfAbsent: false },
      {
        type: 'query_parameter_value_match',
        descriptorKey: 'query_match',
        descriptorValue: 'q',
        expectMatch: false,
        queryParameters: [
          { name: 'a', match: { kind: 'string', op: 'suffix', value: 'x', ignoreCase: true } },
          { name: 'b', match: { kind: 'present' } },
        ],
      },
      { type: 'expression', descriptorKey: 'k', attribute: { kind: 'request-header', name: 'x-id' }, skipIfError: true, text: "request.headers['X-Id']" },
      { type: 'expression', descriptorKey: 'k', attribute: { kind: 'connection', field: 'mtls' }, skipIfError: false, text: 'connection.mtls' },
    ]);
    assert.equal(r.rateLimits[1]?.disableKey, 'off');
    const hv = r.rateLimits[1]?.actions[0];
    assert.equal(hv?.type, 'header_value_match');
    const m = hv?.type === 'header_value_match' ? hv.headers : [];
    const plain = { invert: false, treatMissingAsEmpty: false };
    assert.deepEqual(m, [
      { name: 'a', match: { kind: 'string', op: 'exact', value: 'x', ignoreCase: false }, ...plain },
      { name: 'b', match: { kind: 'string', op: 'prefix', value: 'p', ignoreCase: false }, ...plain },
      { name: 'c', match: { kind: 'string', op: 'suffix', value: 's', ignoreCase: false }, ...plain },
      { name: 'd', match: { kind: 'string', op: 'contains', value: 'm', ignoreCase: false }, ...plain },
      { name: 'e', match: { kind: 'string', op: 'regex', value: 'r.*', ignoreCase: false }, invert: true, treatMissingAsEmpty: false },
      { name: 'f', match: { kind: 'range', start: 1, end: 5 }, ...plain },
      { name: 'g', match: { kind: 'present', present: false }, ...plain },
      { name: 'h', match: { kind: 'string', op: 'contains', value: 'z', ignoreCase: false }, invert: false, treatMissingAsEmpty: true },
      { name: 'i', match: { kind: 'present', present: true }, ...plain },
    ]);
  });

  const notes: { name: string; spec: object; warnings: RegExp[]; infos?: RegExp[] }[] = [
    {
      name: 'a patch with no context: applied to inbound requests only',
      spec: { configPatches: [filterPatch(direct(), {})] },
      warnings: [],
      infos: [/spec\.configPatches\[0\]\.match\.context: no context: Istio applies this patch to inbound and outbound traffic; meshlet applies it to inbound requests only/],
    },
    {
      name: 'an outbound patch: not supported (and Istio\'s task writes an inbound virtual host name there, which Istio never matches either)',
      spec: {
        configPatches: [
          filterPatch({ '@type': TYPED_STRUCT, type_url: LRL, value: { stat_prefix: 'p' } }),
          routePatch({ typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': direct() } }, { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: 'inbound|http|9080', route: { action: 'ANY' } } } }),
        ],
      },
      warnings: [/spec\.configPatches\[1\]\.match\.context: not supported by meshlet: local rate limits on outbound calls \(SIDECAR_OUTBOUND\); this patch limits nothing in meshlet; besides, a virtual host named "inbound\|http\|9080" exists only in SIDECAR_INBOUND route configurations, so Istio never applies this patch either/],
    },
    {
      name: 'a gateway patch never applies',
      spec: { configPatches: [filterPatch(direct(), { context: 'GATEWAY' })] },
      warnings: [],
      infos: [/context GATEWAY: meshlet runs inside workloads, never as a gateway, so this patch never applies/],
    },
    {
      name: '"listener" beside "match" (as a version of Istio\'s task writes it): dropped, as Kubernetes drops it',
      spec: { configPatches: [{ ...filterPatch(direct(), { context: 'SIDECAR_INBOUND' }), listener: { filterChain: { filter: { name: 'envoy.http_connection_manager' } } } }] },
      warnings: [/spec\.configPatches\[0\]\.listener: "listener" belongs under "match"; Kubernetes drops it as an unknown field, so Istio applies this patch without it/],
    },
    {
      name: 'the deprecated HTTP connection manager name: Istio matches names exactly, so the patch never applies',
      spec: { configPatches: [filterPatch(direct(), { context: 'SIDECAR_INBOUND', listener: { filterChain: { filter: { name: 'envoy.http_connection_manager' } } } })] },
      warnings: [/filter\.name: using deprecated filter name "envoy\.http_connection_manager"; use "envoy\.filters\.network\.http_connection_manager" instead\. .*never applies/],
    },
    {
      name: 'a workload selector without labels',
      spec: { workloadSelector: {}, configPatches: [filterPatch(direct())] },
      warnings: [/spec\.workloadSelector: Envoy filter: workload selector specified without labels, will be applied to all services in namespace/],
    },
    {
      name: 'targetRefs: never a sidecar\'s',
      spec: { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'gw' }], configPatches: [filterPatch(direct())] },
      warnings: [/spec\.targetRefs: targetRefs attach an EnvoyFilter to gateways and waypoints; .*never applies it/],
    },
    {
      name: 'Envoy header formatters are sent as written',
      spec: { configPatches: [filterPatch(direct({ response_headers_to_add: [{ header: { key: 'x-from', value: '%DOWNSTREAM_REMOTE_ADDRESS%' } }] }))] },
      warnings: [/not supported by meshlet: Envoy header formatters/],
    },
  ];
  for (const c of notes) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources, issues } = validateYaml(ef(c.spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.equal(warnings.length, c.warnings.length, warnings.join('\n'));
      c.warnings.forEach((re, i) => {
        assert.match(warnings[i] as string, re);
      });
      const infos = issues.ofLevel('info').map(String);
      for (const re of c.infos ?? []) assert.ok(infos.some((i) => re.test(i)), infos.join('\n'));
    });
  }
});

describe('EnvoyFilter: any other EnvoyFilter is skipped whole, with one warning and never an error', () => {
  const rows: { name: string; spec: object; want: RegExp }[] = [
    {
      name: 'Istio\'s global rate limit task (a ratelimit filter and its cluster)',
      spec: {
        configPatches: [
          {
            applyTo: 'HTTP_FILTER',
            match: { context: 'GATEWAY', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } },
            patch: { operation: 'INSERT_BEFORE', value: { name: 'envoy.filters.http.ratelimit', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit', domain: 'ratelimit' } } },
          },
          { applyTo: 'CLUSTER', match: { cluster: { service: 'ratelimit.default.svc.cluster.local' } }, patch: { operation: 'ADD', value: { name: 'rate_limit_cluster' } } },
        ],
      },
      want: /EnvoyFilter istio-system\/rl: spec\.configPatches: skipped: meshlet applies only the local rate limit EnvoyFilter of Istio's rate-limit task; there is no Envoy to patch; configPatches\[0\] patches HTTP_FILTER INSERT_BEFORE envoy\.filters\.http\.ratelimit \(RateLimit\); configPatches\[1\] patches CLUSTER ADD rate_limit_cluster for ratelimit\.default\.svc\.cluster\.local/,
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
    { name: 'a bucket per connection', spec: { configPatches: [filterPatch(direct({ local_rate_limit_per_downstream_connection: true }))] }, want: /value\.typed_config\.local_rate_limit_per_downstream_connection uses local_rate_limit_per_downstream_connection \(a bucket per connection\), which meshlet does not implement/ },
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
    { name: 'ADD on an HTTP filter (after the router)', spec: { configPatches: [filterPatch(direct(), {}, 'ADD')] }, want: /uses operation ADD on an HTTP filter \(ADD appends the filter after the router, where Envoy never runs it\)/ },
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
