import type { RateLimitRefusal } from '../policies/rate-limit/run-filters.ts';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ALLOW_ANY, bucket, ef, exchange, filter, HCM, limitsOf, load, LRL, on, outcomes, pct, REGISTRY_ONLY, REVIEWS, SERVICES, siteOf, snapshotOf } from '../../test/helpers/outbound-rate-limit.ts';
import { validateYaml } from '../../test/helpers/config.ts';
import { ManualClock, } from '../core/clock.ts';
import { compileSnapshot, } from '../routing/compile.ts';
import { compileOutboundRateLimits, MAX_SITES, } from './rate-limit.ts';

describe('outbound rate limits: buckets on the mesh clock', () => {
  it('1 token per 600s, a bucket per outbound listener: drained at t, refused at t + 599 999 ms, let through at t + 600 000 ms', () => {
    const clock = new ManualClock(5_000);
    const snap = snapshotOf(SERVICES + ef([filter(on(1, '600s'))]));
    const limits = limitsOf(snap, clock);
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/c', 'http://reviews:9080/c', 'http://ratings:9081/', 'http://ratings:9081/']), 'arar');
    clock.advance(599_999);
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/c']), 'r');
    clock.advance(1);
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/c', 'http://reviews:9080/c']), 'ar');
  });

  it('a listener match on portNumber limits that port only; a filter enabled for 0 % limits nothing (and builds nothing)', () => {
    const clock = new ManualClock();
    const snap = snapshotOf(SERVICES + ef([filter(on(1), { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9081 } })]));
    const limits = limitsOf(snap, clock);
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/c', 'http://reviews:9080/c', 'http://ratings:9081/', 'http://ratings:9081/']), 'aaar');
    const off = snapshotOf(SERVICES + ef([filter({ ...bucket(1, '60s'), filter_enforced: pct(100) })]));
    assert.equal(compileOutboundRateLimits(off, { clock, random: { next: () => 0 }, sourceIp: '', rootNamespace: 'istio-system' }), undefined);
  });

  it('SIDECAR_INBOUND patches never limit calls; context-less ones do', () => {
    const clock = new ManualClock();
    const inbound = snapshotOf(SERVICES + ef([filter(on(1), { context: 'SIDECAR_INBOUND' })]));
    assert.equal(compileOutboundRateLimits(inbound, { clock, random: { next: () => 0 }, sourceIp: '', rootNamespace: 'istio-system' }), undefined);
    const any = snapshotOf(SERVICES + ef([filter(on(1), {})]));
    assert.equal(outcomes(limitsOf(any, clock), any, ['http://reviews:9080/c', 'http://reviews:9080/c']), 'ar');
  });

  it('route and virtual host buckets: the most specific config wins, each with buckets of its own', () => {
    const perFilter = (max: number) => ({ 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'p', ...on(max) } });
    const patches = [
      filter({ stat_prefix: 'p' }), // enabled for 0 %: only the per-route configs limit
      { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: `${REVIEWS}:9080` } } }, patch: { operation: 'MERGE', value: { typed_per_filter_config: perFilter(3) } } },
      { applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { name: '9080', vhost: { route: { name: 'r2.a' } } } }, patch: { operation: 'MERGE', value: { typed_per_filter_config: perFilter(1) } } },
    ];
    const snap = snapshotOf(SERVICES + ef(patches));
    const limits = limitsOf(snap, new ManualClock());
    // r2.a: its own bucket of 1. The other routes of the virtual host share the virtual host's config, and its one bucket of 3 (Envoy: one config object per virtual host).
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/a', 'http://reviews:9080/a']), 'ar');
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/b', 'http://reviews:9080/c', 'http://reviews:9080/unnamed', 'http://reviews:9080/b', 'http://reviews:9080/old']), 'aaarr');
    assert.equal(outcomes(limits, snap, ['http://ratings:9081/', 'http://ratings:9081/', 'http://reviews:9080/none']), 'aaa', 'other virtual hosts, and calls with no route, take no per-route config');
  });

  it('a route patch without a route name: every route of the virtual host its own bucket, unnamed rules too (Envoy has a route per rule)', () => {
    const perFilter = { 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'p', ...on(1) } };
    const vs = `---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings, namespace: default}\nspec: {hosts: [ratings], http: [{match: [{uri: {prefix: /x}}], route: [{destination: {host: ratings}}]}, {match: [{uri: {prefix: /y}}], route: [{destination: {host: ratings}}]}]}\n`;
    const patch = { applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { name: 'ratings.default.svc.cluster.local:9081', route: { action: 'ROUTE' } } } }, patch: { operation: 'MERGE', value: { typed_per_filter_config: perFilter } } };
    const snap = snapshotOf(SERVICES + vs + ef([filter({ stat_prefix: 'p' }), patch]));
    const limits = limitsOf(snap, new ManualClock());
    assert.equal(outcomes(limits, snap, ['http://ratings:9081/x', 'http://ratings:9081/x', 'http://ratings:9081/y', 'http://ratings:9081/y', 'http://ratings:9081/z']), 'arara', '/z matches no rule: no route, no per-route config');
  });

  it('across config reloads: kept when the settings are unchanged, new and full when they change', () => {
    const clock = new ManualClock();
    const one = SERVICES + ef([filter(on(1, '600s'))]);
    const snap1 = snapshotOf(one);
    const l1 = limitsOf(snap1, clock);
    assert.equal(outcomes(l1, snap1, ['http://reviews:9080/c', 'http://reviews:9080/c']), 'ar');
    const snap2 = snapshotOf(`${one}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings, namespace: default}\nspec: {hosts: [ratings], http: [{route: [{destination: {host: ratings}}], timeout: 3s}]}\n`);
    const l2 = limitsOf(snap2, clock, l1);
    assert.equal(outcomes(l2, snap2, ['http://reviews:9080/c']), 'r', 'the drained bucket is kept');
    const snap3 = snapshotOf(SERVICES + ef([filter(on(2, '600s'))]));
    const l3 = limitsOf(snap3, clock, l2);
    assert.equal(outcomes(l3, snap3, ['http://reviews:9080/c', 'http://reviews:9080/c', 'http://reviews:9080/c']), 'aar', 'a changed bucket starts full');
  });

  it('across config reloads: only the routes the new config still has keep their buckets; what is carried over stays bounded', () => {
    const clock = new ManualClock();
    const route = { applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_OUTBOUND' }, patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'v', ...on(1, '600s') } } } } };
    const yaml = SERVICES + ef([filter({}), route]);
    let limits = limitsOf(snapshotOf(yaml), clock);
    for (let gen = 0; gen < 30; gen++) {
      const snap = snapshotOf(yaml);
      limits = limitsOf(snap, clock, limits);
      // A route of this generation only (a rule renamed or moved).
      limits.filtersFor({ port: 9080, vhost: `${REVIEWS}:9080`, domains: [], route: `gone-${gen}`, routeId: `VirtualService default/reviews#9${gen}#0`, action: 'ROUTE', cluster: 'c' });
      assert.equal(outcomes(limits, snap, ['http://reviews:9080/c']), gen === 0 ? 'a' : 'r', 'a route the config still has keeps its bucket');
    }
    // This generation's two routes; the 29 gone routes of the generations before are not carried.
    assert.equal(limits.limiters.size, 2);
    assert.ok(MAX_SITES >= 1000);
  });

  it('with route patches, a call on a port no filter fits is let through without working out its route site (cached per port)', () => {
    const vh = { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_OUTBOUND' }, patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'v', ...on(1) } } } } };
    const snap = snapshotOf(SERVICES + ef([filter({}, { context: 'SIDECAR_OUTBOUND', listener: { portNumber: 9081 } }), vh]));
    const limits = limitsOf(snap, new ManualClock());
    let sites = 0;
    const routeSite = limits.routeSite.bind(limits);
    limits.routeSite = (...a) => {
      sites++;
      return routeSite(...a);
    };
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/c', 'http://reviews:9080/c', 'http://reviews:9080/c']), 'aaa');
    assert.equal(sites, 0);
    assert.equal(outcomes(limits, snap, ['http://ratings:9081/', 'http://ratings:9081/']), 'ar');
    assert.ok(sites > 0);
  });

  it('shadow mode adds its request headers to the call; x-ratelimit-* headers go on the response', () => {
    const config = on(1, '60s', { filter_enforced: pct(0), enable_x_ratelimit_headers: 'DRAFT_VERSION_03', request_headers_to_add_when_not_enforced: [{ header: { key: 'x-shadow', value: 'limited' } }] });
    const snap = snapshotOf(SERVICES + ef([filter(config)]));
    const limits = limitsOf(snap, new ManualClock());
    const first = exchange('http://reviews:9080/c');
    assert.equal(limits.check(first, snap.routes, snap.routes.route(first, 0), () => ALLOW_ANY), undefined);
    assert.equal(first.headers['x-shadow'], undefined);
    assert.deepEqual(first.responseOps, [{ set: [['x-ratelimit-limit', '1'], ['x-ratelimit-remaining', '0'], ['x-ratelimit-reset', '60']], add: [], remove: [] }]);
    const second = exchange('http://reviews:9080/c');
    assert.equal(limits.check(second, snap.routes, snap.routes.route(second, 0), () => ALLOW_ANY), undefined);
    assert.equal(second.headers['x-shadow'], 'limited');
    assert.deepEqual(limits.stats.get('p'), { enabled: 2, ok: 1, rate_limited: 1, enforced: 0 });
  });

  it('a refusal: 429 (or the configured status) with the gRPC status Envoy gives and the response headers to add', () => {
    const config = on(1, '60s', { status: { code: 'ServiceUnavailable' }, response_headers_to_add: [{ header: { key: 'x-rl', value: 'yes' } }] });
    const snap = snapshotOf(SERVICES + ef([filter(config)]));
    const limits = limitsOf(snap, new ManualClock());
    outcomes(limits, snap, ['http://reviews:9080/c']);
    const ex = exchange('http://reviews:9080/c');
    const r = limits.check(ex, snap.routes, snap.routes.route(ex, 0), () => ALLOW_ANY) as RateLimitRefusal | undefined;
    assert.equal(r?.status, 503);
    assert.equal(r?.grpcStatus, 14);
    assert.deepEqual({ ...r?.headers }, { 'x-rl': 'yes' });
    assert.match(r?.reason ?? '', /^local rate limit: envoy\.filters\.http\.local_ratelimit from EnvoyFilter istio-system\/out configPatches\[0\] \(bucket 1 max, 1 per 60000ms\)$/);
  });

  it('descriptors read the client side: remote_address is the workload, destination_cluster the route’s cluster, none for a redirect', () => {
    const config = on(100, '60s', {
      descriptors: [
        { entries: [{ key: 'remote_address', value: '10.9.9.9' }, { key: 'destination_cluster', value: `outbound|9080|v1|${REVIEWS}` }], ...bucket(1, '60s') },
        { entries: [{ key: 'remote_address', value: '10.9.9.9' }], ...bucket(3, '60s') },
      ],
      rate_limits: [{ actions: [{ remote_address: {} }, { destination_cluster: {} }] }, { actions: [{ remote_address: {} }] }],
    });
    const snap = snapshotOf(SERVICES + ef([filter(config)]));
    const limits = limitsOf(snap, new ManualClock());
    // /b goes to subset v1: both buckets; the redirect has no cluster: only the remote_address bucket.
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/b', 'http://reviews:9080/b', 'http://reviews:9080/old', 'http://reviews:9080/old', 'http://reviews:9080/old']), 'araar');
  });

  it('destination_cluster: a bucket per cluster (a wildcard descriptor); a route without a cluster produces no descriptor', () => {
    const config = on(100, '60s', { descriptors: [{ entries: [{ key: 'destination_cluster' }], ...bucket(1, '60s') }], rate_limits: [{ actions: [{ destination_cluster: {} }] }] });
    const snap = snapshotOf(SERVICES + ef([filter(config)]));
    const limits = limitsOf(snap, new ManualClock());
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/b', 'http://reviews:9080/b', 'http://reviews:9080/unnamed', 'http://reviews:9080/old', 'http://reviews:9080/old']), 'araaa');
  });
});

describe('outbound rate limits: Istio’s outbound HTTP filter chain', () => {
  const at = (subFilter: string, name: string, operation = 'INSERT_BEFORE') => ({
    ...filter(on(1), { context: 'SIDECAR_OUTBOUND', listener: { filterChain: { filter: { name: HCM, subFilter: { name: subFilter } } } } }),
    patch: { operation, value: { name, typed_config: { '@type': LRL, stat_prefix: 'p', ...on(1) } } },
  });
  it('has no RBAC, JWT or ext_authz filter (even when policies apply to the workload), nor stateful_session; it has istio.alpn', () => {
    const policy = '---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow, namespace: default}\nspec: {rules: [{}]}\n';
    const yaml = SERVICES + policy + ef([at('envoy.filters.http.rbac', 'a'), at('envoy.filters.http.jwt_authn', 'b'), at('envoy.filters.http.ext_authz', 'c'), at('envoy.filters.http.stateful_session', 'd'), at('istio_authn', 'e'), at('istio.alpn', 'f')]);
    const { warnings } = validateYaml(yaml);
    const said = warnings.map(String).join('\n');
    assert.match(said, /configPatches\[0\].*the outbound chain has no RBAC filter/);
    assert.match(said, /configPatches\[1\].*the outbound chain has no JWT filter/);
    assert.match(said, /configPatches\[2\].*the outbound chain has no ext_authz filter/);
    assert.match(said, /configPatches\[3\].*"envoy\.filters\.http\.stateful_session" is not a filter Istio puts in a sidecar's HTTP chain/);
    assert.match(said, /configPatches\[4\].*istio_authn is a network filter/);
    assert.doesNotMatch(said, /configPatches\[5\]/);
    const snap = snapshotOf(yaml);
    const limits = limitsOf(snap, new ManualClock());
    assert.deepEqual(limits.filtersFor(siteOf(limits, snap, 'http://reviews:9080/c')).map((f) => f.name), ['f']);
  });
});

describe('outbound rate limits: descriptors of redirects and direct responses (Envoy: no route entry)', () => {
  const perFilter = {
    'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'v', ...on(100), descriptors: [{ entries: [{ key: 'generic_key', value: 'foo' }], ...bucket(1, '60s') }] },
  };
  it('route and virtual host rate_limits build nothing for a redirect; they do for a forwarding route', () => {
    const vh = { applyTo: 'VIRTUAL_HOST', match: { context: 'SIDECAR_OUTBOUND' }, patch: { operation: 'MERGE', value: { rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'foo' } }] }], typed_per_filter_config: perFilter } } };
    const snap = snapshotOf(SERVICES + ef([filter({}), vh]));
    const limits = limitsOf(snap, new ManualClock());
    assert.equal(outcomes(limits, snap, ['http://reviews:9080/old', 'http://reviews:9080/old', 'http://reviews:9080/c', 'http://reviews:9080/c']), 'aaar');
    const rt = { applyTo: 'HTTP_ROUTE', match: { context: 'SIDECAR_OUTBOUND' }, patch: { operation: 'MERGE', value: { route: { rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'foo' } }] }] }, typed_per_filter_config: perFilter } } };
    const snap2 = snapshotOf(SERVICES + ef([filter({}), rt]));
    const limits2 = limitsOf(snap2, new ManualClock());
    assert.equal(outcomes(limits2, snap2, ['http://reviews:9080/old', 'http://reviews:9080/old', 'http://reviews:9080/c', 'http://reviews:9080/c']), 'aaar');
  });
  it('the filter’s own rate_limits still do (block_all, a direct response)', () => {
    const config = on(100, '60s', { descriptors: [{ entries: [{ key: 'generic_key', value: 'foo' }], ...bucket(1, '60s') }], rate_limits: [{ actions: [{ generic_key: { descriptor_value: 'foo' } }] }] });
    const snap = snapshotOf(SERVICES + ef([filter(config)]));
    const limits = limitsOf(snap, new ManualClock());
    assert.equal(outcomes(limits, snap, ['http://example.com/', 'http://example.com/'], REGISTRY_ONLY), 'ar');
    assert.equal(outcomes(limitsOf(snap, new ManualClock()), snap, ['http://reviews:9080/old', 'http://reviews:9080/old']), 'ar');
  });
});

describe('outbound rate limits: source_cluster is the sidecar’s service cluster (istio-agent serviceClusterOrDefault)', () => {
  const yaml = SERVICES + ef([filter(on(10), {})]);
  const rows: [string, Record<string, string>, string | undefined, string][] = [
    ['the app label, not the service', { app: 'pp-app' }, undefined, 'pp-app.default'],
    ['app.kubernetes.io/name without app', { 'app.kubernetes.io/name': 'k8s-name' }, undefined, 'k8s-name.default'],
    ['no app label: the workload name', {}, 'productpage-v1', 'productpage-v1.default'],
    ['no app label, no workload name: the service (meshlet’s default workload name)', {}, undefined, 'productpage.default'],
  ];
  for (const [name, labels, workloadName, want] of rows) {
    it(name, () => {
      const snap = compileSnapshot(load(yaml), { service: 'productpage', namespace: 'default', labels });
      const out = compileOutboundRateLimits(snap, { clock: new ManualClock(), random: { next: () => 0 }, sourceIp: '', rootNamespace: 'istio-system', ...(workloadName === undefined ? {} : { workloadName }) });
      assert.equal(out?.sourceCluster, want);
    });
  }
});

describe('outbound rate limits: the example of docs/rate-limiting.md', () => {
  it('limits calls to the external API to 100 a minute (https://, its virtual host api.payments.example:443), and nothing else on port 443', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/rate-limiting.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Outbound calls'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(yaml !== undefined, 'the example');
    const snap = compileSnapshot(load(yaml), { service: 'checkout', namespace: 'shop', labels: { app: 'checkout' } });
    const clock = new ManualClock();
    const limits = limitsOf(snap, clock);
    const api = Array.from({ length: 101 }, () => 'https://api.payments.example/v1/charges');
    assert.equal(outcomes(limits, snap, api), `${'a'.repeat(100)}r`);
    assert.equal(outcomes(limits, snap, ['https://other.example/', 'https://other.example/']), 'aa', 'allow_any on port 443: the filter’s own config, enabled for no call');
    clock.advance(600);
    assert.equal(outcomes(limits, snap, ['https://api.payments.example/', 'https://api.payments.example/']), 'ar', '100 per minute: a token every 600 ms');
    const other = compileSnapshot(load(yaml), { service: 'orders', namespace: 'shop', labels: { app: 'orders' } });
    assert.equal(compileOutboundRateLimits(other, { clock, random: { next: () => 0 }, sourceIp: '', rootNamespace: 'istio-system' }), undefined, 'the workloadSelector: not for other workloads');
  });
});

describe('outbound rate limits: Istio’s own per-route test (enable_envoy_local_ratelimit_per_route.yaml)', () => {
  it('the HTTP_ROUTE merge for SIDECAR_OUTBOUND virtual host srv.echo.svc.cluster.local:80 limits clt’s calls to srv to 1 per 600 s, with x-local-rate-limit; other services on port 80 are not limited (the filter itself is enabled for 0 %)', () => {
    const fixture = readFileSync(join(import.meta.dirname, '../../test/fixtures/istio/ratelimit/enable_envoy_local_ratelimit_per_route.yaml'), 'utf8').replaceAll('{{ .EchoNamespace }}', 'echo');
    const services = ['srv', 'other']
      .map((name, i) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: echo}
spec:
  hosts: [${name}.echo.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.1.${i + 1}}]
`)
      .join('---\n');
    const snap = compileSnapshot(load(`${services}---\n${fixture}`), { service: 'clt', namespace: 'echo', labels: { app: 'clt' } });
    const clock = new ManualClock();
    const limits = limitsOf(snap, clock);
    assert.equal(outcomes(limits, snap, ['http://srv/', 'http://srv.echo/x', 'http://other/', 'http://other/']), 'araa');
    const ex = exchange('http://srv.echo.svc.cluster.local/');
    const refusal = limits.check(ex, snap.routes, snap.routes.route(ex, 0), () => ALLOW_ANY) as RateLimitRefusal | undefined;
    assert.deepEqual({ status: refusal?.status, headers: { ...refusal?.headers } }, { status: 429, headers: { 'x-local-rate-limit': 'true' } });
    clock.advance(599_999);
    assert.equal(outcomes(limits, snap, ['http://srv/']), 'r');
    clock.advance(1);
    assert.equal(outcomes(limits, snap, ['http://srv/', 'http://srv/']), 'ar');
  });
});
