/**
 * `envoyHttpAls` and `envoyTcpAls` access-log providers (Envoy's gRPC access log service): their
 * MeshConfig fields, how istiod turns an `envoyHttpAls` one into Envoy's `HttpGrpcAccessLogConfig`
 * (`httpGrpcAccessLogFromTelemetry` in `pilot/pkg/model/telemetry_logging.go`), and Istio's
 * validation (`ValidateExtensionProviderEnvoyHTTPAls` / `…TCPAls`: `service` and `port`).
 *
 * @module
 */
import { checkService } from './otel-config.ts';

/**
 * MeshConfig `ExtensionProvider.EnvoyHttpGrpcV3LogProvider` (`envoyHttpAls`), as written in
 * Istio YAML: an `envoy.service.accesslog.v3.AccessLogService` that HTTP access-log entries are
 * streamed to.
 * @category Telemetry
 */
export interface EnvoyHttpAlsProvider {
  /** The log service: `host` (e.g. `als.observability.svc.cluster.local`) or `namespace/host`. */
  readonly service: string;
  /** Its gRPC port. */
  readonly port: number;
  /** The stream identifier's `log_name`. @defaultValue `http_envoy_accesslog` */
  readonly logName?: string | undefined;
  /** Filter state keys whose objects go in `common_properties.filter_state_objects`. @defaultValue `['upstream_peer', 'downstream_peer']` */
  readonly filterStateObjectsToLog?: readonly string[] | undefined;
  /** Request headers copied into `request.request_headers`. */
  readonly additionalRequestHeadersToLog?: readonly string[] | undefined;
  /** Response headers copied into `response.response_headers`. */
  readonly additionalResponseHeadersToLog?: readonly string[] | undefined;
  /** Response trailers copied into `response.response_trailers`. */
  readonly additionalResponseTrailersToLog?: readonly string[] | undefined;
}

/**
 * MeshConfig `ExtensionProvider.EnvoyTcpGrpcV3LogProvider` (`envoyTcpAls`): accepted and checked;
 * meshlet proxies no TCP connections, so it has nothing to send to one.
 * @category Telemetry
 */
export interface EnvoyTcpAlsProvider {
  readonly service: string;
  readonly port: number;
  readonly logName?: string | undefined;
  readonly filterStateObjectsToLog?: readonly string[] | undefined;
}

/** An `envoyHttpAls` log as istiod configures Envoy's. */
export interface ResolvedHttpAls {
  readonly service: string;
  readonly port: number;
  /** `logName`, or `http_envoy_accesslog`. */
  readonly logName: string;
  readonly filterStateObjects: readonly string[];
  /** Header names, lower-cased (Envoy's `LowerCaseString`). */
  readonly requestHeaders: readonly string[];
  readonly responseHeaders: readonly string[];
  readonly responseTrailers: readonly string[];
}

const lower = (l: readonly string[] | undefined): string[] => (l ?? []).map((h) => h.toLowerCase());

/** istiod's `httpGrpcAccessLogFromTelemetry`: the log name and filter state keys defaulted. */
export function resolveHttpAls(p: EnvoyHttpAlsProvider): ResolvedHttpAls {
  return {
    service: p.service,
    port: p.port,
    logName: p.logName !== undefined && p.logName !== '' ? p.logName : 'http_envoy_accesslog',
    filterStateObjects: p.filterStateObjectsToLog !== undefined && p.filterStateObjectsToLog.length > 0 ? [...p.filterStateObjectsToLog] : ['upstream_peer', 'downstream_peer'],
    requestHeaders: lower(p.additionalRequestHeadersToLog),
    responseHeaders: lower(p.additionalResponseHeadersToLog),
    responseTrailers: lower(p.additionalResponseTrailersToLog),
  };
}

const HTTP_FIELDS = ['service', 'port', 'logName', 'filterStateObjectsToLog', 'additionalRequestHeadersToLog', 'additionalResponseHeadersToLog', 'additionalResponseTrailersToLog'];
const TCP_FIELDS = ['service', 'port', 'logName', 'filterStateObjectsToLog'];
/** An HTTP header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function check(p: unknown, fields: readonly string[], shape: string): string[] {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return [`must be an object { ${shape} }`];
  const o = p as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(o)) if (!fields.includes(k)) problems.push(`unknown field "${k}"`);
  const s = checkService(o['service']);
  if (s !== undefined) problems.push(s);
  const port = o['port'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) problems.push(`port must be in the range [1, 65535], found: ${JSON.stringify(port ?? 0)}`);
  if (o['logName'] !== undefined && typeof o['logName'] !== 'string') problems.push('logName must be a string');
  for (const f of fields.slice(3)) {
    const v = o[f];
    if (v === undefined) continue;
    if (!Array.isArray(v)) {
      problems.push(`${f} must be a list of strings`);
      continue;
    }
    for (const [i, x] of v.entries()) {
      if (typeof x !== 'string' || x === '') problems.push(`${f}[${i}] must be a non-empty string`);
      else if (f !== 'filterStateObjectsToLog' && !TOKEN.test(x)) problems.push(`${f}[${i}]: "${x}" is not a header name`);
    }
  }
  return problems;
}

/** Checks an `envoyHttpAls` provider as given to `createMesh` (Istio's checks, and the lists' shapes); returns the problems, each naming the field. */
export function checkEnvoyHttpAls(p: unknown): string[] {
  return check(p, HTTP_FIELDS, 'service, port, logName?, filterStateObjectsToLog?, additionalRequestHeadersToLog?, additionalResponseHeadersToLog?, additionalResponseTrailersToLog?');
}

/** Checks an `envoyTcpAls` provider as given to `createMesh`; returns the problems, each naming the field. */
export function checkEnvoyTcpAls(p: unknown): string[] {
  return check(p, TCP_FIELDS, 'service, port, logName?, filterStateObjectsToLog?');
}
