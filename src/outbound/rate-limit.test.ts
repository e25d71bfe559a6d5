import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateYaml } from '../../test/helpers/config.ts';
import { ManualClock, type Random } from '../core/clock.ts';
import { Exchange, type Headers } from '../core/exchange.ts';
import type { AnyResource } from '../config/resource.ts';
import type { ListenerMatch, RouteConfigurationMatch } from '../config/types/envoy-filter.ts';
import { compileSnapshot, type Snapshot, type UnknownHostPolicy } from '../routing/compile.ts';
import { compileOutboundRateLimits, MAX_SITES, type OutboundRateLimits } from './rate-limit.ts';
import { type OutboundRouteSite, outboundListenerFits, outboundRouteFits } from './rate-limit-sites.ts';

const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const HCM = 'envoy.filters.network.http_connection_manager';
const REVIEWS = 'reviews.default.svc.cluster.local';

describe('outbound rate limits: which HTTP_FILTER patches an outbound listener takes (istiod listenerMatch / filterChainMatch on 0.0.0.0_<port>, filter chain raw_buffer + HTTP ALPNs)', () => {
  const rows: [string, ListenerMatch | undefined, number, boolean][] = [
    ['no listener match: every outbound HTTP listener', undefined, 9080, true],
    ['portNumber: the destination port', { portNumber: 9080 }, 9080, true],
    ['portNumber: another port', { portNumber: 9080 }, 9081, false],
    ['name 0.0.0.0_<port>', { name: '0.0.0.0_9080' }, 9080, true],
    ['name of another port', { name: '0.0.0.0_9081' }, 9080, false],
    ['name virtualOutbound (no HTTP connection manager there)', { name: 'virtualOutbound' }, 9080, false],
    ['name virtualInbound', { name: 'virtualInbound' }, 9080, false],
    ['filter: the HTTP connection manager', { filterChain: { filter: { name: HCM } } }, 9080, true],
    ['filter: another network filter', { filterChain: { filter: { name: 'envoy.filters.network.tcp_proxy' } } }, 9080, false],
    ['transportProtocol raw_buffer (the HTTP chain)', { filterChain: { transportProtocol: 'raw_buffer' } }, 9080, true],
    ['transportProtocol tls (the TCP chain)', { filterChain: { transportProtocol: 'tls' } }, 9080, false],
    ['filterChain.destinationPort: outbound HTTP chains have none', { filterChain: { destinationPort: 9080 } }, 9080, false],
    ['a sub-filter match does not narrow the listener', { portNumber: 9080, filterChain: { filter: { name: HCM, subFilter: { name: 'envoy.filters.http.router' } } } }, 9080, true],
  ];
  for (const [name, m, port, want] of rows) {
    it(`${name}: ${want ? 'fits' : 'does not fit'}`, () => assert.equal(outboundListenerFits(m, port), want));
  }
});

describe('outbound rate limits: which route patches a call’s route takes (istiod routeConfigurationMatch, virtualHostMatch, routeMatch on outbound route configurations)', () => {
  const reviews: OutboundRouteSite = { port: 9080, vhost: `${REVIEWS}:9080`, domains: [REVIEWS, `${REVIEWS}.`, 'reviews', 'reviews.default.svc', 'reviews.default'], route: 'r1', action: 'ROUTE', cluster: `outbound|9080||${REVIEWS}` };
  const named = { ...reviews, route: 'r2.m2' };
  const redirect = { ...reviews, route: 'moved', action: 'REDIRECT' as const, cluster: undefined };
  const allowAny: OutboundRouteSite = { port: 9080, vhost: 'allow_any', domains: ['*'], route: 'allow_any', action: 'ROUTE', cluster: 'PassthroughCluster' };
  const blockAll: OutboundRouteSite = { port: 9080, vhost: 'block_all', domains: ['*'], route: 'block_all', action: 'DIRECT_RESPONSE', cluster: undefined };
  const noRoute = { ...reviews, route: undefined };
  const rows: [string, RouteConfigurationMatch | undefined, OutboundRouteSite, 'HTTP_ROUTE' | 'VIRTUAL_HOST', boolean][] = [
    ['no match: every route', undefined, reviews, 'HTTP_ROUTE', true],
    ['route configuration named after the port', { name: '9080' }, reviews, 'HTTP_ROUTE', true],
    ['route configuration of another port', { name: '9081' }, reviews, 'HTTP_ROUTE', false],
    ['an inbound route configuration name', { name: 'inbound|9080||' }, reviews, 'HTTP_ROUTE', false],
    ['portNumber: the port of the route configuration', { portNumber: 9080 }, reviews, 'VIRTUAL_HOST', true],
    ['portNumber: another', { portNumber: 80 }, reviews, 'VIRTUAL_HOST', false],
    ['virtual host <host>:<port>', { vhost: { name: `${REVIEWS}:9080` } }, reviews, 'VIRTUAL_HOST', true],
    ['virtual host without the port', { vhost: { name: REVIEWS } }, reviews, 'VIRTUAL_HOST', false],
    ['virtual host inbound|http|9080 (Istio’s task page)', { vhost: { name: 'inbound|http|9080' } }, reviews, 'VIRTUAL_HOST', false],
    ['domainName: one of the virtual host’s domains', { vhost: { domainName: 'reviews' } }, reviews, 'VIRTUAL_HOST', true],
    ['domainName: not one of them', { vhost: { domainName: 'ratings' } }, reviews, 'VIRTUAL_HOST', false],
    ['virtual host allow_any', { vhost: { name: 'allow_any' } }, allowAny, 'VIRTUAL_HOST', true],
    ['domainName * (allow_any’s)', { vhost: { domainName: '*' } }, allowAny, 'VIRTUAL_HOST', true],
    ['virtual host allow_any, for a mesh service', { vhost: { name: 'allow_any' } }, reviews, 'VIRTUAL_HOST', false],
    ['virtual host block_all', { vhost: { name: 'block_all', route: { name: 'block_all', action: 'DIRECT_RESPONSE' } } }, blockAll, 'HTTP_ROUTE', true],
    ['route allow_any, action ROUTE', { vhost: { route: { name: 'allow_any', action: 'ROUTE' } } }, allowAny, 'HTTP_ROUTE', true],
    ['route named after the rule', { vhost: { route: { name: 'r1' } } }, reviews, 'HTTP_ROUTE', true],
    ['route named after another rule', { vhost: { route: { name: 'r2' } } }, reviews, 'HTTP_ROUTE', false],
    ['route <rule>.<match> of a named match block', { vhost: { route: { name: 'r2.m2' } } }, named, 'HTTP_ROUTE', true],
    ['the rule name alone, for a named match block', { vhost: { route: { name: 'r2' } } }, named, 'HTTP_ROUTE', false],
    ['action ROUTE on a forwarding route', { vhost: { route: { action: 'ROUTE' } } }, reviews, 'HTTP_ROUTE', true],
    ['action REDIRECT on a forwarding route', { vhost: { route: { action: 'REDIRECT' } } }, reviews, 'HTTP_ROUTE', false],
    ['action REDIRECT on a redirect', { vhost: { route: { action: 'REDIRECT' } } }, redirect, 'HTTP_ROUTE', true],
    ['action ANY', { vhost: { route: { action: 'ANY' } } }, redirect, 'HTTP_ROUTE', true],
    ['a route match on a VIRTUAL_HOST patch is not read', { vhost: { name: `${REVIEWS}:9080`, route: { name: 'other' } } }, reviews, 'VIRTUAL_HOST', true],
    ['no route matched (404 NR): no per-route config at all', undefined, noRoute, 'HTTP_ROUTE', false],
    ['no route matched: nor per-virtual-host config', { vhost: { name: `${REVIEWS}:9080` } }, noRoute, 'VIRTUAL_HOST', false],
  ];
  for (const [name, m, site, applyTo, want] of rows) {
    it(`${applyTo} ${name}: ${want ? 'fits' : 'does not fit'}`, () => assert.equal(outboundRouteFits(m, site, applyTo), want));
  }
});

/** Validated resources of YAML text (must be valid). */
function load(yaml: string): AnyResource[] {
  const { resources, errors } = validateYaml(yaml);
  assert.deepEqual(errors, []);
  return resources;
}

const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [${REVIEWS}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9081, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: moved
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new}
  - match: [{uri: {prefix: /unnamed}}]
    route: [{destination: {host: reviews}}]
  - name: r2
    match: [{name: a, uri: {prefix: /a}}, {name: b, uri: {prefix: /b}}, {uri: {prefix: /c}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: r3
    match: [{name: only, uri: {prefix: /only}}]
    route: [{destination: {host: reviews}}]
`;

/** An EnvoyFilter of the root namespace with these patches (as JSON). */
function ef(patches: object[], name = 'out'): string {
  return `---\napiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: ${name}, namespace: istio-system}\nspec: ${JSON.stringify({ configPatches: patches })}\n`;
}
const pct = (numerator: number) => ({ runtime_key: 'k', default_value: { numerator, denominator: 'HUNDRED' } });
const bucket = (max: number, interval: string) => ({ token_bucket: { max_tokens: max, tokens_per_fill: max, fill_interval: interval } });
const filter = (config: object, match: object = { context: 'SIDECAR_OUTBOUND' }) => ({
  applyTo: 'HTTP_FILTER',
  match,
  patch: { operation: 'INSERT_BEFORE', value: { name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': LRL, stat_prefix: 'p', ...config } } },
});
const on = (max: number, interval = '60s', over: object = {}) => ({ ...bucket(max, interval), filter_enabled: pct(100), filter_enforced: pct(100), ...over });

const ALLOW_ANY: UnknownHostPolicy = { mode: 'ALLOW_ANY', egressProxy: undefined, source: '' };
const REGISTRY_ONLY: UnknownHostPolicy = { mode: 'REGISTRY_ONLY', egressProxy: undefined, source: '' };

function snapshotOf(yaml: string): Snapshot {
  return compileSnapshot(load(yaml), { service: 'productpage', namespace: 'default', labels: { app: 'productpage' } });
}

function limitsOf(snap: Snapshot, clock: ManualClock, previous?: OutboundRateLimits, random?: Random): OutboundRateLimits {
  const l = compileOutboundRateLimits(snap, { clock, random: random ?? { next: () => 0 }, sourceIp: '10.9.9.9', rootNamespace: 'istio-system', previous });
  assert.ok(l !== undefined, 'outbound limits');
  return l;
}

function exchange(url: string, headers: Record<string, string> = {}): Exchange {
  const u = new URL(url);
  const h = Object.assign(Object.create(null) as Headers, headers);
  return new Exchange({}, 'respond', 0, 'GET', u.protocol.slice(0, -1), u.host, `${u.pathname}${u.search}`, h, undefined, undefined);
}

/** The site a call to `url` has, as the route layer decides it. */
function siteOf(limits: OutboundRateLimits, snap: Snapshot, url: string, policy = ALLOW_ANY): OutboundRouteSite {
  const ex = exchange(url);
  return limits.routeSite(ex, snap.routes, snap.routes.route(ex, 0), () => policy);
}

/** Runs calls to `urls` through the limits' check: 'a' let through, 'r' refused. */
function outcomes(limits: OutboundRateLimits, snap: Snapshot, urls: readonly string[], policy = ALLOW_ANY): string {
  return urls
    .map((url) => {
      const ex = exchange(url);
      return limits.check(ex, snap.routes, snap.routes.route(ex, 0), () => policy) === undefined ? 'a' : 'r';
    })
    .join('');
}

describe('outbound rate limits: the names a call’s route has, as istiod names them', () => {
  const snap = snapshotOf(SERVICES + ef([filter(on(10))]));
  const limits = limitsOf(snap, new ManualClock());
  const rows: [string, string, Partial<OutboundRouteSite>, UnknownHostPolicy?][] = [
    ['a redirect rule: its name, action REDIRECT, no cluster', 'http://reviews:9080/old', { port: 9080, vhost: `${REVIEWS}:9080`, route: 'moved', action: 'REDIRECT', cluster: undefined }],
    ['an unnamed rule: the empty name', 'http://reviews:9080/unnamed', { route: '', action: 'ROUTE', cluster: `outbound|9080||${REVIEWS}` }],
    ['a named match block: <rule>.<match>', 'http://reviews:9080/b/1', { route: 'r2.b', cluster: `outbound|9080|v1|${REVIEWS}` }],
    ['an unnamed block of a named rule: the rule’s name', 'http://reviews:9080/c', { route: 'r2' }],
    ['a rule with one named block', 'http://reviews:9080/only', { route: 'r3.only' }],
    ['no rule matched (404 NR): no route', 'http://reviews:9080/none', { vhost: `${REVIEWS}:9080`, route: undefined, cluster: undefined }],
    ['a service without a VirtualService: route default', 'http://ratings:9081/', { port: 9081, vhost: 'ratings.default.svc.cluster.local:9081', route: 'default', cluster: 'outbound|9081||ratings.default.svc.cluster.local' }],
    ['a host outside the mesh, ALLOW_ANY: allow_any to PassthroughCluster, the URL’s port', 'http://example.com:8080/', { port: 8080, vhost: 'allow_any', domains: ['*'], route: 'allow_any', action: 'ROUTE', cluster: 'PassthroughCluster' }],
    ['the same over https without a port: 443', 'https://example.com/', { port: 443, vhost: 'allow_any' }],
    ['a host outside the mesh, REGISTRY_ONLY: block_all, a direct response', 'http://example.com/', { port: 80, vhost: 'block_all', route: 'block_all', action: 'DIRECT_RESPONSE', cluster: undefined }, REGISTRY_ONLY],
  ];
  for (const [name, url, want, policy] of rows) {
    it(`${name} (${url})`, () => {
      const s = siteOf(limits, snap, url, policy);
      for (const [k, v] of Object.entries(want)) assert.deepEqual(s[k as keyof OutboundRouteSite], v, k);
    });
  }
  it('the virtual host’s domains are the sidecar’s (what a domainName match reads): FQDN, FQDN with a trailing dot, short names, VIPs — never host:port', () => {
    assert.deepEqual(siteOf(limits, snap, 'http://reviews:9080/c').domains, [REVIEWS, `${REVIEWS}.`, 'reviews', 'reviews.default.svc', 'reviews.default']);
    const other = `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: shop}
spec:
  hosts: [details.shop.svc.cluster.local]
  addresses: [240.0.0.7]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: http2, protocol: HTTP}]
  endpoints: [{address: 10.0.0.3}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTP}]
`;
    const snap2 = snapshotOf(SERVICES + other + ef([filter(on(10))]));
    const limits2 = limitsOf(snap2, new ManualClock());
    // Another namespace: name.ns and name.ns.svc, not the bare name; the VIP; on both ports the same.
    const details = ['details.shop.svc.cluster.local', 'details.shop.svc.cluster.local.', 'details.shop', 'details.shop.svc', '240.0.0.7'];
    assert.deepEqual(siteOf(limits2, snap2, 'http://details.shop:9080/').domains, details);
    assert.deepEqual(siteOf(limits2, snap2, 'http://details.shop:9090/').domains, details);
    assert.deepEqual(siteOf(limits2, snap2, 'https://api.example.com/').domains, ['api.example.com', 'api.example.com.']);
  });
  it('a domainName match: the short name, the FQDN and the FQDN with a trailing dot fit; host:port never does', () => {
    const vh = (domainName: string) => ({
      applyTo: 'VIRTUAL_HOST',
      match: { context: 'SIDECAR_OUTBOUND', routeConfiguration: { vhost: { domainName } } },
      patch: { operation: 'MERGE', value: { typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': { '@type': LRL, stat_prefix: 'v', ...on(1) } } } },
    });
    for (const [d, want] of [['reviews', 'ar'], [REVIEWS, 'ar'], [`${REVIEWS}.`, 'ar'], ['reviews:9080', 'aa'], [`${REVIEWS}:9080`, 'aa']] as const) {
      const snap2 = snapshotOf(SERVICES + ef([filter({}), vh(d)]));
      assert.equal(outcomes(limitsOf(snap2, new ManualClock()), snap2, ['http://reviews:9080/c', 'http://reviews:9080/c']), want, d);
    }
  });
});

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
    const r = limits.check(ex, snap.routes, snap.routes.route(ex, 0), () => ALLOW_ANY);
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
    const refusal = limits.check(ex, snap.routes, snap.routes.route(ex, 0), () => ALLOW_ANY);
    assert.deepEqual({ status: refusal?.status, headers: { ...refusal?.headers } }, { status: 429, headers: { 'x-local-rate-limit': 'true' } });
    clock.advance(599_999);
    assert.equal(outcomes(limits, snap, ['http://srv/']), 'r');
    clock.advance(1);
    assert.equal(outcomes(limits, snap, ['http://srv/', 'http://srv/']), 'ar');
  });
});
