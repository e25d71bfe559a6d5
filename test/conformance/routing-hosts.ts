/**
 * Hand-written routing cases on how a sidecar names services, from
 * pilot/pkg/networking/core/httproute_test.go:
 *
 * - TestGenerateVirtualHostDomains: every domain Istio generates for a service, as the authority
 *   of a request that must reach the service, and the names Istio does not generate, which must
 *   not;
 * - TestSidecarOutboundHTTPRouteConfigWithDuplicateHosts: services and VirtualServices whose names
 *   overlap, and the cluster each generated domain routes to.
 *
 * Copyright Istio Authors, Apache License 2.0 (the expectations transcribed).
 */
import { HTTPROUTE_TEST, se } from './routing-common.ts';
import type { RoutingCase } from './routing-model.ts';

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
  // The short names with a trailing dot are not generated (only the FQDN's absolute form is, GenerateAltVirtualHosts).
  { row: 'k8s service with default domain', line: 110, config: kubeService('echo', 'default', 8123), namespace: 'default', port: 8123, host: 'echo.default.svc.cluster.local', want: ECHO, not: ['echo.', 'echo.default.', 'echo.default.svc.'] },
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
    not: ['aaa', 'aaa.example', 'aaa.example.'],
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

export const domains: RoutingCase[] = DOMAINS.flatMap((d) => [
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

export const duplicates: RoutingCase[] = DUPLICATES.flatMap((d) =>
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
