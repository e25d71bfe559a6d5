/**
 * One HTTPRoute or GRPCRoute rule as the Istio `HTTPRoute`s istiod makes of it for mesh parents
 * (pilot/pkg/config/kube/gateway/conversion.go: `convertHTTPRoute`, `convertGRPCRoute`,
 * `buildDestination`, `create*Filter`, `create*Match`): one Istio route per match, named
 * `namespace.route.ruleIndex` unless the rule has a name. Mesh parents do not enforce
 * ReferenceGrants (`enforceRefGrant` is false for them).
 *
 * @module
 */
import type { Destination, HeaderOperations, HTTPMatchRequest, HTTPRoute as IstioRoute, HTTPRouteDestination } from '../types/networking.ts';
import type { StringMatch } from '../types/common.ts';
import { gatewayDurationMs } from './duration.ts';
import type { GatewayBackendObjectReference, GatewayBackendRef, GatewayGRPCRouteMatch, GatewayHeaderFilter, GatewayHTTPRouteMatch, GatewayMirrorFilter, GatewayRedirectFilter, GatewayRewriteFilter, GatewayRouteRule, GatewayValueMatch } from './types.ts';

/** What conversion needs to know about the registry, and where it reports. */
export interface ConvertContext {
  /** The route's namespace. */
  readonly namespace: string;
  /** `namespace/name` of a Kubernetes Service that exists. */
  readonly serviceExists: (key: string) => boolean;
  /** Whether some service (Service or ServiceEntry) has this host. */
  readonly hostExists: (host: string) => boolean;
  /** Reports a problem that istiod reports in the route's status (ResolvedRefs=False), at a field path of the route. */
  readonly warn: (path: readonly (string | number)[], message: string) => void;
  /** Whether to fill in the CRD's schema defaults, as the API server does for every stored route (false only to compare with istiod's unit-test goldens, whose inputs skip the API server). */
  readonly crdDefaults?: boolean;
}

const DOMAIN = 'svc.cluster.local';

/** The HTTPRoute CRD's default match of a rule (`spec.rules[].matches`). */
const DEFAULT_MATCH: GatewayHTTPRouteMatch = { path: { type: 'PathPrefix', value: '/' } };

/** The HTTPRoute CRD's default `spec.rules`: one rule with the default match and no backends (istiod: a direct 500). */
export const DEFAULT_HTTP_RULES: readonly GatewayRouteRule<GatewayHTTPRouteMatch>[] = [{ matches: [DEFAULT_MATCH] }];

function headerMap(list: readonly { name: string; value: string }[] | undefined): Record<string, string> | undefined {
  if (list === undefined || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  // "Subsequent entries with an equivalent header name MUST be ignored."
  for (const h of list) {
    const k = h.name.toLowerCase();
    if (!Object.hasOwn(out, k)) out[k] = h.value;
  }
  return out;
}

function headerOps(f: GatewayHeaderFilter): HeaderOperations {
  const ops: HeaderOperations = {};
  const add = headerMap(f.add);
  const set = headerMap(f.set);
  if (add !== undefined) ops.add = add;
  if (f.remove !== undefined && f.remove.length > 0) ops.remove = [...f.remove];
  if (set !== undefined) ops.set = set;
  return ops;
}

function valueMatches(list: readonly GatewayValueMatch[] | undefined): Record<string, StringMatch> | undefined {
  if (list === undefined || list.length === 0) return undefined;
  const out: Record<string, StringMatch> = {};
  for (const m of list) out[m.name] = m.type === 'RegularExpression' ? { regex: m.value } : { exact: m.value };
  return out;
}

/** `createURIMatch`: PathPrefix (the default, trailing `/` dropped), Exact or RegularExpression. */
function uriMatch(m: GatewayHTTPRouteMatch): StringMatch {
  const type = m.path?.type ?? 'PathPrefix';
  let value = m.path?.value ?? '/';
  if (type === 'PathPrefix') {
    if (value !== '/' && value.endsWith('/')) value = value.slice(0, -1);
    return { prefix: value };
  }
  return type === 'Exact' ? { exact: value } : { regex: value };
}

/** `createGRPCURIMatch`: `/<service>/<method>` as exact, prefix or regex matches. */
function grpcUriMatch(m: GatewayGRPCRouteMatch): StringMatch | undefined {
  const mm = m.method;
  if (mm === undefined) return undefined;
  if (mm.type === 'RegularExpression') {
    if (mm.method === undefined) return { regex: `/${mm.service}/.+` };
    if (mm.service === undefined) return { regex: `/[^/]+/${mm.method}` };
    return { regex: `/${mm.service}/${mm.method}` };
  }
  if (mm.method === undefined) return { prefix: `/${mm.service}/` };
  if (mm.service === undefined) return { regex: `/[^/]+/${mm.method}` };
  return { exact: `/${mm.service}/${mm.method}` };
}

/**
 * `buildDestination` for a mesh parent: a Service backend is `name.namespace.svc.cluster.local`
 * (a warning when there is no such Service: calls get 500, Envoy's cluster-not-found answer under
 * Gateway semantics), a `networking.istio.io` `Hostname` backend is its name. Other kinds are
 * invalid backends: a warning, and a destination no service has (500 too).
 */
function destination(b: GatewayBackendObjectReference, path: readonly (string | number)[], ctx: ConvertContext): Destination {
  const group = b.group ?? '';
  const kind = b.kind ?? 'Service';
  const ns = b.namespace ?? ctx.namespace;
  const port = b.port === undefined ? undefined : { number: b.port };
  // A multi-cluster ServiceImport is read as the Service of its name (istiod without ENABLE_MCS_HOST).
  if (((group === '' || group === 'core') && kind === 'Service') || (group === 'multicluster.x-k8s.io' && kind === 'ServiceImport')) {
    const host = `${b.name}.${ns}.${DOMAIN}`;
    if (!ctx.serviceExists(`${ns}/${b.name}`)) ctx.warn(path, `backend Service ${ns}/${b.name} not found: calls this backend is picked for get 500 (istiod: ResolvedRefs=False, BackendNotFound)`);
    return port === undefined ? { host } : { host, port };
  }
  if (group === 'networking.istio.io' && kind === 'Hostname') {
    if (!ctx.hostExists(b.name)) ctx.warn(path, `backend host ${b.name} not found: calls this backend is picked for get 500 (istiod: ResolvedRefs=False, BackendNotFound)`);
    return port === undefined ? { host: b.name } : { host: b.name, port };
  }
  ctx.warn(path, `backendRef of group "${group}" kind "${kind}" is not supported: calls this backend is picked for get 500 (istiod: ResolvedRefs=False, InvalidKind)`);
  return { host: `invalid-backend.${kind.toLowerCase()}.${ns}.invalid` };
}

/** `buildHTTPDestination`: weight-0 backends left out; a single backend gets no weight. */
function destinations(refs: readonly GatewayBackendRef[], path: readonly (string | number)[], ctx: ConvertContext): HTTPRouteDestination[] {
  const kept = refs.map((b, i) => ({ b, i })).filter(({ b }) => (b.weight ?? 1) !== 0);
  return kept.map(({ b, i }) => {
    const rd: HTTPRouteDestination = { destination: destination(b, [...path, i], ctx) };
    if (kept.length > 1) rd.weight = b.weight ?? 1;
    for (const f of b.filters ?? []) {
      if (f.type === 'RequestHeaderModifier' && f.requestHeaderModifier !== undefined) rd.headers = { ...rd.headers, request: headerOps(f.requestHeaderModifier) };
      if (f.type === 'ResponseHeaderModifier' && f.responseHeaderModifier !== undefined) rd.headers = { ...rd.headers, response: headerOps(f.responseHeaderModifier) };
    }
    return rd;
  });
}

function redirect(f: GatewayRedirectFilter, crdDefaults: boolean): NonNullable<IstioRoute['redirect']> {
  const r: NonNullable<IstioRoute['redirect']> = {};
  // The CRD's default statusCode is 302 (the API server fills it in; istiod copies it into redirectCode).
  const code = f.statusCode ?? (crdDefaults ? 302 : undefined);
  if (code !== undefined) r.redirectCode = code;
  if (f.hostname !== undefined) r.authority = f.hostname;
  if (f.scheme !== undefined) r.scheme = f.scheme;
  // "When empty, port (if specified) of the request is used" — unlike Istio's default.
  if (f.port !== undefined) r.port = f.port;
  else r.derivePort = f.scheme !== undefined ? 'FROM_PROTOCOL_DEFAULT' : 'FROM_REQUEST_PORT';
  if (f.path?.type === 'ReplaceFullPath' && f.path.replaceFullPath !== undefined) r.uri = f.path.replaceFullPath;
  if (f.path?.type === 'ReplacePrefixMatch' && f.path.replacePrefixMatch !== undefined) r.prefixRewrite = f.path.replacePrefixMatch;
  return r;
}

function rewrite(f: GatewayRewriteFilter): IstioRoute['rewrite'] {
  const r: NonNullable<IstioRoute['rewrite']> = {};
  if (f.path?.type === 'ReplacePrefixMatch' && f.path.replacePrefixMatch !== undefined) {
    // `/` means removing the prefix.
    r.uri = f.path.replacePrefixMatch.endsWith('/') ? f.path.replacePrefixMatch.slice(0, -1) || '/' : f.path.replacePrefixMatch;
  }
  if (f.path?.type === 'ReplaceFullPath' && f.path.replaceFullPath !== undefined) r.uriRegexRewrite = { match: '/.*', rewrite: f.path.replaceFullPath };
  if (f.hostname !== undefined) r.authority = f.hostname;
  return r.uri === undefined && r.uriRegexRewrite === undefined && r.authority === undefined ? undefined : r;
}

/** `createMirrorFilter`; a mirror to a backend that does not exist is left out (istiod drops it). */
function mirror(f: GatewayMirrorFilter, path: readonly (string | number)[], ctx: ConvertContext): NonNullable<IstioRoute['mirrors']>[number] | undefined {
  let missing = false;
  const dest = destination(f.backendRef, path, { ...ctx, warn: (p, m) => {
    missing = true;
    ctx.warn(p, `${m.replace(/: calls this backend is picked for get 500.*$/, '')}: the mirror is left out (istiod drops it)`);
  } });
  if (missing) return undefined;
  const out: NonNullable<IstioRoute['mirrors']>[number] = { destination: dest };
  if (f.fraction !== undefined) out.percentage = { value: (100 * f.fraction.numerator) / (f.fraction.denominator ?? 100) };
  else if (f.percent !== undefined) out.percentage = { value: f.percent };
  return out;
}

/**
 * The Istio routes of rule `index` of a route: one per match (one without a match when the
 * rule has none), in the order of the matches.
 */
export function convertRule(kind: 'HTTPRoute' | 'GRPCRoute', routeName: string, rule: GatewayRouteRule<GatewayHTTPRouteMatch | GatewayGRPCRouteMatch>, index: number, ctx: ConvertContext): IstioRoute[] {
  const path = ['spec', 'rules', index];
  const base: IstioRoute = { name: rule.name ?? `${ctx.namespace}.${routeName}.${index}` };
  (rule.filters ?? []).forEach((f, i) => {
    if (f.type === 'RequestHeaderModifier' && f.requestHeaderModifier !== undefined) base.headers = { ...base.headers, request: headerOps(f.requestHeaderModifier) };
    else if (f.type === 'ResponseHeaderModifier' && f.responseHeaderModifier !== undefined) base.headers = { ...base.headers, response: headerOps(f.responseHeaderModifier) };
    else if (f.type === 'RequestRedirect' && f.requestRedirect !== undefined) base.redirect = redirect(f.requestRedirect, ctx.crdDefaults !== false);
    else if (f.type === 'URLRewrite' && f.urlRewrite !== undefined) {
      const rw = rewrite(f.urlRewrite);
      if (rw !== undefined) base.rewrite = rw;
    } else if (f.type === 'RequestMirror' && f.requestMirror !== undefined) {
      const m = mirror(f.requestMirror, [...path, 'filters', i, 'requestMirror', 'backendRef'], ctx);
      if (m !== undefined) base.mirrors = [...(base.mirrors ?? []), m];
    }
  });
  if (rule.retry !== undefined) {
    const attempts = rule.retry.attempts ?? 2;
    // "Implementations SHOULD retry on connection errors … if a retry stanza is configured."
    const retryOn = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', ...(rule.retry.codes ?? []).map(String)].join(',');
    base.retries = attempts === 0 ? { attempts: 0 } : { attempts, retryOn };
    if (rule.retry.backoff !== undefined) base.retries.backoff = `${gatewayDurationMs(rule.retry.backoff) as number}ms`;
  }
  const request = rule.timeouts?.request === undefined ? 0 : (gatewayDurationMs(rule.timeouts.request) as number);
  if (request !== 0) base.timeout = `${request}ms`;
  const backend = rule.timeouts?.backendRequest === undefined ? 0 : (gatewayDurationMs(rule.timeouts.backendRequest) as number);
  if (backend !== 0) {
    if (base.retries !== undefined) base.retries.perTryTimeout = `${backend}ms`;
    else base.timeout = `${backend}ms`;
  }
  const refs = rule.backendRefs ?? [];
  if (refs.reduce((s, b) => s + (b.weight ?? 1), 0) === 0 && base.redirect === undefined) {
    // "When there are no >0 weight backends return 500."
    base.directResponse = { status: 500 };
  } else if (refs.length > 0) {
    base.route = destinations(refs, [...path, 'backendRefs'], ctx);
  }
  // An HTTPRoute rule without matches gets the CRD's default, one PathPrefix `/` match (the API server fills it in), which sorts as a prefix match.
  const given = rule.matches ?? (kind === 'HTTPRoute' && ctx.crdDefaults !== false ? [DEFAULT_MATCH] : []);
  const matches: (HTTPMatchRequest | undefined)[] = given.map((m) =>
    kind === 'HTTPRoute' ? httpMatch(m as GatewayHTTPRouteMatch) : grpcMatch(m as GatewayGRPCRouteMatch),
  );
  if (matches.length === 0) matches.push(undefined);
  return matches.map((m) => (m === undefined ? { ...base } : { ...base, match: [m] }));
}

function httpMatch(m: GatewayHTTPRouteMatch): HTTPMatchRequest {
  const out: HTTPMatchRequest = { uri: uriMatch(m) };
  const headers = valueMatches(m.headers);
  const query = valueMatches(m.queryParams);
  if (headers !== undefined) out.headers = headers;
  if (query !== undefined) out.queryParams = query;
  if (m.method !== undefined) out.method = { exact: m.method };
  return out;
}

function grpcMatch(m: GatewayGRPCRouteMatch): HTTPMatchRequest {
  const out: HTTPMatchRequest = {};
  const uri = grpcUriMatch(m);
  const headers = valueMatches(m.headers);
  if (uri !== undefined) out.uri = uri;
  if (headers !== undefined) out.headers = headers;
  return out;
}
