/**
 * VirtualService HTTP rules (`HTTPRoute`) and everything inside them, following Istio's
 * `validateHTTPRoute` (pkg/config/validation/virtualservice.go and validation.go). Rules that
 * depend on the VirtualService around the rule (root or delegate, gateways) are checked in
 * virtual-service.ts.
 *
 * @module
 */
import { GRPC_STATUS_NAMES as GRPC_NAMES } from '../../core/grpc-status.ts';
import type { StringMatch } from '../types/common.ts';
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
  HTTPMirrorPolicy,
  HTTPRedirect,
  HTTPRewrite,
  HTTPRoute,
  HTTPRouteDestination,
  RegexRewrite,
} from '../types/networking.ts';
import { parseDuration } from '../duration.ts';
import { checkDnsLabel, host, namespaceName, percent, percentRange, portSelector, stringMatch } from './common.ts';
import { checkHeaderValue, hasFormatter } from './header-value.ts';
import { matchRequest, TOKEN } from './http-match.ts';
import { retries } from './retry-policy.ts';
import {
  aliased,
  bool,
  deprecated,
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
  warn,
  type Validator,
} from './schema.ts';
import { msDuration } from './shared-networking.ts';

/** gRPC status names accepted by `fault.abort.grpcStatus`. */
export const GRPC_STATUS_NAMES = GRPC_NAMES;

/** An Istio duration (`agent.ValidateDuration`): at least 1ms, in whole milliseconds. */
const duration = msDuration();

/** A destination: host (not `*`), subset, port. */
export const destination: Validator<Destination> = obj<Destination>({
  host: req(strWith((h) => (h === '*' ? 'a bare "*" is not a destination host' : undefined))),
  subset: strWith(checkDnsLabel),
  port: portSelector,
}, {
  check: (d, path, ctx) => {
    if (d.host !== undefined && d.host !== '*') host(d.host, [...path, 'host'], ctx);
  },
});

function isAuthority(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === 'host' || lower === ':authority';
}

/** Header names of request add/set: `:authority`/`host` allowed (a host rewrite), other pseudo-headers not. */
function checkSetName(name: string): string | undefined {
  if (name === '') return 'header name must not be empty';
  if (isAuthority(name)) return undefined;
  if (name.startsWith(':')) return `pseudo-header "${name}" cannot be set`;
  return TOKEN.test(name) ? undefined : `invalid header name "${name}": a header name is a token`;
}

/** Header names of request remove and of every response operation: no Host, no pseudo-header. */
function checkOpName(name: string): string | undefined {
  if (name === '') return 'header name must not be empty';
  if (name.toLowerCase() === 'host') return 'the Host header cannot be removed or set on a response';
  if (name.startsWith(':')) return `pseudo-header "${name}" is not allowed here`;
  return TOKEN.test(name) ? undefined : `invalid header name "${name}": a header name is a token`;
}

/** A header value: Envoy's `%` syntax; formatters are sent as written (with a warning). */
const headerValue: Validator<string> = (v, path, ctx) => {
  const s = strWith(checkHeaderValue)(v, path, ctx);
  if (s !== undefined && hasFormatter(s)) {
    ctx.issues.at(ctx.subject, path, 'warning', `not supported by meshlet: Envoy header formatters such as %HOSTNAME% are sent as written, not substituted ("${s}")`, 'MESHLET0002');
  }
  return s;
};

function headerOps(kind: 'request' | 'response'): Validator<HeaderOperations> {
  const setName = kind === 'request' ? checkSetName : checkOpName;
  return obj<HeaderOperations>({
    set: map(headerValue, { key: setName }),
    add: map(headerValue, { key: setName }),
    remove: list(strWith(checkOpName)),
  });
}

export const headers: Validator<Headers> = obj<Headers>({ request: headerOps('request'), response: headerOps('response') });

const routeDestination = obj<HTTPRouteDestination>({
  destination: req(destination),
  weight: int({ min: 0, max: 2147483647 }),
  headers,
});

/**
 * A value Envoy puts into a request or response line or a header: a redirect's or rewrite's
 * path and host. Envoy's RedirectAction (`host_redirect`, `path_redirect`, `prefix_rewrite`) and
 * RouteAction (`prefix_rewrite`, `host_rewrite_literal`, `regex_rewrite.substitution`) validate them
 * as `well_known_regex: HTTP_HEADER_VALUE, strict: false` (no NUL, CR or LF) and refuse the route
 * otherwise; Istio does not check them, so istiod's push would be rejected by Envoy.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is checked
const LINE_BREAK = /[\u0000\r\n]/;
const lineValue: Validator<string> = strWith((s) =>
  LINE_BREAK.test(s) ? `${JSON.stringify(s)} has a NUL, CR or LF: it would go into the request line or a header (Envoy refuses the route: HTTP_HEADER_VALUE)` : undefined,
);

const nonEmptyLine: Validator<string> = (v, path, ctx) => {
  const s = nonEmpty(v, path, ctx);
  return s === undefined ? undefined : lineValue(s, path, ctx);
};

const redirect = obj<HTTPRedirect>(
  {
    uri: lineValue,
    authority: lineValue,
    port,
    derivePort: oneOf(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']),
    scheme: strWith((s) => (s === 'http' || s === 'https' ? undefined : `scheme must be http or https, got "${s}"`)),
    redirectCode: int({ min: 300, max: 399 }),
    prefixRewrite: lineValue,
  },
  {
    oneOf: [['uri', 'prefixRewrite'], ['port', 'derivePort']],
    check: (r, path, ctx, raw) => {
      // Istio: the Envoy route gets no action for other 3xx codes, which Envoy rejects.
      if (r.redirectCode !== undefined && ![301, 302, 303, 307, 308].includes(r.redirectCode)) {
        fail(ctx, [...path, 'redirectCode'], `must be one of 301, 302, 303, 307, 308 (Istio drops the route for other codes), got ${r.redirectCode}`);
      }
      const given = ['uri', 'prefixRewrite', 'authority', 'port', 'derivePort', 'scheme'].filter((k) => raw[k] !== undefined && raw[k] !== null && raw[k] !== '');
      if (given.length === 0) fail(ctx, path, 'redirect must specify uri, prefixRewrite, authority, scheme or port');
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
        const size = b.string !== undefined ? Buffer.byteLength(b.string) : b.bytes !== undefined ? Buffer.from(b.bytes, 'base64').length : 0;
        if (size > MAX_BODY) fail(ctx, path, `body is ${size} bytes; the limit is 1 MiB`);
        else if (size > WARN_BODY) warn(ctx, path, `body is ${size} bytes; bodies over 100 KiB are discouraged (Istio: large direct responses may impact control plane performance)`);
      },
    },
  ),
});

const rewrite = obj<HTTPRewrite>(
  {
    uri: lineValue,
    authority: lineValue,
    uriRegexRewrite: obj<RegexRewrite>({ match: req(strWith((s) => (s === '' ? 'must not be empty' : undefined))), rewrite: req(nonEmptyLine) }, {
      check: (r, path, ctx) => {
        if (r.match !== undefined && r.match !== '') regex(r.match, [...path, 'match'], ctx);
      },
    }),
  },
  {
    oneOf: [['uri', 'uriRegexRewrite']],
    check: (_r, path, ctx, raw) => {
      if (!['uri', 'uriRegexRewrite', 'authority'].some((k) => raw[k] !== undefined && raw[k] !== null && raw[k] !== '')) {
        fail(ctx, path, 'rewrite must specify uri, uriRegexRewrite or authority');
      }
    },
  },
);

const delay = obj<FaultDelay>(
  {
    fixedDelay: duration,
    exponentialDelay: (_v, path, ctx) => fail(ctx, path, 'exponentialDelay is not supported by Istio; use fixedDelay'),
    percentage: percent,
    percent: deprecated(int({ min: 0, max: 100 }), 'percentage'),
  },
  {
    oneOf: [['percentage', 'percent'], ['fixedDelay', 'exponentialDelay']],
    check: (_d, path, ctx, raw) => {
      if (raw.fixedDelay === undefined && raw.exponentialDelay === undefined) warn(ctx, path, 'delay has no fixedDelay: no request is delayed');
      else if (raw.percentage === undefined && raw.percent === undefined) {
        warn(ctx, path, 'no percentage: no request is delayed (an unset percentage means 0%)');
      }
    },
  },
);

const abort = obj<FaultAbort>(
  {
    httpStatus: int({ min: 200, max: 599, why: '(Envoy: 200-599)' }),
    grpcStatus: oneOf(GRPC_STATUS_NAMES),
    http2Error: (_v, path, ctx) => fail(ctx, path, 'http2Error is not supported by Istio; use httpStatus or grpcStatus'),
    percentage: percent,
  },
  {
    oneOf: [['httpStatus', 'grpcStatus', 'http2Error']],
    check: (_a, path, ctx, raw) => {
      const kinds = ['httpStatus', 'grpcStatus', 'http2Error'].filter((k) => raw[k] !== undefined && raw[k] !== null);
      if (kinds.length === 0) warn(ctx, path, 'abort has no httpStatus or grpcStatus: no request is aborted (Istio: "abort configured, but error type not set")');
      else if (raw.percentage === undefined) warn(ctx, path, 'no percentage: no request is aborted (an unset percentage means 0%)');
    },
  },
);

const fault = obj<HTTPFaultInjection>(
  { delay, abort },
  { check: (_f, path, ctx, raw) => (raw.delay === undefined && raw.abort === undefined ? void fail(ctx, path, 'fault must have a delay, an abort, or both') : undefined) },
);

const mirrorPolicy = obj<HTTPMirrorPolicy>({ destination: req(destination), percentage: percentRange });

/** Methods a CORS policy may allow (Istio: Go's net/http methods and `*`). */
const CORS_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', '*'];

const corsHeaderName = strWith((h) => (h === '' ? 'header name must not be empty' : h === '*' || TOKEN.test(h) ? undefined : `invalid header name "${h}": a header name is a token or "*"`));

/** An allowed origin: a StringMatch with a non-empty value. */
const allowOrigin: Validator<StringMatch> = (v, path, ctx) => {
  const m = stringMatch()(v, path, ctx);
  if (m === undefined) return undefined;
  const value = m.exact ?? m.prefix ?? m.regex ?? '';
  if (value === '') return fail(ctx, path, 'an allowed origin must have a non-empty exact, prefix or regex');
  return m;
};

const cors = obj<CorsPolicy>({
  allowOrigins: list(allowOrigin),
  allowOrigin: deprecated(list(str), 'allowOrigins'),
  allowMethods: list(strWith((m) => (CORS_METHODS.includes(m) ? undefined : `"${m}" is not a supported method (${CORS_METHODS.join(', ')})`))),
  allowHeaders: list(corsHeaderName),
  exposeHeaders: list(corsHeaderName),
  maxAge: (v, path, ctx) => {
    const s = duration(v, path, ctx);
    if (s === undefined) return undefined;
    const ms = parseDuration(s);
    if (typeof ms === 'number' && ms % 1000 !== 0) return fail(ctx, path, `maxAge is accurate only to whole seconds, got "${s}"`);
    return s;
  },
  allowCredentials: bool,
  unmatchedPreflights: oneOf(['UNSPECIFIED', 'FORWARD', 'IGNORE']),
});

const delegate = obj<Delegate>({ name: str, namespace: namespaceName });

function authorityWrites(r: HTTPRoute): number {
  let n = r.rewrite?.authority !== undefined && r.rewrite.authority !== '' ? 1 : 0;
  for (const ops of [r.headers?.request?.set, r.headers?.request?.add]) for (const k of Object.keys(ops ?? {})) if (isAuthority(k)) n++;
  return n;
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
}

/**
 * Validates one HTTP rule. A rule with `delegate` is a root rule (Istio: it may not also have
 * `route` or `redirect`); any other rule needs exactly one of route, redirect, directResponse.
 */
export const httpRoute: Validator<HTTPRoute> = obj<HTTPRoute>(
  {
    name: str,
    match: list(matchRequest),
    route: list(routeDestination),
    redirect,
    directResponse,
    delegate,
    rewrite,
    timeout: duration,
    retries,
    fault,
    mirror: destination,
    mirrors: list(mirrorPolicy),
    mirrorPercentage: percentRange,
    mirrorPercent: aliased(deprecated(int({ min: 0, max: 100 }), 'mirrorPercentage'), 'mirror_percent'),
    corsPolicy: cors,
    headers,
  },
  {
    oneOf: [['mirror', 'mirrors']],
    check: (r, path, ctx, raw) => {
      const has = (k: string) => present(raw[k]);
      if (has('delegate')) {
        if (has('redirect')) fail(ctx, [...path, 'redirect'], 'a rule with delegate must not have redirect (the delegate VirtualService routes)');
        if (has('route')) fail(ctx, [...path, 'route'], 'a rule with delegate must not have route (the delegate VirtualService routes)');
      } else if (has('redirect')) {
        for (const k of ['route', 'directResponse', 'fault', 'rewrite']) if (has(k)) fail(ctx, [...path, k], `${k} cannot be combined with redirect`);
      } else if (has('directResponse')) {
        for (const k of ['route', 'fault', 'rewrite']) if (has(k)) fail(ctx, [...path, k], `${k} cannot be combined with directResponse`);
      } else if (!has('route')) {
        fail(ctx, path, 'HTTP route, redirect, directResponse or delegate is required');
      }
      const dests = r.route ?? [];
      if (dests.length > 1 && dests.reduce((sum, d) => sum + (d.weight ?? 0), 0) === 0) {
        fail(ctx, [...path, 'route'], 'total weight of the destinations must be > 0');
      }
      if (authorityWrites(r) > 1) fail(ctx, path, 'the authority is rewritten twice: use rewrite.authority or one Host header operation, not several');
      if (r.redirect?.prefixRewrite !== undefined && r.redirect.prefixRewrite !== '') {
        (r.match ?? []).forEach((m, i) => {
          if (m.uri !== undefined && m.uri.prefix === undefined) {
            fail(ctx, [...path, 'match', i, 'uri'], 'redirect.prefixRewrite needs every uri match of the rule to be a prefix match');
          }
        });
      }
      if (has('mirrors') && (has('mirrorPercentage') || has('mirrorPercent'))) {
        warn(ctx, [...path, has('mirrorPercentage') ? 'mirrorPercentage' : 'mirrorPercent'], 'applies to mirror only; each of mirrors has its own percentage');
      }
      (r.match ?? []).forEach((m, i) => {
        for (const name of Object.keys(m.headers ?? {})) {
          if (['uri', 'scheme', 'method', 'authority'].includes(name)) {
            warn(ctx, [...path, 'match', i, 'headers', name], `"${name}" is ignored as a header match; use match.${name}`);
          }
        }
      });
    },
  },
);
