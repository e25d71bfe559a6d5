/**
 * networking.istio.io resources: VirtualService, DestinationRule, ServiceEntry, WorkloadEntry.
 * Field names and meanings follow Istio's API (see docs/config.md for what meshlet applies).
 *
 * @module
 */
import type { LabelSelector, PortSelector, Percent, StringMatch, WorkloadSelector } from './common.ts';

/** `VirtualService.spec`. */
export interface VirtualServiceSpec {
  /** Destination hosts the rules apply to; short names resolve against the VirtualService's namespace. */
  hosts?: string[];
  /** Gateways the rules apply to; `mesh` (the default) means sidecars, which is what meshlet is. */
  gateways?: string[];
  /** Ordered HTTP rules; the first that matches wins. */
  http?: HTTPRoute[];
  /** TLS (SNI) routes: not supported by meshlet. */
  tls?: TLSRoute[];
  /** TCP routes: not supported by meshlet. */
  tcp?: TCPRoute[];
  /** Namespaces that can see this resource: `*` (default), `.` (own), or names. */
  exportTo?: string[];
}

/** One HTTP rule. */
export interface HTTPRoute {
  name?: string;
  match?: HTTPMatchRequest[];
  route?: HTTPRouteDestination[];
  redirect?: HTTPRedirect;
  directResponse?: HTTPDirectResponse;
  delegate?: Delegate;
  rewrite?: HTTPRewrite;
  /** Whole-request timeout, retries and backoff included. Default: none. */
  timeout?: string;
  retries?: HTTPRetry;
  fault?: HTTPFaultInjection;
  mirror?: Destination;
  mirrors?: HTTPMirrorPolicy[];
  mirrorPercentage?: Percent;
  /** Deprecated integer form of `mirrorPercentage`. */
  mirrorPercent?: number;
  corsPolicy?: CorsPolicy;
  headers?: Headers;
}

/** Conditions of one match block (ANDed); blocks of a rule are ORed. */
export interface HTTPMatchRequest {
  name?: string;
  uri?: StringMatch;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: Record<string, StringMatch>;
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  queryParams?: Record<string, StringMatch>;
  ignoreUriCase?: boolean;
  withoutHeaders?: Record<string, StringMatch>;
  sourceNamespace?: string;
  statPrefix?: string;
}

/** A weighted destination of an HTTP rule. */
export interface HTTPRouteDestination {
  destination: Destination;
  /** Relative weight, ≥ 0. */
  weight?: number;
  headers?: Headers;
}

/** A weighted destination of a TLS or TCP rule. */
export interface RouteDestination {
  destination: Destination;
  weight?: number;
}

/** Where traffic goes: a registry host, optionally a subset and a port. */
export interface Destination {
  host: string;
  subset?: string;
  port?: PortSelector;
}

/** Header manipulation for requests and responses. */
export interface Headers {
  request?: HeaderOperations;
  response?: HeaderOperations;
}

/** `set` overwrites, `add` appends, `remove` deletes. */
export interface HeaderOperations {
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

/** A redirect answered by the client side. */
export interface HTTPRedirect {
  uri?: string;
  authority?: string;
  port?: number;
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  scheme?: string;
  /** @defaultValue 301 */
  redirectCode?: number;
  prefixRewrite?: string;
}

/** A fixed response answered by the client side. */
export interface HTTPDirectResponse {
  status: number;
  body?: HTTPBody;
}

/** A direct-response body: a string or base64 bytes. */
export interface HTTPBody {
  string?: string;
  bytes?: string;
}

/** A delegate VirtualService reference. */
export interface Delegate {
  name?: string;
  namespace?: string;
}

/** Rewrites applied before forwarding. */
export interface HTTPRewrite {
  uri?: string;
  authority?: string;
  uriRegexRewrite?: RegexRewrite;
}

/** A regex rewrite of the path (RE2, `\1` capture references). */
export interface RegexRewrite {
  match?: string;
  rewrite?: string;
}

/** Retry policy. */
export interface HTTPRetry {
  /** Number of retries; 0 disables retries, even the default ones. */
  attempts?: number;
  perTryTimeout?: string;
  /** Comma list of Envoy retry policies and/or status codes. */
  retryOn?: string;
  retryRemoteLocalities?: boolean;
  /** @defaultValue true */
  retryIgnorePreviousHosts?: boolean;
  /** Base interval of the jittered exponential backoff. @defaultValue "25ms" */
  backoff?: string;
}

/** Fault injection on the client side. */
export interface HTTPFaultInjection {
  delay?: FaultDelay;
  abort?: FaultAbort;
}

/** A fault delay. */
export interface FaultDelay {
  fixedDelay?: string;
  exponentialDelay?: string;
  percentage?: Percent;
  /** Deprecated integer percentage. */
  percent?: number;
}

/** A fault abort. */
export interface FaultAbort {
  httpStatus?: number;
  /** gRPC status by name, e.g. `UNAVAILABLE`. */
  grpcStatus?: string;
  http2Error?: string;
  percentage?: Percent;
}

/** One mirror destination with its percentage. */
export interface HTTPMirrorPolicy {
  destination: Destination;
  percentage?: Percent;
}

/** CORS policy. */
export interface CorsPolicy {
  allowOrigins?: StringMatch[];
  allowOrigin?: string[];
  allowMethods?: string[];
  allowHeaders?: string[];
  exposeHeaders?: string[];
  maxAge?: string;
  allowCredentials?: boolean;
  unmatchedPreflights?: 'UNSPECIFIED' | 'FORWARD' | 'IGNORE';
}

/** A TLS (SNI) route. */
export interface TLSRoute {
  match: TLSMatchAttributes[];
  route?: RouteDestination[];
}

/** TLS match attributes. */
export interface TLSMatchAttributes {
  sniHosts: string[];
  destinationSubnets?: string[];
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  sourceNamespace?: string;
}

/** A TCP route. */
export interface TCPRoute {
  match?: L4MatchAttributes[];
  route?: RouteDestination[];
}

/** L4 match attributes. */
export interface L4MatchAttributes {
  destinationSubnets?: string[];
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  sourceNamespace?: string;
}

/** `DestinationRule.spec`. */
export interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: TrafficPolicy;
  subsets?: Subset[];
  exportTo?: string[];
  /** Apply only to these client workloads (same namespace); Istio's `matchLabels` selector. */
  workloadSelector?: LabelSelector;
}

/** A named subset of a service's endpoints. */
export interface Subset {
  name: string;
  labels?: Record<string, string>;
  trafficPolicy?: TrafficPolicy;
}

/** Policies applied to traffic towards a destination. */
export interface TrafficPolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
  portLevelSettings?: PortTrafficPolicy[];
  tunnel?: TunnelSettings;
  proxyProtocol?: ProxyProtocol;
  retryBudget?: RetryBudget;
}

/** Per-port policy; replaces the destination-level blocks for that port. */
export interface PortTrafficPolicy {
  port?: PortSelector;
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

/** Load-balancing settings. */
export interface LoadBalancerSettings {
  /** @defaultValue LEAST_REQUEST (what Istio picks for UNSPECIFIED) */
  simple?: 'UNSPECIFIED' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_REQUEST';
  consistentHash?: ConsistentHashLB;
  localityLbSetting?: LocalityLoadBalancerSetting;
  zoneAwareLbSetting?: ZoneAwareLoadBalancerSetting;
  warmupDurationSecs?: string;
  warmup?: WarmupConfiguration;
}

/** Consistent-hash load balancing (soft affinity). */
export interface ConsistentHashLB {
  httpHeaderName?: string;
  httpCookie?: HTTPCookie;
  useSourceIp?: boolean;
  httpQueryParameterName?: string;
  ringHash?: { minimumRingSize?: number };
  maglev?: { tableSize?: number };
  /** Deprecated; use `ringHash.minimumRingSize`. */
  minimumRingSize?: number;
}

/** Cookie used as a hash key; generated with `ttl` when missing. */
export interface HTTPCookie {
  name: string;
  path?: string;
  ttl?: string;
  attributes?: { name: string; value?: string }[];
}

/** Locality-aware load balancing. */
export interface LocalityLoadBalancerSetting {
  distribute?: { from?: string; to?: Record<string, number> }[];
  failover?: { from?: string; to?: string }[];
  failoverPriority?: string[];
  enabled?: boolean;
}

/** Zone-aware load balancing (Istio 1.31-alpha). */
export interface ZoneAwareLoadBalancerSetting {
  enabled?: boolean;
  failover?: { from?: string; to?: string }[];
  failoverPriority?: string[];
  minClusterSize?: number;
}

/** Slow start for new endpoints. */
export interface WarmupConfiguration {
  duration: string;
  /** @defaultValue 10 */
  minimumPercent?: number;
  /** @defaultValue 1.0 */
  aggression?: number;
}

/** Connection-pool (circuit-breaking) settings. */
export interface ConnectionPoolSettings {
  tcp?: TCPSettings;
  http?: HTTPSettings;
}

/** TCP-level pool settings. */
export interface TCPSettings {
  maxConnections?: number;
  /** @defaultValue "10s" */
  connectTimeout?: string;
  tcpKeepalive?: { probes?: number; time?: string; interval?: string };
  maxConnectionDuration?: string;
  /** @defaultValue "1h" */
  idleTimeout?: string;
}

/** HTTP-level pool settings. */
export interface HTTPSettings {
  http1MaxPendingRequests?: number;
  http2MaxRequests?: number;
  maxRequestsPerConnection?: number;
  maxRetries?: number;
  /** @defaultValue "1h" */
  idleTimeout?: string;
  h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  useClientProtocol?: boolean;
  maxConcurrentStreams?: number;
  http2KeepAlive?: { interval?: string; timeout?: string };
}

/** Per-endpoint outlier detection (passive health checking). */
export interface OutlierDetection {
  /** Deprecated; use consecutive5xxErrors. */
  consecutiveErrors?: number;
  splitExternalLocalOriginErrors?: boolean;
  consecutiveLocalOriginFailures?: number;
  consecutiveGatewayErrors?: number;
  /** @defaultValue 5 */
  consecutive5xxErrors?: number;
  /** @defaultValue "10s" */
  interval?: string;
  /** @defaultValue "30s" */
  baseEjectionTime?: string;
  /** @defaultValue 10 */
  maxEjectionPercent?: number;
  /** @defaultValue 0 */
  minHealthPercent?: number;
  outlierDetectionHttpErrorCodes?: number[];
}

/** Client-side TLS towards the destination. */
export interface ClientTLSSettings {
  mode?: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  clientCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  credentialName?: string;
  subjectAltNames?: string[];
  sni?: string;
  insecureSkipVerify?: boolean;
  caCrl?: string;
}

/** Tunnel settings (TCP/TLS only). */
export interface TunnelSettings {
  protocol?: string;
  targetHost: string;
  targetPort: number;
}

/** PROXY protocol towards the upstream. */
export interface ProxyProtocol {
  version?: 'V1' | 'V2';
}

/** Retry budget (Istio 1.27): retries may be at most `percent` of active requests. */
export interface RetryBudget {
  /** @defaultValue 20 */
  percent?: number;
  /** @defaultValue 3 */
  minRetryConcurrency?: number;
}

/** `ServiceEntry.spec`. */
export interface ServiceEntrySpec {
  hosts: string[];
  addresses?: string[];
  ports?: ServicePort[];
  /** @defaultValue MESH_EXTERNAL */
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  /** @defaultValue NONE */
  resolution?: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS';
  endpoints?: WorkloadEntrySpec[];
  workloadSelector?: WorkloadSelector;
  exportTo?: string[];
  subjectAltNames?: string[];
}

/** A port of a ServiceEntry. */
export interface ServicePort {
  number: number;
  protocol?: string;
  name?: string;
  targetPort?: number;
}

/** `WorkloadEntry.spec`, also the shape of ServiceEntry endpoints. */
export interface WorkloadEntrySpec {
  address?: string;
  /** Port name → endpoint port. */
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  network?: string;
  /** `region/zone/subzone`. */
  locality?: string;
  weight?: number;
  serviceAccount?: string;
}
