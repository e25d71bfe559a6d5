/**
 * etcd as the shared store of `meshlet control-plane` replicas: config, registry and shared
 * values of every replica on the same endpoints and prefix are one. Layout under the prefix:
 *
 * - `<prefix>/config/<Kind>/<namespace>/<name>`: JSON WireResources ({@link EtcdConfigStore})
 * - `<prefix>/owners/<Kind>/<namespace>/<name>`: `{ dir, file, host }` of a resource a `--config`
 *   directory defines ({@link EtcdWithFiles}); the API refuses to change it
 * - `<prefix>/registry/<namespace>/<name>`: leased workload records ({@link EtcdRegistryStore})
 * - `<prefix>/shared/<key>`: first-writer-wins values ({@link EtcdSharedValues})
 *
 * @module
 */
import type { AnalysisMode } from '../../config/load-config.ts';
import type { ConfigStore, RegistryStore, SharedValues } from '../store.ts';
import { EtcdClient, type EtcdTlsOptions } from './client.ts';
import { EtcdConfigStore, type EtcdLogger } from './config-store.ts';
import { EtcdWithFiles } from './file-sync.ts';
import { EtcdHealthProbe, type EtcdHealthProbeOptions } from './health-probe.ts';
import { EtcdRegistryStore } from './registry-store.ts';
import { EtcdSharedValues } from './shared.ts';

export { EtcdClient, EtcdError, type EtcdTlsOptions } from './client.ts';
export { EtcdConfigStore, type EtcdLogger } from './config-store.ts';
export { EtcdWithFiles } from './file-sync.ts';
export { EtcdRegistryStore } from './registry-store.ts';
export { EtcdSharedValues } from './shared.ts';

/** Options of {@link openEtcd}. */
export interface OpenEtcdOptions {
  /** Key prefix shared by the replicas. @defaultValue '/meshlet' */
  prefix?: string;
  /** What analysis does to a config change (see {@link AnalysisMode}). @defaultValue 'advisory' */
  analysis?: AnalysisMode;
  /** Namespace of resources without one. @defaultValue 'default' */
  defaultNamespace?: string;
  /** Where refused changes and connection trouble are reported. */
  logger?: EtcdLogger;
  /** Timeout of each etcd call, in ms. @defaultValue 5000 */
  timeoutMs?: number;
  /** TLS to `https://` endpoints: etcd's CA, and a client certificate and key. */
  tls?: EtcdTlsOptions;
  /** How etcd's health is probed, so the status follows it within seconds (see {@link EtcdHealthProbe}). @defaultValue every 5 s, every 1 s while unhealthy, 2 s timeout */
  healthProbe?: EtcdHealthProbeOptions;
  /** A `--config` directory: watched, and applied into etcd at start and on every change (see {@link EtcdWithFiles}). */
  configDir?: string;
}

/** What {@link openEtcd} opens: the three storage interfaces over one etcd client. */
export interface EtcdStores {
  readonly store: ConfigStore;
  readonly registry: RegistryStore;
  readonly shared: SharedValues;
  /** With `configDir`: how many resources the files define, and how many of them the first apply changed (created, configured, deleted). */
  readonly files?: { readonly resources: number; readonly changed: number };
  /** Stops the watches and closes the connections (registered records keep their leases). */
  close(): Promise<void>;
}

/**
 * Connects to etcd and starts the config store and the registry (their `start()` is
 * idempotent: calling it again resolves at once). Rejects with a `MeshletError`
 * (`MESHLET_ERR_CONTROL_PLANE`, naming the endpoints) when etcd is unreachable, or a
 * `ConfigError` when the stored config is invalid.
 *
 * @param endpoints etcd client URLs, e.g. `['http://127.0.0.1:2379']`; tried in turn.
 */
export async function openEtcd(endpoints: string[], options: OpenEtcdOptions = {}): Promise<EtcdStores> {
  const client = new EtcdClient(endpoints, { timeoutMs: options.timeoutMs, ...(options.tls === undefined ? {} : { tls: options.tls }) });
  const prefix = options.prefix ?? '/meshlet';
  const { logger } = options;
  const etcdStore = new EtcdConfigStore(client, { prefix, analysis: options.analysis, defaultNamespace: options.defaultNamespace, logger });
  const withFiles = options.configDir === undefined ? undefined : new EtcdWithFiles(etcdStore, { dir: options.configDir, analysis: options.analysis, defaultNamespace: options.defaultNamespace, logger });
  const store: ConfigStore = withFiles ?? etcdStore;
  const registry = new EtcdRegistryStore(client, { prefix, defaultNamespace: options.defaultNamespace, logger });
  const shared = new EtcdSharedValues(client, prefix);
  const probe = new EtcdHealthProbe(client, options.healthProbe);
  const close = async (): Promise<void> => {
    probe.stop();
    await Promise.allSettled([store.close(), registry.close()]);
    await client.close();
  };
  try {
    await store.start();
    await registry.start();
  } catch (err) {
    await close();
    throw err;
  }
  // From here on (a failure to start is said once, by the rejection).
  client.onHealthChange((h) => {
    if (h.healthy) logger?.info?.(`etcd ${client.endpoints.join(',')}: reachable again`);
    else logger?.warn(`etcd ${client.endpoints.join(',')}: ${h.error ?? 'unreachable'}`);
  });
  probe.start();
  return { store, registry, shared, close, ...(withFiles?.first === undefined ? {} : { files: withFiles.first }) };
}
