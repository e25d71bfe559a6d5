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
 * - TestGenerateVirtualHostDomains (pilot/pkg/networking/core/httproute_test.go): every domain
 *   Istio generates for a service, as the authority of a request that must reach the service,
 *   and the names Istio does not generate, which must not.
 * - TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts (the same file): services and
 *   VirtualServices whose names overlap, and the cluster each generated domain routes to.
 * - Bookinfo (samples/bookinfo/networking, unchanged in test/fixtures/istio/bookinfo): what
 *   Istio's traffic-management tasks show each VirtualService doing to productpage's calls.
 *
 * Copyright Istio Authors, Apache License 2.0 (the fixtures and expectations transcribed).
 */
import { fileURLToPath } from 'node:url';
import { routeFixtures } from './cases/routing-tables.ts';
import type { Outcome, Request, RoutingCase } from './routing-model.ts';

const ROUTE_TEST = 'pilot/pkg/networking/core/route/route_test.go';
const HTTPROUTE_TEST = 'pilot/pkg/networking/core/httproute_test.go';

/** A ServiceEntry document; `extra` replaces the default location, resolution and endpoint. */
function se(name: string, namespace: string, host: string, ports: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  hosts: ["${host}"]
  ports: ${ports}
${extra === '' ? '  location: MESH_INTERNAL\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.9}]' : extra}
`;
}

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

// ---------- TestGenerateVirtualHostDomains ----------

interface DomainsRow {
  readonly row: string;
  readonly line: number;
  readonly config: string;
  readonly namespace: string;
  readonly port: number;
  /** The service's host, where requests for it go. */
  readonly host: string;
  /** Istio's generated domains. */
  readonly want: readonly string[];
  /** Names Istio does not generate for this proxy: they must not reach the service. */
  readonly not?: readonly string[];
}

const kubeService = (name: string, ns: string, port: number, extra = '') =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n  selector: {app: ${name}}\n  ports: [{name: http, port: ${port}}]${extra}\n`;
const external = (host: string, port: number) => se(host.replace(/\./g, '-'), 'default', host, `[{number: ${port}, name: http, protocol: HTTP}]`, '  location: MESH_EXTERNAL\n  resolution: DNS');

const ECHO = ['echo.default.svc.cluster.local', 'echo.default.svc.cluster.local.', 'echo', 'echo.default.svc', 'echo.default'];

const DOMAINS: readonly DomainsRow[] = [
  { row: 'k8s service with default domain', line: 110, config: kubeService('echo', 'default', 8123), namespace: 'default', port: 8123, host: 'echo.default.svc.cluster.local', want: ECHO },
  {
    row: 'non-k8s service',
    line: 126,
    config: se('foo', 'default', 'foo.default.svc.bar.baz', '[{number: 8123, name: http, protocol: HTTP}]'),
    namespace: 'default',
    port: 8123,
    host: 'foo.default.svc.bar.baz',
    want: ['foo.default.svc.bar.baz', 'foo.default.svc.bar.baz.'],
    not: ['foo', 'foo.default', 'foo.default.svc'],
  },
  {
    row: 'k8s service with default domain and different namespace',
    line: 140,
    config: kubeService('echo', 'default', 8123),
    namespace: 'mesh',
    port: 8123,
    host: 'echo.default.svc.cluster.local',
    want: ['echo.default.svc.cluster.local', 'echo.default.svc.cluster.local.', 'echo.default', 'echo.default.svc'],
    not: ['echo'],
  },
  {
    row: 'back subset of cluster domain in address',
    line: 202,
    config: external('aaa.example.local', 7777),
    namespace: 'tests',
    port: 7777,
    host: 'aaa.example.local',
    want: ['aaa.example.local', 'aaa.example.local.'],
    not: ['aaa', 'aaa.example'],
  },
  {
    row: 'no overlap of cluster domain in address',
    line: 244,
    config: external('aaa.example.com', 7777),
    namespace: 'tests',
    port: 7777,
    host: 'aaa.example.com',
    want: ['aaa.example.com', 'aaa.example.com.'],
    not: ['aaa'],
  },
  {
    row: 'wildcard',
    line: 258,
    config: kubeService('headless', 'default', 7777, '\n  clusterIP: None'),
    namespace: 'default',
    port: 7777,
    host: 'headless.default.svc.cluster.local',
    want: [
      'headless.default.svc.cluster.local',
      'headless.default.svc.cluster.local.',
      'headless',
      'headless.default.svc',
      'headless.default',
      // Istio's wildcard domains, as the names of one pod of the headless Service:
      'web-0.headless.default.svc.cluster.local',
      'web-0.headless.default.svc.cluster.local.',
      'web-0.headless',
      'web-0.headless.default.svc',
      'web-0.headless.default',
    ],
  },
  { row: 'dual stack k8s service with default domain', line: 280, config: kubeService('echo', 'default', 8123, '\n  clusterIP: 1.2.3.4'), namespace: 'default', port: 8123, host: 'echo.default.svc.cluster.local', want: ECHO },
  { row: 'service entry with multiple VIPs, IPv4 only', line: 311, config: kubeService('echo', 'default', 8123), namespace: 'default', port: 8123, host: 'echo.default.svc.cluster.local', want: ECHO },
  { row: 'service entry with multiple VIPs, IPv6 only', line: 342, config: kubeService('echo', 'default', 8123), namespace: 'default', port: 8123, host: 'echo.default.svc.cluster.local', want: ECHO },
];

/** `name:port`, with the port after a trailing dot of an absolute name (`fqdn.:8123`). */
const withPort = (name: string, port: number) => (port === 80 ? name : `${name}:${port}`);

const domains: RoutingCase[] = DOMAINS.flatMap((d) => [
  ...d.want.map((name) => ({
    test: 'TestGenerateVirtualHostDomains',
    name: `${d.row}: ${name}`,
    source: `${HTTPROUTE_TEST}:${d.line}`,
    config: d.config,
    workload: { namespace: d.namespace },
    request: { authority: withPort(name, d.port) },
    expect: { result: 'forward', to: `${d.host}:${d.port}` },
  })),
  ...(d.not ?? []).map((name) => ({
    test: 'TestGenerateVirtualHostDomains',
    name: `${d.row}: not ${name}`,
    source: `${HTTPROUTE_TEST}:${d.line}`,
    config: d.config,
    workload: { namespace: d.namespace },
    request: { authority: withPort(name, d.port) },
    expect: { result: 'passthrough' },
  })),
]);

/** Domains of TestGenerateVirtualHostDomains rows that are not compared, with why. */
export const DOMAINS_NOT_COMPARED: readonly { readonly row: string; readonly line: number; readonly domains: number; readonly why: string }[] = [
  { row: 'dual stack k8s service with default domain', line: 280, domains: 1, why: 'the cluster IP 1.2.3.4: meshlet routes by host name and never by a service IP (an app that calls an IP goes direct)' },
  { row: 'service entry with multiple VIPs, IPv4 only', line: 311, domains: 2, why: 'the VIPs 1.2.3.4 and 1.2.3.5: meshlet routes by host name, never by a VIP' },
  { row: 'service entry with multiple VIPs, IPv6 only', line: 342, domains: 2, why: 'the VIPs [2001:2::f0f0:239] and [2001:2::f0f0:240]: meshlet routes by host name, never by a VIP' },
  ...(
    [
      ['same domain', 64, 3],
      ['different domains with some shared dns', 79, 4],
      ['different domains with no shared dns', 95, 2],
      ['k8s service with custom domain 2', 155, 2],
      ['front subset of cluster domain in address', 216, 2],
      ['large subset of cluster domain in address', 230, 2],
      ['alias', 374, 6],
    ] as const
  ).map(([row, line, n]) => ({
    row,
    line,
    domains: n,
    why: "the proxy's DNS domain is not <namespace>.svc.cluster.local; a meshlet workload's short names are those of its namespace under cluster.local",
  })),
  ...(
    [
      ['ipv4 domain', 169],
      ['ipv6 domain', 182],
    ] as const
  ).map(([row, line]) => ({ row, line, domains: 1, why: 'a service whose host name is an IP address, which a ServiceEntry or Service cannot declare' })),
];

// ---------- TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts ----------

/** `buildHTTPService(host, …, "default", ports…)`: an HTTP service with ports named http-<port>. */
const httpService = (host: string, ...ports: number[]) =>
  se(host.replace(/[^a-z0-9]/gi, '-').toLowerCase(), 'default', host, `[${ports.map((p) => `{number: ${p}, name: http-${p}, protocol: HTTP}`).join(', ')}]`);
const dupVs = (name: string, hosts: string, dest: string) =>
  `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: default}\nspec:\n  hosts: ${hosts}\n  gateways: [mesh]\n  http:\n  - route:\n    - destination: {host: ${dest}}\n`;
const VS_SPEC = dupVs('acme', '[test-duplicate-domains.default.svc.cluster.local, test-duplicate-domains.default]', 'test-duplicate-domains.default');
const VS_SPEC_DUPLICATE = dupVs('acme-duplicate', '[Test-duplicate-domains.default.svc.cluster.local]', 'test-duplicate-domains.default');
const VS_SPEC_DEFAULT = dupVs('acme', '[test.default]', 'test.default');

/** Rows of the test: services and VirtualServices, and the domains (requests on port 80) Istio routes to each cluster. */
const DUPLICATES: readonly { readonly row: string; readonly line: number; readonly config: string; readonly routes: Readonly<Record<string, readonly string[]>> }[] = [
  { row: 'more exact first', line: 463, config: [httpService('test.local', 80), httpService('test', 80)].join('---\n'), routes: { 'test.local:80': ['test.local', 'test.local.'] } },
  {
    row: 'more exact first with full cluster domain',
    line: 480,
    config: [httpService('test.default.svc.cluster.local', 80), httpService('test', 80)].join('---\n'),
    routes: { 'test.default.svc.cluster.local:80': ['test.default.svc.cluster.local', 'test.default.svc.cluster.local.', 'test.default.svc', 'test.default'] },
  },
  { row: 'more exact second', line: 502, config: [httpService('test', 80), httpService('test.local', 80)].join('---\n'), routes: { 'test.local:80': ['test.local', 'test.local.'] } },
  {
    row: 'virtual service',
    line: 519,
    config: [httpService('test-duplicate-domains.default.svc.cluster.local', 80), VS_SPEC].join('---\n'),
    routes: {
      'test-duplicate-domains.default:80': [
        'test-duplicate-domains.default.svc.cluster.local',
        'test-duplicate-domains.default.svc.cluster.local.',
        'test-duplicate-domains',
        'test-duplicate-domains.default.svc',
        'test-duplicate-domains.default',
      ],
    },
  },
  {
    row: 'virtual service duplicate case sensitive domains',
    line: 546,
    config: [httpService('test-duplicate-domains.default.svc.cluster.local', 80), VS_SPEC, VS_SPEC_DUPLICATE].join('---\n'),
    routes: {
      'test-duplicate-domains.default:80': [
        'test-duplicate-domains.default.svc.cluster.local',
        'test-duplicate-domains.default.svc.cluster.local.',
        'test-duplicate-domains',
        'test-duplicate-domains.default.svc',
        'test-duplicate-domains.default',
      ],
    },
  },
  {
    row: 'virtual service conflict',
    line: 584,
    config: [httpService('test.default.svc.cluster.local', 80), VS_SPEC_DEFAULT].join('---\n'),
    routes: {
      'test.default.svc.cluster.local:80': ['test.default.svc.cluster.local', 'test.default.svc.cluster.local.', 'test', 'test.default.svc'],
      'test.default:80': ['test.default'],
    },
  },
  { row: 'multiple ports', line: 613, config: httpService('test.local', 70, 80, 90), routes: { 'test.local:80': ['test.local', 'test.local.'] } },
];

const duplicates: RoutingCase[] = DUPLICATES.flatMap((d) =>
  Object.entries(d.routes).flatMap(([to, names]) =>
    names.map((name) => ({
      test: 'TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts',
      name: `${d.row}: ${name}`,
      source: `${HTTPROUTE_TEST}:${d.line}`,
      config: d.config,
      request: { authority: name },
      expect: { to },
    })),
  ),
);

/** Domains of that test not compared, with why. */
export const DUPLICATES_NOT_COMPARED: readonly { readonly row: string; readonly domains: number; readonly why: string }[] = ['more exact first', 'more exact first with full cluster domain', 'more exact second'].map((row) => ({
  row,
  domains: 2,
  why: 'the names test and test. of a service whose host is the single label "test": Istio takes a single-label ServiceEntry host literally, meshlet as a short name (test.<namespace>.svc.cluster.local, see config.md)',
}));

// ---------- Bookinfo ----------

const BOOKINFO = fileURLToPath(new URL('../fixtures/istio/bookinfo/', import.meta.url));
const KUBE = `${BOOKINFO}platform/kube/bookinfo.yaml`;
const NET = `${BOOKINFO}networking/`;
const DR_ALL = `${NET}destination-rule-all.yaml`;
const JASON = { 'end-user': 'jason' };

/** Cases of one Bookinfo networking file, applied with the manifest and destination-rule-all.yaml as the tasks do. */
function bookinfo(file: string, requests: readonly [string, Request, Outcome][], extraFiles: readonly string[] = [DR_ALL]): RoutingCase[] {
  return requests.map(([what, request, expect]) => ({
    test: 'Bookinfo',
    name: `${file}: ${what}`,
    source: `samples/bookinfo/networking/${file}`,
    config: '',
    files: [KUBE, ...extraFiles, `${NET}${file}`],
    request,
    expect,
  }));
}

const r = (svc: string, headers?: Record<string, string>, draw?: number): Request => ({ authority: `${svc}:9080`, headers, draw });
const to = (svc: string, subset: string): string => `${svc}.default.svc.cluster.local:9080|${subset}`;

const bookinfoCases: RoutingCase[] = [
  ...bookinfo(
    'virtual-service-all-v1.yaml',
    ['productpage', 'reviews', 'ratings', 'details'].map((s) => [`${s} → v1`, r(s), { to: to(s, 'v1') }] as [string, Request, Outcome]),
  ),
  ...bookinfo('virtual-service-reviews-test-v2.yaml', [
    ['jason → reviews v2', r('reviews', JASON), { to: to('reviews', 'v2') }],
    ['no end-user → v1', r('reviews'), { to: to('reviews', 'v1') }],
    ['end-user mike → v1', r('reviews', { 'end-user': 'mike' }), { to: to('reviews', 'v1') }],
  ]),
  ...bookinfo('virtual-service-reviews-jason-v2-v3.yaml', [
    ['jason → v2', r('reviews', JASON), { to: to('reviews', 'v2') }],
    ['everyone else → v3', r('reviews'), { to: to('reviews', 'v3') }],
  ]),
  ...bookinfo('virtual-service-reviews-50-v3.yaml', [
    ['the first half of the draws → v1', r('reviews', undefined, 49), { to: to('reviews', 'v1') }],
    ['the second half → v3', r('reviews', undefined, 50), { to: to('reviews', 'v3') }],
  ]),
  ...bookinfo('virtual-service-reviews-80-20.yaml', [
    ['80% → v1', r('reviews', undefined, 79), { to: to('reviews', 'v1') }],
    ['20% → v2', r('reviews', undefined, 80), { to: to('reviews', 'v2') }],
  ]),
  ...bookinfo('virtual-service-reviews-90-10.yaml', [
    ['90% → v1', r('reviews', undefined, 89), { to: to('reviews', 'v1') }],
    ['10% → v2', r('reviews', undefined, 90), { to: to('reviews', 'v2') }],
  ]),
  ...bookinfo('virtual-service-reviews-v2-v3.yaml', [
    ['50% → v2', r('reviews', undefined, 49), { to: to('reviews', 'v2') }],
    ['50% → v3', r('reviews', undefined, 50), { to: to('reviews', 'v3') }],
  ]),
  ...bookinfo('virtual-service-reviews-v3.yaml', [['reviews → v3', r('reviews'), { to: to('reviews', 'v3') }]]),
  ...bookinfo('virtual-service-details-v2.yaml', [['details → v2', r('details'), { to: to('details', 'v2') }]]),
  ...bookinfo('virtual-service-ratings-test-delay.yaml', [
    ['jason: ratings v1 after a 7s delay, every time', r('ratings', JASON), { to: to('ratings', 'v1'), fault: 'delay 7000ms @100%' }],
    ['everyone else: no delay', r('ratings'), { to: to('ratings', 'v1'), fault: 'none' }],
  ]),
  ...bookinfo('virtual-service-ratings-test-abort.yaml', [
    ['jason: ratings answers 500, every time', r('ratings', JASON), { fault: 'abort 500 @100%' }],
    ['everyone else: no fault', r('ratings'), { to: to('ratings', 'v1'), fault: 'none' }],
  ]),
  ...bookinfo('fault-injection-details-v1.yaml', [['details: 555, every time (the first rule has no match)', r('details'), { to: to('details', 'v1'), fault: 'abort 555 @100%' }]], []),
  ...bookinfo('virtual-service-ratings-db.yaml', [
    ['ratings → v2', r('ratings'), { to: to('ratings', 'v2') }],
    ['reviews → v3', r('reviews'), { to: to('reviews', 'v3') }],
  ]),
  ...bookinfo('virtual-service-ratings-mysql.yaml', [['ratings → v2-mysql', r('ratings'), { to: to('ratings', 'v2-mysql') }]]),
  ...bookinfo('virtual-service-ratings-mysql-vm.yaml', [['ratings → v2-mysql-vm', r('ratings'), { to: to('ratings', 'v2-mysql-vm') }]]),
  ...bookinfo('bookinfo-gateway.yaml', [['a mesh call to productpage ignores the gateway VirtualService (hosts "*")', r('productpage'), { rule: 'default', to: 'productpage.default.svc.cluster.local:9080' }]], []),
  ...bookinfo('egress-rule-google-apis.yaml', [['http://www.googleapis.com (port 80) goes to its port 443', { authority: 'www.googleapis.com' }, { to: 'www.googleapis.com:443' }]], []),
];

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
