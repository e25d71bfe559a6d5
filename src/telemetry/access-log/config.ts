/**
 * Which access logs a workload writes, for each side, as istiod decides it:
 * `Telemetries.AccessLogging` and `mergeLogs` (`pilot/pkg/model/telemetry.go`), the providers
 * (`telemetry_logging.go`), and the MeshConfig fallback (`pilot/pkg/networking/core/accesslog.go`).
 *
 * - No Telemetry `accessLogging` applies and MeshConfig `defaultProviders.accessLogging` is
 *   empty: the MeshConfig settings decide (`accessLogFile`, `accessLogEncoding`,
 *   `accessLogFormat`); an empty `accessLogFile` means no access log. The same when the
 *   Telemetry resources name only providers that do not exist.
 * - Otherwise the providers in scope are those of the most specific Telemetry that names any
 *   for this side (`match.mode`), else the default providers; each gets the `filter` and
 *   `disabled` of the last entry naming it (an entry without providers names the ones its
 *   parent used).
 * - Provider `envoy` (built in, `/dev/stdout`) without its own `logFormat` formats as MeshConfig
 *   says (encoding and format); other `envoyFileAccessLog` providers use their `logFormat`
 *   (`text`, or `labels` for JSON; none is Istio's default text format); `envoyOtelAls`
 *   providers are logs for OpenTelemetry collectors (`otel-config.ts`), `envoyHttpAls` ones for
 *   Envoy's gRPC access log services (`als-config.ts`).
 *
 * @module
 */
import type { TelemetryAccessLogging, WorkloadMode } from '../../config/types/telemetry.ts';
import type { AppliedTelemetry } from '../select.ts';
import { compileJsonFormat, compileTextFormat, FormatError } from './format.ts';
import { type EnvoyOtelAlsProvider, type ResolvedOtelLog, resolveOtelLog } from './otel-config.ts';
import { type EnvoyHttpAlsProvider, type ResolvedHttpAls, resolveHttpAls } from './als-config.ts';
import { optionNames } from '../../core/option-names.ts';

/**
 * MeshConfig `ExtensionProvider.EnvoyFileAccessLogProvider`, as written in Istio YAML.
 * @category Telemetry
 */
export interface EnvoyFileAccessLogProvider {
  /** Where lines go: `/dev/stdout` (the mesh's logger), `/dev/stderr`, or a file (appended). @defaultValue `/dev/stdout` */
  readonly path?: string | undefined;
  /** `text` (Envoy format string) or `labels` (JSON: key → format string). @defaultValue Istio's default text format */
  readonly logFormat?: { readonly text?: string; readonly labels?: Readonly<Record<string, unknown>> } | undefined;
  /** Leave out empty values (text: print nothing instead of `-`; JSON: leave the key out). @defaultValue false */
  readonly omitEmptyValues?: boolean | undefined;
}

/** An extension provider as access logging reads it (the mesh's `extensionProviders`). */
export interface AccessLogProviderConfig {
  readonly name: string;
  /** Other provider kinds (ext-authz, tracing, metrics, gRPC log services) are not access logs meshlet writes. */
  readonly envoyFileAccessLog?: EnvoyFileAccessLogProvider;
  readonly envoyOtelAls?: EnvoyOtelAlsProvider | undefined;
  readonly envoyHttpAls?: EnvoyHttpAlsProvider | undefined;
}

/**
 * MeshConfig's access-log settings, as `telemetry.accessLog` of `createMesh`.
 * @category Telemetry
 */
export interface AccessLogOptions {
  /**
   * MeshConfig `accessLogFile`: where the MeshConfig-configured access log goes when no
   * Telemetry resource configures access logging. `''` is off; `/dev/stdout` is the mesh's
   * logger (`logger.info`; `process.stdout` when the logger has no `info`); `/dev/stderr`; any
   * other path is a file, appended to.
   * @defaultValue '' (off, as in Istio's default profile)
   */
  readonly file?: string | undefined;
  /** MeshConfig `accessLogEncoding`. @defaultValue 'TEXT' */
  readonly encoding?: 'TEXT' | 'JSON' | undefined;
  /**
   * MeshConfig `accessLogFormat`: an Envoy format string (TEXT) or a JSON object of labels as a
   * string (JSON).
   * @defaultValue '' (Istio's default text or JSON format)
   */
  readonly format?: string | undefined;
  /**
   * MeshConfig `defaultProviders.accessLogging`: the providers used when a Telemetry resource
   * enables access logging without naming any (`envoy` is built in).
   * @defaultValue []
   */
  readonly defaultProviders?: readonly string[] | undefined;
}

/** The names of {@link AccessLogOptions} (createMesh refuses others), checked against the type. @internal */
export const ACCESS_LOG_OPTION_NAMES = optionNames<AccessLogOptions>()(['file', 'encoding', 'format', 'defaultProviders']);

/** The built-in provider (Istio's mesh defaults). */
export const BUILTIN_ENVOY: AccessLogProviderConfig = Object.freeze({ name: 'envoy', envoyFileAccessLog: Object.freeze({ path: '/dev/stdout' }) });

/** What a provider does for one side after the merge. */
export interface LoggingSpec {
  readonly disabled: boolean;
  readonly filter: string | undefined;
}

/** One access log a side writes. */
export interface ResolvedLog {
  /** The provider name, or `(meshConfig)` for the MeshConfig fallback. */
  readonly provider: string;
  readonly path: string;
  /** `text` format string, or JSON labels. */
  readonly format: { readonly kind: 'text'; readonly text: string } | { readonly kind: 'json'; readonly labels: Readonly<Record<string, unknown>> | undefined };
  readonly omitEmptyValues: boolean;
  readonly filter: string | undefined;
  /** Set for an `envoyOtelAls` provider: records go to its collector, not to `path`. */
  readonly otel?: ResolvedOtelLog | undefined;
  /** Set for an `envoyHttpAls` provider: entries are streamed to its log service, not written to `path`. */
  readonly als?: ResolvedHttpAls | undefined;
}

function matchMode(e: TelemetryAccessLogging, mode: WorkloadMode): boolean {
  const m = e.match?.mode;
  return m === undefined || m === 'CLIENT_AND_SERVER' || m === mode;
}

const names = (e: TelemetryAccessLogging): string[] => (e.providers ?? []).map((p) => p.name);

/**
 * istiod's `mergeLogs`: provider → spec for one side (`CLIENT` outbound, `SERVER` inbound).
 * @param applied the Telemetries that apply, least specific first (`selectTelemetry`).
 */
export function mergeLogs(applied: readonly AppliedTelemetry[], defaultProviders: readonly string[], mode: 'CLIENT' | 'SERVER'): Map<string, LoggingSpec> {
  const logs = applied.map((a) => a.spec.accessLogging ?? []).filter((l) => l.length > 0);
  const providers = new Map<string, LoggingSpec>();
  if (logs.length === 0) {
    for (const p of defaultProviders) providers.set(p, { disabled: false, filter: undefined });
    return providers;
  }
  let providerNames: readonly string[] = defaultProviders;
  const filters = new Map<string, LoggingSpec>();
  for (const entries of logs) {
    const found = new Set<string>();
    for (const e of entries) {
      if (!matchMode(e, mode)) continue;
      for (const p of names(e)) {
        found.add(p);
        filters.set(p, { disabled: false, filter: e.filter?.expression });
      }
    }
    if (found.size > 0) providerNames = [...found];
  }
  const inScope = new Set(providerNames);
  let parent: readonly string[] = defaultProviders;
  for (const entries of logs) {
    for (const e of entries) {
      let ps: readonly string[] = names(e);
      if (ps.length === 0) ps = parent;
      parent = ps;
      for (const p of ps) {
        if (!inScope.has(p) || !matchMode(e, mode)) continue;
        if (e.disabled === true) providers.set(p, { disabled: true, filter: undefined });
        else providers.set(p, filters.get(p) ?? { disabled: false, filter: undefined });
      }
    }
  }
  return providers;
}

/** Something about the access-log config worth a warning. */
export type AccessLogFinding = string;

function meshConfigLog(path: string, o: AccessLogOptions, provider: string, filter: string | undefined, findings: AccessLogFinding[]): ResolvedLog {
  const format = o.format ?? '';
  if (o.encoding === 'JSON') {
    let labels: Record<string, unknown> | undefined;
    if (format !== '') {
      try {
        const parsed: unknown = JSON.parse(format);
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
        labels = parsed as Record<string, unknown>;
      } catch (e) {
        // Istio: "error parsing provided json log format, default log format will be used".
        findings.push(`telemetry.accessLog.format: error parsing the JSON log format, the default JSON format is used: ${(e as Error).message}`);
      }
    }
    return { provider, path, format: { kind: 'json', labels }, omitEmptyValues: false, filter };
  }
  return { provider, path, format: { kind: 'text', text: format }, omitEmptyValues: false, filter };
}

/**
 * The access logs one side writes (istiod's `AccessLogging` plus the MeshConfig fallback), with
 * what was found wrong (unknown providers, providers meshlet cannot write).
 * @param providers MeshConfig `extensionProviders` (the built-in `envoy` is added unless replaced).
 */
export function resolveAccessLogs(
  applied: readonly AppliedTelemetry[],
  providers: readonly AccessLogProviderConfig[],
  options: AccessLogOptions,
  mode: 'CLIENT' | 'SERVER',
): { readonly logs: readonly ResolvedLog[]; readonly findings: readonly AccessLogFinding[] } {
  const findings: AccessLogFinding[] = [];
  const defaults = options.defaultProviders ?? [];
  const configured = applied.some((a) => (a.spec.accessLogging?.length ?? 0) > 0);
  const logs: ResolvedLog[] = [];
  let fallback = !configured && defaults.length === 0;
  if (!fallback) {
    const merged = mergeLogs(applied, defaults, mode);
    const all = providers.some((p) => p.name === 'envoy') ? providers : [BUILTIN_ENVOY, ...providers];
    let usable = 0;
    for (const [name, spec] of [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      // istiod's fetchProvider compares names case-insensitively.
      const p = all.find((x) => x.name.toLowerCase() === name.toLowerCase());
      if (p === undefined) {
        findings.push(`Telemetry accessLogging names provider "${name}", which is not among the mesh's extensionProviders: ignored, as in Istio`);
        continue;
      }
      const file = p.envoyFileAccessLog;
      if (p.envoyOtelAls !== undefined) {
        usable++;
        if (!spec.disabled) {
          const otel = resolveOtelLog(p.envoyOtelAls);
          logs.push({ provider: p.name, path: '', format: { kind: 'text', text: otel.text }, omitEmptyValues: false, filter: spec.filter, otel });
        }
        continue;
      }
      if (p.envoyHttpAls !== undefined) {
        usable++;
        if (!spec.disabled) logs.push({ provider: p.name, path: '', format: { kind: 'text', text: '' }, omitEmptyValues: false, filter: spec.filter, als: resolveHttpAls(p.envoyHttpAls) });
        continue;
      }
      if (file === undefined) {
        // Istio writes envoyTcpAls logs for its TCP proxy; meshlet proxies no TCP. Other kinds are not access logs.
        const kind = Object.keys(p).find((k) => k !== 'name') ?? 'unknown';
        if (/Als$/.test(kind)) {
          usable++;
          if (!spec.disabled) findings.push(`access-log provider "${p.name}" (${kind}) has nothing to log: meshlet proxies no TCP connections (it writes envoyFileAccessLog, envoyOtelAls and envoyHttpAls logs for HTTP and gRPC requests)`);
        }
        continue;
      }
      usable++;
      if (spec.disabled) continue;
      const path = file.path === undefined || file.path === '' ? '/dev/stdout' : file.path;
      if (p.name === 'envoy' && file.logFormat === undefined && file.omitEmptyValues !== true) {
        logs.push(meshConfigLog(path, options, p.name, spec.filter, findings));
        continue;
      }
      const f = file.logFormat;
      const hasLabels = f?.labels !== undefined;
      logs.push({
        provider: p.name,
        path,
        format: hasLabels ? { kind: 'json', labels: f?.labels } : { kind: 'text', text: f?.text ?? '' },
        omitEmptyValues: file.omitEmptyValues === true,
        filter: spec.filter,
      });
    }
    // accesslog.go: no access-log provider config for this side (`len(cfgs) == 0`, e.g. a
    // CLIENT-only Telemetry seen from the server side) falls back to MeshConfig.
    fallback = usable === 0;
  }
  if (fallback && (options.file ?? '') !== '') logs.push(meshConfigLog(options.file as string, options, '(meshConfig)', undefined, findings));
  return { logs, findings };
}

/**
 * Checks an `envoyFileAccessLog` provider as given to `createMesh`: its shape, and that its
 * format compiles (operators Envoy knows, CEL that parses); returns the problems.
 */
export function checkEnvoyFileAccessLog(p: unknown): string[] {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return ['must be an object { path?, logFormat?, omitEmptyValues? }'];
  const o = p as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(o)) if (k !== 'path' && k !== 'logFormat' && k !== 'omitEmptyValues') problems.push(`unknown field "${k}"`);
  if (o['path'] !== undefined && typeof o['path'] !== 'string') problems.push('path must be a string');
  if (o['omitEmptyValues'] !== undefined && typeof o['omitEmptyValues'] !== 'boolean') problems.push('omitEmptyValues must be a boolean');
  const f = o['logFormat'];
  if (f !== undefined) {
    if (f === null || typeof f !== 'object' || Array.isArray(f)) problems.push('logFormat must be an object { text } or { labels }');
    else {
      const lf = f as Record<string, unknown>;
      if (lf['text'] !== undefined && lf['labels'] !== undefined) problems.push('logFormat: only one of text and labels may be set');
      if (lf['text'] !== undefined && typeof lf['text'] !== 'string') problems.push('logFormat.text must be a string');
      const l = lf['labels'];
      if (l !== undefined && (l === null || typeof l !== 'object' || Array.isArray(l))) problems.push('logFormat.labels must be an object');
      else if (problems.length === 0) {
        try {
          if (typeof lf['text'] === 'string') compileTextFormat(lf['text']);
          if (l !== undefined) compileJsonFormat(l as Record<string, unknown>);
        } catch (e) {
          if (!(e instanceof FormatError)) throw e;
          problems.push(`logFormat.${typeof lf['text'] === 'string' ? 'text' : 'labels'}: ${e.message}`);
        }
      }
    }
  }
  return problems;
}

/**
 * Checks `telemetry.accessLog` as given to `createMesh`; returns the problems, each naming the
 * field (`telemetry.accessLog.encoding: …`).
 */
export function checkAccessLogOptions(o: unknown): string[] {
  if (o === undefined) return [];
  const at = 'telemetry.accessLog';
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return [`${at} must be an object { file?, encoding?, format?, defaultProviders? }`];
  const v = o as Record<string, unknown>;
  const problems: string[] = [];
  for (const k of Object.keys(v)) if (!ACCESS_LOG_OPTION_NAMES.includes(k)) problems.push(`${at}: unknown field "${k}"`);
  if (v['file'] !== undefined && typeof v['file'] !== 'string') problems.push(`${at}.file must be a path ('' is off, '/dev/stdout' the logger), got ${JSON.stringify(v['file'])}`);
  if (v['encoding'] !== undefined && v['encoding'] !== 'TEXT' && v['encoding'] !== 'JSON') problems.push(`${at}.encoding must be 'TEXT' or 'JSON', got ${JSON.stringify(v['encoding'])}`);
  if (v['format'] !== undefined && typeof v['format'] !== 'string') problems.push(`${at}.format must be a string (an Envoy format, or JSON labels as a string), got ${JSON.stringify(v['format'])}`);
  const dp = v['defaultProviders'];
  if (dp !== undefined && (!Array.isArray(dp) || dp.some((p) => typeof p !== 'string' || p === ''))) problems.push(`${at}.defaultProviders must be a list of provider names, got ${JSON.stringify(dp)}`);
  if (problems.length === 0 && typeof v['format'] === 'string' && v['format'] !== '' && v['encoding'] !== 'JSON') {
    try {
      compileTextFormat(v['format']);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      problems.push(`${at}.format: ${e.message}`);
    }
  }
  return problems;
}
