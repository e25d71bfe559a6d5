/**
 * The parts of the Kubernetes Gateway API's HTTPRoute and GRPCRoute (gateway.networking.k8s.io)
 * that istiod converts for mesh (GAMMA) routing, as meshlet reads them.
 *
 * @module
 */

/** A `parentRefs` entry: a Service (mesh routing), a ServiceEntry, or a Gateway. */
export interface ParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

/** A `backendRefs` entry, or a mirror filter's `backendRef`. */
export interface BackendObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
}

/** A `backendRefs` entry of a rule: a backend, its weight and its own header filters. */
export interface BackendRef extends BackendObjectReference {
  weight?: number;
  filters?: RouteFilter[];
}

/** A header of a header modifier. */
export interface HTTPHeader {
  name: string;
  value: string;
}

/** `RequestHeaderModifier` / `ResponseHeaderModifier`. */
export interface HeaderFilter {
  set?: HTTPHeader[];
  add?: HTTPHeader[];
  remove?: string[];
}

/** The path part of a redirect or rewrite. */
export interface PathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

/** `RequestRedirect`. */
export interface RedirectFilter {
  scheme?: string;
  hostname?: string;
  path?: PathModifier;
  port?: number;
  statusCode?: number;
}

/** `URLRewrite`. */
export interface RewriteFilter {
  hostname?: string;
  path?: PathModifier;
}

/** `RequestMirror`. */
export interface MirrorFilter {
  backendRef: BackendObjectReference;
  percent?: number;
  fraction?: { numerator: number; denominator?: number };
}

/** A filter of a rule or of a backend. */
export interface RouteFilter {
  type: string;
  requestHeaderModifier?: HeaderFilter;
  responseHeaderModifier?: HeaderFilter;
  requestRedirect?: RedirectFilter;
  urlRewrite?: RewriteFilter;
  requestMirror?: MirrorFilter;
  cors?: Record<string, unknown>;
  extensionRef?: Record<string, unknown>;
}

/** A header or query parameter match. */
export interface ValueMatch {
  type?: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

/** One HTTPRoute match. */
export interface HTTPRouteMatch {
  path?: { type?: 'Exact' | 'PathPrefix' | 'RegularExpression'; value?: string };
  headers?: ValueMatch[];
  queryParams?: ValueMatch[];
  method?: string;
}

/** One GRPCRoute match. */
export interface GRPCRouteMatch {
  method?: { type?: 'Exact' | 'RegularExpression'; service?: string; method?: string };
  headers?: ValueMatch[];
}

/** A rule of an HTTPRoute or a GRPCRoute (GRPCRoute rules have no timeouts, retry or HTTP matches). */
export interface RouteRule<M> {
  name?: string;
  matches?: M[];
  filters?: RouteFilter[];
  backendRefs?: BackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  retry?: { codes?: number[]; attempts?: number; backoff?: string };
  sessionPersistence?: Record<string, unknown>;
}

/** The spec of an HTTPRoute or a GRPCRoute. */
export interface RouteSpec<M> {
  parentRefs?: ParentReference[];
  hostnames?: string[];
  rules?: RouteRule<M>[];
}

/** A validated HTTPRoute or GRPCRoute, waiting for the Services it needs to become VirtualServices. */
export type GatewayRoute =
  | (RouteMeta & { readonly kind: 'HTTPRoute'; readonly spec: RouteSpec<HTTPRouteMatch> })
  | (RouteMeta & { readonly kind: 'GRPCRoute'; readonly spec: RouteSpec<GRPCRouteMatch> });

/** What every route carries besides its spec. */
export interface RouteMeta {
  readonly name: string;
  readonly namespace: string;
  readonly creationTimestamp: string | undefined;
  /** `HTTPRoute namespace/name`. */
  readonly ref: string;
  readonly source: import('../issues.ts').SourceRef;
}
