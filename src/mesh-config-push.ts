/**
 * The control plane's MeshConfig in a mesh it feeds (`mesh-config` events; `meshlet
 * control-plane --mesh-config`), as istiod's MeshConfig governs every proxy it serves. It is read
 * as `createMesh({ meshConfig })` reads one (the same mapping and checks) and applied under the
 * mesh's own settings: an option given to createMesh, or set by the mesh's own `meshConfig`,
 * wins field by field (within `telemetry.accessLog` and `telemetry.tracing` too).
 *
 * - `defaultHttpRetryPolicy`, `connectTimeout`, `outboundTrafficPolicy` and `tcpKeepalive` feed
 *   every compile: a changed MeshConfig compiles the config in use again and applies at once (new
 *   calls; a connect timeout and keepalive to new connections: a cluster whose keepalive changed
 *   gets new pools and its old ones drain, calls in flight finishing on them, as Envoy drains a
 *   replaced cluster's pools, cluster_manager_impl.cc `ClusterEntry::~ClusterEntry`), as istiod's
 *   full push on a MeshConfig change rebuilds every cluster's `connect_timeout` and
 *   `upstream_connection_options.tcp_keepalive` (pilot/pkg/networking/core/cluster.go
 *   `applyTCPKeepalive`) and every route's retry policy (pilot/pkg/bootstrap/server.go
 *   `initMeshHandlers`).
 * - Everything else (rootNamespace, trustDomain, extensionProviders, access logs, tracing, proxy
 *   headers, path normalization, locality load balancing, DNS refresh) is read when the mesh is
 *   built: the control plane sends its MeshConfig before the first config, so it applies when
 *   the first config comes live (at a start from the last-known-good cache, the MeshConfig cached
 *   with the config: `control-plane/cached-start.ts`). A MeshConfig that changes them later (or
 *   arrives after a start with `failOpen`) is named once in a warning: they apply at the next start.
 * - Its MeshNetworks (`meshNetworks` in the event: the ConfigMap's `data.meshNetworks`), when the
 *   mesh has none of its own, feeds every compile too and follows a change live (istiod pushes on
 *   a networks change: pilot/pkg/model/network.go `reloadGateways`); the mesh's own wins whole.
 * - An invalid MeshConfig (or MeshNetworks) is refused as a whole, with a warning naming the
 *   field; the one in use stays. An `extensionProviders` entry istiod only warns about is left
 *   out, with a warning naming it, and the rest is taken (inbound/extension-providers.ts
 *   `usableExtensionProviders`).
 *
 * @module
 */
import type { NetworkSettings } from './config/network-topology.ts';
import type { MeshConfigEvent } from './control-plane/protocol.ts';
import { NO_MESH_CONFIG } from './control-plane/pushed-events.ts';
import type { StateCompileOptions } from './control-plane/state.ts';
import { readMeshNetworks } from './config/mesh-networks.ts';
import { applyMeshConfig, meshConfigProblems, withUsableProviders } from './mesh-config-option.ts';
import type { MeshLogger, MeshOptions } from './mesh-options.ts';
import { DEFAULT_CONNECT_TIMEOUT_MS, wholeSecondsKeepalive } from './routing/cluster-settings.ts';
import { DEFAULT_ROOT_NAMESPACE } from './config/resource.ts';
import { DEFAULT_TRUST_DOMAIN } from './security/authz/trust-domain.ts';
import type { MeshWideSettings } from './routing/compile.ts';

/** Options read when the mesh is built, by the MeshConfig fields that set them. */
const AT_START: readonly (readonly [keyof MeshOptions, string])[] = [
  ['rootNamespace', 'rootNamespace'],
  ['trustDomain', 'trustDomain'],
  ['trustDomainAliases', 'trustDomainAliases'],
  ['enableAutoMtls', 'enableAutoMtls'],
  ['extensionProviders', 'extensionProviders'],
  ['pathNormalization', 'pathNormalization'],
  ['dns', 'dnsRefreshRate'],
  ['proxyHeaders', 'defaultConfig.proxyHeaders'],
  ['localityLbSetting', 'localityLbSetting'],
  ['telemetry', 'accessLog*/enableTracing/defaultConfig.tracing'],
];

/**
 * Whether two option values are the same: plain data compared field by field, anything else
 * (a MeterProvider, a TracerProvider, a function: the mesh's own, carried over unchanged) by
 * identity. Not JSON.stringify: an option such as `telemetry.ownMetrics.meterProvider` holds
 * cycles, and stringifying it threw — the MeshConfig was then taken as malformed and never compiled in.
 */
function sameValue(a: unknown, b: unknown, depth = 0): boolean {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || depth > 32) return false;
  if (Array.isArray(a) !== Array.isArray(b) || !isPlain(a) || !isPlain(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], depth + 1));
}

const isPlain = (o: object): boolean => Array.isArray(o) || Object.getPrototypeOf(o) === Object.prototype || Object.getPrototypeOf(o) === null;

/**
 * What a MeshConfig can set of option `k`, as plain data to compare: `telemetry` and `dns` hold the
 * app's own objects too (a MeterProvider, whose parts refer to each other; a resolve function),
 * which no MeshConfig sets and JSON cannot hold.
 */
function settable(o: MeshOptions, k: keyof MeshOptions): unknown {
  if (k === 'telemetry') return [o.telemetry?.accessLog, o.telemetry?.tracing];
  // Unset is the default: a MeshConfig that names it changes nothing.
  if (k === 'rootNamespace') return o.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  if (k === 'trustDomain') return o.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  if (k === 'dns') return o.dns?.refreshRateMs;
  return o[k];
}

const same = (a: MeshOptions, b: MeshOptions, k: keyof MeshOptions): boolean => sameValue(settable(a, k), settable(b, k));
const noop = (): void => undefined;

/** The control plane's MeshConfig under a mesh's own options: the settings its compiles read, and its options when built. */
export class ControlPlaneMeshConfig implements StateCompileOptions {
  readonly #own: MeshOptions;
  readonly #log: MeshLogger;
  /** The mesh's own network settings (its network, its own MeshNetworks if any, its gateway name cache). */
  readonly #networks: NetworkSettings | undefined;
  /** Them with the control plane's MeshNetworks, when it sends one and the mesh has none of its own. */
  #pushedNetworks: NetworkSettings | undefined;
  /** The mesh's own options over the MeshConfig pushed. */
  #effective: MeshOptions;
  /** What the MeshConfig pushed sets, alone. */
  #pushed: MeshOptions | undefined;
  #version: string | undefined;
  /** The event in use, as received (the last-known-good cache keeps it). */
  #event: MeshConfigEvent | undefined;
  #label = '';
  /** The options the mesh was built with (start-time settings stay these). */
  #started: MeshOptions | undefined;
  #warned = '';
  /** The version of the last MeshConfig refused: sent again (each reconnect sends it first), it is not warned about again. */
  #refused: string | undefined;

  /** `own`: createMesh's options (its own `meshConfig` applied); `networks`: the compile's network settings. */
  constructor(own: MeshOptions, networks: NetworkSettings | undefined, log: MeshLogger) {
    this.#own = own;
    this.#effective = own;
    this.#networks = networks;
    this.#log = log;
  }

  /** The network settings compiles use: the control plane's MeshNetworks under the mesh's own (its own wins whole). */
  get networks(): NetworkSettings | undefined {
    return this.#pushedNetworks ?? this.#networks;
  }

  /** The root namespace compiles use: the one the mesh was built with (the MeshConfig's until then). */
  get rootNamespace(): string | undefined {
    return (this.#started ?? this.#effective).rootNamespace;
  }

  get defaultHttpRetryPolicy(): MeshOptions['defaultHttpRetryPolicy'] {
    return this.#effective.defaultHttpRetryPolicy;
  }

  /** The mesh-wide settings snapshots carry, with where the control plane's came from. */
  get meshSettings(): MeshWideSettings {
    const e = this.#effective;
    const origin: Record<string, string> = {};
    const fromPush = (k: keyof MeshOptions, name: string) => {
      if (this.#own[k] === undefined && this.#pushed?.[k] !== undefined) origin[name] = this.#label;
    };
    fromPush('outboundTrafficPolicy', 'outboundTrafficPolicy');
    fromPush('connectTimeoutMs', 'connectTimeout');
    fromPush('defaultHttpRetryPolicy', 'defaultHttpRetryPolicy');
    fromPush('tcpKeepalive', 'tcpKeepalive');
    const k = e.tcpKeepalive;
    // In whole seconds, as istiod writes it (cluster.go setKeepAliveSettings); null: none, whatever the mesh started with.
    const tcpKeepalive = k === undefined ? null : wholeSecondsKeepalive(k.timeMs, k.intervalMs, k.probes);
    return { outboundTrafficPolicy: e.outboundTrafficPolicy ?? 'ALLOW_ANY', connectTimeoutMs: e.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, tcpKeepalive, origin };
  }

  /** The version of the MeshConfig in use, and where it came from; undefined before any. */
  get pushed(): { version: string; from: string; settings: MeshOptions } | undefined {
    return this.#version === undefined || this.#version === '' || this.#pushed === undefined ? undefined : { version: this.#version, from: this.#label, settings: this.#pushed };
  }

  /** The `mesh-config` event in use, as received; undefined before any was applied. */
  get event(): MeshConfigEvent | undefined {
    return this.#event;
  }

  /** The mesh is built now: its options (the MeshConfig's under its own); start-time settings stay these. */
  started(): MeshOptions {
    this.#started = this.#effective;
    return this.#effective;
  }

  /**
   * Takes a `mesh-config` event (`url`: the control plane it came from, or where the cache was
   * read); true when the settings compiles read changed (compile again). An invalid one is
   * refused with a warning ({@link event} stays the one in use).
   */
  accept(e: MeshConfigEvent, url: string): boolean {
    const label = e === NO_MESH_CONFIG ? `the control plane (${url}), which sends no MeshConfig (an older version),` : `the control plane's MeshConfig${e.source === undefined ? '' : ` ${e.source}`} (${url})`;
    if (e.version === this.#version) {
      // The same MeshConfig from elsewhere (the control plane back after a start from the cache): only where it came from changes.
      if (label === this.#label || e === NO_MESH_CONFIG) return false;
      const before = this.#compileKey();
      this.#label = label;
      this.#event = e;
      return this.#compileKey() !== before;
    }
    // An older control plane, which sends none: nothing to take back unless one was pushed before.
    if (e === NO_MESH_CONFIG && this.#pushed === undefined) return false;
    const say = (m: string): string => `meshlet: ${label}: ${m.replace(/^createMesh: (meshConfig: )?/, '')}`;
    let pushed: MeshOptions;
    let effective: MeshOptions;
    let networks: NetworkSettings | undefined;
    const unusable: string[] = [];
    try {
      // A provider istiod only warns about is left out (named below, once the MeshConfig is taken).
      const meshConfig = withUsableProviders(e.meshConfig, (m) => unusable.push(m));
      // Checked alone first: an own option that hides a field does not let a mistake in it pass.
      pushed = applyMeshConfig({ service: this.#own.service, meshConfig }, noop, noop);
      const problems = meshConfigProblems(pushed);
      if (problems.length > 0) throw new Error(problems.join('; '));
      effective = applyMeshConfig({ ...this.#own, meshConfig }, (m) => this.#log.info?.(say(m)), (m) => this.#log.warn(say(m)));
      // Its MeshNetworks, checked as createMesh({ meshNetworks }) checks one, taken unless the mesh has its own.
      const meshNetworks = e.meshNetworks === undefined ? undefined : readMeshNetworks(e.meshNetworks, '`meshNetworks`');
      networks = meshNetworks === undefined || this.#own.meshNetworks !== undefined ? undefined : Object.freeze({ ...(this.#networks ?? { network: '' }), meshNetworks });
    } catch (err) {
      if (this.#refused !== e.version) this.#log.warn(`meshlet: ${label} version ${e.version} is not applied, the settings in use stay: ${(err as Error).message.replace(/^createMesh: /, '')}`);
      this.#refused = e.version;
      return false;
    }
    const before = this.#compileKey();
    this.#version = e.version;
    this.#event = e;
    this.#label = label;
    this.#pushed = pushed;
    this.#effective = effective;
    this.#pushedNetworks = networks;
    for (const m of unusable) this.#log.warn(say(`version ${e.version}: ${m}`));
    this.#warnAtStart(e.version);
    return this.#compileKey() !== before;
  }

  #compileKey(): string {
    return JSON.stringify([this.rootNamespace, this.defaultHttpRetryPolicy ?? null, this.meshSettings, this.networks?.meshNetworks ?? null]);
  }

  /** Names, once per set, the start-time settings the MeshConfig in use changes after the mesh was built. */
  #warnAtStart(version: string): void {
    const started = this.#started;
    if (started === undefined) return;
    const changed = AT_START.filter(([k]) => !same(this.#effective, started, k)).map(([, name]) => name);
    const key = changed.join(',');
    if (key !== this.#warned && changed.length > 0) {
      this.#log.warn(`meshlet: ${this.#label} version ${version} changes ${changed.join(', ')}, which this mesh reads when it starts: they apply at its next start (connectTimeout, defaultHttpRetryPolicy, outboundTrafficPolicy and tcpKeepalive apply now)`);
    }
    this.#warned = key;
  }
}
