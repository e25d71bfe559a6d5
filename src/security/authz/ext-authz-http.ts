/**
 * Istio's `envoyExtAuthzHttp` extension provider (MeshConfig `extensionProviders[]`), as
 * Istio configures Envoy's `ext_authz` HTTP filter (`pilot/pkg/security/authz/builder/extauthz.go`)
 * and Envoy sends the check (`ext_authz_http_impl.cc`):
 *
 * - the check request has the original method, `pathPrefix` + the original path (with query),
 *   the original Host as `x-forwarded-host` (the check's own Host is the authorizer's, so that a
 *   dispatcher routing by Host sends it to the authorizer whatever the client's Host says),
 *   `content-length: 0`, the `authorization` header, the headers named by
 *   `includeRequestHeadersInCheck` (exact, `prefix*` or `*suffix`, ignoring case; the deprecated
 *   `includeHeadersInCheck` when that is unset), then `includeAdditionalHeadersInCheck`
 *   (overwriting);
 * - 200 allows: response headers named by `headersToUpstreamOnAllow` are set on the request to
 *   the app, `headersToDownstreamOnAllow` ones are added to the app's response, and the names
 *   listed in `x-envoy-auth-headers-to-remove` are removed from the request;
 * - a 5xx, a connection failure or the `timeout` (default 600s) is an error: denied with
 *   `statusOnError` (default 403) and no body, or allowed with `failOpen`;
 * - any other status denies with the authorizer's status and body, and its headers named by
 *   `headersToDownstreamOnDeny` (plus `www-authenticate` and `location`), or all of them but
 *   Host when that list is empty.
 *
 * - `includeRequestBodyInCheck`: the check waits for the request's body (or, with
 *   `allowPartialMessage`, its first `maxRequestBytes`) and carries it — as text with each byte
 *   that is not UTF-8 replaced by `!`, or as the raw bytes with `packAsBytes` — with
 *   `content-length` set to its size and `x-envoy-auth-partial-body: true|false` among the
 *   request's headers (sent when `includeRequestHeadersInCheck` names it); a body over
 *   `maxRequestBytes` without `allowPartialMessage` is refused with 413 `Payload Too Large`
 *   before the authorizer is asked. The app still reads the whole body. A request with no body,
 *   or a server that cannot give it (gRPC), is checked without one.
 *
 * Not supported: Envoy `%…%` substitutions in `includeAdditionalHeadersInCheck` values (sent as
 * written; a warning says so).
 *
 * @module
 */
import { type Dispatcher, request as undiciRequest } from 'undici';
import { EXT_AUTHZ_CHECK } from '../../core/clean-internal-headers.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { parseDuration } from '../../config/duration.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { type BufferedBody, sanitizeUtf8 } from '../../core/request-body.ts';
import { CHECK_CANCELLED, type CheckBodySettings, checkBodySettings, readCheckBody, unknownFields } from './check-body.ts';
import { headerText } from './attrs.ts';
import type { AuthzRequest, ExtAuthzCheck, ExtAuthzResponse } from './types.ts';

/**
 * MeshConfig `ExtensionProvider.EnvoyExternalAuthorizationHttpProvider`, as written in Istio YAML.
 * @category Server
 */
export interface EnvoyExtAuthzHttpConfig {
  /** The authorizer's host: `ext-authz.foo.svc.cluster.local`, `foo/ext-authz.foo.svc.cluster.local`, or an IP. */
  readonly service: string;
  readonly port: number;
  /** Istio duration. @defaultValue `"600s"` */
  readonly timeout?: string | undefined;
  /** Prepended to the request path in the check. */
  readonly pathPrefix?: string | undefined;
  /** Allow the request when the authorizer cannot be reached or fails. @defaultValue false */
  readonly failOpen?: boolean | undefined;
  /** The status of a denial caused by an error, as text. @defaultValue `"403"` */
  readonly statusOnError?: string | undefined;
  readonly includeRequestHeadersInCheck?: readonly string[] | undefined;
  /** Deprecated by Istio: used only when `includeRequestHeadersInCheck` is unset. */
  readonly includeHeadersInCheck?: readonly string[] | undefined;
  readonly includeAdditionalHeadersInCheck?: Readonly<Record<string, string>> | undefined;
  /** Send the request's body in the check (see the module notes); `maxRequestBytes` must be above 0. */
  readonly includeRequestBodyInCheck?: CheckBodySettings | undefined;
  readonly headersToUpstreamOnAllow?: readonly string[] | undefined;
  readonly headersToDownstreamOnAllow?: readonly string[] | undefined;
  readonly headersToDownstreamOnDeny?: readonly string[] | undefined;
}

/** How the provider reaches the authorizer. */
export interface EnvoyExtAuthzHttpOptions {
  /** The provider's name, for messages. @defaultValue the service */
  readonly name?: string;
  /** The dispatcher the check goes through (pass the mesh's, so it is routed and mTLS'd like any call). @defaultValue undici's global dispatcher */
  readonly dispatcher?: Dispatcher;
  /** Times the check out. @defaultValue the system clock */
  readonly clock?: Clock;
  /** Called once per problem the provider cannot honour (unsupported fields). */
  readonly warn?: (message: string) => void;
}

/** Envoy's `type.v3.StatusCode` values (what `statusOnError` may be). */
const ENVOY_STATUS = new Set([
  100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
  421, 422, 423, 424, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

/** Never forwarded in a check (connection-level, or set by the check itself). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'expect', 'content-length', 'host']);

const MAX_BODY_BYTES = 1024 * 1024;


/** Envoy's `ListStringMatcher` from Istio's header list: exact, `prefix*`, `*suffix`, ignoring case. */
function headerNames(list: readonly string[] | undefined): (name: string) => boolean {
  const ms = (list ?? []).map((h) => {
    const l = h.toLowerCase();
    if (l.startsWith('*')) return (n: string) => n.endsWith(l.slice(1));
    if (l.endsWith('*')) return (n: string) => n.startsWith(l.slice(0, -1));
    return (n: string) => n === l;
  });
  return (name) => ms.some((m) => m(name));
}

/** The fields of MeshConfig's `envoyExtAuthzHttp` (camelCase, as in Istio's YAML). */
const HTTP_FIELDS: readonly (keyof EnvoyExtAuthzHttpConfig)[] = [
  'service',
  'port',
  'timeout',
  'pathPrefix',
  'failOpen',
  'statusOnError',
  'includeRequestHeadersInCheck',
  'includeHeadersInCheck',
  'includeAdditionalHeadersInCheck',
  'includeRequestBodyInCheck',
  'headersToUpstreamOnAllow',
  'headersToDownstreamOnAllow',
  'headersToDownstreamOnDeny',
];

/** Checks a provider config as Istio does (`ValidateExtensionProviderEnvoyExtAuthzHTTP`, `buildExtAuthzHTTP`); returns the problems. */
export function checkEnvoyExtAuthzHttp(c: EnvoyExtAuthzHttpConfig): string[] {
  if (c === null || typeof c !== 'object') return ['must be an object with service and port'];
  const errs: string[] = unknownFields(c, HTTP_FIELDS);
  if (typeof c.service !== 'string' || c.service === '') errs.push('service must not be empty');
  if (!Number.isInteger(c.port) || c.port < 1 || c.port > 65535) errs.push(`port must be in the range [1, 65535], found: ${String(c.port)}`);
  if (c.timeout !== undefined && typeof parseDuration(c.timeout) !== 'number') errs.push(`invalid timeout "${c.timeout}"`);
  if (c.statusOnError !== undefined && c.statusOnError !== '') {
    const n = /^\d+$/.test(c.statusOnError) ? Number(c.statusOnError) : Number.NaN;
    if (!ENVOY_STATUS.has(n)) errs.push(`unsupported statusOnError "${c.statusOnError}": must be an HTTP status Envoy knows (e.g. "403", "500")`);
  }
  if (c.pathPrefix !== undefined && c.pathPrefix !== '' && !c.pathPrefix.startsWith('/')) errs.push(`pathPrefix must begin with "/", found: "${c.pathPrefix}"`);
  for (const field of ['includeRequestHeadersInCheck', 'includeHeadersInCheck', 'headersToDownstreamOnDeny', 'headersToDownstreamOnAllow', 'headersToUpstreamOnAllow'] as const) {
    if ((c[field] ?? []).includes('*')) errs.push(`a single wildcard ("*") is not supported, change it to either prefix or suffix match: ${field}`);
  }
  errs.push(...checkBodySettings(c.includeRequestBodyInCheck));
  return errs;
}

/** The authorizer's host from a provider's `service` (`ns/host` or `host`; an IPv6 address bracketed). */
export function hostOf(service: string): string {
  const slash = service.indexOf('/');
  const host = slash === -1 ? service : service.slice(slash + 1);
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** The last value of a response header (Envoy sets each in turn, so the last wins). */
function last(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/**
 * Builds the provider. Throws `InvalidArgumentError` naming every problem of `config` (an
 * unusable provider: Istio then denies what its CUSTOM policies match, and so does the engine
 * when the provider is left out).
 */
export function envoyExtAuthzHttp(config: EnvoyExtAuthzHttpConfig, options: EnvoyExtAuthzHttpOptions = {}): ExtAuthzCheck {
  const name = options.name ?? config.service;
  const errs = checkEnvoyExtAuthzHttp(config);
  if (errs.length > 0) throw new InvalidArgumentError(`extension provider "${name}" (envoyExtAuthzHttp): ${errs.join('; ')}`);
  for (const [k, v] of Object.entries(config.includeAdditionalHeadersInCheck ?? {})) {
    if (v.includes('%')) options.warn?.(`extension provider "${name}": includeAdditionalHeadersInCheck ${k}: Envoy substitutions (%…%) are not supported; the value is sent as written`);
  }
  const clock = options.clock ?? systemClock;
  const timeoutMs = config.timeout === undefined ? 600_000 : (parseDuration(config.timeout) as number);
  const origin = `http://${hostOf(config.service)}:${config.port}`;
  const prefix = config.pathPrefix ?? '';
  const statusOnError = config.statusOnError === undefined || config.statusOnError === '' ? 403 : Number(config.statusOnError);
  const includeList = config.includeRequestHeadersInCheck !== undefined && config.includeRequestHeadersInCheck.length > 0 ? config.includeRequestHeadersInCheck : config.includeHeadersInCheck;
  const include = headerNames(includeList);
  const additional = Object.entries(config.includeAdditionalHeadersInCheck ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const);
  const toUpstream = headerNames(config.headersToUpstreamOnAllow);
  const toDownstreamOnAllow = headerNames(config.headersToDownstreamOnAllow);
  const denyList = config.headersToDownstreamOnDeny ?? [];
  const toDownstreamOnDeny = denyList.length === 0 ? (n: string) => n !== 'host' : headerNames([...denyList, 'www-authenticate', 'location']);
  const failure: ExtAuthzResponse = config.failOpen === true ? { allowed: true } : Object.freeze({ allowed: false, status: statusOnError, headers: Object.freeze({}), body: '', error: true });
  const withBody = config.includeRequestBodyInCheck;

  function checkHeaders(req: AuthzRequest, body: Exclude<BufferedBody, 'too-large'> | undefined, bytes: Buffer | undefined): Record<string, string> {
    const h: Record<string, string> = Object.create(null);
    h['content-length'] = String(bytes?.length ?? 0);
    for (const k of Object.keys(req.headers)) {
      const v = headerText(req.headers[k]);
      // A client's x-envoy-auth-partial-body is Envoy's to set.
      if (v === undefined || k.startsWith(':') || HOP_BY_HOP.has(k) || k === 'x-envoy-auth-partial-body') continue;
      if (k === 'authorization' || include(k)) h[k] = v;
    }
    // The check's Host is the authorizer's (undici sets it from the URL): a dispatcher that routes
    // by Host (mesh.dispatcher, as a sidecar's outbound listener) would otherwise send the check
    // wherever the client's Host names — to the app itself, or to any service that answers 200.
    // Envoy sends the check straight to the provider's cluster with the request's :authority; here
    // the request's Host goes as x-forwarded-host.
    if (req.authority !== '') h['x-forwarded-host'] = req.authority;
    if (body !== undefined && include('x-envoy-auth-partial-body')) h['x-envoy-auth-partial-body'] = body.partial ? 'true' : 'false';
    for (const [k, v] of additional) h[k] = v;
    return h;
  }

  return async function check(req: AuthzRequest): Promise<ExtAuthzResponse> {
    const read = await readCheckBody(req, withBody);
    if ('answer' in read) return read.answer;
    const buffered = read.body;
    // Envoy's check carries the body as text (invalid UTF-8 bytes as `!`) or, with packAsBytes, as it came.
    const bytes = buffered === undefined || buffered.bytes.length === 0 ? undefined : withBody?.packAsBytes === true ? buffered.bytes : Buffer.from(sanitizeUtf8(buffered.bytes), 'utf8');
    const gone = req.signal;
    if (gone?.aborted === true) return CHECK_CANCELLED;
    const ac = new AbortController();
    const timer = clock.setTimer(() => ac.abort(new Error(`ext_authz timeout after ${timeoutMs}ms`)), timeoutMs, true);
    // The caller going away cancels the check, as Envoy's filter does when the downstream resets.
    let cancelled = false;
    const cancel = (): void => {
      cancelled = true;
      ac.abort(new Error('the caller went away'));
    };
    gone?.addEventListener('abort', cancel, { once: true });
    try {
      const opts: Parameters<typeof undiciRequest>[1] = {
        method: req.method as Dispatcher.HttpMethod,
        headers: checkHeaders(req, buffered, bytes),
        ...(bytes === undefined ? {} : { body: bytes }),
        signal: ac.signal,
        ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
      };
      // Marked as the mesh's check (undici hands its options to the dispatcher): the caller's
      // x-forwarded-client-cert stays on it when the provider includes it.
      Object.defineProperty(opts, EXT_AUTHZ_CHECK, { value: true, enumerable: true });
      const res = await undiciRequest(`${origin}${prefix}${req.path}`, opts);
      const status = res.statusCode;
      if (status >= 500 && status <= 599) {
        await res.body.dump();
        return failure;
      }
      const headers = res.headers as Record<string, string | string[] | undefined>;
      if (status === 200) {
        await res.body.dump();
        const up: Record<string, string> = {};
        // Each line of a header goes to the client (Envoy adds each: two set-cookie stay two); the request gets the last (Envoy sets each in turn).
        const down: Record<string, string | string[]> = {};
        for (const k of Object.keys(headers)) {
          const all = headers[k];
          const v = last(all);
          if (v === undefined || k === 'x-envoy-auth-headers-to-remove') continue;
          if (toUpstream(k)) up[k] = v;
          if (toDownstreamOnAllow(k)) down[k] = Array.isArray(all) && all.length > 1 ? [...all] : v;
        }
        const remove = (headerText(headers['x-envoy-auth-headers-to-remove']) ?? '')
          .split(',')
          .map((s) => s.trim().toLowerCase())
          .filter((s) => s !== '' && !s.startsWith(':') && s !== 'host');
        return {
          allowed: true,
          ...(Object.keys(up).length > 0 ? { headersToUpstream: up } : {}),
          ...(remove.length > 0 ? { headersToRemove: remove } : {}),
          ...(Object.keys(down).length > 0 ? { headersToDownstream: down } : {}),
        };
      }
      const body = await readText(res.body);
      // Each of the authorizer's header lines goes to the client as it came: several `set-cookie` stay several (Envoy adds each).
      const out: Record<string, string | string[]> = {};
      for (const k of Object.keys(headers)) {
        const v = headers[k];
        // x-envoy-auth-headers-to-remove is Envoy's to read, never the client's (Envoy drops it from every answer).
        if (v === undefined || HOP_BY_HOP.has(k) || k === 'x-envoy-auth-headers-to-remove' || !toDownstreamOnDeny(k)) continue;
        if (typeof v === 'string') out[k] = v;
        else if (v.length > 0) out[k] = v.length === 1 ? (v[0] as string) : [...v];
      }
      return { allowed: false, status, headers: out, body };
    } catch {
      return cancelled ? CHECK_CANCELLED : failure;
    } finally {
      timer.clear();
      gone?.removeEventListener('abort', cancel);
    }
  };
}

/** The denial's body (at most 1 MiB: a longer one is an error, and the connection is dropped). */
async function readText(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > MAX_BODY_BYTES) {
      body.destroy();
      throw new Error(`ext_authz response body over ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
