/**
 * `startControlPlane`: the control-plane server of `meshlet control-plane`. It serves config
 * from a watched directory (or any {@link ConfigStore}, e.g. etcd), keeps the registry of
 * workloads, pushes both to watching meshes over SSE, and answers the config API.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AnalysisMode } from '../config/load-config.ts';
import { type MeshNetworksInput, readMeshNetworks } from '../config/mesh-networks.ts';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_PORT, MAX_HEARTBEAT_MS, MIN_HEARTBEAT_MS, type StatusDocument } from '../control-plane/protocol.ts';
import { type Clock, systemClock, unixMsOf } from '../core/clock.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import { AddressPolicy, type AddressPolicyOptions, isLoopbackHost, loopbackByDefault } from './address-policy.ts';
import { type MintOptions, TokenAuthority, type TokenSubject } from './auth.ts';
import { ControlPlaneCa, checkTrustDomain, DEFAULT_TRUST_DOMAIN } from './ca/authority.ts';
import type { ProvidedCaFiles } from './ca/provided.ts';
import { FileConfigStore } from './file-store.ts';
import { DEFAULT_ROOT_NAMESPACE } from '../config/resource.ts';
import { DEFAULT_MAX_BODY_BYTES, HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS, type RequestContext, TIMEOUT_CHECK_MS } from './http.ts';
import { PushHub } from './hub.ts';
import { MeshConfigPush } from './mesh-config-push.ts';
import { type ControlPlaneLimits, resolveLimits } from './limits.ts';
import { type ServerLogger, stderrLogger } from './logger.ts';
import { MemoryRegistry } from './memory-registry.ts';
import { REGISTRATIONS_FILE } from './registry-file.ts';
import { agreeOnSettings } from './replica-settings.ts';
import { ControlPlaneMetrics } from './metrics/control-plane-metrics.ts';
import { createRequestHandler, serveMetrics, statusDocument } from './routes.ts';
import { watchHandshakes } from './tls-handshakes.ts';
import { ROOT_CERT_FILE, type ServedCertificate, ServingTls, type ServingTlsOptions, writeRootCert } from './serving-tls.ts';
import { StatusBoard } from './status.ts';
import type { ConfigStore, RegistryStore, SharedValues } from './store.ts';

/** Options of {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** A directory of Istio YAML to serve (watched). One of `configDir` and `store` is required. */
  readonly configDir?: string;
  /** A config store to serve instead of a directory (e.g. etcd's). The caller closes it. */
  readonly store?: ConfigStore;
  /** A registry instead of the in-memory one (e.g. etcd's). The caller closes it. */
  readonly registry?: RegistryStore;
  /** Where replicas agree on the token signing key and the CA (etcd). */
  readonly shared?: SharedValues;
  /** Keeps the signing key (`signing-key.jwk`), the CA (`ca.json`) and, without `registry`, the registrations (`registrations.json`). */
  readonly dataDir: string;
  /** MeshConfig `trustDomain`: workload certificates name `spiffe://<trustDomain>/ns/<ns>/sa/<sa>`. @defaultValue 'cluster.local' */
  readonly trustDomain?: string;
  /** Lifetime of workload certificates, 1 minute up to what the CA has left. @defaultValue 86400000 (24 h) */
  readonly certTtlMs?: number;
  /** Sign with this CA (a root or an intermediate) instead of a root generated at first start. */
  readonly ca?: ProvidedCaFiles;
  /**
   * Address to listen on. An `insecure` control plane (no token needed) listens on loopback only
   * unless a host is given: anyone who reaches it could read and change config.
   * @defaultValue '0.0.0.0' (every interface); '127.0.0.1' when `insecure`
   */
  readonly host?: string;
  /** Port to listen on; 0 picks a free one. @defaultValue 15010 */
  readonly port?: number;
  /**
   * A second port serving only `/metrics` and `/healthz` (istiod's monitoring port is 15014), on
   * `host`, for scrapers that should not reach the API port; 0 picks a free one. `/metrics` is on
   * the API port either way. @defaultValue none
   */
  readonly monitoringPort?: number;
  /** Accept requests without a token (the identity comes from the query or body). Never in production. @defaultValue false */
  readonly insecure?: boolean;
  /** Interval of `: ping` on watch streams, {@link MIN_HEARTBEAT_MS}..{@link MAX_HEARTBEAT_MS}. @defaultValue 10000 */
  readonly heartbeatMs?: number;
  /** Which addresses workloads may register (docs/security.md). @defaultValue see {@link AddressPolicyOptions} */
  readonly registrationAddresses?: AddressPolicyOptions;
  /** What one workload identity may hold (watch streams, registrations, NACK size). @defaultValue see {@link ControlPlaneLimits} */
  readonly limits?: ControlPlaneLimits;
  /** What analysis does to config changes (directory store only; see {@link AnalysisMode}). @defaultValue 'advisory' */
  readonly analysis?: AnalysisMode;
  /** Namespace whose policies apply to every workload. @defaultValue 'istio-system' */
  readonly rootNamespace?: string;
  /**
   * Istio's MeshConfig (the `istio` ConfigMap's `data.mesh`, parsed; `--mesh-config`), pushed to
   * every watching mesh in a `mesh-config` event: a mesh applies its settings under its own
   * options (docs/control-plane.md). Checked as `createMesh({ meshConfig })` checks it: a bad
   * setting rejects with an `InvalidArgumentError` naming the field. Its `rootNamespace` and
   * `trustDomain` are not read from here: give them as options (`rootNamespace`, `trustDomain`);
   * what is pushed carries those this control plane runs with in place of the MeshConfig's
   * (`istio-system`, `cluster.local` without the options). @defaultValue none (`{}` is pushed)
   */
  readonly meshConfig?: Readonly<Record<string, unknown>>;
  /** Where `meshConfig` was read (a file), named in the status and in meshes' messages. */
  readonly meshConfigSource?: string;
  /**
   * Istio's MeshNetworks (the `istio` ConfigMap's `data.meshNetworks`: YAML text or parsed;
   * `--mesh-config` with a ConfigMap that has it), pushed with the MeshConfig: a mesh without its
   * own `meshNetworks` routes to other networks through the gateways it names, and follows a
   * change live, as istiod's proxies do. Checked as `createMesh({ meshNetworks })` checks it.
   * @defaultValue none
   */
  readonly meshNetworks?: MeshNetworksInput;
  /** Names this replica in `hello` and the status. @defaultValue `<hostname>-<random>` */
  readonly serverId?: string;
  /** Largest request body. @defaultValue 4 MiB */
  readonly maxBodyBytes?: number;
  /** Where the server logs. @defaultValue stderr */
  readonly logger?: ServerLogger;
  /** Serve the API over TLS (istiod's 15012): a certificate of your PKI, or one from the control plane's CA (serving-tls.ts). @defaultValue plain HTTP */
  readonly tls?: ServingTlsOptions;
  /** Timers and wall-clock time of the CA and the serving certificate (tests: `ManualClock`). @defaultValue the system clock */
  readonly clock?: Clock;
}

/** A running control plane. */
export interface ControlPlane {
  /** `http://host:port`, or `https://` with TLS (a wildcard host is given as 127.0.0.1). */
  readonly url: string;
  /** The TLS certificate served now (without its key); undefined over plain HTTP. */
  readonly servingCertificate: Omit<ServedCertificate, 'key'> | undefined;
  /** The address it listens on, as given: '0.0.0.0' or '::' is every interface. */
  readonly host: string;
  readonly port: number;
  /** `http://host:port` of the monitoring port, when {@link ControlPlaneOptions.monitoringPort} is set. */
  readonly monitoringUrl: string | undefined;
  /** This replica's metrics, as `GET /metrics` writes them (Prometheus text format). */
  metrics(): string;
  /** The status document, as `GET /status` answers it. */
  status(): StatusDocument;
  /**
   * Replaces the MeshConfig pushed to meshes (`meshConfig`; undefined: none, `{}` is pushed) and
   * pushes it to every watch stream when it changed, with `meshNetworks` (Istio's MeshNetworks, as
   * the `meshNetworks` option takes it) in place of the one pushed before — undefined: none, so
   * pass the one given to `startControlPlane` again to keep it. Checked as `meshConfig` and
   * `meshNetworks` are: an invalid one throws an `InvalidArgumentError` naming the field, and the
   * ones before stay.
   */
  setMeshConfig(meshConfig: Readonly<Record<string, unknown>> | undefined, source?: string, meshNetworks?: MeshNetworksInput): void;
  /** Mints a token signed with this server's key. */
  mintToken(subject: TokenSubject, options?: MintOptions): Promise<string>;
  /** The CA (issue, rotate, the trust bundle). */
  readonly ca: ControlPlaneCa;
  /** Ends every watch stream (clients reconnect elsewhere), stops listening, closes what it opened. */
  close(): Promise<void>;
}

/** Whether listening on `host` means every interface. */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function urlHost(host: string): string {
  if (isWildcard(host)) return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Starts the control-plane server. Resolves once the first config is loaded and the port is
 * listening; rejects (with every config issue) when the first config is invalid.
 * @example
 * const cp = await startControlPlane({ configDir: './mesh', dataDir: './.meshlet', port: 0, host: '127.0.0.1' });
 * const token = await cp.mintToken({ service: 'reviews', namespace: 'default' });
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const logger = options.logger ?? stderrLogger;
  if (options.store === undefined && options.configDir === undefined) throw new InvalidArgumentError('startControlPlane: give configDir or store');
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`startControlPlane: port must be 0..65535, got ${port}`);
  const monitoringPort = options.monitoringPort;
  if (monitoringPort !== undefined && (!Number.isInteger(monitoringPort) || monitoringPort < 0 || monitoringPort > 65535)) {
    throw new InvalidArgumentError(`startControlPlane: monitoringPort must be 0..65535, got ${monitoringPort}`);
  }
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  if (!(heartbeatMs >= MIN_HEARTBEAT_MS && heartbeatMs <= MAX_HEARTBEAT_MS)) {
    throw new InvalidArgumentError(`startControlPlane: heartbeatMs must be ${MIN_HEARTBEAT_MS}..${MAX_HEARTBEAT_MS} (clients clamp it into that range), got ${heartbeatMs}`);
  }
  const host = options.host ?? (options.insecure === true ? '127.0.0.1' : '0.0.0.0');
  const clock = options.clock ?? systemClock;
  const now = unixMsOf(clock);
  const serverId = options.serverId ?? `${hostname()}-${randomBytes(2).toString('hex')}`;
  const limits = resolveLimits(options.limits);
  const addressPolicy = new AddressPolicy({
    ...options.registrationAddresses,
    loopback: options.registrationAddresses?.loopback ?? loopbackByDefault(host, options.insecure === true),
  });
  // What meshes are pushed holds the root namespace and trust domain this control plane runs with
  // (its options: a flag wins over the file's), so that they agree with it — whatever the MeshConfig
  // says, at the start or changed later (they are read once, at the start): a mesh told another
  // root namespace would not take the mesh-wide policies this control plane sends it from its own
  // (an AuthorizationPolicy, a Sidecar's REGISTRY_ONLY) as mesh-wide. Left out when neither sets
  // one: the meshes' defaults are this control plane's.
  const pinned = (m: Readonly<Record<string, unknown>>, key: 'rootNamespace' | 'trustDomain', value: string | undefined, fallback: string) =>
    value === undefined && m[key] === undefined ? {} : { [key]: value ?? fallback };
  const own = (m: Readonly<Record<string, unknown>> | undefined) =>
    m === undefined || m === null || typeof m !== 'object' || Array.isArray(m)
      ? m
      : { ...m, ...pinned(m, 'rootNamespace', options.rootNamespace, DEFAULT_ROOT_NAMESPACE), ...pinned(m, 'trustDomain', options.trustDomain, DEFAULT_TRUST_DOMAIN) };
  // A MeshConfig that is not an object fails before anything is opened.
  const networksOf = (n: MeshNetworksInput | undefined, who: string) => (n === undefined ? undefined : (readMeshNetworks(n, `${who}: \`meshNetworks\``) as unknown as Readonly<Record<string, unknown>>));
  const meshConfig = new MeshConfigPush(own(options.meshConfig), options.meshConfigSource, networksOf(options.meshNetworks, 'startControlPlane'));

  // The config first: a missing or invalid directory fails before the data dir (signing key, CA) is written.
  const ownStore = options.store === undefined;
  const store = options.store ?? new FileConfigStore({ dir: options.configDir!, analysis: options.analysis, logger });
  await store.start();
  let auth: TokenAuthority;
  let ca: ControlPlaneCa;
  try {
    // Before anything is shared: replicas that disagree on these would split the mesh.
    const trustDomain = checkTrustDomain(options.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    await agreeOnSettings(options.shared, { trustDomain, rootNamespace: options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE });
    auth = await TokenAuthority.open(options.dataDir, options.shared, { logger });
    const opened = auth;
    ca = await ControlPlaneCa.open({ dataDir: options.dataDir, shared: options.shared, trustDomain: options.trustDomain, certTtlMs: options.certTtlMs, provided: options.ca, logger, clock, now }).catch(async (err: unknown) => {
      await opened.close();
      throw err;
    });
  } catch (err) {
    if (ownStore) await store.close();
    throw err;
  }
  let tls: ServingTls | undefined;
  try {
    // The trust bundle as a file to give clients (Istio's root-cert.pem), rewritten on every change.
    await writeRootCert(options.dataDir, ca);
    ca.onChange(() => void writeRootCert(options.dataDir, ca).catch((err: unknown) => logger.warn(`cannot write ${join(options.dataDir, 'root-cert.pem')}: ${(err as Error).message}`)));
    if (options.tls !== undefined) tls = await ServingTls.open(options.tls, { ca, clock, now, host, logger, rootCertPath: join(options.dataDir, ROOT_CERT_FILE) });
  } catch (err) {
    if (ownStore) await store.close();
    await ca.close();
    await auth.close();
    throw err;
  }
  const ownRegistry = options.registry === undefined;
  const registry = options.registry ?? new MemoryRegistry({ file: join(options.dataDir, REGISTRATIONS_FILE), logger });
  try {
    await registry.start();
  } catch (err) {
    if (ownStore) await store.close();
    await tls?.close();
    await ca.close();
    await auth.close();
    throw err;
  }
  const board = new StatusBoard();
  let watchers = () => 0;
  const metrics = new ControlPlaneMetrics({ store, registry, watchers: () => watchers(), ca: () => ca.info() });
  const hub = new PushHub({
    store,
    registry,
    board,
    serverId,
    heartbeatMs,
    rootNamespace: options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE,
    maxStreamsPerWorkload: limits.maxWatchesPerWorkload,
    trustBundle: () => ca.bundle,
    meshConfig: () => meshConfig.event,
    logger,
    metrics,
  });
  watchers = () => hub.size;
  ca.onChange(() => hub.trustBundleChanged());
  // A new signing key (a rotation): tokens of the old one are refused, also on the streams they opened.
  auth.onKeyChange(() => hub.endStreams());
  const ctx: RequestContext = {
    store,
    registry,
    auth,
    ca,
    hub,
    board,
    insecure: options.insecure === true,
    serverId,
    startedAt: new Date().toISOString(),
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    logger,
    addressPolicy,
    limits,
    metrics,
    meshConfig: () => meshConfig.status(),
  };
  const serverOptions = { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: HEADERS_TIMEOUT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_MS };
  const server = tls === undefined ? createServer(serverOptions, createRequestHandler(ctx)) : createHttpsServer({ ...serverOptions, ...tls.secureOptions }, createRequestHandler(ctx));
  if (tls !== undefined) {
    tls.attach(server as ReturnType<typeof createHttpsServer>);
    // Plaintext HTTP answered as Go's net/http answers it; failed handshakes logged (rate-limited).
    watchHandshakes(server as ReturnType<typeof createHttpsServer>, clock, logger, join(options.dataDir, ROOT_CERT_FILE));
  }
  const monitoring =
    monitoringPort === undefined
      ? undefined
      : createServer((req, res) => {
          const path = new URL(req.url ?? '/', 'http://monitoring').pathname;
          if (path === '/metrics') serveMetrics(req, res, ctx);
          else if (path === '/healthz') res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
          else res.writeHead(404, { 'content-type': 'text/plain' }).end('the monitoring port serves /metrics and /healthz\n');
        });
  const closeOwned = async () => {
    hub.close();
    await tls?.close();
    await ca.close();
    await auth.close();
    if (ownRegistry) await registry.close();
    if (ownStore) await store.close();
  };
  // A port that cannot be had names which one it is (the API's or the monitoring one) and its option.
  const listen = (srv: typeof server, p: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'the address is already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
        // The system error's fields stay (code, syscall, …): callers may tell EADDRINUSE apart.
        const { code, errno, syscall } = err;
        reject(Object.assign(new Error(`cannot listen on ${urlHost(host)}:${p} for the ${what}: ${why}${code === undefined ? '' : ` (${code})`}`, { cause: err }), { code, errno, syscall }));
      };
      srv.once('error', failed);
      srv.listen(p, host, () => {
        srv.off('error', failed);
        resolve();
      });
    });
  try {
    await listen(server, port, 'API (--port)');
    if (monitoring !== undefined) await listen(monitoring, monitoringPort as number, 'monitoring port (--monitoring-port)');
  } catch (err) {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    await closeOwned();
    throw err;
  }
  const bound = (server.address() as AddressInfo).port;
  if (ctx.insecure) {
    logger.warn(
      `*** INSECURE MODE: requests without a token are accepted; anyone who can reach this port can read config, register workloads and change config.${isWildcard(host) ? ` It listens on every interface (${host}): other machines can reach it.` : ''} Never use --insecure outside a test machine. ***`,
    );
  } else if (tls === undefined && !isLoopbackHost(host)) {
    logger.warn(
      `plain HTTP on ${isWildcard(host) ? `every interface (${host})` : host}: tokens, pushed config and workload certificates cross the network unencrypted; anyone on the path can steal a token (register endpoints, read config) or change config in flight. Serve TLS (--tls auto, or --tls-cert/--tls-key), or listen on loopback behind a TLS proxy.`,
    );
  }
  let closing: Promise<void> | undefined;
  return {
    url: `${tls === undefined ? 'http' : 'https'}://${urlHost(host)}:${bound}`,
    get servingCertificate() {
      if (tls === undefined) return undefined;
      const { key: _k, ...rest } = tls.current;
      return rest;
    },
    host,
    port: bound,
    monitoringUrl: monitoring === undefined ? undefined : `http://${urlHost(host)}:${(monitoring.address() as AddressInfo).port}`,
    metrics: () => metrics.expose(),
    status: () => statusDocument(ctx),
    setMeshConfig: (m, source, networks) => {
      if (meshConfig.set(own(m), source, networksOf(networks, 'ControlPlane.setMeshConfig'))) hub.meshConfigChanged();
    },
    mintToken: (subject, o) => auth.mintToken(subject, o),
    ca,
    close: () => {
      closing ??= (async () => {
        hub.close();
        await Promise.all([
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
            setTimeout(() => server.closeAllConnections(), 250).unref();
          }),
          monitoring === undefined ? undefined : new Promise<void>((resolve) => {
            monitoring.close(() => resolve());
            monitoring.closeAllConnections();
          }),
        ]);
        await closeOwned();
      })();
      return closing;
    },
  };
}
