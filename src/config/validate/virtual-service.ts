/**
 * Validation of `VirtualService`, following Istio's own rules (pkg/config/validation).
 *
 * @module
 */
import type {
  CorsPolicy,
  Delegate,
  Destination,
  FaultAbort,
  FaultDelay,
  HeaderOperations,
  Headers,
  HTTPDirectResponse,
  HTTPFaultInjection,
  HTTPMatchRequest,
  HTTPMirrorPolicy,
  HTTPRedirect,
  HTTPRetry,
  HTTPRewrite,
  HTTPRoute,
  HTTPRouteDestination,
  L4MatchAttributes,
  RegexRewrite,
  RouteDestination,
  TCPRoute,
  TLSMatchAttributes,
  TLSRoute,
  VirtualServiceSpec,
} from '../types/networking.ts';
import { checkDnsLabel, checkHeaderName, host, isIpAddress, labels, namespaceName, percent, portSelector, stringMatch } from './common.ts';
import { checkRetryOn } from './retry-on.ts';
import { exportToList } from './shared-networking.ts';
import {
  bool,
  deprecated,
  durationStr,
  fail,
  int,
  list,
  map,
  nonEmpty,
  obj,
  oneOf,
  port,
  regex,
  req,
  str,
  strWith,
  unsupported,
  warn,
  type Validator,
} from './schema.ts';

/** gRPC status names accepted by `fault.abort.grpcStatus`. */
export const GRPC_STATUS_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
] as const;

/** Match header keys: header names, or `@request.auth.claims.<claim>` (JWT-claim routing). */
function checkMatchHeaderName(name: string): string | undefined {
  if (name.startsWith('@request.auth.claims.')) return name.length > '@request.auth.claims.'.length ? undefined : 'claim name missing';
  return checkHeaderName(name);
}

const headerMatches = map(stringMatch({ allowStarRegex: true }), { key: checkMatchHeaderName });

const matchRequest = obj<HTTPMatchRequest>({
  name: str,
  uri: stringMatch({ allowEmptyPrefix: true }),
  scheme: stringMatch(),
  method: stringMatch(),
  authority: stringMatch(),
  headers: headerMatches,
  port,
  sourceLabels: labels,
  gateways: list(nonEmpty),
  queryParams: map(stringMatch({ allowStarRegex: true })),
  ignoreUriCase: bool,
  withoutHeaders: headerMatches,
  sourceNamespace: namespaceName,
  statPrefix: unsupported(str, 'meshlet reports Istio metrics, not per-route Envoy stats'),
});

const destination = obj<Destination>({
  host: req(host),
  subset: strWith(checkDnsLabel),
  port: portSelector,
});

function opHeaderName(kind: 'request' | 'response'): (name: string) => string | undefined {
  return (n) => {
    const lower = n.toLowerCase();
    if (kind === 'request' && (lower === ':authority' || lower === 'host')) return undefined; // a host rewrite
    if (kind === 'response' && lower === 'host') return 'the Host header cannot be set on a response';
    return checkHeaderName(n);
  };
}

function headerOps(kind: 'request' | 'response'): Validator<HeaderOperations> {
  return obj<HeaderOperations>({
    set: map(str, { key: opHeaderName(kind) }),
    add: map(str, { key: opHeaderName(kind) }),
    remove: list(
      strWith((n) => {
        const lower = n.toLowerCase();
        if (lower === 'host' || lower === ':authority') return 'the Host header cannot be removed';
        return checkHeaderName(n);
      }),
    ),
  });
}

const headers = obj<Headers>({ request: headerOps('request'), response: headerOps('response') });

const routeDestination = obj<HTTPRouteDestination>({
  destination: req(destination),
  weight: int({ min: 0, max: 2147483647 }),
  headers,
});

const l4Destination = obj<RouteDestination>({ destination: req(destination), weight: int({ min: 0 }) });

const redirect = obj<HTTPRedirect>(
  {
    uri: str,
    authority: str,
    port,
    derivePort: oneOf(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']),
    scheme: strWith((s) => (s === 'http' || s === 'https' ? undefined : `scheme must be http or https, got "${s}"`)),
    redirectCode: int({ min: 300, max: 399 }),
    prefixRewrite: str,
  },
  {
    oneOf: [['uri', 'prefixRewrite'], ['port', 'derivePort']],
    check: (r, path, ctx) => {
      if (r.redirectCode !== undefined && ![301, 302, 303, 307, 308].includes(r.redirectCode)) {
        fail(ctx, [...path, 'redirectCode'], `must be one of 301, 302, 303, 307, 308 (Istio drops other codes), got ${r.redirectCode}`);
      }
    },
  },
);

const MAX_BODY = 1024 * 1024;
const WARN_BODY = 100 * 1024;
const directResponse = obj<HTTPDirectResponse>({
  status: req(int({ min: 200, max: 599 })),
  body: obj<{ string?: string; bytes?: string }>(
    {
      string: str,
      bytes: strWith((b) => (/^[A-Za-z0-9+/]*={0,2}$/.test(b) && b.length % 4 === 0 ? undefined : 'must be base64')),
    },
    {
      oneOf: [['string', 'bytes']],
      check: (b, path, ctx) => {
        const size = b.string !== undefined ? Buffer.byteLength(b.string) : b.bytes !== undefined ? Math.floor((b.bytes.length * 3) / 4) : 0;
        if (size > MAX_BODY) fail(ctx, path, `body is ${size} bytes; the limit is 1 MiB`);
        else if (size > WARN_BODY) warn(ctx, path, `body is ${size} bytes; bodies over 100 KiB are discouraged`);
      },
    },
  ),
});

const rewrite = obj<HTTPRewrite>(
  {
    uri: str,
    authority: str,
    uriRegexRewrite: obj<RegexRewrite>({ match: req(regex), rewrite: req(str) }),
  },
  {
    oneOf: [['uri', 'uriRegexRewrite']],
    check: (_r, path, ctx, raw) => {
      if (Object.keys(raw).length === 0) fail(ctx, path, 'rewrite must specify uri, uriRegexRewrite or authority');
    },
  },
);

const retries = obj<HTTPRetry>(
  {
    attempts: int({ min: 0, max: 2147483647 }),
    perTryTimeout: durationStr(),
    retryOn: strWith(checkRetryOn),
    retryRemoteLocalities: bool,
    retryIgnorePreviousHosts: bool,
    backoff: durationStr(),
  },
  {
    check: (r, path, ctx, raw) => {
      if ((r.attempts ?? 0) === 0 && Object.keys(raw).some((k) => k !== 'attempts')) {
        fail(ctx, path, raw.attempts === undefined
          ? 'attempts is required when other retry fields are set (an unset attempts is 0, which disables retries)'
          : 'attempts: 0 disables retries; the other retry fields must not be set with it');
      }
    },
  },
);

const faultPercent = percent;
const delay = obj<FaultDelay>(
  {
    fixedDelay: durationStr(),
    exponentialDelay: (_v, path, ctx) => fail(ctx, path, 'exponentialDelay is not supported by Istio; use fixedDelay'),
    percentage: faultPercent,
    percent: deprecated(int({ min: 0, max: 100 }), 'percentage'),
  },
  {
    oneOf: [['percentage', 'percent']],
    check: (_d, path, ctx, raw) => {
      if (raw.fixedDelay === undefined && raw.exponentialDelay === undefined) fail(ctx, path, 'delay must have fixedDelay');
      if (raw.percentage === undefined && raw.percent === undefined) {
        warn(ctx, path, 'no percentage: no request is delayed (an unset percentage means 0%)');
      }
    },
  },
);

const abort = obj<FaultAbort>(
  {
    httpStatus: int({ min: 200, max: 599, why: '(Istio: 200-599)' }),
    grpcStatus: oneOf(GRPC_STATUS_NAMES),
    http2Error: (_v, path, ctx) => fail(ctx, path, 'http2Error is not supported by Istio; use httpStatus or grpcStatus'),
    percentage: faultPercent,
  },
  {
    check: (_a, path, ctx, raw) => {
      const kinds = ['httpStatus', 'grpcStatus', 'http2Error'].filter((k) => raw[k] !== undefined);
      if (kinds.length === 0) fail(ctx, path, 'abort must have httpStatus or grpcStatus');
      if (kinds.length > 1) fail(ctx, path, `only one of httpStatus, grpcStatus may be set, got ${kinds.join(' and ')}`);
      if (raw.percentage === undefined) warn(ctx, path, 'no percentage: no request is aborted (an unset percentage means 0%)');
    },
  },
);

const fault = obj<HTTPFaultInjection>(
  { delay, abort },
  { check: (_f, path, ctx, raw) => (raw.delay === undefined && raw.abort === undefined ? void fail(ctx, path, 'fault must have a delay, an abort, or both') : undefined) },
);

const mirrorPolicy = obj<HTTPMirrorPolicy>({ destination: req(destination), percentage: percent });

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];
const cors = obj<CorsPolicy>({
  allowOrigins: list(stringMatch()),
  allowOrigin: deprecated(list(str), 'allowOrigins'),
  allowMethods: list(strWith((m) => (HTTP_METHODS.includes(m) ? undefined : `"${m}" is not a supported method (${HTTP_METHODS.join(', ')})`))),
  allowHeaders: list(str),
  exposeHeaders: list(str),
  maxAge: strWith((s) => (/^\d+s$/.test(s) ? undefined : `maxAge must be whole seconds, e.g. "24h" written as "86400s"; got "${s}"`)),
  allowCredentials: bool,
  unmatchedPreflights: oneOf(['UNSPECIFIED', 'FORWARD', 'IGNORE']),
});

const delegate = obj<Delegate>({ name: str, namespace: namespaceName });

function hasAuthorityHeader(ops: HeaderOperations | undefined): boolean {
  return [...Object.keys(ops?.set ?? {}), ...Object.keys(ops?.add ?? {})].some((k) => k.toLowerCase() === 'host' || k.toLowerCase() === ':authority');
}

const httpRoute = obj<HTTPRoute>(
  {
    name: str,
    match: list(matchRequest),
    route: list(routeDestination),
    redirect,
    directResponse,
    delegate: unsupported(delegate, 'delegate VirtualServices are not merged; the rule is dropped'),
    rewrite,
    timeout: durationStr({ allowZero: true }),
    retries,
    fault,
    mirror: destination,
    mirrors: list(mirrorPolicy),
    mirrorPercentage: percent,
    mirrorPercent: deprecated(int({ min: 0, max: 100 }), 'mirrorPercentage'),
    corsPolicy: unsupported(cors, 'CORS is not handled; the application answers preflights'),
    headers,
  },
  {
    oneOf: [['mirror', 'mirrors'], ['mirrorPercentage', 'mirrorPercent']],
    check: (r, path, ctx, raw) => {
      const actions = ['route', 'redirect', 'directResponse', 'delegate'].filter((k) => raw[k] !== undefined && raw[k] !== null && !(Array.isArray(raw[k]) && (raw[k] as unknown[]).length === 0));
      if (actions.length === 0) fail(ctx, path, 'HTTP route, redirect, directResponse or delegate is required');
      else if (actions.length > 1) fail(ctx, path, `only one of route, redirect, directResponse, delegate may be set, got ${actions.join(' and ')}`);
      if (raw.redirect !== undefined && raw.rewrite !== undefined) fail(ctx, path, 'rewrite cannot be combined with redirect');
      if ((raw.redirect !== undefined || raw.directResponse !== undefined) && raw.fault !== undefined) {
        fail(ctx, [...path, 'fault'], 'fault cannot be combined with redirect or directResponse');
      }
      if (raw.mirrors !== undefined && (raw.mirrorPercentage !== undefined || raw.mirrorPercent !== undefined)) {
        fail(ctx, path, 'mirrorPercentage cannot be combined with mirrors; give each mirror its own percentage');
      }
      const dests = r.route ?? [];
      if (dests.length > 1) {
        const total = dests.reduce((sum, d) => sum + (d.weight ?? 0), 0);
        if (total === 0) fail(ctx, [...path, 'route'], 'total weight of the destinations must be > 0');
      }
      // The authority may be rewritten in only one place.
      const authorityWrites = [
        r.rewrite?.authority !== undefined,
        hasAuthorityHeader(r.headers?.request),
      ].filter(Boolean).length;
      if (authorityWrites > 1) fail(ctx, path, 'the authority is rewritten twice: use rewrite.authority or a Host header operation, not both');
      if (r.redirect?.prefixRewrite !== undefined) {
        (r.match ?? []).forEach((m, i) => {
          if (m.uri !== undefined && m.uri.prefix === undefined) {
            fail(ctx, [...path, 'match', i, 'uri'], 'redirect.prefixRewrite needs every uri match of the rule to be a prefix match');
          }
        });
      }
      (r.match ?? []).forEach((m, i) => {
        for (const name of Object.keys(m.headers ?? {})) {
          if (name.startsWith('@request.auth.claims.')) {
            warn(ctx, [...path, 'match', i, 'headers', name], 'JWT-claim routing works on Istio gateways only; like a sidecar, meshlet never matches it on outbound calls');
          }
          if (['uri', 'scheme', 'method', 'authority'].includes(name)) {
            warn(ctx, [...path, 'match', i, 'headers', name], `"${name}" is ignored as a header match; use match.${name}`);
          }
        }
      });
    },
  },
);

const tlsMatch = obj<TLSMatchAttributes>({
  sniHosts: req(list(host, { min: 1 })),
  destinationSubnets: list(str),
  port,
  sourceLabels: labels,
  gateways: list(nonEmpty),
  sourceNamespace: namespaceName,
});

const l4Match = obj<L4MatchAttributes>({
  destinationSubnets: list(str),
  port,
  sourceLabels: labels,
  gateways: list(nonEmpty),
  sourceNamespace: namespaceName,
});

const tlsRoute = obj<TLSRoute>({ match: req(list(tlsMatch, { min: 1 })), route: list(l4Destination) });
const tcpRoute = obj<TCPRoute>({ match: list(l4Match), route: list(l4Destination) });

/** Validates a VirtualService spec. */
export const virtualServiceSpec: Validator<VirtualServiceSpec> = obj<VirtualServiceSpec>(
  {
    hosts: list(host, { unique: true }),
    gateways: list(nonEmpty),
    http: list(httpRoute),
    tls: unsupported(list(tlsRoute), 'meshlet routes HTTP and gRPC; TLS passthrough routes are ignored'),
    tcp: unsupported(list(tcpRoute), 'meshlet routes HTTP and gRPC; TCP routes are ignored'),
    exportTo: exportToList({ allowNone: false }),
  },
  {
    check: (vs, path, ctx, raw) => {
      const hosts = vs.hosts ?? [];
      const appliesToMesh = vs.gateways === undefined || vs.gateways.length === 0 || vs.gateways.includes('mesh');
      if (hosts.length === 0) fail(ctx, [...path, 'hosts'], 'at least one host is required');
      hosts.forEach((h, i) => {
        if (h === '*' && appliesToMesh) fail(ctx, [...path, 'hosts', i], 'wildcard host * is not allowed for virtual services bound to the mesh');
        if (isIpAddress(h) && appliesToMesh) fail(ctx, [...path, 'hosts', i], `"${h}" is an IP address; sidecar (mesh) routes need host names`);
      });
      if (!appliesToMesh) {
        warn(ctx, [...path, 'gateways'], 'this VirtualService is bound only to gateways (no "mesh"): meshlet ignores it');
      }
      if (raw.http === undefined && raw.tls === undefined && raw.tcp === undefined) fail(ctx, path, 'http, tcp or tls must be provided');
    },
  },
);
