/**
 * Validation of HTTPRoute and GRPCRoute specs (gateway.networking.k8s.io), checking what the
 * Gateway API's CRD schema and CEL rules reject (so a file meshlet accepts is one the API server
 * accepts) and what istiod refuses to convert, with the field path of each problem.
 *
 * @module
 */
import { fail, int, list, obj, oneOf, regex, req, str, strWith, type Ctx, type Validator } from '../validate/schema.ts';
import { gatewayDurationMs } from './duration.ts';
import type { GatewayBackendObjectReference, GatewayBackendRef, GatewayGRPCRouteMatch, GatewayHTTPRouteMatch, GatewayMirrorFilter, GatewayParentReference, GatewayRouteFilter, GatewayRouteRule, GatewayRouteSpec, GatewayValueMatch } from './types.ts';

const name = strWith((s) => (s.length === 0 ? 'must not be empty' : s.length > 253 ? 'must be at most 253 characters' : undefined));
const portNumber = int({ min: 1, max: 65535 });
// A path Envoy puts into the request line or a Location header: no NUL, CR or LF (its HTTP_HEADER_VALUE rule on path rewrites and redirects).
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is checked
const LINE_BREAK = /[\u0000\r\n]/;
const absolutePath = strWith((s) =>
  !s.startsWith('/') ? `must be an absolute path starting with "/", got "${s}"` : LINE_BREAK.test(s) ? `${JSON.stringify(s)} has a NUL, CR or LF (Envoy refuses the route)` : s.length > 1024 ? 'must be at most 1024 characters' : undefined,
);
/** The Gateway API's PreciseHostname (CRD pattern): a redirect's or rewrite's hostname, no wildcard, no port. */
const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const preciseHostname = strWith((s) =>
  s.length === 0 || s.length > 253 ? 'must be 1 to 253 characters' : PRECISE_HOSTNAME.test(s) ? undefined : `${JSON.stringify(s)} is not a host name (lower-case DNS labels, no port or wildcard: the Gateway API's PreciseHostname)`,
);
const gatewayDuration = strWith((s) => {
  const ms = gatewayDurationMs(s);
  return typeof ms === 'number' ? undefined : ms.error;
});
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const headerName = strWith((s) => (TOKEN.test(s) ? undefined : `invalid header name "${s}": a header name is a token (letters, digits and !#$%&'*+-.^_\`|~)`));
const statusCode: Validator<number> = (v, path, ctx) => (typeof v === 'number' && [301, 302, 303, 307, 308].includes(v) ? v : fail(ctx, path, `must be one of 301, 302, 303, 307, 308; got ${JSON.stringify(v)}`));

const parentRef = obj<GatewayParentReference>({ group: str, kind: str, namespace: str, name: req(name), sectionName: str, port: portNumber });

const backendObject = {
  group: str,
  kind: str,
  name: req(name),
  namespace: str,
  port: portNumber,
};

/** Kubernetes' CEL rule on every backend reference: a Service needs a port. */
function checkPort(b: { group?: string; kind?: string; port?: number }, path: readonly (string | number)[], ctx: Ctx): void {
  if ((b.group ?? '') === '' && (b.kind ?? 'Service') === 'Service' && b.port === undefined) fail(ctx, [...path, 'port'], 'is required when the backend is a Service');
  // istiod: "port is required in backendRef" for every kind but its Backend.
  else if (b.port === undefined) fail(ctx, [...path, 'port'], 'is required (istiod does not convert a route with a backendRef without a port)');
}

/** istiod's `isValidHeaderValue`: tab, or printable (no control character, no DEL); a route with another is not converted. */
const filterValue = strWith((v) => ([...v].every((c) => c === '\t' || (c >= ' ' && c !== '\x7f')) ? undefined : 'contains invalid characters (a control character or DEL): istiod does not convert a route with one'));
const headerValue: Validator<{ name: string; value: string }> = obj({ name: req(headerName), value: req(filterValue) });
const headerFilter = obj({ set: list(headerValue), add: list(headerValue), remove: list(headerName) });
const pathModifier = obj(
  { type: req(oneOf(['ReplaceFullPath', 'ReplacePrefixMatch'] as const)), replaceFullPath: absolutePath, replacePrefixMatch: absolutePath },
  {
    check: (p, path, ctx, raw) => {
      if (p.type === 'ReplaceFullPath' && raw.replaceFullPath === undefined) fail(ctx, [...path, 'replaceFullPath'], 'is required when type is ReplaceFullPath');
      if (p.type === 'ReplacePrefixMatch' && raw.replacePrefixMatch === undefined) fail(ctx, [...path, 'replacePrefixMatch'], 'is required when type is ReplacePrefixMatch');
    },
  },
);
const mirror = obj<GatewayMirrorFilter>(
  {
    backendRef: req(obj<GatewayBackendObjectReference>({ ...backendObject }, { check: checkPort })),
    percent: int({ min: 0, max: 100 }),
    fraction: obj({ numerator: req(int({ min: 0 })), denominator: int({ min: 1 }) }, {
      check: (f, path, ctx) => {
        if (f.numerator > (f.denominator ?? 100)) fail(ctx, [...path, 'numerator'], 'must be at most the denominator');
      },
    }),
  },
  { oneOf: [['percent', 'fraction']] },
);

const FILTER_FIELDS: Readonly<Record<string, keyof GatewayRouteFilter>> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  RequestMirror: 'requestMirror',
  CORS: 'cors',
  ExtensionRef: 'extensionRef',
};

function filterValidator(allowed: readonly string[]): Validator<GatewayRouteFilter> {
  return obj<GatewayRouteFilter>(
    {
      type: req(oneOf(allowed)),
      requestHeaderModifier: headerFilter,
      responseHeaderModifier: headerFilter,
      requestRedirect: obj({ scheme: oneOf(['http', 'https']), hostname: preciseHostname, path: pathModifier, port: portNumber, statusCode }),
      urlRewrite: obj({ hostname: preciseHostname, path: pathModifier }),
      requestMirror: mirror,
      cors: (v, path, ctx) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : fail(ctx, path, 'must be an object')),
      extensionRef: (v, path, ctx) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : fail(ctx, path, 'must be an object')),
    },
    {
      check: (f, path, ctx, raw) => {
        const field = FILTER_FIELDS[f.type];
        for (const k of Object.values(FILTER_FIELDS)) {
          if (k === field) {
            if (raw[k] === undefined) fail(ctx, [...path, k], `is required when type is ${f.type}`);
          } else if (raw[k] !== undefined) fail(ctx, [...path, k], `must not be set when type is ${f.type}`);
        }
        // istiod: "unsupported filter type" — the whole route is not converted.
        if (f.type === 'ExtensionRef') fail(ctx, [...path, 'type'], 'ExtensionRef filters are not supported (istiod does not convert a route that has one)');
        if (f.type === 'CORS') ctx.issues.at(ctx.subject, [...path, 'type'], 'warning', 'not supported by meshlet: the CORS filter is ignored (meshlet applies VirtualService corsPolicy)', 'MESHLET0002');
      },
    },
  );
}

const valueMatch = (nameCheck: Validator<string>): Validator<GatewayValueMatch> =>
  obj<GatewayValueMatch>(
    { type: oneOf(['Exact', 'RegularExpression'] as const), name: req(nameCheck), value: req(str) },
    {
      check: (m, path, ctx) => {
        if (m.type === 'RegularExpression') regex(m.value, [...path, 'value'], ctx);
      },
    },
  );

/** The names in a list must be unique, case-insensitively for headers (the CRD's listMapKey). */
/**
 * The API server refuses two matches of one name (the list's map key is the exact name); names
 * differing only in case are accepted, and istiod keeps both (createHeadersMatch keys its map by
 * the exact name), so both must match.
 */
function uniqueNames(items: readonly GatewayValueMatch[] | undefined, path: readonly (string | number)[], field: string, ctx: Ctx): void {
  const seen = new Set<string>();
  (items ?? []).forEach((m, i) => {
    const k = m.name;
    if (seen.has(k)) fail(ctx, [...path, field, i, 'name'], `duplicate ${field} match "${m.name}"`);
    seen.add(k);
  });
}

const httpMatch = obj<GatewayHTTPRouteMatch>(
  {
    path: obj(
      { type: oneOf(['Exact', 'PathPrefix', 'RegularExpression'] as const), value: str },
      {
        check: (p, path, ctx) => {
          const v = p.value ?? '/';
          if (p.type === 'RegularExpression') regex(v, [...path, 'value'], ctx);
          else if (!v.startsWith('/')) fail(ctx, [...path, 'value'], `must be an absolute path starting with "/", got "${v}"`);
          else if (v.includes('//') || /\/\.{1,2}(\/|$)/.test(v) || v.includes('#') || v.includes('%2f') || v.includes('%2F')) fail(ctx, [...path, 'value'], `must not contain "//", "/./", "/../", "%2f" or "#", got "${v}"`);
        },
      },
    ),
    headers: list(valueMatch(headerName)),
    queryParams: list(valueMatch(name)),
    method: oneOf(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']),
  },
  {
    check: (m, path, ctx) => {
      uniqueNames(m.headers, path, 'headers', ctx);
      uniqueNames(m.queryParams, path, 'queryParams', ctx);
    },
  },
);

const grpcMatch = obj<GatewayGRPCRouteMatch>({
  method: obj(
    { type: oneOf(['Exact', 'RegularExpression'] as const), service: str, method: str },
    {
      check: (m, path, ctx) => {
        if (m.service === undefined && m.method === undefined) fail(ctx, path, 'one of service or method must be set');
        if (m.type === 'RegularExpression') {
          if (m.service !== undefined) regex(m.service, [...path, 'service'], ctx);
          if (m.method !== undefined) regex(m.method, [...path, 'method'], ctx);
        } else {
          if (m.service !== undefined && !/^[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/.test(m.service)) fail(ctx, [...path, 'service'], `"${m.service}" is not a gRPC service name (package.Service)`);
          if (m.method !== undefined && !/^[A-Za-z_][A-Za-z_0-9]*$/.test(m.method)) fail(ctx, [...path, 'method'], `"${m.method}" is not a gRPC method name`);
        }
      },
    },
  ),
  headers: list(valueMatch(headerName)),
});

function backendRef(filters: Validator<GatewayRouteFilter>): Validator<GatewayBackendRef> {
  return obj<GatewayBackendRef>(
    { ...backendObject, weight: int({ min: 0, max: 1000000 }), filters: list(filters) },
    {
      check: (b, path, ctx) => {
        checkPort(b, path, ctx);
        // istiod: "service name invalid; the name of the Service must be used, not the hostname".
        if ((b.group ?? '') === '' && (b.kind ?? 'Service') === 'Service' && b.name.includes('.')) fail(ctx, [...path, 'name'], `"${b.name}" is a host name; name the Service ("reviews"), with namespace for another namespace`);
        // istiod's buildDestination: "namespace may not be set with Hostname type" (InvalidDestination: the route is not converted).
        if (b.group === 'networking.istio.io' && b.kind === 'Hostname' && b.namespace !== undefined) fail(ctx, [...path, 'namespace'], `may not be set with kind Hostname (istiod does not convert the route); the host name "${b.name}" names the service`);
        (b.filters ?? []).forEach((f, i) => {
          if (f.type !== 'RequestHeaderModifier' && f.type !== 'ResponseHeaderModifier') fail(ctx, [...path, 'filters', i, 'type'], `${f.type} is not supported on a backendRef (istiod converts header modifiers only)`);
        });
      },
    },
  );
}

function rule<M extends GatewayHTTPRouteMatch | GatewayGRPCRouteMatch>(kind: 'HTTPRoute' | 'GRPCRoute'): Validator<GatewayRouteRule<M>> {
  const http = kind === 'HTTPRoute';
  const filters = filterValidator(http ? Object.keys(FILTER_FIELDS) : ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef']);
  return obj<GatewayRouteRule<M>>(
    {
      name: name,
      matches: list((http ? httpMatch : grpcMatch) as unknown as Validator<M>),
      filters: list(filters),
      backendRefs: list(backendRef(filters)),
      timeouts: http ? obj({ request: gatewayDuration, backendRequest: gatewayDuration }) : (_v, p, c) => fail(c, p, 'unknown field "timeouts" (GRPCRoute rules have none)'),
      retry: http ? obj({ codes: list(int({ min: 400, max: 599 })), attempts: int({ min: 0 }), backoff: gatewayDuration }) : (_v, p, c) => fail(c, p, 'unknown field "retry" (GRPCRoute rules have none)'),
      sessionPersistence: (v, path, ctx) => {
        ctx.issues.at(ctx.subject, path, 'warning', 'not supported by meshlet: sessionPersistence is ignored (use a DestinationRule consistentHash)', 'MESHLET0002');
        return v as Record<string, unknown>;
      },
    },
    {
      check: (r, path, ctx) => {
        const fs = r.filters ?? [];
        const count = (t: string) => fs.filter((f) => f.type === t).length;
        for (const t of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']) if (count(t) > 1) fail(ctx, [...path, 'filters'], `${t} may appear at most once in a rule`);
        if (count('RequestRedirect') > 0 && count('URLRewrite') > 0) fail(ctx, [...path, 'filters'], 'RequestRedirect and URLRewrite cannot both be used in a rule');
        if (count('RequestRedirect') > 0 && (r.backendRefs ?? []).length > 0) fail(ctx, [...path, 'backendRefs'], 'must be empty when the rule has a RequestRedirect filter');
        const ms = (r.matches ?? []) as GatewayHTTPRouteMatch[];
        // No matches is the default match, a PathPrefix "/".
        const prefixOnly = ms.length === 0 || (ms.length === 1 && (ms[0]?.path?.type ?? 'PathPrefix') === 'PathPrefix');
        fs.forEach((f, i) => {
          const p = (f.urlRewrite ?? f.requestRedirect)?.path;
          if (p?.type === 'ReplacePrefixMatch' && !prefixOnly) fail(ctx, [...path, 'filters', i], 'ReplacePrefixMatch needs the rule to have exactly one match, a PathPrefix');
        });
        const t = r.timeouts;
        if (t?.request !== undefined && t.backendRequest !== undefined) {
          const req = gatewayDurationMs(t.request);
          const be = gatewayDurationMs(t.backendRequest);
          if (typeof req === 'number' && typeof be === 'number' && req !== 0 && be > req) fail(ctx, [...path, 'timeouts', 'backendRequest'], `must not be longer than request (${t.request})`);
        }
      },
    },
  );
}

function spec<M extends GatewayHTTPRouteMatch | GatewayGRPCRouteMatch>(kind: 'HTTPRoute' | 'GRPCRoute'): Validator<GatewayRouteSpec<M>> {
  return obj<GatewayRouteSpec<M>>({
    parentRefs: list(parentRef, { max: 32 }),
    hostnames: list(strWith((s) => (/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s) ? undefined : `"${s}" is not a host name (lower case, a leading "*." allowed)`)), { max: 16 }),
    rules: list(rule<M>(kind), { max: 16 }),
  });
}

/** Validates an HTTPRoute spec. */
export const httpRouteSpec: Validator<GatewayRouteSpec<GatewayHTTPRouteMatch>> = spec<GatewayHTTPRouteMatch>('HTTPRoute');
/** Validates a GRPCRoute spec. */
export const grpcRouteSpec: Validator<GatewayRouteSpec<GatewayGRPCRouteMatch>> = spec<GatewayGRPCRouteMatch>('GRPCRoute');
