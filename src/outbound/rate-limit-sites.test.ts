import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ef, filter, HCM, limitsOf, LRL, on, outcomes, REGISTRY_ONLY, REVIEWS, SERVICES, siteOf, snapshotOf } from '../../test/helpers/outbound-rate-limit.ts';
import { ManualClock, } from '../core/clock.ts';
import type { ListenerMatch, RouteConfigurationMatch } from '../config/types/envoy-filter.ts';
import type { UnknownHostPolicy } from '../routing/compile.ts';
import { type OutboundRouteSite, outboundListenerFits, outboundRouteFits } from './rate-limit-sites.ts';

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

