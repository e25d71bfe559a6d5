/**
 * Istio's MeshConfig, as a cluster dump holds it: the `istio` ConfigMap (`istio-<revision>` for a
 * revision) of istiod's namespace, whose `data.mesh` is the MeshConfig as a YAML string. meshlet
 * does not read it from config — its settings are `createMesh()` options (and `meshlet
 * control-plane` flags) — but skipping it as just another ConfigMap would silently drop settings
 * that change traffic in Istio (`outboundTrafficPolicy: REGISTRY_ONLY`, a `trustDomain`, …). The
 * notice names each setting it holds and the option that takes it, or says that meshlet has none.
 *
 * @module
 */
import { parse } from 'yaml';

/** MeshConfig fields (dotted paths) and the meshlet option that takes each. */
const MESH_CONFIG_OPTIONS: ReadonlyMap<string, string> = new Map([
  ['outboundTrafficPolicy.mode', 'createMesh({ outboundTrafficPolicy })'],
  ['trustDomain', 'createMesh({ trustDomain }), meshlet control-plane --trust-domain'],
  ['trustDomainAliases', 'createMesh({ trustDomainAliases })'],
  ['enableAutoMtls', 'createMesh({ enableAutoMtls })'],
  ['rootNamespace', 'createMesh({ rootNamespace }), meshlet control-plane --root-namespace'],
  ['extensionProviders', 'createMesh({ extensionProviders }) (envoyExtAuthzHttp, envoyExtAuthzGrpc, envoyFileAccessLog, envoyOtelAls, envoyHttpAls)'],
  ['pathNormalization.normalization', 'createMesh({ pathNormalization })'],
  ['accessLogFile', 'createMesh({ telemetry: { accessLog: { file } } })'],
  ['accessLogEncoding', 'createMesh({ telemetry: { accessLog: { encoding } } })'],
  ['accessLogFormat', 'createMesh({ telemetry: { accessLog: { format } } })'],
  ['defaultProviders.accessLogging', 'createMesh({ telemetry: { accessLog: { defaultProviders } } })'],
  ['enableTracing', 'createMesh({ telemetry: { tracing: { enabled } } })'],
  ['defaultConfig.proxyHeaders', 'createMesh({ proxyHeaders })'],
  ['localityLbSetting', 'createMesh({ localityLbSetting })'],
  ['connectTimeout', 'createMesh({ connectTimeoutMs })'],
  ['tcpKeepalive', 'createMesh({ tcpKeepalive })'],
  ['defaultHttpRetryPolicy', 'createMesh({ defaultHttpRetryPolicy })'],
  ['defaultConfig.tracing.sampling', 'createMesh({ telemetry: { tracing: { samplingPercentage } } })'],
]);

/** Settings whose value here is meshlet's default too: nothing to give. */
const DEFAULTS: ReadonlyMap<string, unknown> = new Map<string, unknown>([
  ['outboundTrafficPolicy.mode', 'ALLOW_ANY'],
  ['trustDomain', 'cluster.local'],
  ['enableAutoMtls', true],
  ['rootNamespace', 'istio-system'],
  ['pathNormalization.normalization', 'BASE'],
  ['accessLogFile', ''],
  ['enableTracing', true],
]);

/**
 * Settings meshlet does not apply that decide which resources a workload sees: a resource without
 * `exportTo` is exported everywhere in meshlet, as under Istio's default. Set to anything else
 * they narrow what istiod gives a workload, so leaving them out widens it: a warning, with what to
 * write instead.
 */
export const UNAPPLIED_EXPORT_DEFAULTS: ReadonlyMap<string, string> = new Map([
  ['defaultServiceExportTo', 'exportTo on each ServiceEntry and the networking.istio.io/exportTo annotation on each Service'],
  ['defaultVirtualServiceExportTo', 'exportTo on each VirtualService'],
  ['defaultDestinationRuleExportTo', 'exportTo on each DestinationRule'],
  // Caps ServiceEntries' exportTo by their namespace's labels when applyToSidecars is on (push_context.go serviceExportTo).
  ['serviceEntryVisibility', 'exportTo on each ServiceEntry of the namespaces it narrows'],
]);

/** Whether a setting of {@link UNAPPLIED_EXPORT_DEFAULTS} leaves visibility as Istio's default does: exportTo `["*"]` (or an empty list, unset in the proto); serviceEntryVisibility without `applyToSidecars`. */
export function isPublicExportDefault(v: unknown): boolean {
  if (Array.isArray(v)) return v.every((e) => e === '*');
  return typeof v === 'object' && v !== null && (v as { applyToSidecars?: unknown }).applyToSidecars !== true;
}

/** The warning for exportTo defaults meshlet does not apply (`mesh` the MeshConfig), or undefined when all are Istio's default. */
export function unappliedExportDefaults(mesh: Record<string, unknown>): string | undefined {
  const set: string[] = [];
  for (const [path, instead] of UNAPPLIED_EXPORT_DEFAULTS) {
    const v = mesh[path];
    if (v !== undefined && v !== null && !isPublicExportDefault(v)) set.push(`${path}: ${show(v)} (write ${instead})`);
  }
  if (set.length === 0) return undefined;
  return `meshlet does not apply these visibility settings: a resource without exportTo is visible in every namespace, where istiod would narrow it: ${set.join('; ')}`;
}

/** Objects whose fields are listed one by one (the others are named as a whole). */
const NESTED = new Set(['outboundTrafficPolicy', 'pathNormalization', 'defaultProviders', 'defaultConfig', 'defaultConfig.tracing']);

/** True for a ConfigMap that is istiod's MeshConfig: named `istio` or `istio-<revision>`, with a string `data.mesh`. */
export function isMeshConfigMap(raw: Record<string, unknown>, kind: string, apiVersion: string): boolean {
  if (kind !== 'ConfigMap' || apiVersion !== 'v1') return false;
  const name = (raw.metadata as { name?: unknown } | undefined)?.name;
  if (typeof name !== 'string' || (name !== 'istio' && !name.startsWith('istio-'))) return false;
  const data = raw.data as { mesh?: unknown } | undefined;
  return typeof data === 'object' && data !== null && typeof data.mesh === 'string';
}

/** The dotted paths of the settings `mesh` holds, nested objects listed field by field. */
export function meshConfigSettings(mesh: Record<string, unknown>, prefix = ''): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(mesh)) {
    const path = prefix + k;
    if (NESTED.has(path) && typeof v === 'object' && v !== null && !Array.isArray(v)) out.push(...meshConfigSettings(v as Record<string, unknown>, `${path}.`));
    else out.push(path);
  }
  return out;
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** The value at a dotted path of a MeshConfig. */
export function meshConfigValueAt(mesh: Record<string, unknown>, path: string): unknown {
  let v: unknown = mesh;
  for (const k of path.split('.')) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

/** The network names of a `data.meshNetworks` text ('a, b'), undefined when it names none (or is not YAML: createMesh says so). */
function meshNetworksNames(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = parse(text);
  } catch {
    return undefined;
  }
  const nets = typeof parsed === 'object' && parsed !== null ? (parsed as { networks?: unknown }).networks : undefined;
  const names = typeof nets === 'object' && nets !== null && !Array.isArray(nets) ? Object.keys(nets) : [];
  return names.length === 0 ? undefined : names.join(', ');
}

/**
 * The notice for a MeshConfig ConfigMap ({@link isMeshConfigMap}): a warning naming the settings
 * that have a meshlet option, and the ones meshlet has no equivalent for; an info when it sets
 * nothing meshlet would apply.
 */
export function meshConfigNotice(raw: Record<string, unknown>, ref: string): { level: 'info' | 'warning'; message: string } {
  const text = (raw.data as { mesh: string }).mesh;
  let mesh: unknown;
  try {
    mesh = parse(text);
  } catch (err) {
    return { level: 'warning', message: `${ref} is Istio's MeshConfig (data.mesh), and data.mesh is not valid YAML (${(err as Error).message.split('\n')[0]}); istiod would not read it either` };
  }
  const head = `${ref} is Istio's MeshConfig (data.mesh); meshlet does not read MeshConfig from config files`;
  if (mesh === null || mesh === undefined || typeof mesh !== 'object' || Array.isArray(mesh)) return { level: 'info', message: `${head}; it sets nothing` };
  const m = mesh as Record<string, unknown>;
  const mapped: string[] = [];
  const defaults: string[] = [];
  const unused: string[] = [];
  for (const path of meshConfigSettings(m)) {
    const option = MESH_CONFIG_OPTIONS.get(path);
    const value = meshConfigValueAt(m, path);
    if (UNAPPLIED_EXPORT_DEFAULTS.has(path)) {
      if (value === null || isPublicExportDefault(value)) defaults.push(`${path}: ${show(value)}`);
    } else if (option === undefined) unused.push(path);
    else if (DEFAULTS.has(path) && DEFAULTS.get(path) === value) defaults.push(`${path}: ${show(value)}`);
    else mapped.push(`${path}: ${show(value)} → ${option}`);
  }
  // MeshNetworks beside it (data.meshNetworks): networks and east-west gateways, which createMesh takes too.
  const networks = meshNetworksNames((raw.data as { meshNetworks?: unknown }).meshNetworks);
  if (networks !== undefined) mapped.push(`data.meshNetworks (networks ${networks}) → createMesh({ network, meshNetworks })`);
  const parts = [head];
  if (mapped.length > 0) parts.push(`give these settings as options (or this ConfigMap as createMesh({ meshConfig })), or they do not apply: ${mapped.join('; ')}`);
  if (defaults.length > 0) parts.push(`already meshlet's defaults: ${defaults.join(', ')}`);
  if (unused.length > 0) parts.push(`no meshlet option (not applied): ${unused.join(', ')}`);
  const exportDefaults = unappliedExportDefaults(m);
  if (exportDefaults !== undefined) parts.push(exportDefaults);
  return { level: mapped.length > 0 || exportDefaults !== undefined ? 'warning' : 'info', message: parts.join('; ') };
}
