import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateYaml } from '../../../test/helpers/config.ts';
import { direct, ef, filterPatch, LRL, routePatch, TYPED_STRUCT, typedStruct } from '../../../test/helpers/envoy-filter-patches.ts';
import type { EnvoyFilterSpec } from '../types/envoy-filter.ts';
import type { RateLimitFilterPatch, RateLimitRoutePatch } from '../types/local-rate-limit.ts';
import { IssueList } from '../issues.ts';
import { fromObjects } from '../load.ts';
import { rateLimitPatches } from './envoy-filter.ts';
import { validateDocuments } from './index.ts';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/istio/ratelimit');
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
      perDownstreamConnection: false,
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
      name: 'a patch with no context: applied to inbound requests and outbound calls, as Istio applies it',
      spec: { configPatches: [filterPatch(direct(), {})] },
      warnings: [],
      infos: [/spec\.configPatches\[0\]\.match\.context: no context: Istio applies this patch to inbound and outbound traffic, and so does meshlet: to the requests its servers admit and to the calls the app makes through the mesh/],
    },
    {
      name: 'outbound patches (SIDECAR_OUTBOUND): applied, without a note',
      spec: {
        configPatches: [
          filterPatch(direct(), { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9080, name: '0.0.0.0_9080', filterChain: { transportProtocol: 'raw_buffer', filter: { name: 'envoy.filters.network.http_connection_manager' } } } }),
          routePatch({ typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': direct() } }, { context: 'SIDECAR_OUTBOUND', routeConfiguration: { name: '9080', vhost: { name: 'reviews.default.svc.cluster.local:9080', route: { name: 'default', action: 'ROUTE' } } } }),
        ],
      },
      warnings: [],
    },
    {
      name: 'an outbound patch for an inbound virtual host (as Istio\'s task page writes one): never applies, in Istio or meshlet',
      spec: {
        configPatches: [
          filterPatch({ '@type': TYPED_STRUCT, type_url: LRL, value: { stat_prefix: 'p' } }),
          routePatch({ typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': direct() } }, { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: 'inbound|http|9080', route: { action: 'ANY' } } } }),
        ],
      },
      warnings: [/spec\.configPatches\[1\]\.match\.routeConfiguration\.vhost\.name: a virtual host named "inbound\|http\|9080" exists only in SIDECAR_INBOUND route configurations \(outbound ones are named <host>:<port>, allow_any or block_all\), so this patch never applies, in Istio or in meshlet/],
    },
    {
      name: 'an outbound patch for an inbound route configuration: never applies',
      spec: { configPatches: [routePatch({ typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': direct() } }, { context: 'SIDECAR_OUTBOUND', routeConfiguration: { name: 'inbound|9080||' } })] },
      warnings: [/routeConfiguration\.name: a route configuration named "inbound\|9080\|\|" is an inbound one .*never applies/],
    },
    {
      name: 'outbound listener matches that match no outbound HTTP filter chain: a destination port, transport protocol tls, a listener name other than 0.0.0.0_<port>',
      spec: {
        configPatches: [
          filterPatch(direct(), { context: 'SIDECAR_OUTBOUND', listener: { filterChain: { destinationPort: 9080, filter: { name: 'envoy.filters.network.http_connection_manager' } } } }),
          filterPatch(direct(), { context: 'SIDECAR_OUTBOUND', listener: { filterChain: { transportProtocol: 'tls' } } }),
          filterPatch(direct(), { context: 'SIDECAR_OUTBOUND', listener: { name: 'virtualOutbound' } }),
        ],
      },
      warnings: [
        /configPatches\[0\]\.match\.listener\.filterChain\.destinationPort: outbound HTTP filter chains match no destination port .*listener\.portNumber.*never applies/,
        /configPatches\[1\]\.match\.listener\.filterChain\.transportProtocol: outbound HTTP filter chains have transport protocol "raw_buffer".*never applies/,
        /configPatches\[2\]\.match\.listener\.name: outbound HTTP listeners are named 0\.0\.0\.0_<port>; "virtualOutbound" names none/,
      ],
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
