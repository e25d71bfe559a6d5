/**
 * Fixtures of the outbound local rate limit's unit tests: a mesh of services, EnvoyFilters with
 * local rate limit patches, a compiled snapshot, the limits compiled from it, and calls to check.
 */
import assert from 'node:assert/strict';
import type { ManualClock, Random } from '../../src/core/clock.ts';
import { Exchange } from '../../src/core/exchange.ts';
import type { AnyResource } from '../../src/config/resource.ts';
import { compileSnapshot, type Snapshot, type UnknownHostPolicy } from '../../src/routing/compile.ts';
import { compileOutboundRateLimits, type OutboundRateLimits } from '../../src/outbound/rate-limit.ts';
import type { OutboundRouteSite } from '../../src/outbound/rate-limit-sites.ts';
import { validateYaml } from './config.ts';

export const LRL = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
export const HCM = 'envoy.filters.network.http_connection_manager';
export const REVIEWS = 'reviews.default.svc.cluster.local';

export function load(yaml: string): AnyResource[] {
  const { resources, errors } = validateYaml(yaml);
  assert.deepEqual(errors, []);
  return resources;
}

export const SERVICES = `
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
export function ef(patches: object[], name = 'out'): string {
  return `---\napiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: ${name}, namespace: istio-system}\nspec: ${JSON.stringify({ configPatches: patches })}\n`;
}
export const pct = (numerator: number) => ({ runtime_key: 'k', default_value: { numerator, denominator: 'HUNDRED' } });
export const bucket = (max: number, interval: string) => ({ token_bucket: { max_tokens: max, tokens_per_fill: max, fill_interval: interval } });
export const filter = (config: object, match: object = { context: 'SIDECAR_OUTBOUND' }) => ({
  applyTo: 'HTTP_FILTER',
  match,
  patch: { operation: 'INSERT_BEFORE', value: { name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': LRL, stat_prefix: 'p', ...config } } },
});
export const on = (max: number, interval = '60s', over: object = {}) => ({ ...bucket(max, interval), filter_enabled: pct(100), filter_enforced: pct(100), ...over });

export const ALLOW_ANY: UnknownHostPolicy = { mode: 'ALLOW_ANY', egressProxy: undefined, source: '' };
export const REGISTRY_ONLY: UnknownHostPolicy = { mode: 'REGISTRY_ONLY', egressProxy: undefined, source: '' };

export function snapshotOf(yaml: string): Snapshot {
  return compileSnapshot(load(yaml), { service: 'productpage', namespace: 'default', labels: { app: 'productpage' } });
}

export function limitsOf(snap: Snapshot, clock: ManualClock, previous?: OutboundRateLimits, random?: Random): OutboundRateLimits {
  const l = compileOutboundRateLimits(snap, { clock, random: random ?? { next: () => 0 }, sourceIp: '10.9.9.9', rootNamespace: 'istio-system', previous });
  assert.ok(l !== undefined, 'outbound limits');
  return l;
}

export function exchange(url: string, headers: Record<string, string> = {}): Exchange {
  const u = new URL(url);
  const h = Object.assign(Object.create(null) as Headers, headers);
  return new Exchange({}, 'respond', 0, 'GET', u.protocol.slice(0, -1), u.host, `${u.pathname}${u.search}`, h, undefined, undefined);
}

/** The site a call to `url` has, as the route layer decides it. */
export function siteOf(limits: OutboundRateLimits, snap: Snapshot, url: string, policy = ALLOW_ANY): OutboundRouteSite {
  const ex = exchange(url);
  return limits.routeSite(ex, snap.routes, snap.routes.route(ex, 0), () => policy);
}

/** Runs calls to `urls` through the limits' check: 'a' let through, 'r' refused. */
export function outcomes(limits: OutboundRateLimits, snap: Snapshot, urls: readonly string[], policy = ALLOW_ANY): string {
  return urls
    .map((url) => {
      const ex = exchange(url);
      return limits.check(ex, snap.routes, snap.routes.route(ex, 0), () => policy) === undefined ? 'a' : 'r';
    })
    .join('');
}
