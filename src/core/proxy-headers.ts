/**
 * The headers an Istio sidecar adds to the requests it forwards, and Istio's switches for them
 * (ProxyConfig `proxyHeaders`, set mesh-wide in MeshConfig `defaultConfig` or per workload with
 * the `proxy.istio.io/config` annotation; here the `proxyHeaders` option of `createMesh`):
 *
 * - `x-forwarded-client-cert` on requests served over mTLS (`forwardedClientCert`,
 *   `setCurrentClientCertDetails`): Istio configures the inbound listener with `APPEND_FORWARD`
 *   and the subject, URI and DNS details;
 * - `x-request-id` generated for a request without one (`requestId`);
 * - `x-envoy-attempt-count` on every attempt of a call (`attemptCount`), which Istio turns on for
 *   every outbound route: the server sees that a request is a retry;
 * - the router's `x-envoy-*` headers (`envoyDebugHeaders`): here `x-envoy-expected-rq-timeout-ms`
 *   and `x-envoy-original-path` (a rewritten call's) on calls, `x-envoy-upstream-service-time`
 *   on their responses and on the app's answers to served requests, and `x-envoy-overloaded` on the mesh's overflow answers (outbound and inbound);
 * - `server` on served responses, the mesh's refusals and gRPC servers' answers included
 *   (`server.value` replaces the app's; Istio's default, `istio-envoy`, is not written: the app's
 *   passes through, as with `server.disabled`);
 * - the metadata-exchange headers (`metadataExchangeHeaders.mode`: `IN_MESH`, meshlet's default,
 *   or `UNDEFINED`, Istio's, which sends them to MESH_EXTERNAL services and passthrough calls too);
 * - `xForwardedPort` and `xForwardedHost` are taken and, as in a sidecar, change nothing (Istio's
 *   sidecars do not use the remote address, and their catch-all route rewrites no host);
 *   `preserveHttp1HeaderCase: true` is refused (calls are sent with lower-case header names).
 *
 * Read from Istio's `pilot/pkg/networking/util/proxy_headers.go` and
 * `listener_inbound.go` (`buildSidecarInboundHTTPOpts`).
 *
 * @module
 */
import { suggest } from './did-you-mean.ts';
import { InvalidArgumentError } from './errors.ts';
import { checkOptionNames, optionNames } from './option-names.ts';

/**
 * What a served request's `x-forwarded-client-cert` becomes (Envoy's `forward_client_cert_details`):
 * - `APPEND_FORWARD` (Istio's sidecar default): over mTLS, the caller's certificate details are
 *   appended to the header it sent; otherwise the header is removed;
 * - `SANITIZE_SET`: over mTLS, the header is replaced by the caller's details; otherwise removed;
 * - `SANITIZE`: always removed;
 * - `FORWARD_ONLY`: over mTLS, kept as sent; otherwise removed;
 * - `ALWAYS_FORWARD_ONLY`: always kept as sent, plaintext included.
 * @category Server
 */
export type ForwardClientCertDetails = 'APPEND_FORWARD' | 'SANITIZE_SET' | 'SANITIZE' | 'FORWARD_ONLY' | 'ALWAYS_FORWARD_ONLY';

/**
 * Which of the caller's certificate details `APPEND_FORWARD` and `SANITIZE_SET` write, besides
 * `By` (this workload's URI SANs) and `Hash` (the SHA-256 of the caller's certificate), which
 * are always written. Istio's defaults: `subject`, `uri` and `dns` on, `cert` and `chain` off.
 * @category Server
 */
export interface ClientCertDetailsOptions {
  /** `Subject="<RFC 2253 subject>"` (written even when the subject is empty). @defaultValue true */
  readonly subject?: boolean | undefined;
  /** `URI=<URI SAN>`, one per URI SAN (`URI=` when there is none). @defaultValue true */
  readonly uri?: boolean | undefined;
  /** `DNS=<DNS SAN>`, one per DNS SAN. @defaultValue true */
  readonly dns?: boolean | undefined;
  /** `Cert="<URL-encoded PEM>"` of the caller's certificate. @defaultValue false */
  readonly cert?: boolean | undefined;
  /**
   * `Chain="…"` (the caller's certificate and the intermediates it sent): not supported — Node's
   * TLS server does not expose the certificates a client sent after its own — so `true` is
   * refused. @defaultValue false
   */
  readonly chain?: boolean | undefined;
}

/**
 * Istio's ProxyConfig `proxyHeaders` (MeshConfig `defaultConfig.proxyHeaders`, or the
 * `proxy.istio.io/config` annotation), in Istio's shape.
 * @category Mesh
 */
export interface ProxyHeadersOptions {
  /** What happens to `x-forwarded-client-cert` on served requests. @defaultValue 'APPEND_FORWARD' */
  readonly forwardedClientCert?: ForwardClientCertDetails | undefined;
  /** The caller's certificate details written into `x-forwarded-client-cert`. */
  readonly setCurrentClientCertDetails?: ClientCertDetailsOptions | undefined;
  /** `{ disabled: true }`: no `x-request-id` is generated, on served requests nor on calls. */
  readonly requestId?: { readonly disabled?: boolean | undefined } | undefined;
  /** `{ disabled: true }`: calls do not carry `x-envoy-attempt-count`. */
  readonly attemptCount?: { readonly disabled?: boolean | undefined } | undefined;
  /** `{ disabled: true }`: calls do not carry `x-envoy-expected-rq-timeout-ms` or `x-envoy-original-path`, nor their responses (nor the app's answers to served requests) `x-envoy-upstream-service-time`, nor the mesh's overflow answers (503 UO, outbound and inbound) `x-envoy-overloaded` (Envoy's `suppress_envoy_headers`). */
  readonly envoyDebugHeaders?: { readonly disabled?: boolean | undefined } | undefined;
  /**
   * The `server` header of served responses (the app's, the mesh's refusals, a gRPC server's):
   * `{ value: 'my-server' }` replaces the app's (Envoy's OVERWRITE); `{ disabled: true }` passes
   * the app's through, which is also what meshlet does without it (Istio's sidecar writes `istio-envoy`).
   */
  readonly server?: { readonly disabled?: boolean | undefined; readonly value?: string | undefined } | undefined;
  /**
   * Which calls carry the metadata-exchange headers (`x-envoy-peer-metadata(-id)`, Istio's metrics):
   * `IN_MESH` (meshlet's default) only calls to in-mesh services; `UNDEFINED` (Istio's default)
   * calls to `MESH_EXTERNAL` services and passthrough calls (hosts outside the registry) too.
   */
  readonly metadataExchangeHeaders?: { readonly mode?: 'IN_MESH' | 'UNDEFINED' | undefined } | undefined;
  /** Taken as Istio takes it; a sidecar's inbound and outbound listeners do not use the remote address, so no `x-forwarded-port` is written. */
  readonly xForwardedPort?: { readonly enabled?: boolean | undefined } | undefined;
  /** Taken as Istio takes it; it applies to host rewrites of the catch-all route, which makes none: no `x-forwarded-host` is written. */
  readonly xForwardedHost?: { readonly enabled?: boolean | undefined } | undefined;
  /** `true` is refused: calls are sent with lower-case header names (Envoy's default), whatever case the app wrote. */
  readonly preserveHttp1HeaderCase?: boolean | undefined;
}

/** @internal The switches as the mesh uses them. */
export interface ProxyHeaders {
  readonly forwardedClientCert: ForwardClientCertDetails;
  /** Which details are written, in Envoy's order: Cert, Subject, URI, DNS (Chain is refused). */
  readonly details: { readonly cert: boolean; readonly subject: boolean; readonly uri: boolean; readonly dns: boolean };
  readonly requestId: boolean;
  readonly attemptCount: boolean;
  readonly envoyDebugHeaders: boolean;
  /** The `server` header written over the app's, or undefined (passed through). */
  readonly server: string | undefined;
  /** Metadata-exchange headers on calls to in-mesh services only (`IN_MESH`), or on every call. */
  readonly metadataExchangeInMesh: boolean;
}

/** @internal The names `proxyHeaders` takes. */
export const PROXY_HEADERS_OPTION_NAMES = optionNames<ProxyHeadersOptions>()([
  'forwardedClientCert',
  'setCurrentClientCertDetails',
  'requestId',
  'attemptCount',
  'envoyDebugHeaders',
  'server',
  'metadataExchangeHeaders',
  'xForwardedPort',
  'xForwardedHost',
  'preserveHttp1HeaderCase',
]);
const DETAIL_NAMES = optionNames<ClientCertDetailsOptions>()(['subject', 'uri', 'dns', 'cert', 'chain']);
const MODES: readonly ForwardClientCertDetails[] = ['APPEND_FORWARD', 'SANITIZE_SET', 'SANITIZE', 'FORWARD_ONLY', 'ALWAYS_FORWARD_ONLY'];

/** @internal Istio's defaults: what a sidecar does with no `proxyHeaders`. */
export const DEFAULT_PROXY_HEADERS: ProxyHeaders = Object.freeze({
  forwardedClientCert: 'APPEND_FORWARD',
  details: Object.freeze({ cert: false, subject: true, uri: true, dns: true }),
  requestId: true,
  attemptCount: true,
  envoyDebugHeaders: true,
  server: undefined,
  metadataExchangeInMesh: true,
});

/** @internal Checks `createMesh`'s `proxyHeaders` and gives the switches (Istio's defaults for what is not set). */
export function resolveProxyHeaders(o: ProxyHeadersOptions | undefined): ProxyHeaders {
  if (o === undefined) return DEFAULT_PROXY_HEADERS;
  const who = 'createMesh';
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new InvalidArgumentError(`${who}: \`proxyHeaders\` must be an object (Istio's ProxyConfig proxyHeaders), got ${JSON.stringify(o)}`);
  checkOptionNames(who, o, PROXY_HEADERS_OPTION_NAMES, 'proxyHeaders.');
  const mode = o.forwardedClientCert ?? 'APPEND_FORWARD';
  // UNDEFINED is the enum's zero value in Istio's API: the default.
  const xfcc = (mode as string) === 'UNDEFINED' ? 'APPEND_FORWARD' : mode;
  if (!MODES.includes(xfcc)) {
    throw new InvalidArgumentError(`${who}: \`proxyHeaders.forwardedClientCert\` must be one of ${MODES.join(', ')}, got ${JSON.stringify(mode)}${typeof mode === 'string' ? suggest(mode, MODES) : ''}`);
  }
  const d = o.setCurrentClientCertDetails;
  if (d !== undefined && (d === null || typeof d !== 'object' || Array.isArray(d))) throw new InvalidArgumentError(`${who}: \`proxyHeaders.setCurrentClientCertDetails\` must be an object ({ subject, uri, dns, cert, chain }), got ${JSON.stringify(d)}`);
  checkOptionNames(who, d, DETAIL_NAMES, 'proxyHeaders.setCurrentClientCertDetails.');
  const flag = (path: string, v: unknown, fallback: boolean): boolean => {
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new InvalidArgumentError(`${who}: \`proxyHeaders.${path}\` must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const disabled = (name: 'requestId' | 'attemptCount' | 'envoyDebugHeaders'): boolean => {
    const v = o[name];
    if (v === undefined) return false;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`${who}: \`proxyHeaders.${name}\` must be an object ({ disabled: true }), got ${JSON.stringify(v)}`);
    checkOptionNames(who, v, ['disabled'], `proxyHeaders.${name}.`);
    return flag(`${name}.disabled`, v.disabled, false);
  };
  if (flag('preserveHttp1HeaderCase', o.preserveHttp1HeaderCase, false)) {
    throw new InvalidArgumentError(`${who}: \`proxyHeaders.preserveHttp1HeaderCase\` is not supported: calls are sent with lower-case header names, as Envoy sends them by default (an app's own server reads the header case its callers sent, with no proxy in between)`);
  }
  for (const name of ['xForwardedPort', 'xForwardedHost'] as const) {
    const v = o[name];
    if (v === undefined) continue;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`${who}: \`proxyHeaders.${name}\` must be an object ({ enabled: true }), got ${JSON.stringify(v)}`);
    checkOptionNames(who, v, ['enabled'], `proxyHeaders.${name}.`);
    flag(`${name}.enabled`, v.enabled, false);
  }
  if (flag('setCurrentClientCertDetails.chain', d?.chain, false)) {
    throw new InvalidArgumentError(`${who}: \`proxyHeaders.setCurrentClientCertDetails.chain\` is not supported: Node's TLS server does not expose the intermediate certificates a client sent, so Envoy's Chain="…" cannot be written (\`cert: true\` writes the client's own certificate)`);
  }
  return Object.freeze({
    forwardedClientCert: xfcc,
    details: Object.freeze({
      cert: flag('setCurrentClientCertDetails.cert', d?.cert, false),
      subject: flag('setCurrentClientCertDetails.subject', d?.subject, true),
      uri: flag('setCurrentClientCertDetails.uri', d?.uri, true),
      dns: flag('setCurrentClientCertDetails.dns', d?.dns, true),
    }),
    requestId: !disabled('requestId'),
    attemptCount: !disabled('attemptCount'),
    envoyDebugHeaders: !disabled('envoyDebugHeaders'),
    server: serverHeader(who, o.server, flag),
    metadataExchangeInMesh: metadataExchangeMode(who, o.metadataExchangeHeaders) === 'IN_MESH',
  });
}

/** `proxyHeaders.server`: the value written over the app's, or undefined (passed through). */
function serverHeader(who: string, v: ProxyHeadersOptions['server'], flag: (path: string, v: unknown, fallback: boolean) => boolean): string | undefined {
  if (v === undefined) return undefined;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`${who}: \`proxyHeaders.server\` must be an object ({ disabled: true } or { value: '…' }), got ${JSON.stringify(v)}`);
  checkOptionNames(who, v, ['disabled', 'value'], 'proxyHeaders.server.');
  if (flag('server.disabled', v.disabled, false)) return undefined;
  const value = v.value;
  if (value === undefined || value === '') return undefined;
  // A header value: no CR, LF or NUL (Node would refuse it when the response is written, too late to say which option).
  if (typeof value !== 'string' || /[\r\n\0]/.test(value)) throw new InvalidArgumentError(`${who}: \`proxyHeaders.server.value\` must be a header value (a string without CR, LF or NUL), got ${JSON.stringify(value)}`);
  return value;
}

/** `proxyHeaders.metadataExchangeHeaders.mode`: IN_MESH (meshlet's default) or UNDEFINED. */
function metadataExchangeMode(who: string, v: ProxyHeadersOptions['metadataExchangeHeaders']): 'IN_MESH' | 'UNDEFINED' {
  if (v === undefined) return 'IN_MESH';
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`${who}: \`proxyHeaders.metadataExchangeHeaders\` must be an object ({ mode: 'IN_MESH' | 'UNDEFINED' }), got ${JSON.stringify(v)}`);
  checkOptionNames(who, v, ['mode'], 'proxyHeaders.metadataExchangeHeaders.');
  const mode = v.mode ?? 'IN_MESH';
  if (mode !== 'IN_MESH' && mode !== 'UNDEFINED') throw new InvalidArgumentError(`${who}: \`proxyHeaders.metadataExchangeHeaders.mode\` must be IN_MESH or UNDEFINED, got ${JSON.stringify(mode)}`);
  return mode;
}

/**
 * A workload's own `proxyHeaders` over the mesh's default (MeshConfig `defaultConfig.proxyHeaders`),
 * as Istio merges a pod's proxy config over the mesh default (pkg/config/mesh/mesh.go
 * `MergeProxyConfig` → `correctProxyHeaders`): the pod's `proxyHeaders` message replaces the
 * mesh's, then `forwardedClientCert`, `requestId`, `attemptCount`, `server` and
 * `envoyDebugHeaders` the pod leaves unset (or `forwardedClientCert` UNDEFINED, the enum's zero)
 * are the mesh's again; the other fields (`setCurrentClientCertDetails`, `metadataExchangeHeaders`,
 * `xForwardedPort`, `xForwardedHost`, `preserveHttp1HeaderCase`) are the pod's alone.
 */
export function mergeProxyHeaders(mesh: ProxyHeadersOptions | undefined, own: ProxyHeadersOptions | undefined): ProxyHeadersOptions | undefined {
  if (mesh === undefined || own === undefined || mesh === null || own === null || typeof mesh !== 'object' || typeof own !== 'object') return own ?? mesh;
  const out: Record<string, unknown> = { ...own };
  for (const k of ['forwardedClientCert', 'requestId', 'attemptCount', 'server', 'envoyDebugHeaders'] as const) {
    const v = own[k];
    if ((v === undefined || (k === 'forwardedClientCert' && (v as string) === 'UNDEFINED')) && mesh[k] !== undefined) out[k] = mesh[k];
  }
  return out as ProxyHeadersOptions;
}
