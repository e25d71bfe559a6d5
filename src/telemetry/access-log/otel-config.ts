/**
 * `envoyOtelAls` access-log providers (OpenTelemetry collectors): their MeshConfig fields, how
 * istiod turns one into Envoy's `OpenTelemetryAccessLogConfig` (`openTelemetryLog`,
 * `buildOpenTelemetryAccessLogConfig` in `pilot/pkg/model/telemetry_logging.go`), and Istio's
 * validation (`ValidateExtensionProviderEnvoyOtelAls`).
 *
 * @module
 */
import { isIP } from 'node:net';
import { compileSubstitution, FormatError, ISTIO_TEXT_FORMAT } from './format.ts';
import { formatHostPort } from '../../core/host-port.ts';

/**
 * MeshConfig `ExtensionProvider.EnvoyOpenTelemetryLogProvider` (`envoyOtelAls`), as written in
 * Istio YAML: an OpenTelemetry collector that log records are exported to over OTLP/gRPC.
 * @category Telemetry
 */
export interface EnvoyOtelAlsProvider {
  /** The collector's service: `host` (e.g. `opentelemetry-collector.observability.svc.cluster.local`) or `namespace/host`. */
  readonly service: string;
  /** The collector's OTLP/gRPC port (e.g. 4317). */
  readonly port: number;
  /** Envoy's `log_name`. @defaultValue `otel_envoy_accesslog` */
  readonly logName?: string | undefined;
  /**
   * `text`: the record's body (an Envoy format string); `labels`: its attributes (name → Envoy
   * format string).
   * @defaultValue body: Istio's default text format; no attributes
   */
  readonly logFormat?: { readonly text?: string | undefined; readonly labels?: Readonly<Record<string, unknown>> | undefined } | undefined;
}

/** An `envoyOtelAls` log as istiod configures Envoy's (`openTelemetryLog`, `buildOpenTelemetryAccessLogConfig`). */
export interface ResolvedOtelLog {
  readonly service: string;
  readonly port: number;
  /** `logName`, or `otel_envoy_accesslog`. */
  readonly logName: string;
  /** The body's format: `logFormat.text`, or Istio's default text format (`EnvoyTextLogFormat`). */
  readonly text: string;
  /** The attributes' formats (sorted by name, as istiod writes them); none when `labels` is unset. */
  readonly labels: readonly (readonly [string, string])[];
}

/** istiod's `openTelemetryLog`: the body's format, the attributes (string labels only, sorted), the log name. */
export function resolveOtelLog(p: EnvoyOtelAlsProvider): ResolvedOtelLog {
  const f = p.logFormat;
  const text = f?.text !== undefined && f.text !== '' ? f.text : ISTIO_TEXT_FORMAT;
  // ConvertStructToAttributeKeyValues: keys sorted; a label that is not a string is an empty string.
  const labels = Object.keys(f?.labels ?? {})
    .sort()
    .map((k) => [k, typeof f?.labels?.[k] === 'string' ? (f.labels[k] as string) : ''] as const);
  return { service: p.service, port: p.port, logName: p.logName !== undefined && p.logName !== '' ? p.logName : 'otel_envoy_accesslog', text, labels };
}

/** `host:port` of the collector (`service` without its `namespace/`; an IPv6 address bracketed): the mesh routes it as Istio's cluster `outbound|port||host`. */
export function otelTarget(o: { readonly service: string; readonly port: number }): string {
  const host = o.service.slice(o.service.indexOf('/') + 1);
  return formatHostPort(host, o.port);
}

/** Istio's `labels.IsDNS1123Label` (letters of either case, as Istio's regexp). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/i;
/** Istio's `labels.IsWildcardDNS1123Label`: `*`, or a label, optionally after `*` or `*-`. */
const WILDCARD_LABEL = /^(\*|(\*|\*-)?[a-z0-9]([-a-z0-9]*[a-z0-9])?)$/i;

const isLabel = (l: string): boolean => l.length <= 63 && DNS_LABEL.test(l);

/** Istio's `ValidateDNS1123Labels`: an all-numeric top-level label is refused; a trailing dot is allowed. */
function labelsProblem(domain: string): string | undefined {
  const parts = domain.split('.');
  const tld = parts[parts.length - 1] as string;
  if (/^[+-]?\d+$/.test(tld)) return `top level domain "${tld}" cannot be all-numeric`;
  for (const [i, l] of parts.entries()) {
    if (i === parts.length - 1 && l === '') return undefined;
    if (!isLabel(l)) return `label "${l}" invalid`;
  }
  return undefined;
}

/** Istio's `CheckDNS1123Preconditions` and `ValidateFQDN`. */
function fqdnProblem(host: string): string | undefined {
  if (host.length > 255) return 'too long (max 255)';
  if (host === '') return 'empty';
  return labelsProblem(host);
}

/** Istio's `validateSidecarOrGatewayHostnamePart` (not a gateway): `*`, or a name with a dot, optionally `*.`-prefixed. */
function hostPartProblem(host: string): string | undefined {
  if (host !== '*' && !host.includes('.')) return 'short names (non FQDN) are not allowed';
  if (host.length > 255) return 'too long (max 255)';
  const dot = host.indexOf('.');
  const first = dot === -1 ? host : host.slice(0, dot);
  if (first.length > 63 || !WILDCARD_LABEL.test(first)) return `label "${first}" invalid`;
  const rest = dot === -1 ? undefined : labelsProblem(host.slice(dot + 1));
  if (rest !== undefined) return rest;
  if (host.includes('*') && host.length !== 1 && !host.startsWith('*.')) return `partial wildcard "${host}" not allowed`;
  return undefined;
}

/**
 * Istio's `validateExtensionProviderService` (pilot/pkg/config/validation/agent/extensionprovider.go):
 * an FQDN (`ValidateFQDN`) or IP address; or `namespace/host` (`ValidateNamespaceSlashWildcardHostname`,
 * not a gateway: the namespace `*`, `.` or a label, optionally `~`-prefixed; the host a name with a dot).
 */
export function checkService(service: unknown): string | undefined {
  if (typeof service !== 'string' || service === '') return 'service must not be empty';
  const slash = service.indexOf('/');
  if (slash === -1) {
    const why = fqdnProblem(service);
    if (why !== undefined && isIP(service) === 0) return `invalid service "${service}": not a host name (${why}) or IP address${service.includes(':') ? ' (the port goes in `port`)' : ''}`;
    return undefined;
  }
  const ns = service.slice(0, slash);
  const host = service.slice(slash + 1);
  if (ns === '' || host === '') return `invalid service "${service}": the namespace and host of namespace/host cannot be empty`;
  const n = ns.startsWith('~') ? ns.slice(1) : ns;
  if (n !== '' && n !== '*' && n !== '.' && !isLabel(n)) return `invalid service "${service}": invalid namespace "${ns}" (a host, or namespace/host)`;
  const why = hostPartProblem(host);
  if (why !== undefined) return `invalid service "${service}": host "${host}": ${why}`;
  return undefined;
}

/**
 * Checks an `envoyOtelAls` provider as given to `createMesh`, as Istio validates it
 * (`ValidateExtensionProviderEnvoyOtelAls`: `service` a host or `namespace/host`, `port` in
 * range) and as Envoy would refuse its formats (`logFormat.text` and each `logFormat.labels`
 * value must parse); returns the problems, each naming the field.
 */
export function checkEnvoyOtelAls(p: unknown): string[] {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return ['must be an object { service, port, logName?, logFormat? }'];
  const o = p as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(o)) if (!['service', 'port', 'logName', 'logFormat'].includes(k)) problems.push(`unknown field "${k}"`);
  const s = checkService(o['service']);
  if (s !== undefined) problems.push(s);
  const port = o['port'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) problems.push(`port must be in the range [1, 65535], found: ${JSON.stringify(port ?? 0)}`);
  if (o['logName'] !== undefined && typeof o['logName'] !== 'string') problems.push('logName must be a string');
  const f = o['logFormat'];
  if (f === undefined) return problems;
  if (f === null || typeof f !== 'object' || Array.isArray(f)) return [...problems, 'logFormat must be an object { text?, labels? }'];
  const lf = f as Record<string, unknown>;
  for (const k of Object.keys(lf)) if (k !== 'text' && k !== 'labels') problems.push(`logFormat: unknown field "${k}"`);
  const at = (field: string, format: string): void => {
    try {
      compileSubstitution(format, false);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      problems.push(`${field}: ${e.message}`);
    }
  };
  if (lf['text'] !== undefined) {
    if (typeof lf['text'] !== 'string') problems.push('logFormat.text must be a string');
    else at('logFormat.text', lf['text']);
  }
  const l = lf['labels'];
  if (l !== undefined) {
    if (l === null || typeof l !== 'object' || Array.isArray(l)) problems.push('logFormat.labels must be an object (attribute name → format string)');
    else {
      for (const [k, v] of Object.entries(l)) {
        // A label that is not a string is sent as "" (istiod's ConvertStructToAttributeKeyValues).
        if (typeof v === 'string') at(`logFormat.labels.${k}`, v);
      }
    }
  }
  return problems;
}
