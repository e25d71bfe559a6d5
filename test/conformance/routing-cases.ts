/**
 * Hand-written routing cases derived from Istio's routing tests and samples, each naming the
 * Istio source it comes from:
 *
 * - TestBuildHTTPRoutes (pilot/pkg/networking/core/route/route_test.go): each subtest's
 *   VirtualService fixture (read from the Go source, cases/routing-tables.ts) is placed, as is,
 *   in a mesh VirtualService for `svc.test.istio.io` — a ServiceEntry on port 8080, the listener
 *   port the subtests build routes for — next to Istio's test registry (`*.example.org`, port
 *   8080). The fixtures' gateway (`some-gateway`) is dropped: meshlet is a sidecar. Each subtest's
 *   assertions become requests and the outcome Envoy's routes give them.
 * - TestGenerateVirtualHostDomains and TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts
 *   (pilot/pkg/networking/core/httproute_test.go): routing-hosts.ts;
 * - Bookinfo (samples/bookinfo/networking): routing-bookinfo.ts.
 *
 * Copyright Istio Authors, Apache License 2.0 (the fixtures and expectations transcribed).
 */
import { routeFixtures } from './cases/routing-tables.ts';
import { bookinfoCases } from './routing-bookinfo.ts';
import { ROUTE_TEST, se } from './routing-common.ts';
import { domains, duplicates } from './routing-hosts.ts';
import type { Outcome, Request, RoutingCase } from './routing-model.ts';

/** TestBuildHTTPRoutes' registry (`*.example.org`, port 8080) and the host its fixtures are routed for here. */
const ROUTE_BASE = [
  se('example-org', 'istio-system', '*.example.org', '[{number: 8080, name: default, protocol: HTTP}]', '  resolution: NONE'),
  se('svc', 'default', 'svc.test.istio.io', '[{number: 8080, name: http, protocol: HTTP}]'),
].join('---\n');

/** A fixture of route_test.go as a mesh VirtualService for svc.test.istio.io (its own hosts and gateways left out). */
function fixtureVs(fixture: string): string {
  const f = routeFixtures[fixture];
  if (f === undefined) throw new Error(`no fixture ${fixture}`);
  const { hosts: _h, gateways: _g, ...rest } = f.spec;
  const spec = { hosts: ['svc.test.istio.io'], ...rest };
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: acme, namespace: default}
spec: ${JSON.stringify(spec)}
`;
}

const SVC = 'svc.test.istio.io:8080';

/** Cases of one TestBuildHTTPRoutes subtest: its fixture, and requests with their outcomes. */
function subtest(name: string, fixture: string, line: number, requests: readonly [string, Request, Outcome][], o: { extra?: string; fixtureOverride?: string; workload?: RoutingCase['workload'] } = {}): RoutingCase[] {
  return requests.map(([what, request, expect]) => ({
    test: 'TestBuildHTTPRoutes',
    name: `${name}: ${what}`,
    source: `${ROUTE_TEST}:${line}`,
    config: [ROUTE_BASE, o.fixtureOverride ?? fixtureVs(fixture), ...(o.extra === undefined ? [] : [o.extra])].join('---\n'),
    workload: o.workload,
    request,
    expect,
  }));
}

const REDIRECT_308 = '308 some-authority.default.svc.cluster.local' + 'example.org';

const routeTest: RoutingCase[] = [
  ...subtest('for virtual service', 'virtualServicePlain', 128, [
    ['any request, no timeout set: none', { authority: SVC, path: '/x' }, { rule: 'routeA', to: '*.example.org:8484', timeoutMs: 'none' }],
  ]),
  ...subtest('for virtual service with timeout', 'virtualServiceWithTimeout', 168, [['the 10s timeout', { authority: SVC }, { to: '*.example.org:8484', timeoutMs: 10000 }]]),
  ...subtest('for virtual service with catch all route', 'virtualServiceWithCatchAllRoute', 201, [
    ['/route/v1/x (the non-catch-all block)', { authority: SVC, path: '/route/v1/x' }, { rule: 'route', to: '*.example.org:8484' }],
    ['/other (the catch-all block)', { authority: SVC, path: '/other' }, { rule: 'route', to: '*.example.org:8484' }],
  ]),
  ...subtest('for virtual service with catch all route：port match', 'virtualServiceWithCatchAllPort', 214, [
    ['port 8080 with cookie canary: the port block is the catch-all, later rules are not built', { authority: SVC, headers: { cookie: 'canary' } }, { rule: 'route 1', to: 'example1.default.svc.cluster.local:8484' }],
  ]),
  ...subtest('for virtual service with top level catch all route', 'virtualServiceWithCatchAllRouteWeightedDestination', 276, [
    ['version: v2 from a workload without labels: the sourceLabels rule is not built, the catch-all takes it', { authority: SVC, headers: { version: 'v2' } }, { rule: '1', to: 'c-weighted.extsvc.com:8080|v1' }],
  ]),
  ...subtest('for virtual service with multi prefix catch all route', 'virtualServiceWithCatchAllMultiPrefixRoute', 288, [
    ['/a: the block left for a workload without labels', { authority: SVC, path: '/a' }, { result: 'forward', to: '*.example.org:8484' }],
    ['/b: the prefix "/" block is for other workloads (sourceLabels), so nothing matches', { authority: SVC, path: '/b' }, { result: '404 NR' }],
  ]),
  ...subtest('for virtual service with regex matching on URI', 'virtualServiceWithRegexMatchingOnURI', 300, [
    ['/a/status matches \\/(.?)\\/status', { authority: SVC, path: '/a/status' }, { redirect: REDIRECT_308 }],
    ['/ab/status does not (the regex matches the whole path)', { authority: SVC, path: '/ab/status' }, { result: '404 NR' }],
  ]),
  ...subtest('for virtual service with stat_prefix set for a match on URI', 'virtualServiceWithStatPrefix', 312, [
    ['/foo', { authority: SVC, path: '/foo' }, { rule: 'foo', to: 'foo.example.org:8484' }],
    ['/baz', { authority: SVC, path: '/baz' }, { rule: 'foo', to: 'foo.example.org:8484' }],
    ['/bar', { authority: SVC, path: '/bar' }, { rule: 'bar', to: 'bar.example.org:8484' }],
  ]),
  ...subtest('for virtual service with regex matching on header', 'virtualServiceWithRegexMatchingOnHeader', 346, [
    ['Authentication: Bearer a.b.c', { authority: SVC, headers: { authentication: 'Bearer a.b.c' } }, { redirect: REDIRECT_308 }],
    ['Authentication: Bearer abc', { authority: SVC, headers: { authentication: 'Bearer abc' } }, { result: '404 NR' }],
  ]),
  ...subtest('for virtual service with regex matching on without_header', 'virtualServiceWithRegexMatchingOnWithoutHeader', 358, [
    ['no FOO-HEADER (missing is empty, which does not match)', { authority: SVC }, { redirect: REDIRECT_308 }],
    ['FOO-HEADER: BAR a.b.c', { authority: SVC, headers: { 'foo-header': 'BAR a.b.c' } }, { result: '404 NR' }],
    ['FOO-HEADER: other', { authority: SVC, headers: { 'foo-header': 'other' } }, { redirect: REDIRECT_308 }],
  ]),
  ...subtest('for virtual service with presence matching on header', 'virtualServiceWithPresentMatchingOnHeader2', 372, [
    ['FOO-HEADER present', { authority: SVC, headers: { 'foo-header': 'anything' } }, { redirect: REDIRECT_308 }],
    ['FOO-HEADER absent', { authority: SVC }, { result: '404 NR' }],
  ]),
  ...subtest('for virtual service with presence matching on header and without_header', 'virtualServiceWithPresentMatchingOnWithoutHeader', 395, [
    ['FOO-HEADER present', { authority: SVC, headers: { 'foo-header': 'x' } }, { result: '404 NR' }],
    ['FOO-HEADER absent', { authority: SVC }, { redirect: REDIRECT_308 }],
  ], {
    // The fixture's nil StringMatch cannot be written in YAML; `{}` is what Istio treats the same (canBeConvertedToPresentMatch).
    fixtureOverride: fixtureVs('virtualServiceWithPresentMatchingOnWithoutHeader').replace('"FOO-HEADER":null', '"FOO-HEADER":{}'),
  }),
  ...subtest('for virtual service with exact matching on query parameter', 'virtualServiceWithExactMatchingOnQueryParameter', 427, [
    ['?token=foo', { authority: SVC, path: '/?token=foo' }, { redirect: REDIRECT_308 }],
    ['?token=foo-1', { authority: SVC, path: '/?token=foo-1' }, { result: '404 NR' }],
  ]),
  ...subtest('for virtual service with prefix matching on query parameter', 'virtualServiceWithPrefixMatchingOnQueryParameter', 439, [
    ['?token=foo-1', { authority: SVC, path: '/p?token=foo-1' }, { redirect: REDIRECT_308 }],
    ['?token=foo', { authority: SVC, path: '/p?token=foo' }, { result: '404 NR' }],
  ]),
  ...subtest('for virtual service with source namespace matching', 'virtualServiceMatchingOnSourceNamespace', 479, [
    ['from namespace foo', { authority: SVC }, { rule: 'foo', to: 'foo.example.org:8484' }],
  ], { workload: { namespace: 'foo' } }),
  ...subtest('for virtual service with source namespace matching', 'virtualServiceMatchingOnSourceNamespace', 479, [
    ['from namespace bar', { authority: SVC }, { rule: 'bar', to: 'bar.example.org:8484' }],
  ], { workload: { namespace: 'bar' } }),
  ...subtest('for redirect code', 'virtualServiceWithRedirect', 1208, [['a 308', { authority: SVC }, { result: 'redirect', redirect: REDIRECT_308 }]]),
  ...subtest('for host rewrite', 'virtualServiceWithRewriteHost', 1234, [['authority bar.example.org', { authority: SVC }, { to: 'foo.example.org:8080', rewrite: 'authority bar.example.org' }]]),
  ...subtest('for full path rewrite', 'virtualServiceWithRewriteFullPath', 1251, [['regex /.* → /replace-full', { authority: SVC, path: '/a/b' }, { rewrite: 'regex /.* → /replace-full' }]]),
  ...subtest('for prefix path rewrite', 'virtualServiceWithRewritePrefixPath', 1271, [['prefix /replace-prefix', { authority: SVC }, { rewrite: 'prefix /replace-prefix' }]]),
  ...subtest('for path and host rewrite', 'virtualServiceWithRewriteFullPathAndHost', 1304, [
    ['regex and authority', { authority: SVC }, { rewrite: 'regex /.* → /replace-full; authority bar.example.org' }],
  ]),
  ...subtest('for path regex match with regex rewrite', 'virtualServiceWithPathRegexMatchRegexRewrite', 1328, [
    ['/service/abc/def', { authority: SVC, path: '/service/abc/def' }, { to: 'foo.example.org:8080', rewrite: 'regex ^/service/([^/]+)(/.*)$ → \\2/instance/\\1' }],
    ['/service/abc (no second segment): no match', { authority: SVC, path: '/service/abc' }, { result: '404 NR' }],
  ]),
  ...subtest('for full path redirect', 'virtualServiceWithRedirectFullPath', 1389, [['to /replace-full-path', { authority: SVC }, { redirect: '308 some-authority.default.svc.cluster.local/replace-full-path' }]]),
  ...subtest('for prefix_rewrite redirect', 'virtualServiceWithRedirectPrefixRewrite', 1405, [['to foo.example.com, prefix /', { authority: SVC }, { redirect: '301 foo.example.com prefix /' }]]),
  ...subtest('for redirect and header manipulation', 'virtualServiceWithRedirectAndSetHeader', 1422, [
    ['a 308 that sets Strict-Transport-Security', { authority: SVC }, { redirect: REDIRECT_308, responseHeaders: 'set strict-transport-security=max-age=31536000; includeSubDomains; preload' }],
  ]),
  ...subtest('for direct response code', 'virtualServiceWithDirectResponse', 1440, [['200 hello', { authority: SVC }, { result: 'direct-response', respond: '200 hello' }]]),
  ...subtest('for direct response code and header manipulation', 'virtualServiceWithDirectResponseAndSetHeader', 1455, [
    ['200 hello that sets Strict-Transport-Security', { authority: SVC }, { respond: '200 hello', responseHeaders: 'set strict-transport-security=max-age=31536000; includeSubDomains; preload' }],
  ]),
];

/** TestBuildHTTPRoutes' wildcard subtests: services `*.example.org` and `goodbye.hello.example.org` (port 8080) and three wildcard VirtualServices. */
const WILDCARDS = [
  se('example-wildcard', 'istio-system', '*.example.org', '[{number: 8080, name: http, protocol: HTTP}]', '  resolution: NONE'),
  se('example-nested', 'istio-system', 'goodbye.hello.example.org', '[{number: 8080, name: http, protocol: HTTP}]'),
  // Istio's test builds the port-80 routes directly (BuildSidecarVirtualHostWrapper(…, 80, …)); a
  // sidecar has them only when some HTTP service has port 80 (its 0.0.0.0:80 listener), so one does here.
  se('web', 'istio-system', 'web.istio-system.svc.cluster.local', '[{number: 80, name: http, protocol: HTTP}]'),
  ...['virtualServiceWithWildcardHost', 'virtualServiceWithNestedWildcardHost', 'virtualServiceWithGoogleWildcardHost'].map((f, i) => {
    const spec = routeFixtures[f]?.spec;
    return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: wildcard-${i}, namespace: istio-system}\nspec: ${JSON.stringify(spec)}\n`;
  }),
].join('---\n');

const wildcards: RoutingCase[] = (
  [
    [1523, 'overlapping wildcard hosts: goodbye.hello.example.org gets the *.hello.example.org VirtualService', 'goodbye.hello.example.org:8080', { rule: '0', to: '*.hello.example.org:8080' }],
    [1523, 'overlapping wildcard hosts: another *.example.org host gets the *.example.org VirtualService', 'foo.example.org:8080', { rule: '0', to: '*.example.org:8080' }],
    [1612, 'wildcard hosts outside the registry (port 80): *.google.com routes to internal-google', 'www.google.com', { rule: '0', to: 'internal-google.default.svc.cluster.local:80' }],
  ] as const
).map(([line, name, authority, expect]) => ({
  test: 'TestBuildHTTPRoutes',
  name,
  source: `${ROUTE_TEST}:${line}`,
  config: WILDCARDS,
  request: { authority },
  expect,
}));

/** Every hand-written routing case. */
export const ROUTING_CASES: readonly RoutingCase[] = [...routeTest, ...wildcards, ...domains, ...duplicates, ...bookinfoCases];

/** TestBuildHTTPRoutes subtests not compared, with why. */
export const ROUTE_TEST_NOT_COMPARED: readonly { readonly name: string; readonly line: number; readonly why: string }[] = [
  { name: 'for virtual service with HTTP/3 discovery enabled', line: 147, why: 'an alt-svc header for HTTP/3, which meshlet does not serve' },
  { name: 'for virtual service with disabled timeout', line: 185, why: "the fixture's timeout 0s is refused by Istio's own validation (durations must be >= 1ms), as by meshlet" },
  { name: 'for internally generated virtual service with ingress semantics', line: 226, why: 'Gateway API (ingress) route semantics, which apply to gateways' },
  { name: 'for internally generated virtual service with gateway semantics', line: 249, why: 'Gateway API route semantics, which apply to gateways' },
  { name: 'for virtual service with exact matching on JWT claims with extended', line: 330, why: "JWT-claim routing is for gateways only (Istio's validation refuses it for the mesh)" },
  { name: 'for virtual service with presence matching on header', line: 372, why: "its first fixture's nil StringMatch cannot be written in YAML (the second one, {}, is compared)" },
  { name: 'for virtual service with regex matching for all cases on header', line: 409, why: 'the fixture\'s `regex: "*"` on a header is refused by Istio\'s validation ("*" is not a valid RE2 expression), as by meshlet' },
  { name: 'for virtual service with regex matching on query parameter', line: 451, why: 'the regex needs a space in a query value, whose decoding Envoy and the test leave unspecified' },
  { name: 'for virtual service with regex matching for all cases on query parameter', line: 463, why: 'the fixture\'s `regex: "*"` on a query parameter is refused by Istio\'s validation ("*" is not a valid RE2 expression), as by meshlet' },
  { name: 'ring hash, cookie hash, port-level and subset consistent hash subtests', line: 505, why: 'consistent-hash policies (load balancing, not route choice), compared by the outbound tests' },
  { name: 'for header operations for single cluster / weighted cluster', line: 1012, why: 'asserts Envoy header-operation lists and append actions, not a routing choice' },
  { name: 'for invalid redirect code', line: 1222, why: "redirect code 317: Istio's validation accepts any 3xx, but its route builder leaves the route without an action (Envoy supports 301, 302, 303, 307, 308), so no outcome for a request can be stated; meshlet refuses the code when loading" },
  { name: 'for empty prefix path rewrite', line: 1285, why: 'Gateway API route semantics (the internal route-semantics annotation)' },
  { name: 'for host rewrite / prefix path rewrite with XForwardedHost enabled', line: 1349, why: 'a MeshConfig proxy-headers setting' },
  { name: 'for virtual service with routing to an service with inference semantics (two subtests)', line: 1563, why: 'Gateway API inference extension (ext_proc), not applicable to a sidecar' },
];
