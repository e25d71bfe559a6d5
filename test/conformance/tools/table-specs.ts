/**
 * Which Istio Go test tables become conformance cases, and how: for each table, how a row's
 * input becomes a resource (the smallest resource in which Istio applies the helper the table
 * tests) and how the row's fields give Istio's verdict; and the tables left out, with why.
 *
 * Used only to (re)generate the conformance case files (translate.ts).
 */
import type { Verdict } from '../types.ts';

type Obj = Record<string, unknown>;
export type Row = Obj;

// ---------- resource builders ----------

function resource(apiVersion: string, kind: string, spec: unknown, meta: Obj = {}): Obj {
  const metadata: Obj = { name: 'test', namespace: 'default', ...meta };
  for (const [k, v] of Object.entries(metadata)) if (v === undefined || v === null) delete metadata[k];
  return { apiVersion, kind, metadata, spec: spec ?? {} };
}
const vs = (spec: unknown, meta?: Obj) => resource('networking.istio.io/v1', 'VirtualService', spec, meta);
const dr = (spec: unknown, meta?: Obj) => resource('networking.istio.io/v1', 'DestinationRule', spec, meta);
const se = (spec: unknown, meta?: Obj) => resource('networking.istio.io/v1', 'ServiceEntry', spec, meta);
const we = (spec: unknown, meta?: Obj) => resource('networking.istio.io/v1', 'WorkloadEntry', spec, meta);
const wg = (spec: unknown, meta?: Obj) => resource('networking.istio.io/v1', 'WorkloadGroup', spec, meta);
const ap = (spec: unknown, meta?: Obj) => resource('security.istio.io/v1', 'AuthorizationPolicy', spec, meta);
const ra = (spec: unknown, meta?: Obj) => resource('security.istio.io/v1', 'RequestAuthentication', spec, meta);
const pa = (spec: unknown, meta?: Obj) => resource('security.istio.io/v1', 'PeerAuthentication', spec, meta);
const tel = (spec: unknown, meta?: Obj) => resource('telemetry.istio.io/v1', 'Telemetry', spec, meta);
const sc = (spec: unknown, meta?: Obj) => resource('networking.istio.io/v1', 'Sidecar', spec, meta);

/** Istio's test namespace and name (`someName`/`someNamespace`). */
const FOO_BAR = { name: 'foo', namespace: 'bar' };
const ROUTE = [{ destination: { host: 'foo.baz' } }];
/** A mesh VirtualService for foo.bar whose one HTTP route also has `extra`. */
const vsRoute = (extra: Obj) => vs({ hosts: ['foo.bar'], http: [{ route: ROUTE, ...extra }] });
const drPolicy = (policy: unknown) => dr({ host: 'reviews', trafficPolicy: policy }, FOO_BAR);

// ---------- verdicts ----------

function boolVerdict(valid: unknown, warning: unknown): Verdict {
  if (valid !== true) return 'invalid';
  return warning === true ? 'warning' : 'valid';
}
export const byValid = (r: Row): Verdict => boolVerdict(r.valid, r.warning ?? r.warn ?? r.Warning);

// ---------- the tables ----------

export const V = 'pkg/config/validation/validation_test.go';
export const VS = 'pkg/config/validation/virtualservice_test.go';
export const A = 'pkg/config/validation/agent/validation_test.go';
export const EF = 'pkg/config/validation/envoyfilter/envoyfilter_test.go';

export interface TableSpec {
  readonly file: string;
  readonly test: string;
  readonly wraps: string;
  /** The resources for a row, or a string: why the row cannot be written as a resource. */
  readonly build: (r: Row) => object[] | string;
  readonly verdict?: (r: Row) => Verdict;
  readonly name?: (r: Row) => string;
  /** Kind meshlet does not apply: rows are counted under "not applied by meshlet". */
  readonly notApplied?: string;
  /** Field names of a table whose row type is a named struct declared in the function. */
  readonly fields?: readonly string[];
  readonly tableVar?: string;
  /** Rows whose Go input no YAML can express, by name, with the reason (reported, not compared). */
  readonly untranslatable?: Readonly<Record<string, string>>;
}

/**
 * A Go row with a non-nil empty slice: Istio's YAML decoding (jsonpb) leaves a field written as
 * `[]` unset (nil), so the YAML of this row is what the row without the field is.
 */
const EMPTY_SLICE = 'the row sets a non-nil empty Go slice, which no YAML can produce: Istio decodes `[]` as unset, so the same YAML is the row without the field';

export const TABLES: TableSpec[] = [
  {
    file: V, test: 'TestValidateHTTPHeaderName',
    wraps: 'each name as a header match key (match[0].headers) of a mesh VirtualService route',
    build: (r) => [vs({ hosts: ['foo.bar'], http: [{ match: [{ headers: { [r.name as string]: { exact: 'v' } } }], route: ROUTE }] })],
    name: (r) => JSON.stringify(r.name),
  },
  {
    file: V, test: 'TestStrictValidateHTTPHeaderName',
    wraps: 'each name as jwtRules[0].outputClaimToHeaders[0].header of a RequestAuthentication (where Istio applies the strict check)',
    build: (r) => [ra({ jwtRules: [{ issuer: 'https://example.com', outputClaimToHeaders: [{ header: r.name, claim: 'sub' }] }] }, FOO_BAR)],
    name: (r) => JSON.stringify(r.name),
  },
  {
    file: V, test: 'TestValidateCORSPolicy',
    wraps: 'each CorsPolicy as http[0].corsPolicy of a mesh VirtualService',
    build: (r) => [vsRoute({ corsPolicy: r.in })],
  },
  {
    file: V, test: 'TestValidateHTTPStatus',
    wraps: 'each status as http[0].fault.abort.httpStatus (with a 10% percentage) of a mesh VirtualService',
    build: (r) => [vsRoute({ fault: { abort: { httpStatus: r.in, percentage: { value: 10 } } } })],
    name: (r) => String(r.in),
  },
  {
    file: V, test: 'TestValidateHTTPFaultInjectionAbort',
    wraps: 'each abort as http[0].fault.abort of a mesh VirtualService (nil: a route without fault)',
    build: (r) => [vsRoute(r.in === null ? {} : { fault: { abort: r.in } })],
  },
  {
    file: V, test: 'TestValidateHTTPFaultInjectionDelay',
    wraps: 'each delay as http[0].fault.delay of a mesh VirtualService (nil: a route without fault)',
    build: (r) => [vsRoute(r.in === null ? {} : { fault: { delay: r.in } })],
  },
  {
    file: V, test: 'TestValidateHTTPRetry',
    wraps: 'each HTTPRetry as http[0].retries of a mesh VirtualService',
    build: (r) => [vsRoute({ retries: r.in })],
  },
  {
    file: V, test: 'TestValidateHTTPRewrite',
    wraps: 'each HTTPRewrite as http[0].rewrite of a mesh VirtualService (nil: no rewrite)',
    build: (r) => [vsRoute(r.in === null ? {} : { rewrite: r.in })],
  },
  {
    file: V, test: 'TestValidateUriRegexRewrite',
    wraps: 'each RegexRewrite as http[0].rewrite.uriRegexRewrite of a mesh VirtualService (nil: no rewrite)',
    build: (r) => [vsRoute(r.in === null ? {} : { rewrite: { uriRegexRewrite: r.in } })],
  },
  {
    file: V, test: 'TestValidatePortName',
    wraps: 'each name as ports[0].name of a ServiceEntry',
    build: (r) => [se({ hosts: ['example.com'], ports: [{ number: 80, protocol: 'HTTP', name: r.name }], resolution: 'DNS' }, FOO_BAR)],
    name: (r) => JSON.stringify(r.name),
  },
  {
    file: V, test: 'TestValidateHTTPRedirect',
    wraps: 'each HTTPRedirect as the action of http[0] of a mesh VirtualService (nil: a route instead)',
    build: (r) => [r.redirect === null ? vsRoute({}) : vs({ hosts: ['foo.bar'], http: [{ redirect: r.redirect }] })],
  },
  {
    file: V, test: 'TestValidateHTTPDirectResponse',
    wraps: 'each HTTPDirectResponse as the action of http[0] of a mesh VirtualService (nil: a route instead)',
    build: (r) => [r.directResponse === null ? vsRoute({}) : vs({ hosts: ['foo.bar'], http: [{ directResponse: r.directResponse }] })],
  },
  {
    file: V, test: 'TestValidateDestination',
    wraps: 'each Destination as http[0].route[0].destination of a mesh VirtualService',
    build: (r) => [vs({ hosts: ['foo.bar'], http: [{ route: [{ destination: r.destination }] }] })],
  },
  {
    file: V, test: 'TestValidateHTTPRoute',
    wraps: 'each HTTPRoute as http[0] of a mesh VirtualService for foo.bar',
    build: (r) => [vs({ hosts: ['foo.bar'], http: [r.route] })],
  },
  {
    file: V, test: 'TestValidateRouteDestination',
    wraps: 'each RouteDestination list as tcp[0].route of a mesh VirtualService (validateRouteDestinations serves TCP and TLS routes)',
    build: (r) => [vs({ hosts: ['foo.bar'], tcp: [{ route: r.routes }] })],
  },
  {
    file: V, test: 'TestValidateVirtualService',
    wraps: 'each spec as a VirtualService default/test',
    build: (r) => [vs(r.in)],
  },
  {
    file: V, test: 'TestValidateWorkloadEntry',
    wraps: 'each spec as a WorkloadEntry default/test',
    build: (r) => [we(r.in)],
  },
  {
    file: V, test: 'TestValidateWorkloadGroup',
    wraps: 'each spec as a WorkloadGroup default/test',
    notApplied: 'WorkloadGroup',
    build: (r) => [wg(r.in)],
  },
  {
    file: V, test: 'TestValidateDestinationRule',
    wraps: 'each spec as a DestinationRule bar/foo',
    build: (r) => [dr(r.in, FOO_BAR)],
  },
  {
    file: V, test: 'TestValidateTrafficPolicy',
    wraps: 'each TrafficPolicy as the trafficPolicy of a DestinationRule for reviews',
    build: (r) => [drPolicy(r.in)],
  },
  {
    file: V, test: 'TestValidateConnectionPool',
    wraps: 'each ConnectionPoolSettings as trafficPolicy.connectionPool of a DestinationRule for reviews',
    build: (r) => [drPolicy({ connectionPool: r.in })],
  },
  {
    file: V, test: 'TestValidateLoadBalancer',
    wraps: 'each LoadBalancerSettings as trafficPolicy.loadBalancer of a DestinationRule for reviews',
    build: (r) => [drPolicy({ loadBalancer: r.in })],
  },
  {
    file: V, test: 'TestValidateOutlierDetection',
    wraps: 'each OutlierDetection as trafficPolicy.outlierDetection of a DestinationRule for reviews',
    build: (r) => [drPolicy({ outlierDetection: r.in })],
  },
  {
    file: V, test: 'TestValidateSidecar',
    wraps: 'each spec as a Sidecar bar/foo',
    build: (r) => [sc(r.in, FOO_BAR)],
  },
  {
    file: V, test: 'TestValidateServiceEntries',
    wraps: 'each spec as a ServiceEntry bar/foo (with the row\'s labels)',
    build: (r) => [se(r.in, { ...FOO_BAR, labels: r.labels })],
  },
  {
    file: V, test: 'TestValidateAuthorizationPolicy',
    wraps: 'each spec as an AuthorizationPolicy namespace/name (with the row\'s annotations)',
    untranslatable: { 'from-empty': EMPTY_SLICE, 'to-empty': EMPTY_SLICE },
    build: (r) => [ap(r.in, { name: 'name', namespace: 'namespace', annotations: r.annotations })],
  },
  {
    file: V, test: 'TestValidateRequestAuthentication',
    wraps: 'each spec as a RequestAuthentication bar/<configName> (with the row\'s annotations)',
    build: (r) => [ra(r.in, { name: r.configName, namespace: 'bar', annotations: r.annotations })],
  },
  {
    file: V, test: 'TestValidatePeerAuthentication',
    wraps: 'each spec as a PeerAuthentication bar/<configName>',
    build: (r) => [pa(r.in, { name: r.configName, namespace: 'bar' })],
  },
  {
    file: V, test: 'Test_validateExportTo',
    wraps: 'each exportTo list on a ServiceEntry (isServiceEntry), a DestinationRule with a workloadSelector (isDestinationRuleWithSelector) or else a VirtualService, in the row\'s namespace',
    build: (r) => {
      const meta = { name: 'test', namespace: r.namespace };
      const exportTo = r.exportTo;
      if (r.isServiceEntry === true) return [se({ hosts: ['example.com'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'DNS', exportTo }, meta)];
      if (r.isDestinationRuleWithSelector === true) return [dr({ host: 'reviews', workloadSelector: { matchLabels: { app: 'reviews' } }, exportTo }, meta)];
      return [vs({ hosts: ['foo.bar'], http: [{ route: ROUTE }], exportTo }, meta)];
    },
    verdict: (r) => (r.wantErr === true ? 'invalid' : 'valid'),
  },
  {
    file: V, test: 'TestValidateTelemetry',
    wraps: 'each spec as a Telemetry bar/foo',
    build: (r) => (r.name === 'invalid message' ? 'the row passes a Gateway Server message to ValidateTelemetry (a Go type error, not expressible as YAML)' : [tel(r.in, FOO_BAR)]),
    verdict: (r) => ((r.err as string) !== '' ? 'invalid' : (r.warning as string) !== '' ? 'warning' : 'valid'),
  },
  {
    file: V, test: 'TestValidateTelemetryFilter',
    wraps: 'each filter as accessLogging[0].filter (with an envoy provider) of a Telemetry bar/foo',
    build: (r) => [tel({ accessLogging: [{ providers: [{ name: 'envoy' }], filter: r.filter }] }, FOO_BAR)],
    name: (r) => JSON.stringify((r.filter as { expression: string }).expression),
  },
  {
    file: V, test: 'TestValidateHTTPHeaderValue',
    wraps: 'each value as a request header set value (http[0].headers.request.set) of a mesh VirtualService',
    build: (r) => [vsRoute({ headers: { request: { set: { 'x-test': r.input } } } })],
    verdict: (r) => (r.expected === null || r.expected === undefined ? 'valid' : 'invalid'),
    name: (r) => JSON.stringify(r.input),
  },
  {
    file: VS, test: 'TestValidateChainingVirtualService',
    wraps: 'each spec as a VirtualService default/test (a root has hosts; a delegate has none)',
    build: (r) => [vs(r.in)],
  },
  {
    file: VS, test: 'TestValidateRootHTTPRoute',
    wraps: 'each HTTPRoute as http[0] of a root VirtualService for foo.bar (one with hosts)',
    build: (r) => [vs({ hosts: ['foo.bar'], http: [r.route] })],
  },
  {
    file: VS, test: 'TestValidateDelegateHTTPRoute',
    wraps: 'each HTTPRoute as http[0] of a delegate VirtualService (one without hosts)',
    build: (r) => [vs({ http: [r.route] })],
  },
  {
    file: A, test: 'TestValidatePort',
    wraps: 'each port as ports[0].number of a ServiceEntry',
    tableVar: 'ports', fields: ['port', 'valid'],
    build: (r) => [se({ hosts: ['example.com'], ports: [{ number: r.port, name: 'http', protocol: 'HTTP' }], resolution: 'DNS' }, FOO_BAR)],
    name: (r) => String(r.port),
  },
  {
    file: A, test: 'TestValidateFQDN',
    wraps: 'each name as the address of a WorkloadEntry with a port (where Istio checks addresses with ValidateFQDN)',
    build: (r) => [we({ address: r.fqdn, ports: { http: 8080 } })],
  },
  {
    file: A, test: 'TestValidateDuration',
    wraps: 'each duration as trafficPolicy.outlierDetection.interval of a DestinationRule (checked with ValidateDuration)',
    tableVar: 'checks', fields: ['duration', 'isValid'],
    build: (r) => [drPolicy({ outlierDetection: { interval: r.duration } })],
    verdict: (r) => (r.isValid === true ? 'valid' : 'invalid'),
    name: (r) => String(r.duration),
  },
  {
    file: A, test: 'TestValidateLocalityLbSetting',
    wraps: 'each setting as trafficPolicy.loadBalancer.localityLbSetting of a DestinationRule, with the row\'s outlierDetection',
    build: (r) => [drPolicy({ loadBalancer: r.in === null ? { simple: 'ROUND_ROBIN' } : { localityLbSetting: r.in }, outlierDetection: r.outlier ?? undefined })],
    verdict: (r) => (r.err === true ? 'invalid' : r.warn === true ? 'warning' : 'valid'),
  },
  {
    file: A, test: 'TestValidateZoneAwareLbSetting',
    wraps: 'each setting as trafficPolicy.loadBalancer.zoneAwareLbSetting of a DestinationRule, with the row\'s outlierDetection',
    build: (r) => [drPolicy({ loadBalancer: r.in === null ? { simple: 'ROUND_ROBIN' } : { zoneAwareLbSetting: r.in }, outlierDetection: r.outlier ?? undefined })],
    verdict: (r) => (r.err === true ? 'invalid' : r.warn === true ? 'warning' : 'valid'),
  },
  {
    file: A, test: 'TestValidateLocalities',
    wraps: 'each locality list as the `from` of localityLbSetting.distribute entries (each to a/b/c: 100) of a DestinationRule with outlier detection',
    build: (r) => [drPolicy({
      loadBalancer: { localityLbSetting: { distribute: (r.localities as string[]).map((from) => ({ from, to: { 'a/b/c': 100 } })) } },
      outlierDetection: { consecutive5xxErrors: 5 },
    })],
  },
  {
    file: A, test: 'TestValidateWildcardDomain',
    wraps: 'each domain as the host of a DestinationRule (checked with ValidateWildcardDomain and nothing else)',
    build: (r) => [dr({ host: r.in }, FOO_BAR)],
    verdict: (r) => (r.out === '' ? 'valid' : 'invalid'),
  },
  {
    file: A, test: 'TestValidateWildcardDomainForVirtualServiceBoundToGateway',
    wraps: 'each domain as hosts[0] of a VirtualService bound to a gateway, with a TLS route when the row is an SNI host',
    untranslatable: {
      'IP address': 'ValidateVirtualService, the only caller, accepts an IP address host whatever this helper says, so no resource has this verdict',
    },
    build: (r) => [vs(r.sni === true
      ? { hosts: [r.in], gateways: ['gateway'], tls: [{ match: [{ sniHosts: [r.in] }], route: ROUTE }] }
      : { hosts: [r.in], gateways: ['gateway'], http: [{ route: ROUTE }] })],
    verdict: (r) => (r.out === '' ? 'valid' : 'invalid'),
  },
  {
    file: A, test: 'TestValidationIPSubnet',
    wraps: 'each subnet as addresses[0] of a ServiceEntry with resolution NONE',
    build: (r) => [se({ hosts: ['example.com'], addresses: [r.subnet], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'NONE' }, FOO_BAR)],
    verdict: (r) => (r.ok === true ? 'valid' : 'invalid'),
  },
];

/** Go tables of other kinds or of mesh config: counted, not compared. */
export const EXCLUDED: { file: string; test: string; reason: 'not-applied' | 'mesh-config' | 'other'; why: string; tableVar?: string; fields?: string[] }[] = [
  { file: V, test: 'TestValidateGateway', reason: 'not-applied', why: 'Gateway: meshlet is not a gateway; it skips the kind with a notice' },
  { file: V, test: 'TestValidateK8sGateway', reason: 'not-applied', why: 'Gateway (Kubernetes Gateway API semantics)' },
  { file: V, test: 'TestValidateServer', reason: 'not-applied', why: 'Gateway servers' },
  { file: V, test: 'TestValidateServerPort', reason: 'not-applied', why: 'Gateway server ports' },
  { file: V, test: 'TestValidateTlsOptions', reason: 'not-applied', why: 'Gateway server TLS' },
  { file: V, test: 'TestValidateProxyConfig', reason: 'not-applied', why: 'ProxyConfig' },
  { file: V, test: 'TestValidateWasmPlugin', reason: 'not-applied', why: 'WasmPlugin' },
  { file: V, test: 'TestValidateTrafficExtension', reason: 'not-applied', why: 'TrafficExtension (extensions.istio.io)' },
  {
    file: EF, test: 'TestValidateEnvoyFilter', reason: 'not-applied',
    why: 'EnvoyFilter patches other than the local rate limit (listeners, clusters, network filters, proxy-version matches): no row is a local rate limit shape, and meshlet skips such an EnvoyFilter with a warning',
  },
  { file: V, test: 'TestValidateMaxServerConnectionAge', reason: 'mesh-config', why: 'a pilot flag, not a resource field', tableVar: 'checks', fields: ['duration', 'isValid'] },
  { file: A, test: 'TestValidateControlPlaneAuthPolicy', reason: 'mesh-config', why: 'MeshConfig' },
  { file: A, test: 'TestValidateProxyAddress', reason: 'mesh-config', why: 'ProxyConfig addresses', tableVar: 'addresses', fields: ['addr', 'valid'] },
  { file: A, test: 'TestValidateDrainDuration', reason: 'mesh-config', why: 'ProxyConfig drain duration', tableVar: 'combinations', fields: ['Drain', 'Valid'] },
  { file: A, test: 'TestValidateMeshConfigProxyConfig', reason: 'mesh-config', why: 'ProxyConfig' },
  { file: A, test: 'TestValidateTLS', reason: 'mesh-config', why: 'ClientTLSSettings of mesh-wide (MeshConfig) TLS defaults; DestinationRule TLS rows are in TestValidateDestinationRule' },
  { file: A, test: 'TestParseAutoGeneratedSNIDomain', reason: 'other', why: 'a string-parsing helper; its effect on VirtualService hosts is covered by TestValidateWildcardDomainForVirtualServiceBoundToGateway' },
  { file: A, test: 'TestValidateTrustDomain', reason: 'mesh-config', why: 'MeshConfig trust domain' },
  { file: A, test: 'TestValidateConnectTimeout', reason: 'mesh-config', why: 'MeshConfig connect timeout', tableVar: 'checks', fields: ['duration', 'isValid'] },
  { file: A, test: 'TestValidateProtocolDetectionTimeout', reason: 'mesh-config', why: 'MeshConfig', tableVar: 'checks', fields: ['duration', 'isValid'] },
  { file: A, test: 'TestValidateMeshConfigDefaultTrafficPolicy', reason: 'mesh-config', why: 'MeshConfig' },
  { file: A, test: 'TestValidateMeshConfigDefaultInboundHTTPRetryPolicy', reason: 'mesh-config', why: 'MeshConfig' },
  { file: A, test: 'TestValidateMeshConfig', reason: 'mesh-config', why: 'MeshConfig (two inline checks, no table)' },
  { file: A, test: 'TestValidationIPAddress', reason: 'not-applied', why: 'ValidateIPAddress checks Gateway/Sidecar bind addresses and tunnel targets, none of which meshlet reads' },
  { file: A, test: 'TestServiceSettings', reason: 'mesh-config', why: 'MeshConfig' },
  { file: A, test: 'TestValidateMeshNetworks', reason: 'mesh-config', why: 'MeshNetworks' },
  { file: A, test: 'TestValidateConnectionSettings', reason: 'mesh-config', why: 'ProxyConfig' },
];

