/**
 * The parts of the Kubernetes Gateway API's HTTPRoute and GRPCRoute (gateway.networking.k8s.io)
 * that istiod converts for mesh (GAMMA) routing, as meshlet reads them.
 *
 * @module
 */

/** A `parentRefs` entry: a Service (mesh routing), a ServiceEntry, or a Gateway. */
export interface GatewayParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

/** A `backendRefs` entry, or a mirror filter's `backendRef`. */
export interface GatewayBackendObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
}

/** A `backendRefs` entry of a rule: a backend, its weight and its own header filters. */
export interface GatewayBackendRef extends GatewayBackendObjectReference {
  weight?: number;
  filters?: GatewayRouteFilter[];
}

/** A header of a header modifier. */
export interface GatewayHTTPHeader {
  name: string;
  value: string;
}

/** `RequestHeaderModifier` / `ResponseHeaderModifier`. */
export interface GatewayHeaderFilter {
  set?: GatewayHTTPHeader[];
  add?: GatewayHTTPHeader[];
  remove?: string[];
}

/** The path part of a redirect or rewrite. */
export interface GatewayPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

/** `RequestRedirect`. */
export interface GatewayRedirectFilter {
  scheme?: string;
  hostname?: string;
  path?: GatewayPathModifier;
  port?: number;
  statusCode?: number;
}

/** `URLRewrite`. */
export interface GatewayRewriteFilter {
  hostname?: string;
  path?: GatewayPathModifier;
}

/** `RequestMirror`. */
export interface GatewayMirrorFilter {
  backendRef: GatewayBackendObjectReference;
  percent?: number;
  fraction?: { numerator: number; denominator?: number };
}

/** A filter of a rule or of a backend. */
export interface GatewayRouteFilter {
  type: string;
  requestHeaderModifier?: GatewayHeaderFilter;
  responseHeaderModifier?: GatewayHeaderFilter;
  requestRedirect?: GatewayRedirectFilter;
  urlRewrite?: GatewayRewriteFilter;
  requestMirror?: GatewayMirrorFilter;
  cors?: Record<string, unknown>;
  extensionRef?: Record<string, unknown>;
}

/** A header or query parameter match. */
export interface GatewayValueMatch {
  type?: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

/** One HTTPRoute match. */
export interface GatewayHTTPRouteMatch {
  path?: { type?: 'Exact' | 'PathPrefix' | 'RegularExpression'; value?: string };
  headers?: GatewayValueMatch[];
  queryParams?: GatewayValueMatch[];
  method?: string;
}

/** One GRPCRoute match. */
export interface GatewayGRPCRouteMatch {
  method?: { type?: 'Exact' | 'RegularExpression'; service?: string; method?: string };
  headers?: GatewayValueMatch[];
}

/** A rule of an HTTPRoute or a GRPCRoute (GRPCRoute rules have no timeouts, retry or HTTP matches). */
export interface GatewayRouteRule<M> {
  name?: string;
  matches?: M[];
  filters?: GatewayRouteFilter[];
  backendRefs?: GatewayBackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  retry?: { codes?: number[]; attempts?: number; backoff?: string };
  sessionPersistence?: Record<string, unknown>;
}

/** The spec of an HTTPRoute or a GRPCRoute. */
export interface GatewayRouteSpec<M> {
  parentRefs?: GatewayParentReference[];
  hostnames?: string[];
  rules?: GatewayRouteRule<M>[];
}

/**
 * The spec of a Gateway API HTTPRoute, as meshlet reads it.
 */
export type GatewayHTTPRouteSpec = GatewayRouteSpec<GatewayHTTPRouteMatch>;

/**
 * The spec of a Gateway API GRPCRoute, as meshlet reads it.
 */
export type GatewayGRPCRouteSpec = GatewayRouteSpec<GatewayGRPCRouteMatch>;
