/** The global rate limit filter and its cluster, read out of EnvoyFilters: Istio's task as written, and the errors of malformed configs. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { validateYaml } from '../../../test/helpers/config.ts';
import type { EnvoyFilterSpec } from '../types/envoy-filter.ts';
import type { RateLimitFilterPatch, RateLimitRoutePatch } from '../types/local-rate-limit.ts';
import { rateLimitPatches } from './envoy-filter.ts';

const ISTIO = readFileSync(join(import.meta.dirname, '../../../test/fixtures/ratelimit/enable_envoy_ratelimit.yaml'), 'utf8').replaceAll('{{ .RateLimitNamespace }}', 'rl').replaceAll('{{ .EchoNamespace }}', 'echo');
const RL = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit';

function ef(typedConfig: Record<string, unknown>, cluster?: Record<string, unknown>): string {
  const patches: object[] = [
    {
      applyTo: 'HTTP_FILTER',
      match: { context: 'SIDECAR_OUTBOUND', listener: { filterChain: { filter: { name: 'envoy.filters.network.http_connection_manager', subFilter: { name: 'envoy.filters.http.router' } } } } },
      patch: { operation: 'INSERT_BEFORE', value: { name: 'envoy.filters.http.ratelimit', typed_config: { '@type': RL, ...typedConfig } } },
    },
  ];
  if (cluster !== undefined) patches.push({ applyTo: 'CLUSTER', match: { context: 'SIDECAR_OUTBOUND' }, patch: { operation: 'ADD', value: cluster } });
  return stringify({ apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', metadata: { name: 'rl', namespace: 'istio-system' }, spec: { configPatches: patches } });
}

const SERVICE = { grpc_service: { envoy_grpc: { cluster_name: 'rate_limit_cluster' } }, transport_api_version: 'V3' };
const CLUSTER = { name: 'rate_limit_cluster', type: 'STRICT_DNS', load_assignment: { cluster_name: 'rate_limit_cluster', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'ratelimit.rl.svc.cluster.local', port_value: 8081 } } } }] }] } };

describe('EnvoyFilter: the global rate limit filter and its cluster', () => {
  it("Istio's enable_envoy_ratelimit.yaml validates with no error, read with Envoy's defaults", () => {
    const { resources, errors, warnings } = validateYaml(ISTIO, 'enable_envoy_ratelimit.yaml');
    assert.deepEqual(errors, []);
    // The one warning is about Istio's own VIRTUAL_HOST patch (its route match does nothing there).
    assert.deepEqual(warnings.map((w) => w.replace(/ \(line \d+\)$/, '')), ['enable_envoy_ratelimit.yaml: EnvoyFilter istio-system/filter-ratelimit-svc: spec.configPatches[0].match.routeConfiguration.vhost.route: a route match has no effect on a VIRTUAL_HOST patch (Istio matches the virtual host only)']);
    assert.equal(resources.length, 2);
    const [filter] = rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec) as [RateLimitFilterPatch];
    assert.deepEqual(filter.global, {
      domain: 'echo-ratelimit',
      stage: 0,
      requestType: 'both',
      timeoutMs: 10_000,
      failureModeDeny: true,
      rateLimitedAsResourceExhausted: false,
      clusterName: 'rate_limit_cluster',
      target: 'ratelimit.rl.svc.cluster.local:8081',
      xRateLimitHeaders: false,
      disableXEnvoyRateLimitedHeader: false,
      rateLimitedStatus: 429,
      responseHeadersToAdd: [],
      statusOnError: 500,
      rateLimits: [],
      filterEnabled: undefined,
      filterEnforced: undefined,
      failureModeDenyPercent: undefined,
    });
    const [vhost] = rateLimitPatches(resources[1]?.spec as EnvoyFilterSpec) as [RateLimitRoutePatch];
    assert.deepEqual(vhost.rateLimits, [{ stage: 0, disableKey: '', actions: [{ type: 'request_headers', headerName: ':path', descriptorKey: 'PATH', skipIfAbsent: false }] }]);
  });

  it('an Istio cluster name is the host and port the service is called at; the default timeout is 20ms', () => {
    const { resources, errors } = validateYaml(ef({ domain: 'd', rate_limit_service: { grpc_service: { envoy_grpc: { cluster_name: 'outbound|8081||ratelimit.rl.svc.cluster.local' } }, transport_api_version: 'V3' } }));
    assert.deepEqual(errors, []);
    const [filter] = rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec) as [RateLimitFilterPatch];
    assert.equal(filter.global?.target, 'ratelimit.rl.svc.cluster.local:8081');
    assert.equal(filter.global?.timeoutMs, 20);
  });

  it('filter_enabled, filter_enforced and failure_mode_deny_percent are read (their default_value: meshlet has no runtime), not skipped', () => {
    const pct = (numerator: number, denominator: string) => ({ default_value: { numerator, denominator }, runtime_key: 'ratelimit.k' });
    const { resources, errors, warnings } = validateYaml(ef({ domain: 'd', rate_limit_service: SERVICE, filter_enabled: pct(50, 'HUNDRED'), filter_enforced: pct(25, 'TEN_THOUSAND'), failure_mode_deny_percent: { default_value: {} } }, CLUSTER));
    assert.deepEqual([...errors, ...warnings], []);
    const [filter] = rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec) as [RateLimitFilterPatch];
    assert.deepEqual(filter.global?.filterEnabled, { numerator: 50, denominator: 100 });
    assert.deepEqual(filter.global?.filterEnforced, { numerator: 25, denominator: 10_000 });
    assert.deepEqual(filter.global?.failureModeDenyPercent, { numerator: 0, denominator: 100 });
  });

  const bad: { name: string; yaml: string; want: RegExp }[] = [
    { name: 'a fraction without default_value', yaml: ef({ domain: 'd', rate_limit_service: SERVICE, filter_enabled: { runtime_key: 'k' } }, CLUSTER), want: /typed_config\.filter_enabled\.default_value: is required \(line \d+\)/ },
    { name: 'an unknown denominator', yaml: ef({ domain: 'd', rate_limit_service: SERVICE, filter_enforced: { default_value: { numerator: 1, denominator: 'THOUSAND' } } }, CLUSTER), want: /typed_config\.filter_enforced\.default_value\.denominator: / },
    { name: 'no domain', yaml: ef({ rate_limit_service: SERVICE }, CLUSTER), want: /configPatches\[0\]\.patch\.value\.typed_config\.domain: is required \(line \d+\)/ },
    { name: 'no rate_limit_service', yaml: ef({ domain: 'd' }, CLUSTER), want: /typed_config\.rate_limit_service: is required/ },
    { name: 'stage above 10', yaml: ef({ domain: 'd', stage: 11, rate_limit_service: SERVICE }, CLUSTER), want: /typed_config\.stage: must be <= 10, got 11/ },
    { name: 'an unknown request_type', yaml: ef({ domain: 'd', request_type: 'all', rate_limit_service: SERVICE }, CLUSTER), want: /typed_config\.request_type: must be internal, external or both, got "all"/ },
    { name: 'the v2 API', yaml: ef({ domain: 'd', rate_limit_service: { ...SERVICE, transport_api_version: 'V2' } }, CLUSTER), want: /transport_api_version: must be V3/ },
    { name: 'a misspelt field', yaml: ef({ domian: 'd', rate_limit_service: SERVICE }, CLUSTER), want: /typed_config\.domian/ },
    { name: 'a cluster without endpoints', yaml: ef({ domain: 'd', rate_limit_service: SERVICE }, { name: 'rate_limit_cluster', type: 'STRICT_DNS' }), want: /configPatches\[1\]\.patch\.value\.load_assignment: is required/ },
    {
      name: 'a cluster endpoint without a port',
      yaml: ef({ domain: 'd', rate_limit_service: SERVICE }, { ...CLUSTER, load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'ratelimit' } } } }] }] } }),
      want: /socket_address\.port_value: is required/,
    },
  ];
  for (const b of bad) {
    it(`refuses ${b.name}, naming the field and its line`, () => {
      const { errors } = validateYaml(b.yaml);
      assert.ok(errors.some((e) => b.want.test(e)), errors.join('\n'));
    });
  }

  it('skips (a warning, not an error) a filter calling a cluster meshlet cannot find, and a TLS cluster', () => {
    const missing = validateYaml(ef({ domain: 'd', rate_limit_service: SERVICE }));
    assert.deepEqual(missing.errors, []);
    assert.match(missing.warnings.join('\n'), /skipped: .*cluster_name uses a rate limit service cluster "rate_limit_cluster" that meshlet cannot find/);
    const tls = validateYaml(ef({ domain: 'd', rate_limit_service: SERVICE }, { ...CLUSTER, transport_socket: { name: 'envoy.transport_sockets.tls' } }));
    assert.match(tls.warnings.join('\n'), /transport_socket uses a transport socket \(TLS\) on the rate limit service cluster/);
  });

  describe('a route rate limit\'s hits_addend', () => {
    const vh = (hits: unknown) =>
      stringify({
        apiVersion: 'networking.istio.io/v1alpha3',
        kind: 'EnvoyFilter',
        metadata: { name: 'vh', namespace: 'istio-system' },
        spec: { configPatches: [{ applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_OUTBOUND' }, patch: { operation: 'MERGE', value: { rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'g' } }], hits_addend: hits }] } } }] },
      });
    const read = (hits: unknown) => {
      const r = validateYaml(vh(hits));
      const [patch] = r.resources.length === 0 ? [] : (rateLimitPatches(r.resources[0]?.spec as EnvoyFilterSpec) as RateLimitRoutePatch[]);
      return { ...r, hits: patch?.rateLimits[0]?.hitsAddend };
    };

    it('a number, and a %REQ(header?alt):max% format, are read', () => {
      assert.deepEqual(read({ number: 7 }).hits, { number: 7 });
      const f = read({ format: '%REQ(X-Hits?alt):3%' });
      assert.deepEqual([...f.errors, ...f.warnings], []);
      assert.deepEqual(f.hits, { header: 'x-hits', altHeader: 'alt', maxLength: 3 });
      assert.deepEqual(read({ format: '%REQUEST_HEADER(x-h)%' }).hits, { header: 'x-h' });
    });

    const refused: [string, unknown, RegExp][] = [
      ['a number above 1e9', { number: 1_000_000_001 }, /rate_limits\[0\]\.hits_addend\.number: must be <= 1000000000, got 1000000001 \(line \d+\)/],
      ['both number and format', { number: 1, format: '%REQ(x)%' }, /hits_addend: sets both number and format/],
      ['a format that is not one field', { format: 'n=%REQ(x)%' }, /hits_addend\.format: "n=%REQ\(x\)%" must be exactly one substitution field/],
      ['REQ without a header', { format: '%REQ%' }, /hits_addend\.format: REQ needs a header name/],
    ];
    for (const [name, hits, want] of refused) {
      it(`refuses ${name}, naming the field`, () => {
        const { errors } = validateYaml(vh(hits));
        assert.ok(errors.some((e) => want.test(e)), errors.join('\n'));
      });
    }

    it('skips, with a warning naming it, a format field other than a request header', () => {
      const { errors, warnings } = validateYaml(vh({ format: '%BYTES_RECEIVED%' }));
      assert.deepEqual(errors, []);
      assert.match(warnings.join('\n'), /skipped: .*hits_addend\.format uses the hits_addend format %BYTES_RECEIVED%/);
    });
  });

  describe('RateLimitPerRoute in typed_per_filter_config', () => {
    const PR = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute';
    const route = (config: Record<string, unknown>) =>
      stringify({
        apiVersion: 'networking.istio.io/v1alpha3',
        kind: 'EnvoyFilter',
        metadata: { name: 'pr', namespace: 'istio-system' },
        spec: { configPatches: [{ applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_OUTBOUND' }, patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.ratelimit': { '@type': PR, ...config } } } } }] },
      });

    it('is read (vh_rate_limits, rate_limits, domain), beside the local filter configs', () => {
      const { resources, errors, warnings } = validateYaml(route({ vh_rate_limits: 'INCLUDE', rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'g' } }] }], domain: 'd2' }));
      assert.deepEqual([...errors, ...warnings], []);
      const [patch] = rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec) as [RateLimitRoutePatch];
      assert.deepEqual(patch.perFilterConfig.size, 0);
      assert.deepEqual(patch.perRouteGlobal.get('envoy.filters.http.ratelimit'), { vhRateLimits: 'INCLUDE', rateLimits: [{ stage: 0, disableKey: '', actions: [{ type: 'generic_key', descriptorKey: 'generic_key', descriptorValue: 'g' }] }], domain: 'd2' });
    });

    it('refuses a vh_rate_limits Envoy does not know and a misspelt field, naming them', () => {
      assert.match(validateYaml(route({ vh_rate_limits: 'ALL' })).errors.join('\n'), /typed_per_filter_config\["envoy\.filters\.http\.ratelimit"\]\.vh_rate_limits: .*ALL.* \(line \d+\)/);
      assert.match(validateYaml(route({ domian: 'x' })).errors.join('\n'), /\.domian/);
    });

    it("refuses stage and disable_key on its rate_limits, as Envoy's RateLimitPolicy does (\"'stage' field and 'disable_key' field are not supported\")", () => {
      const actions = [{ generic_key: { descriptor_value: 'g' } }];
      assert.match(validateYaml(route({ rate_limits: [{ stage: 0, actions }] })).errors.join('\n'), /rate_limits\[0\]\.stage: is not supported in a RateLimitPerRoute's rate_limits/);
      assert.match(validateYaml(route({ rate_limits: [{ disable_key: 'k', actions }] })).errors.join('\n'), /rate_limits\[0\]\.disable_key: is not supported/);
    });

    it('warns that override_option has no effect (Envoy does not implement it)', () => {
      const { errors, warnings } = validateYaml(route({ override_option: 'INCLUDE_POLICY' }));
      assert.deepEqual(errors, []);
      assert.match(warnings.join('\n'), /override_option: has no effect: Envoy does not implement override_option/);
    });
  });

  it('the example of docs/rate-limiting.md validates with no error or warning', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../../docs/rate-limiting.md'), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('## Global rate limiting')))?.[1];
    assert.ok(yaml !== undefined, 'the example');
    const { resources, errors, warnings } = validateYaml(yaml);
    assert.deepEqual([...errors, ...warnings], []);
    const [filter] = rateLimitPatches(resources[0]?.spec as EnvoyFilterSpec) as [RateLimitFilterPatch];
    assert.equal(filter.global?.target, 'ratelimit.default.svc.cluster.local:8081');
  });
});
