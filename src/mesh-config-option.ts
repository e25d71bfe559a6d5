/**
 * `createMesh({ meshConfig })`: Istio's MeshConfig as a cluster has it — the `istio` ConfigMap
 * (`kubectl get configmap istio -n istio-system -o yaml`, as that text or parsed), its `data.mesh`
 * text, or that text parsed — turned into the options that take each setting meshlet applies
 * (the ConfigMap's `data.meshNetworks` too: the `meshNetworks` option). Options given
 * explicitly win over the MeshConfig's, field by field; settings meshlet has no option for are
 * named once through `logger.info`, not refused (istiod's defaults hold several that concern
 * only the proxy, such as `defaultConfig.discoveryAddress`).
 *
 * @module
 */
import { parse } from 'yaml';
import { InvalidArgumentError } from './core/errors.ts';
import type { MeshConfigInput, MeshOptions } from './mesh-options.ts';
import { isMeshConfigMap, meshConfigSettings, meshConfigValueAt, UNAPPLIED_EXPORT_DEFAULTS, unappliedExportDefaults } from './config/validate/mesh-config-notice.ts';
import { PATH_NORMALIZATIONS } from './core/path-normalization.ts';
import { parseDuration } from './config/duration.ts';
import { mergeProxyHeaders, type ProxyHeadersOptions, resolveProxyHeaders } from './core/proxy-headers.ts';
import { meshRetryPolicyAsEnvoyRunsIt, retryPolicyProblems } from './config/validate/retry-policy.ts';
import type { HTTPRetry } from './config/types/networking.ts';
import { localityLbSettingProblems } from './config/validate/load-balancer.ts';
import { checkAccessLogOptions } from './telemetry/access-log/config.ts';
import { usableExtensionProviders } from './inbound/extension-providers.ts';


const where = (path: string): string => `createMesh: \`meshConfig.${path}\``;

/** The MeshConfig of `input` (YAML text, an object, or the `istio` ConfigMap) as an object; a clear error for anything else. */
export function meshConfigOf(input: MeshConfigInput): Record<string, unknown> {
  let text: string | undefined;
  if (typeof input === 'string') text = input;
  else if (input !== null && typeof input === 'object' && !Array.isArray(input)) {
    const raw = input as Record<string, unknown>;
    if (raw.kind === 'ConfigMap') {
      if (!isMeshConfigMap(raw, 'ConfigMap', String(raw.apiVersion))) throw new InvalidArgumentError('createMesh: `meshConfig` is a ConfigMap without a `data.mesh` text (Istio keeps MeshConfig in the `istio` ConfigMap\'s data.mesh)');
      text = (raw.data as { mesh: string }).mesh;
    } else return raw;
  } else throw new InvalidArgumentError(`createMesh: \`meshConfig\` must be Istio's MeshConfig (YAML text, an object, or the \`istio\` ConfigMap), got ${input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input}`);
  let parsed: unknown;
  try {
    parsed = parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`createMesh: \`meshConfig\` is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError('createMesh: `meshConfig` must be a YAML mapping (MeshConfig fields such as outboundTrafficPolicy, trustDomain)');
  // The ConfigMap's own YAML (`kubectl get configmap istio -o yaml`): its data.mesh.
  if (typeof input === 'string' && (parsed as Record<string, unknown>).kind === 'ConfigMap') return meshConfigOf(parsed as Record<string, unknown>);
  return parsed as Record<string, unknown>;
}

/** The `data.meshNetworks` text of an `istio` ConfigMap given as `meshConfig` (object or YAML text), if it has one. */
function configMapMeshNetworks(input: MeshConfigInput): string | undefined {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      raw = parse(input);
    } catch {
      return undefined;
    }
  }
  if (raw === null || typeof raw !== 'object' || (raw as Record<string, unknown>).kind !== 'ConfigMap') return undefined;
  const data = (raw as { data?: unknown }).data;
  const text = data !== null && typeof data === 'object' ? (data as Record<string, unknown>).meshNetworks : undefined;
  return typeof text === 'string' ? text : undefined;
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string') throw new InvalidArgumentError(`${where(path)} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${where(path)} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function strings(v: unknown, path: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new InvalidArgumentError(`${where(path)} must be a list of strings, got ${JSON.stringify(v)}`);
  return v as string[];
}

function oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) throw new InvalidArgumentError(`${where(path)} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** MeshConfig's `tcpKeepalive` (Istio's `{ time, interval, probes }`, durations as strings) as the `tcpKeepalive` option. */
function meshConfigTcpKeepalive(v: unknown, path: string): MeshOptions['tcpKeepalive'] {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`${where(path)} must be an object such as { time: "300s", interval: "75s", probes: 9 }, got ${JSON.stringify(v)}`);
  const k = v as Record<string, unknown>;
  const duration = (f: string): number | undefined => {
    if (k[f] === undefined || k[f] === null) return undefined;
    const ms = parseDuration(str(k[f], `${path}.${f}`));
    if (typeof ms !== 'number' || ms < 0) throw new InvalidArgumentError(`${where(`${path}.${f}`)} must be a duration such as "300s", got ${JSON.stringify(k[f])}`);
    return ms;
  };
  const unknown = Object.keys(k).filter((f) => !['time', 'interval', 'probes'].includes(f));
  if (unknown.length > 0) throw new InvalidArgumentError(`${where(path)}: unknown field ${unknown.join(', ')} (Istio's TcpKeepalive has time, interval, probes)`);
  const probes = k.probes ?? undefined;
  if (probes !== undefined && !(Number.isSafeInteger(probes) && (probes as number) >= 0 && (probes as number) <= 0xffffffff)) throw new InvalidArgumentError(`${where(`${path}.probes`)} must be a whole number of probes, got ${JSON.stringify(probes)}`);
  return { timeMs: duration('time'), intervalMs: duration('interval'), probes: probes as number | undefined };
}

/**
 * Checks the `tcpKeepalive` option: an object of non-negative `timeMs`, `intervalMs` (ms) and a whole `probes` count.
 * Throws an error naming the field.
 */
export function checkTcpKeepaliveOption(k: unknown): void {
  if (k === undefined) return;
  if (k === null || typeof k !== 'object' || Array.isArray(k)) throw new InvalidArgumentError(`createMesh: \`tcpKeepalive\` (MeshConfig's tcpKeepalive) must be an object such as { timeMs: 300000, intervalMs: 75000, probes: 9 }, got ${JSON.stringify(k)}`);
  const o = k as Record<string, unknown>;
  for (const f of Object.keys(o)) {
    const v = o[f];
    if (f !== 'timeMs' && f !== 'intervalMs' && f !== 'probes') throw new InvalidArgumentError(`createMesh: \`tcpKeepalive.${f}\` is not an option (timeMs, intervalMs, probes are)`);
    if (v === undefined) continue;
    const ok = f === 'probes' ? Number.isSafeInteger(v) && (v as number) >= 0 : typeof v === 'number' && Number.isFinite(v) && v >= 0;
    if (!ok) throw new InvalidArgumentError(`createMesh: \`tcpKeepalive.${f}\` must be ${f === 'probes' ? 'a whole number of probes' : 'a non-negative number of milliseconds'}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
  }
}

/**
 * MeshConfig's `defaultConfig.proxyHeaders`, checked here so that a mistake names where it is
 * (`meshConfig.defaultConfig.proxyHeaders.…`), not a `proxyHeaders` option the app never gave.
 */
function meshConfigProxyHeaders(v: unknown): unknown {
  try {
    resolveProxyHeaders(v as ProxyHeadersOptions);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw new InvalidArgumentError(e.message.replace(/(?<=[`"])proxyHeaders(?=[.`])/g, 'meshConfig.defaultConfig.proxyHeaders'));
    throw e;
  }
  return v;
}

/**
 * Checks a `defaultHttpRetryPolicy` (`name`: the option, `defaultHttpRetryPolicy` or
 * `meshConfig.defaultHttpRetryPolicy`) as a VirtualService's `retries` is checked: an error
 * naming the option and the field, or the policy (`warn` hears what meshlet does not apply in it).
 * `fromMeshConfig`: read from Istio's MeshConfig, which istiod takes without validating this
 * policy: what only a VirtualService's validation refuses is warned about and run as Envoy runs it.
 */
export function checkDefaultRetryPolicy(v: unknown, name: string, warn: (message: string) => void, fromMeshConfig = false): HTTPRetry {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`createMesh: \`${name}\` must be an HTTPRetry object such as { attempts: 3, retryOn: '5xx' } (a VirtualService's retries), got ${Array.isArray(v) ? 'a list' : JSON.stringify(v)}`);
  const { errors, warnings } = retryPolicyProblems(v, name, fromMeshConfig);
  if (errors.length > 0) throw new InvalidArgumentError(`createMesh: \`${name}\` is invalid: ${errors.join('; ')}`);
  for (const w of warnings) warn(`createMesh: ${w}`);
  // A MeshConfig's sub-millisecond durations run as Envoy runs them (whole ms; see retryPolicyProblems).
  return fromMeshConfig ? meshRetryPolicyAsEnvoyRunsIt(v as HTTPRetry) : (v as HTTPRetry);
}

/** Drops undefined fields (an explicit option left undefined does not hide the MeshConfig's). */
function defined<T extends object>(o: T | undefined): Partial<T> {
  const out: Partial<T> = {};
  if (o === undefined) return out;
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/**
 * `o` with the settings of `o.meshConfig` filled in where `o` leaves them unset (explicit options
 * win, field by field in `telemetry.accessLog` and `telemetry.tracing`); `o` itself when there is
 * no `meshConfig`. `info` hears the settings meshlet does not apply; `warn` those among them that
 * would narrow what a workload sees (exportTo defaults other than Istio's `*`).
 */
export function applyMeshConfig(o: MeshOptions, info: (message: string) => void, warn: (message: string) => void = info): MeshOptions {
  if (o.meshConfig === undefined) return o;
  const m = meshConfigOf(o.meshConfig);
  const top: Record<string, unknown> = {};
  const accessLog: Record<string, unknown> = {};
  const tracing: Record<string, unknown> = {};
  const dns: Record<string, unknown> = {};
  const unused: string[] = [];
  for (const path of meshConfigSettings(m)) {
    const v = meshConfigValueAt(m, path);
    if (v === undefined || v === null) continue;
    switch (path) {
      case 'outboundTrafficPolicy.mode':
        top.outboundTrafficPolicy = oneOf(v, path, ['ALLOW_ANY', 'REGISTRY_ONLY'] as const);
        break;
      case 'trustDomain':
      case 'rootNamespace':
        top[path] = str(v, path);
        break;
      case 'trustDomainAliases':
        top[path] = strings(v, path);
        break;
      case 'enableAutoMtls':
        top[path] = bool(v, path);
        break;
      case 'extensionProviders':
        if (!Array.isArray(v)) throw new InvalidArgumentError(`${where(path)} must be a list of providers, got ${JSON.stringify(v)}`);
        top[path] = v;
        break;
      case 'pathNormalization.normalization':
        // Istio's enum has DEFAULT too, which is BASE.
        top.pathNormalization = v === 'DEFAULT' ? 'BASE' : oneOf(v, path, PATH_NORMALIZATIONS);
        break;
      case 'dnsRefreshRate': {
        const ms = parseDuration(str(v, path));
        if (typeof ms !== 'number' || ms <= 0) throw new InvalidArgumentError(`${where(path)} must be a positive duration such as "60s", got ${JSON.stringify(v)}`);
        dns.refreshRateMs = ms;
        break;
      }
      case 'connectTimeout': {
        const ms = parseDuration(str(v, path));
        // istiod's ValidateConnectTimeout: whole milliseconds, from 1ms to 1h.
        if (typeof ms !== 'number' || ms < 1 || ms > 3_600_000 || !Number.isInteger(ms)) throw new InvalidArgumentError(`${where(path)} must be a duration of whole milliseconds from 1ms to 1h (as istiod validates it) such as "10s", got ${JSON.stringify(v)}`);
        top.connectTimeoutMs = ms;
        break;
      }
      case 'tcpKeepalive':
        top.tcpKeepalive = meshConfigTcpKeepalive(v, path);
        break;
      case 'defaultConfig.proxyHeaders':
        top.proxyHeaders = meshConfigProxyHeaders(v);
        break;
      case 'localityLbSetting':
        top.localityLbSetting = v;
        break;
      case 'defaultHttpRetryPolicy':
        // An explicit option replaces it wholly (and is checked by createMesh).
        if (o.defaultHttpRetryPolicy === undefined) top.defaultHttpRetryPolicy = checkDefaultRetryPolicy(v, `meshConfig.${path}`, warn, true);
        break;
      case 'accessLogFile':
        accessLog.file = str(v, path);
        break;
      case 'accessLogEncoding':
        accessLog.encoding = oneOf(v, path, ['TEXT', 'JSON'] as const);
        break;
      case 'accessLogFormat':
        accessLog.format = str(v, path);
        break;
      case 'defaultProviders.accessLogging':
        accessLog.defaultProviders = strings(v, path);
        break;
      case 'enableTracing':
        tracing.enabled = bool(v, path);
        break;
      case 'defaultConfig.tracing.sampling':
        if (typeof v !== 'number' || !(v >= 0 && v <= 100)) throw new InvalidArgumentError(`${where(path)} must be a percentage from 0 to 100, got ${JSON.stringify(v)}`);
        tracing.samplingPercentage = v;
        break;
      default:
        if (!UNAPPLIED_EXPORT_DEFAULTS.has(path)) unused.push(path);
    }
  }
  const exportDefaults = unappliedExportDefaults(m);
  if (exportDefaults !== undefined) warn(`createMesh: meshConfig: ${exportDefaults}`);
  if (unused.length > 0) info(`createMesh: meshConfig settings meshlet has no option for (not applied): ${unused.join(', ')}`);
  const t = o.telemetry;
  const telemetry =
    Object.keys(accessLog).length === 0 && Object.keys(tracing).length === 0
      ? t
      : {
          ...t,
          ...(Object.keys(accessLog).length === 0 ? {} : { accessLog: { ...accessLog, ...defined(t?.accessLog) } }),
          ...(Object.keys(tracing).length === 0 ? {} : { tracing: { ...tracing, ...defined(t?.tracing) } }),
        };
  if (Object.keys(dns).length > 0) top.dns = { ...dns, ...defined(o.dns) };
  const { meshConfig: _, ...rest } = o;
  const merged = { ...top, ...defined(rest), ...(telemetry === undefined ? {} : { telemetry }) } as Record<string, unknown>;
  if (top.dns !== undefined) merged.dns = top.dns;
  // A workload's own proxyHeaders over the MeshConfig's default, as Istio merges a pod's proxy config (mesh.go MergeProxyConfig).
  if (top.proxyHeaders !== undefined && o.proxyHeaders !== undefined) merged.proxyHeaders = mergeProxyHeaders(top.proxyHeaders as ProxyHeadersOptions, o.proxyHeaders);
  // The ConfigMap's MeshNetworks (data.meshNetworks), under an explicit `meshNetworks`.
  const networks = o.meshNetworks === undefined ? configMapMeshNetworks(o.meshConfig) : undefined;
  if (networks !== undefined) merged.meshNetworks = networks;
  return merged as unknown as MeshOptions;
}

/**
 * What createMesh would refuse in the settings a MeshConfig gives, beyond what
 * {@link applyMeshConfig} checks as it reads them (locality load balancing, proxy headers, access
 * log, extension providers), as messages without the `createMesh: ` prefix.
 */
export function meshConfigProblems(o: MeshOptions): string[] {
  const problems: string[] = [];
  if (o.localityLbSetting !== undefined) problems.push(...localityLbSettingProblems(o.localityLbSetting));
  try {
    resolveProxyHeaders(o.proxyHeaders);
  } catch (err) {
    problems.push((err as Error).message);
  }
  problems.push(...checkAccessLogOptions(o.telemetry?.accessLog));
  // Only what istiod cannot load: a provider it merely warns about is left out by `withUsableProviders`.
  problems.push(...usableExtensionProviders(o.extensionProviders).fatal);
  return problems.map((p) => p.replace(/^createMesh: /, ''));
}

/**
 * `meshConfig` (Istio's MeshConfig, YAML or parsed) without the `extensionProviders` entries istiod
 * only warns about (`usableExtensionProviders`), each named to `warn`; itself when none is left out.
 */
export function withUsableProviders(meshConfig: MeshConfigInput, warn: (message: string) => void): MeshConfigInput {
  const m = meshConfigOf(meshConfig);
  const { providers, warnings } = usableExtensionProviders(m.extensionProviders);
  if (warnings.length === 0 || providers === undefined) return meshConfig;
  for (const w of warnings) warn(w);
  return { ...m, extensionProviders: providers };
}
