/**
 * Istio's `envoyExtAuthzGrpc` extension provider (MeshConfig `extensionProviders[]`), as Istio
 * configures Envoy's `ext_authz` filter with a gRPC service (`generateGRPCConfig` in
 * `pilot/pkg/security/authz/builder/extauthz.go`) and Envoy calls it (`ext_authz_grpc_impl.cc`,
 * `check_request_utils.cc`) — the API OPA's Envoy plugin and Istio's sample ext-authz server speak:
 *
 * - the check is `envoy.service.auth.v3.Authorization/Check` with the request's attributes: source
 *   and destination addresses (and, on mTLS connections, the peer's and the workload's SPIFFE
 *   IDs), `x-envoy-downstream-service-cluster` as the source service, the time, method, path
 *   (with query), host, scheme, protocol and every request header (with the pseudo-headers
 *   `:authority`, `:method`, `:path`, `:scheme`; repeated headers joined with `,`);
 * - status `OK` allows: `ok_response.headers` change the request the app sees (by `append` or
 *   `append_action`, as Envoy reads them), then `headers_to_remove` are removed;
 *   `response_headers_to_add` go on the app's response;
 * - any other status denies, with `denied_response`'s HTTP status (403 when unset or not a final
 *   status), headers and body;
 * - a failed call (unreachable, an RPC error, the `timeout`, default 600s) is an error: denied
 *   with `statusOnError` (default 403) and no body, or allowed with `failOpen`.
 *
 * The call goes through the mesh (the mesh gives a client on its channel: routing, mTLS), as
 * Envoy calls the authorizer through its cluster. `includeRequestBodyInCheck`: the check waits for
 * the request's body (or, with `allowPartialMessage`, its first `maxRequestBytes`) and carries it
 * in `body` (text, each byte that is not UTF-8 replaced by `!`) or `raw_body` (`packAsBytes`),
 * with `size` and `x-envoy-auth-partial-body: true|false` among the headers; a body over
 * `maxRequestBytes` without `allowPartialMessage` is refused with 413 before the authorizer is
 * asked (check-body.ts). `clearRouteCache` has nothing to act on.
 * Ignored in answers: `query_parameters_to_set`/`_remove`, `dynamic_metadata`, and
 * `error_response` (such an answer has a non-OK status: it denies, 403).
 *
 * @module
 */
import type { Client } from '@grpc/grpc-js';
import { type Clock, systemClock } from '../../core/clock.ts';
import { callUnary } from '../../core/unary-call.ts';
import { sanitizeUtf8 } from '../../core/request-body.ts';
import { CHECK_CANCELLED, type CheckBodySettings, readCheckBody, unknownFields } from './check-body.ts';
import { parseDuration } from '../../config/duration.ts';
import { TOKEN } from '../../config/validate/http-match.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { headerText } from './attrs.ts';
import { type CheckResponse, decodeCheckResponse, encodeCheckRequest, type HeaderOption } from './ext-authz-grpc-wire.ts';
import { checkEnvoyExtAuthzHttp, hostOf } from './ext-authz-http.ts';
import type { AuthzRequest, ExtAuthzCheck, ExtAuthzResponse } from './types.ts';

/**
 * MeshConfig `ExtensionProvider.EnvoyExternalAuthorizationGrpcProvider`, as written in Istio YAML.
 * @category Server
 */
export interface EnvoyExtAuthzGrpcConfig {
  /** The authorizer's host: `ext-authz.foo.svc.cluster.local`, `foo/ext-authz.foo.svc.cluster.local`, or an IP. */
  readonly service: string;
  readonly port: number;
  /** Istio duration. @defaultValue `"600s"` */
  readonly timeout?: string | undefined;
  /** Allow the request when the authorizer cannot be reached or fails. @defaultValue false */
  readonly failOpen?: boolean | undefined;
  /** The status of a denial caused by an error, as text. @defaultValue `"403"` */
  readonly statusOnError?: string | undefined;
  /** Accepted; there is no route cache to clear on a server. */
  readonly clearRouteCache?: boolean | undefined;
  /** Send the request's body in the check (`body`, or `raw_body` with `packAsBytes`); `maxRequestBytes` must be above 0. */
  readonly includeRequestBodyInCheck?: CheckBodySettings | undefined;
}

/** How the provider reaches the authorizer and describes the workload. */
export interface EnvoyExtAuthzGrpcOptions {
  /** The provider's name, for messages. @defaultValue the service */
  readonly name?: string;
  /**
   * Makes the grpc-js client the checks go through, for `service:port` — the mesh's:
   * `(target) => new grpc.Client(target, grpc.credentials.createInsecure(), { channelOverride: mesh.grpc.channel(target) })`;
   * made at the first check.
   */
  readonly client: (target: string) => UnaryCaller;
  /** This workload's SPIFFE ID: the check's destination principal on mTLS connections. */
  readonly localPrincipal?: string;
  /** Times the check out. @defaultValue the system clock */
  readonly clock?: Clock;
  /** Called once per problem the provider cannot honour (unsupported fields). */
  readonly warn?: (message: string) => void;
}

/** What the provider needs of a grpc-js client. */
export type UnaryCaller = Pick<Client, 'makeUnaryRequest'>;

const CHECK_METHOD = '/envoy.service.auth.v3.Authorization/Check';

/** The fields of MeshConfig's `envoyExtAuthzGrpc` (camelCase, as in Istio's YAML). */
const GRPC_FIELDS: readonly (keyof EnvoyExtAuthzGrpcConfig)[] = ['service', 'port', 'timeout', 'failOpen', 'statusOnError', 'clearRouteCache', 'includeRequestBodyInCheck'];

/** Checks a provider config as Istio does (`ValidateExtensionProviderEnvoyExtAuthzGRPC`, `buildExtAuthzGRPC`); returns the problems. */
export function checkEnvoyExtAuthzGrpc(c: EnvoyExtAuthzGrpcConfig): string[] {
  if (c === null || typeof c !== 'object') return ['must be an object with service and port'];
  return [...unknownFields(c, GRPC_FIELDS), ...checkEnvoyExtAuthzHttp({ service: c.service, port: c.port, timeout: c.timeout, statusOnError: c.statusOnError, includeRequestBodyInCheck: c.includeRequestBodyInCheck })];
}

/** Envoy's stream ids are random 64-bit numbers; these are unique in a process and unpredictable across them. */
let nextId = Math.floor(Math.random() * 2 ** 40) * 1000;

/** The request's headers as Envoy's header map hands them to the check (pseudo-headers first). */
function checkHeaders(req: AuthzRequest): Record<string, string> {
  const h: Record<string, string> = Object.create(null);
  h[':authority'] = req.authority;
  h[':method'] = req.method;
  h[':path'] = req.path;
  h[':scheme'] = req.scheme ?? 'http';
  for (const k of Object.keys(req.headers)) {
    const v = headerText(req.headers[k]);
    // HTTP/1's Host is Envoy's :authority; a client's x-envoy-auth-partial-body is Envoy's to set.
    if (v !== undefined && !k.startsWith(':') && k !== 'host' && k !== 'x-envoy-auth-partial-body') h[k] = v;
  }
  return h;
}

/** Envoy's header handling: only valid names and values; pseudo-headers and Host are never touched. */
function usable(o: HeaderOption): boolean {
  const k = o.key.toLowerCase();
  return TOKEN.test(k) && k !== 'host' && !/[\0\r\n]/.test(o.value);
}

/**
 * Applies one header of an answer as Envoy's ext_authz does (`toHeaderMutationAction`): the
 * deprecated `append` when present (request headers: true appends to the value with `,`; response
 * headers: true adds a line), else `append_action` — APPEND_IF_EXISTS_OR_ADD (the default) adds a
 * line (what the app then reads joined with `, `), ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD (an
 * unknown action too), OVERWRITE_IF_EXISTS.
 */
function mutate(into: Record<string, string>, o: HeaderOption, existing: string | undefined, response: boolean): void {
  if (!usable(o)) return;
  const k = o.key.toLowerCase();
  const v = o.value;
  const had = existing !== undefined;
  const action = actionOf(o, response);
  if (action === 'add') into[k] = had ? `${existing}, ${v}` : v;
  else if (action === 'append') into[k] = had ? `${existing},${v}` : v;
  else if (action === 'add-if-absent') {
    if (!had) into[k] = v;
  } else if (action === 'overwrite-if-exists') {
    if (had) into[k] = v;
  } else into[k] = v;
}

/** What one header of an answer does (see {@link mutate}). */
function actionOf(o: HeaderOption, response: boolean): 'add' | 'append' | 'set' | 'add-if-absent' | 'overwrite-if-exists' {
  if (o.append !== undefined) return o.append ? (response ? 'add' : 'append') : 'set';
  return o.appendAction === 0 ? 'add' : o.appendAction === 1 ? 'add-if-absent' : o.appendAction === 3 ? 'overwrite-if-exists' : 'set';
}

/** `response_headers_to_add` as lines: a header added twice (two `set-cookie`) is two lines, as Envoy adds each. */
function responseHeaders(list: readonly HeaderOption[]): Record<string, string | string[]> {
  const down: Record<string, string | string[]> = Object.create(null);
  for (const o of list) {
    if (!usable(o)) continue;
    const k = o.key.toLowerCase();
    const had = down[k];
    const action = actionOf(o, true);
    if (action === 'add') down[k] = had === undefined ? o.value : [...(typeof had === 'string' ? [had] : had), o.value];
    else if (action === 'add-if-absent') {
      if (had === undefined) down[k] = o.value;
    } else if (action !== 'overwrite-if-exists' || had !== undefined) down[k] = o.value;
  }
  return down;
}

/** An OK answer as the app's request and response should see it. */
function allowed(ok: CheckResponse['ok'], req: AuthzRequest): ExtAuthzResponse {
  if (ok === undefined) return { allowed: true };
  const up: Record<string, string> = Object.create(null);
  for (const o of ok.headers) {
    const k = o.key.toLowerCase();
    mutate(up, o, k in up ? up[k] : headerText(req.headers[k]), false);
  }
  // Removals come last (Envoy applies them after the other mutations): a header both set and removed is gone.
  const remove = ok.headersToRemove.map((s) => s.toLowerCase()).filter((s) => s !== '' && !s.startsWith(':') && s !== 'host');
  for (const k of remove) delete up[k];
  const down = responseHeaders(ok.responseHeadersToAdd);
  return {
    allowed: true,
    ...(Object.keys(up).length > 0 ? { headersToUpstream: up } : {}),
    ...(remove.length > 0 ? { headersToRemove: remove } : {}),
    ...(Object.keys(down).length > 0 ? { headersToDownstream: down } : {}),
  };
}

/** A denial as Envoy sends it: denied_response's status (403 when unset, or not a final status), headers and body. */
function denied(d: CheckResponse['denied']): ExtAuthzResponse {
  const headers: Record<string, string | string[]> = Object.create(null);
  if (d === undefined) return { allowed: false, status: 403, headers, body: '' };
  // Envoy's filter adds each of a denial's headers to its local reply as a line of its own
  // ("allowing the same header to be set multiple times, e.g. Set-Cookie"): never joined with ','.
  for (const o of d.headers) {
    if (!usable(o)) continue;
    const k = o.key.toLowerCase();
    const had = headers[k];
    headers[k] = had === undefined ? o.value : [...(typeof had === 'string' ? [had] : had), o.value];
  }
  const status = d.status >= 200 && d.status <= 599 ? d.status : 403;
  return { allowed: false, status, headers, body: d.body };
}

/** Builds the provider. Throws `InvalidArgumentError` naming every problem of `config`. */
export function envoyExtAuthzGrpc(config: EnvoyExtAuthzGrpcConfig, options: EnvoyExtAuthzGrpcOptions): ExtAuthzCheck {
  const name = options.name ?? config.service;
  const errs = checkEnvoyExtAuthzGrpc(config);
  if (errs.length > 0) throw new InvalidArgumentError(`extension provider "${name}" (envoyExtAuthzGrpc): ${errs.join('; ')}`);
  const clock = options.clock ?? systemClock;
  const timeoutMs = config.timeout === undefined ? 600_000 : (parseDuration(config.timeout) as number);
  const statusOnError = config.statusOnError === undefined || config.statusOnError === '' ? 403 : Number(config.statusOnError);
  const failure: ExtAuthzResponse = config.failOpen === true ? { allowed: true } : Object.freeze({ allowed: false, status: statusOnError, headers: Object.freeze({}), body: '', error: true });
  const target = `${hostOf(config.service)}:${config.port}`;
  let client: UnaryCaller | undefined;

  const withBody = config.includeRequestBodyInCheck;

  return async function check(req: AuthzRequest): Promise<ExtAuthzResponse> {
    const read = await readCheckBody(req, withBody);
    if ('answer' in read) return read.answer;
    const buffered = read.body;
    const headers = checkHeaders(req);
    if (buffered !== undefined) headers['x-envoy-auth-partial-body'] = buffered.partial ? 'true' : 'false';
    const tls = req.peer !== undefined;
    const request = encodeCheckRequest({
      source: { address: req.remoteAddress, port: req.remotePort ?? 0, service: headerText(req.headers['x-envoy-downstream-service-cluster']), principal: tls ? req.peer?.principal : undefined },
      destination: { address: req.localAddress ?? '', port: req.localPort, principal: tls ? options.localPrincipal : undefined },
      timeMs: Date.now(),
      id: String(++nextId),
      method: req.method,
      headers,
      path: req.path,
      host: req.authority,
      scheme: req.scheme ?? 'http',
      protocol: req.protocol === 'http1' ? 'HTTP/1.1' : req.protocol === undefined ? '' : 'HTTP/2',
      ...(buffered === undefined ? {} : withBody?.packAsBytes === true ? { size: buffered.received, rawBody: buffered.bytes } : { size: buffered.received, body: sanitizeUtf8(buffered.bytes) }),
    });
    const o = await callUnary(() => (client ??= options.client(target)), CHECK_METHOD, request, { clock, timeoutMs, signal: req.signal, sendDeadline: true });
    // The caller going away cancels the check, as Envoy's filter does when the downstream resets.
    if (o.kind === 'cancelled') return CHECK_CANCELLED;
    if (o.kind !== 'answer') return failure;
    let res: CheckResponse;
    try {
      res = decodeCheckResponse(o.value);
    } catch {
      return failure;
    }
    return res.code === 0 ? allowed(res.ok, req) : denied(res.denied);
  };
}
