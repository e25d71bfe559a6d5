/**
 * networking.istio.io resources: VirtualService, DestinationRule, ServiceEntry, WorkloadEntry, WorkloadGroup.
 * Field names and meanings follow Istio's API (see docs/config.md for what meshlet applies).
 *
 * @module
 */
import type { PortSelector, Percent, StringMatch, WorkloadSelector } from './common.ts';

export type * from './destination-rule.ts';

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

/** `WorkloadGroup.spec`: the template of the WorkloadEntries of workloads that register through it. */
export interface WorkloadGroupSpec {
  /** Labels and annotations every generated WorkloadEntry gets. */
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  /** The WorkloadEntry template (its address is the registering workload's). */
  template: WorkloadEntrySpec;
  /** Readiness probe: run by the mesh of each workload that registers through the group (`mesh.register()`), which reports its health. */
  probe?: ReadinessProbe;
}

/** `WorkloadGroup.spec.probe`: exactly one of `httpGet`, `tcpSocket`, `exec` (Istio's webhook rejects `grpc`). */
export interface ReadinessProbe {
  initialDelaySeconds?: number;
  timeoutSeconds?: number;
  periodSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
  httpGet?: { path?: string; port: number; host?: string; scheme?: string; httpHeaders?: { name?: string; value?: string }[] };
  tcpSocket?: { host?: string; port: number };
  exec?: { command: string[] };
  grpc?: { port?: number; service?: string };
}
