/**
 * `createMesh`: checks the options, loads the first config (files, or the control plane), and
 * wires a {@link Mesh} around it.
 *
 * @module
 */
import { setImmediate } from 'node:timers';
import { ANALYSIS_MODES } from './config/load-config.ts';
import { validationWarnings } from './config/findings.ts';
import { systemClock, systemRandom } from './core/clock.ts';
import { ConfigError, InvalidArgumentError } from './core/errors.ts';
import { TOKEN_ENV, TOKEN_FILE_ENV } from './control-plane/protocol.ts';
import { readTokenFile, tokenFileSource } from './control-plane/token-file.ts';
import { controlPlaneCaFor } from './control-plane/ca-option.ts';
import { type ConfigAppliedEvent, ControlPlaneSource, controlPlaneUrls } from './control-plane/source.ts';
import { DEFAULT_LOGGER, Mesh } from './mesh.ts';
import { FileConfigCaches, loadFileConfig, workloadOf } from './mesh-file-config.ts';
import { networkSettings } from './mesh-network-options.ts';
import { meshGatewayNames, networkSettingsWith } from './mesh-gateway-names.ts';
import { embeddedIdentity, startEmbeddedIdentity } from './mesh-identity.ts';
import { MESH_OPTION_NAMES, type MeshLogger, type MeshOptions, type RejectedEvent, TELEMETRY_OPTION_NAMES } from './mesh-options.ts';
import { checkOptionNames } from './core/option-names.ts';
import { JWT_OPTION_NAMES } from './inbound/policies.ts';
import { ACCESS_LOG_OPTION_NAMES } from './telemetry/access-log/config.ts';
import { OWN_METRICS_OPTION_NAMES } from './telemetry/mesh-metrics/mesh-metrics.ts';
import { METRICS_OPTION_NAMES } from './telemetry/metrics/options.ts';
import { TRACING_OPTION_NAMES } from './telemetry/tracing/config.ts';
import { checkOwnMetricsOption } from './telemetry/mesh-metrics/mesh-metrics.ts';
import { checkAccessLogOptions } from './telemetry/access-log/config.ts';
import { CredentialHolder } from './security/identity/credentials.ts';
import { resolveProxyHeaders } from './core/proxy-headers.ts';
import { applyMeshConfig, checkDefaultRetryPolicy, checkTcpKeepaliveOption } from './mesh-config-option.ts';
import { compileStateAsync, type GoodState } from './control-plane/state.ts';
import { ControlPlaneMeshConfig } from './mesh-config-push.ts';
import type { GatewayNames } from './outbound/gateway-names.ts';
import type { Snapshot } from './routing/compile.ts';
import { localityLbSettingProblems } from './config/validate/load-balancer.ts';
import { adminSettings } from './mesh-admin-options.ts';
import { startMeshAdmin } from './mesh-admin.ts';

/**
 * Creates a mesh. Embedded mode (`config`): loads and validates the config (rejecting it with
 * every reason if it is invalid), compiles it for this workload and starts watching files.
 * Control-plane mode (`controlPlane`): resolves after the first config arrived (or came from the
 * cache, or — `failOpen` — none); fail-closed, it rejects with a `MESHLET_ERR_CONTROL_PLANE`
 * error saying why (401/403, connection refused, startup timeout, config rejected).
 * @example
 * const mesh = await createMesh({ service: 'productpage', labels: { version: 'v1' }, config: './mesh' });
 * const res = await mesh.fetch('http://reviews:9080/reviews/1', { headers: { 'end-user': 'jason' } });
 * @category Mesh
 */
export async function createMesh(options: MeshOptions): Promise<Mesh> {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('createMesh: options are required ({ service, config })');
  // A logger without warn is refused below, after the MeshConfig's settings are read.
  const log = typeof options.logger?.warn === 'function' ? options.logger : DEFAULT_LOGGER;
  const o = applyMeshConfig(options, (m) => log.info?.(m), (m) => log.warn(m));
  if (typeof o.service !== 'string' || o.service === '') throw new InvalidArgumentError('createMesh: `service` must be a non-empty string (this workload\'s service name)');
  if (o.config !== undefined && o.controlPlane !== undefined) throw new InvalidArgumentError('createMesh: `config` and `controlPlane` are mutually exclusive (embedded mode or control-plane mode)');
  if (o.config === undefined && o.controlPlane === undefined) {
    throw new InvalidArgumentError('createMesh: `config` (a file, a directory, or resource objects) or `controlPlane` (a control-plane URL) is required');
  }
  if (o.errors !== undefined && o.errors !== 'respond' && o.errors !== 'throw') throw new InvalidArgumentError(`createMesh: \`errors\` must be 'respond' or 'throw', got ${JSON.stringify(o.errors)}`);
  if (o.outboundTrafficPolicy !== undefined && o.outboundTrafficPolicy !== 'ALLOW_ANY' && o.outboundTrafficPolicy !== 'REGISTRY_ONLY') {
    throw new InvalidArgumentError(`createMesh: \`outboundTrafficPolicy\` must be 'ALLOW_ANY' or 'REGISTRY_ONLY', got ${JSON.stringify(o.outboundTrafficPolicy)}`);
  }
  if (o.analysis !== undefined && !ANALYSIS_MODES.includes(o.analysis)) throw new InvalidArgumentError(`createMesh: \`analysis\` must be one of ${ANALYSIS_MODES.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(o.analysis)}`);
  if ((o as { analyze?: unknown }).analyze !== undefined) throw new InvalidArgumentError("createMesh: `analyze` was replaced by `analysis` ('advisory' | 'blocking' | 'off'); analysis findings no longer refuse config unless `analysis: 'blocking'`");
  checkMeshOptionNames(o);
  // MeshNetworks and the network, checked now (each problem named): every compile reads them.
  networkSettings(o);
  const localityProblems = o.localityLbSetting === undefined ? [] : localityLbSettingProblems(o.localityLbSetting);
  if (localityProblems.length > 0) throw new InvalidArgumentError(`createMesh: \`localityLbSetting\` (MeshConfig's) is invalid: ${localityProblems.join('; ')}`);
  // The MeshConfig's was checked as it was read (its errors name meshConfig.defaultHttpRetryPolicy).
  if (options.defaultHttpRetryPolicy !== undefined) checkDefaultRetryPolicy(options.defaultHttpRetryPolicy, 'defaultHttpRetryPolicy', (m) => log.warn(m));
  if (o.logger !== undefined && (o.logger === null || typeof o.logger.warn !== 'function')) throw new InvalidArgumentError('createMesh: `logger` must have a warn(message) method (console, pino, winston, …)');
  if (o.enableAutoMtls !== undefined && typeof o.enableAutoMtls !== 'boolean') throw new InvalidArgumentError(`createMesh: \`enableAutoMtls\` must be true or false, got ${JSON.stringify(o.enableAutoMtls)}`);
  if (o.trustEnvoyRequestHeaders !== undefined && typeof o.trustEnvoyRequestHeaders !== 'boolean') throw new InvalidArgumentError(`createMesh: \`trustEnvoyRequestHeaders\` must be true or false, got ${JSON.stringify(o.trustEnvoyRequestHeaders)}`);
  nonNegative(o, 'closeTimeoutMs', 5000);
  const cto = o.connectTimeoutMs;
  if (cto !== undefined && (typeof cto !== 'number' || !Number.isFinite(cto) || cto < 1)) throw new InvalidArgumentError(`createMesh: \`connectTimeoutMs\` (MeshConfig's connectTimeout) must be a number of milliseconds of at least 1, got ${typeof cto === 'string' ? JSON.stringify(cto) : String(cto)}`);
  checkTcpKeepaliveOption(o.tcpKeepalive);
  const rbb = o.retryBufferBytes;
  if (rbb !== undefined && !(Number.isSafeInteger(rbb) && rbb >= 0)) throw new InvalidArgumentError(`createMesh: \`retryBufferBytes\` must be a non-negative whole number of bytes, got ${typeof rbb === 'string' ? JSON.stringify(rbb) : String(rbb)}`);
  resolveProxyHeaders(o.proxyHeaders);
  checkNamedPorts(o.ports);
  checkProbePaths(o.probePaths);
  checkDnsOption(o.dns);
  if (o.telemetry !== undefined && (o.telemetry === null || typeof o.telemetry !== 'object')) throw new InvalidArgumentError('createMesh: `telemetry` must be an object');
  checkOwnMetricsOption(o.telemetry?.ownMetrics);
  const accessLogProblems = checkAccessLogOptions(o.telemetry?.accessLog);
  if (accessLogProblems.length > 0) throw new InvalidArgumentError(`createMesh: ${accessLogProblems.join('; ')}`);
  if (o.identity === 'control-plane' && o.controlPlane === undefined) {
    throw new InvalidArgumentError("createMesh: `identity: 'control-plane'` needs `controlPlane` (the control plane's CA issues the certificate); in embedded mode use { certFile, keyFile, caFile } or { devCa }");
  }
  embeddedIdentity(o); // a malformed identity option fails before anything starts
  const admin = adminSettings(o.admin);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidArgumentError('createMesh: `signal` must be an AbortSignal (AbortSignal.timeout(ms), new AbortController().signal)');
  signal?.throwIfAborted();
  const mesh = await (o.controlPlane !== undefined ? createControlPlaneMesh(o, signal).then((m) => startEmbeddedIdentity(m, o, o.logger ?? DEFAULT_LOGGER)) : createFileMesh(o));
  // The admin endpoint last, once there is a mesh to show (a port it cannot bind closes the mesh and rejects).
  if (admin !== undefined) await startMeshAdmin(mesh, admin, o, o.logger ?? DEFAULT_LOGGER);
  if (signal?.aborted === true) {
    // Aborted as the last step finished: what started is stopped, as when it is aborted earlier.
    await mesh.close();
    throw signal.reason;
  }
  return mesh;
}

async function createFileMesh(o: MeshOptions): Promise<Mesh> {
  // Through the caches the mesh's reloads go on with: the first change after start-up costs only what changed.
  const caches = new FileConfigCaches(meshGatewayNames(o, o.logger ?? DEFAULT_LOGGER));
  const { loaded, compile } = await loadFileConfig(o, caches);
  if (!loaded.ok) throw new ConfigError(loaded.issues.all);
  const snapshot = await compile().catch((e: unknown) => {
    void caches.gatewayNames?.close();
    throw e;
  });
  caches.current = compile;
  const mesh = await startEmbeddedIdentity(new Mesh(o, snapshot, undefined, undefined, caches), o, o.logger ?? DEFAULT_LOGGER);
  await mesh.startWatching().catch(async (e: unknown) => {
    await mesh.close();
    throw e;
  });
  // On the next turn, so a listener added right after `await createMesh(...)` sees it (as in control-plane mode).
  setImmediate(() => mesh.configApplied({ version: snapshot.version, endpointsVersion: '', source: 'file', findings: loaded.findings }, validationWarnings(loaded.issues.all, loaded.findings)));
  return mesh;
}

/** Refuses a misspelt option name (`lables`) at the top level and in the nested option objects, with the closest known name. */
function checkMeshOptionNames(o: MeshOptions): void {
  checkOptionNames('createMesh', o, MESH_OPTION_NAMES);
  checkOptionNames('createMesh', o.jwt, JWT_OPTION_NAMES, 'jwt.');
  const t = o.telemetry;
  checkOptionNames('createMesh', t, TELEMETRY_OPTION_NAMES, 'telemetry.');
  checkOptionNames('createMesh', t?.accessLog, ACCESS_LOG_OPTION_NAMES, 'telemetry.accessLog.');
  checkOptionNames('createMesh', t?.ownMetrics, OWN_METRICS_OPTION_NAMES, 'telemetry.ownMetrics.');
  checkOptionNames('createMesh', t?.tracing, TRACING_OPTION_NAMES, 'telemetry.tracing.');
  checkOptionNames('createMesh', t?.metrics, METRICS_OPTION_NAMES, 'telemetry.metrics.');
  // 0 (or less) forgot every label set as soon as its data point was added: nothing reached a reader.
  const idle = t?.metrics?.idleSeriesMs;
  if (idle !== undefined && !(typeof idle === 'number' && idle >= 1)) throw new InvalidArgumentError(`createMesh: \`telemetry.metrics.idleSeriesMs\` must be a number of milliseconds of at least 1, got ${typeof idle === 'string' ? JSON.stringify(idle) : String(idle)}`);
}

/**
 * The control-plane token: `token`, else `tokenFile` (read for every request), else
 * MESHLET_TOKEN, else MESHLET_TOKEN_FILE; undefined for none.
 */
function controlPlaneToken(o: MeshOptions): string | (() => string) | undefined {
  if (o.tokenFile !== undefined && (typeof o.tokenFile !== 'string' || o.tokenFile === '')) throw new InvalidArgumentError('createMesh: `tokenFile` must be a non-empty path');
  if (o.token !== undefined && o.tokenFile !== undefined) throw new InvalidArgumentError('createMesh: `token` and `tokenFile` are mutually exclusive (a token, or the file it is read from for each request)');
  if (o.token !== undefined) return o.token === '' ? undefined : o.token;
  const env = process.env[TOKEN_ENV];
  const file = o.tokenFile ?? (env === undefined || env === '' ? process.env[TOKEN_FILE_ENV] : undefined);
  if (file === undefined || file === '') return env === '' ? undefined : env;
  let first: string;
  try {
    first = readTokenFile(file);
  } catch (e) {
    throw new InvalidArgumentError(`createMesh: ${(e as Error).message}${o.tokenFile === undefined ? ` (from $${TOKEN_FILE_ENV})` : ''}`);
  }
  const logger = o.logger ?? DEFAULT_LOGGER;
  return tokenFileSource(file, first, (m) => logger.warn(m));
}

function checkDnsOption(d: MeshOptions['dns']): void {
  if (d === undefined) return;
  if (d === null || typeof d !== 'object') throw new InvalidArgumentError(`createMesh: \`dns\` must be an object ({ refreshRateMs, resolve }), got ${JSON.stringify(d)}`);
  for (const k of Object.keys(d)) if (k !== 'refreshRateMs' && k !== 'resolve') throw new InvalidArgumentError(`createMesh: unknown option \`dns.${k}\` (known: refreshRateMs, resolve)`);
  const ms = d.refreshRateMs;
  if (ms !== undefined && (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0)) throw new InvalidArgumentError(`createMesh: \`dns.refreshRateMs\` must be a positive number of milliseconds, got ${String(ms)}`);
  if (d.resolve !== undefined && typeof d.resolve !== 'function') throw new InvalidArgumentError('createMesh: `dns.resolve` must be a function (hostname, family) => Promise<{ addresses, ttlMs? }>');
}

function nonNegative(o: MeshOptions, key: 'startupTimeoutMs' | 'drainMs' | 'closeTimeoutMs', fallback: number): number {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new InvalidArgumentError(`createMesh: \`${key}\` must be a non-negative number of milliseconds, got ${String(v)}`);
  return v;
}

async function createControlPlaneMesh(o: MeshOptions, signal: AbortSignal | undefined): Promise<Mesh> {
  let urls: string[];
  try {
    urls = controlPlaneUrls(o.controlPlane);
  } catch (e) {
    throw new InvalidArgumentError(`createMesh: ${(e as Error).message}`);
  }
  if (o.token !== undefined && typeof o.token !== 'string') throw new InvalidArgumentError('createMesh: `token` must be a string');
  const token = controlPlaneToken(o);
  let ca: string | undefined;
  try {
    if (o.controlPlaneCa !== undefined && (typeof o.controlPlaneCa !== 'string' || o.controlPlaneCa === '')) throw new Error('`controlPlaneCa` must be PEM text or the path of a PEM file');
    ca = controlPlaneCaFor(urls, o.controlPlaneCa, '`controlPlaneCa`');
  } catch (e) {
    throw new InvalidArgumentError(`createMesh: ${(e as Error).message}`, { cause: e });
  }
  // The control plane's CA is the default identity of a mesh with a control plane (MeshOptions.identity).
  const credentials = new CredentialHolder();
  const gatewayNames = meshGatewayNames(o, o.logger ?? DEFAULT_LOGGER);
  // The mesh's settings every compile of the control plane's state reads (first config, pushes, gateway answers):
  // its own options over the control plane's MeshConfig (mesh-config-push.ts).
  const compileSettings = new ControlPlaneMeshConfig(o, networkSettingsWith(o, gatewayNames), o.logger ?? DEFAULT_LOGGER);
  const fromCa = (o.identity ?? 'control-plane') === 'control-plane';
  const source = new ControlPlaneSource({
    urls,
    token,
    ca,
    workload: workloadOf(o),
    compileSettings,
    meshConfig: compileSettings,
    // Registrations are on this workload's network.
    networks: compileSettings.networks,
    gatewayNames,
    locality: o.locality ?? '',
    // The identity defaults to the control plane's CA in control-plane mode.
    acceptsMtls: o.identity !== 'none',
    serviceAccount: o.serviceAccount,
    workloadName: o.workloadName ?? o.service,
    analysis: o.analysis,
    cacheDir: o.cacheDir,
    startupTimeoutMs: nonNegative(o, 'startupTimeoutMs', 10_000),
    failOpen: o.failOpen === true,
    drainMs: nonNegative(o, 'drainMs', 1000),
    clock: o.clock ?? systemClock,
    random: o.random ?? systemRandom,
    logger: o.logger ?? DEFAULT_LOGGER,
    ...(fromCa
      ? {
          identity: {
            holder: credentials,
            trustDomain: o.trustDomain ?? 'cluster.local',
            serviceAccount: o.serviceAccount ?? 'default',
            explicit: { trustDomain: o.trustDomain !== undefined, serviceAccount: o.serviceAccount !== undefined },
            required: o.identity === 'control-plane',
          },
        }
      : {}),
  });
  // The config and the first certificate are awaited together, within the same startupTimeoutMs;
  // when both fail, the config's reason is the one told (the certificate's is then the same outage).
  const identity = source.startIdentity();
  identity.catch(() => undefined);
  // createMesh({ signal }) aborted while the first config or certificate is awaited: the source is closed, then it rejects.
  const aborted = whenAborted(signal, () => source.close());
  let first: Awaited<ReturnType<ControlPlaneSource['start']>>;
  try {
    first = await Promise.race([source.start(), aborted.promise]);
    // Started without the control plane (from the cache, or failOpen): so does the identity, which keeps being asked for.
    if (source.origin !== 'control-plane') source.degradeIdentity(source.origin === 'cache' ? 'the config came from the cache' : 'failOpen');
    await Promise.race([identity, aborted.promise]);
  } catch (e) {
    await source.close();
    throw e;
  } finally {
    aborted.dispose();
  }
  // Built with the control plane's MeshConfig under the mesh's own options (it comes before the first config).
  const mesh = new Mesh(compileSettings.started(), first, source, credentials, undefined, gatewayNames);
  source.attach({
    install: (snapshot) => mesh.install(snapshot),
    emit: (name, payload) => {
      if (name === 'config') mesh.configApplied(payload as ConfigAppliedEvent);
      else if (name === 'rejected') mesh.configRejected(payload as RejectedEvent);
      else mesh.emit(name, payload as never);
    },
    report: () => {
      const d = mesh.diagnostics();
      return { identity: d.identity, inboundTls: d.inboundTls };
    },
  });
  recompileOnGatewayChange(gatewayNames, () => source.state, (state) => compileStateAsync(state, workloadOf(o), compileSettings, gatewayNames), mesh, o.logger ?? DEFAULT_LOGGER);
  return mesh;
}

/**
 * A gateway host name's addresses changed: the control plane's state in use is compiled again and
 * installed (its versions are unchanged: ACKs and `apply --wait` are not concerned), unless a newer
 * state was applied meanwhile (compiled with the new addresses already), or the settings or a
 * name's addresses changed meanwhile (the compile that change started is newer). One at a time.
 * Exported for its test.
 *
 * @internal
 */
export function recompileOnGatewayChange(names: GatewayNames, state: () => GoodState, compile: (s: GoodState) => Promise<Snapshot>, mesh: Mesh, logger: MeshLogger): void {
  let queue = Promise.resolve();
  names.onChange = () => {
    queue = queue.then(async () => {
      const s = state();
      const generation = names.generation;
      try {
        const snapshot = await compile(s);
        // Not when the settings or a name changed meanwhile (a pushed MeshConfig: its own recompile is newer).
        if (!names.closed && state() === s && names.generation === generation) mesh.install(snapshot);
      } catch (e) {
        logger.warn(`meshlet: compiling config ${s.configVersion} again for new east-west gateway addresses failed: ${String(e)}`);
      }
    });
  };
}

/** A promise rejected with `signal.reason` once `signal` aborts and `stop` is done (never settled without a signal); dispose() stops listening. */
function whenAborted(signal: AbortSignal | undefined, stop: () => Promise<void>): { promise: Promise<never>; dispose(): void } {
  if (signal === undefined) return { promise: new Promise<never>(() => undefined), dispose: () => undefined };
  let onAbort = (): void => undefined;
  const promise = new Promise<never>((_resolve, reject) => {
    onAbort = () => void stop().then(() => reject(signal.reason), () => reject(signal.reason));
  });
  signal.addEventListener('abort', onAbort, { once: true });
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/** `probePaths`: absolute paths without a query or fragment, at most 32. */
function checkProbePaths(paths: unknown): void {
  if (paths === undefined) return;
  if (!Array.isArray(paths)) throw new InvalidArgumentError("createMesh: `probePaths` must be an array of paths, as the Pod's probes name them, e.g. ['/healthz', '/ready']");
  if (paths.length > 32) throw new InvalidArgumentError(`createMesh: \`probePaths\` has ${paths.length} paths, at most 32`);
  for (const [i, p] of paths.entries()) {
    if (typeof p !== 'string' || !p.startsWith('/') || /[?#\s]/.test(p) || p.length > 1024) {
      throw new InvalidArgumentError(`createMesh: \`probePaths[${i}]\` must be a path starting with / without a query, fragment or space (a probe's httpGet.path, or /grpc.health.v1.Health/Check for a gRPC probe), got ${JSON.stringify(p)}`);
    }
  }
}

/** `ports`: port names to integers 1..65535. */
function checkNamedPorts(ports: unknown): void {
  if (ports === undefined) return;
  if (ports === null || typeof ports !== 'object' || Array.isArray(ports)) throw new InvalidArgumentError('createMesh: `ports` must map port names to numbers, as the Pod names its containerPorts, e.g. { http: 8080 }');
  for (const [name, port] of Object.entries(ports)) {
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw new InvalidArgumentError(`createMesh: \`ports\`: port "${name}" must be an integer 1..65535, got ${JSON.stringify(port)}`);
  }
}
