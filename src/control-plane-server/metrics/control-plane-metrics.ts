/**
 * The control plane's own metrics (`GET /metrics`): what it pushed and how the workloads
 * answered, how long a change took to reach them, who is watching, what the registry and the
 * config hold, and the CA's issuance and expiry. Named as istiod names the same thing
 * (`pilot/pkg/xds/monitoring.go`, `pkg/xds/monitoring.go`, `security/pkg/server/ca/monitoring.go`:
 * `pilot_xds_pushes`, `pilot_xds`, `pilot_proxy_convergence_time`, `pilot_total_xds_rejects`,
 * `pilot_xds_config_size_bytes`, `pilot_services`, `pilot_virt_services`, `citadel_server_*`,
 * without `_total`, as istiod exports them), and `meshlet_control_plane_*` for the rest.
 *
 * Push `type` is the watch stream's event: `config` (istiod's cds+lds+rds), `endpoints` and
 * `endpoints-delta` (eds), `trust-bundle` (the roots part of sds), `mesh-config` (the control
 * plane's MeshConfig: istiod answers a MeshConfig change with a forced full push —
 * pilot/pkg/bootstrap/server.go `initMeshHandlers` — counted under each xDS type it resends,
 * pilot/pkg/xds/monitoring.go `recordPushTime`; a mesh rebuilds from the one `mesh-config` event
 * what those carry, so it counts once, under its own type, and a change is timed in
 * `pilot_proxy_convergence_time` as istiod times every push, ads.go `pushConnection`). Every label is bounded: event
 * types, resource kinds, ACK/NACK — never a workload, a connection or an address. Each replica
 * counts what it did itself (etcd mode: scrape every replica).
 *
 * @module
 */
import { KIND_VERSIONS, type Kind } from '../../config/resource.ts';
import { versionNumber } from '../../config/version.ts';
import { MESHLET_VERSION } from '../../core/version.ts';
import type { CaInfo } from '../../control-plane/protocol.ts';
import type { ConfigStore, RegistryStore } from '../store.ts';
import { type Counter, type Histogram, MetricsRegistry } from './registry.ts';

/** What a watch stream is sent. */
export type PushType = 'config' | 'endpoints' | 'endpoints-delta' | 'trust-bundle' | 'mesh-config';

/**
 * The reason istiod gives a push of the same change (pilot/pkg/model/push_context.go `TriggerReason`,
 * counted per proxy push by pilot/pkg/xds/monitoring.go `recordPushTriggers`): a config change is
 * `config`, an endpoints change `endpoint`, a MeshConfig change `global` (bootstrap/server.go
 * `initMeshHandlers`: `GlobalUpdate`), a trust bundle change `global` too (`initWorkloadTrustBundle`).
 */
const TRIGGER: Readonly<Record<PushType, string>> = { config: 'config', endpoints: 'endpoint', 'endpoints-delta': 'endpoint', 'trust-bundle': 'global', 'mesh-config': 'global' };

/** istiod's buckets for `pilot_proxy_convergence_time`, seconds. */
export const CONVERGENCE_BUCKETS = [0.1, 0.5, 1, 3, 5, 10, 20, 30] as const;
/** Buckets of the change-to-ACK time, seconds (istiod's, with finer ones below 100 ms: meshlet pushes without a debounce). */
export const PROPAGATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 3, 5, 10, 20, 30] as const;
/** istiod's buckets for `pilot_xds_config_size_bytes`. */
export const CONFIG_SIZE_BUCKETS = [1, 10_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000] as const;
/** Buckets of certificate issuance latency, seconds (key generation is the client's; signing is milliseconds). */
export const ISSUANCE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;

/** Versions remembered per kind for the change-to-ACK time. */
const REMEMBERED_VERSIONS = 64;

/** Where the scrape-time gauges read from. */
export interface ControlPlaneMetricsSources {
  readonly store: ConfigStore;
  readonly registry: RegistryStore;
  /** Watch streams open now. */
  watchers(): number;
  /** The CA (roots and signer expiry). */
  ca(): CaInfo;
}

/** Options of {@link ControlPlaneMetrics}. */
export interface ControlPlaneMetricsOptions {
  /** Monotonic milliseconds for durations. @defaultValue performance.now */
  readonly now?: () => number;
  /** Epoch milliseconds for the expiry gauges. @defaultValue Date.now */
  readonly wallNow?: () => number;
}

/** Why a certificate request failed, in istiod's counters. */
export type CsrFailure = 'authentication' | 'parsing' | 'sign';

/** The control plane's metrics and the hooks the server calls. */
export class ControlPlaneMetrics {
  readonly registry = new MetricsRegistry();
  readonly #now: () => number;
  readonly #pushes: Counter;
  readonly #triggers: Counter;
  readonly #convergence: Histogram;
  readonly #configSize: Histogram;
  readonly #acks: Counter;
  readonly #rejects: Counter;
  readonly #propagation: Histogram;
  readonly #changes: Counter;
  readonly #csr: Counter;
  readonly #issued: Counter;
  readonly #issuance: Histogram;
  readonly #failures: Record<CsrFailure, Counter>;
  /** When each recent version became current here, by kind (monotonic ms). */
  readonly #changedAt = { config: new Map<string, number>(), endpoints: new Map<string, number>() };
  /** When each open stream opened (monotonic ms). */
  readonly #opened = new Map<string, number>();

  constructor(sources: ControlPlaneMetricsSources, options: ControlPlaneMetricsOptions = {}) {
    this.#now = options.now ?? (() => performance.now());
    const wallNow = options.wallNow ?? Date.now;
    const r = this.registry;
    this.#pushes = r.counter('pilot_xds_pushes', 'Events written to watch streams, by type: config (cds+lds+rds), endpoints and endpoints-delta (eds), trust-bundle (sds roots), mesh-config (the MeshConfig: istiod\'s full push on its change).', ['type']);
    for (const t of ['config', 'endpoints', 'endpoints-delta', 'trust-bundle', 'mesh-config'] as const) this.#pushes.inc({ type: t }, 0);
    this.#triggers = r.counter('pilot_push_triggers', 'Total number of times a push was triggered, labeled by reason for the push: config, endpoint, global (a MeshConfig or trust bundle change), as istiod\'s (pilot/pkg/xds/monitoring.go); a stream\'s first events are not counted.', ['type']);
    for (const t of new Set(Object.values(TRIGGER))) this.#triggers.inc({ type: t }, 0);
    // As istiod's: 1, labelled with the component and its version (Grafana's "Pilot Versions" and "Istio Component Versions").
    r.gauge('istio_build', 'Istio component build info: 1, with the component (pilot) and its version (tag: meshlet\'s version).', ['component', 'tag']).collect(() => [[{ component: 'pilot', tag: MESHLET_VERSION }, 1]]);
    r.gauge('pilot_xds', 'Watch streams (connected workloads) open on this replica.').collect(() => [[{}, sources.watchers()]]);
    this.#convergence = r.histogram('pilot_proxy_convergence_time', 'Delay in seconds between a config, endpoints or MeshConfig change and its push being written to a watching workload.', [], CONVERGENCE_BUCKETS);
    this.#configSize = r.histogram('pilot_xds_config_size_bytes', 'Size in bytes of the config and endpoints events written to watch streams, by type.', ['type'], CONFIG_SIZE_BUCKETS);
    this.#acks = r.counter('meshlet_control_plane_acks_total', 'ACKs and NACKs received from workloads, by type (config, endpoints) and status (ACK, NACK).', ['type', 'status']);
    for (const type of ['config', 'endpoints']) for (const status of ['ACK', 'NACK']) this.#acks.inc({ type, status }, 0);
    this.#rejects = r.counter('pilot_total_xds_rejects', 'Config or endpoints events rejected by a workload (NACK), by type.', ['type']);
    for (const type of ['config', 'endpoints']) this.#rejects.inc({ type }, 0);
    this.#propagation = r.histogram(
      'meshlet_control_plane_propagation_seconds',
      'Delay in seconds between a config or endpoints version becoming current on this replica and a workload that was watching ACKing it, by type.',
      ['type'],
      PROPAGATION_BUCKETS,
    );
    this.#changes = r.counter('meshlet_control_plane_config_changes_total', 'Config changes this replica accepted and served (files, the resources API, etcd).');
    this.#changes.inc({}, 0);
    r.gauge('meshlet_control_plane_config_version', 'The config version served, as a number: its 12 hex digits read as hex (compare with the workloads\' meshlet_config_version).').collect(() => [
      [{}, versionNumber(sources.store.current().version)],
    ]);
    r.gauge('meshlet_control_plane_config_resources', 'Resources in the config served, by kind.', ['kind']).collect(() => {
      const counts = new Map<string, number>(Object.keys(KIND_VERSIONS).map((k) => [k, 0]));
      for (const res of sources.store.current().resources) counts.set(res.kind, (counts.get(res.kind) ?? 0) + 1);
      return [...counts].map(([kind, n]) => [{ kind }, n] as const);
    });
    r.gauge('pilot_services', 'Services known from the config: ServiceEntry hosts and Kubernetes Services.').collect(() => {
      let n = 0;
      for (const res of sources.store.current().resources) {
        if (res.kind === ('Service' satisfies Kind)) n++;
        else if (res.kind === ('ServiceEntry' satisfies Kind)) n += ((res.spec as { hosts?: unknown[] } | undefined)?.hosts ?? []).length;
      }
      return [[{}, n]];
    });
    r.gauge('pilot_virt_services', 'VirtualServices in the config.').collect(() => [[{}, sources.store.current().resources.filter((x) => x.kind === ('VirtualService' satisfies Kind)).length]]);
    r.gauge('meshlet_control_plane_registered_workloads', 'Workload instances registered now (live WorkloadEntry records).').collect(() => [[{}, sources.registry.list().length]]);
    r.gauge('meshlet_control_plane_registered_endpoints', 'Endpoints registered now: address and port pairs of the registered workloads (an entry without ports counts once).').collect(() => {
      let n = 0;
      for (const rec of sources.registry.list()) n += Math.max(1, Object.keys((rec.entry.spec as { ports?: Record<string, number> } | undefined)?.ports ?? {}).length);
      return [[{}, n]];
    });
    r.gauge('meshlet_control_plane_registered_services', 'Services with registered workloads now (namespace/service of the registering tokens).').collect(() => [
      [{}, new Set(sources.registry.list().map((rec) => `${(rec.entry.metadata as { namespace?: string }).namespace ?? ''}/${rec.service}`)).size],
    ]);

    this.#csr = r.counter('citadel_server_csr_count', 'The number of certificate signing requests received.');
    this.#csr.inc({}, 0);
    this.#issued = r.counter('citadel_server_success_cert_issuance_count', 'The number of certificates issuances that have succeeded.');
    this.#issued.inc({}, 0);
    this.#failures = {
      authentication: r.counter('citadel_server_authentication_failure_count', 'The number of certificate requests refused: no valid token, or a token for another identity.'),
      parsing: r.counter('citadel_server_csr_parsing_err_count', 'The number of certificate requests whose body or CSR did not parse or verify.'),
      sign: r.counter('citadel_server_csr_sign_err_count', 'The number of errors occurred when signing the CSR.'),
    };
    for (const c of Object.values(this.#failures)) c.inc({}, 0);
    this.#issuance = r.histogram('meshlet_control_plane_certificate_issuance_seconds', 'Time in seconds to answer a certificate request that succeeded (parse, verify, sign).', [], ISSUANCE_BUCKETS);
    const expiry = (pick: (ca: CaInfo) => string | undefined) => () => {
      const at = pick(sources.ca());
      return at === undefined ? [] : [[{}, Date.parse(at) / 1000] as const];
    };
    const remaining = (pick: (ca: CaInfo) => string | undefined) => () => {
      const at = pick(sources.ca());
      return at === undefined ? [] : [[{}, (Date.parse(at) - wallNow()) / 1000] as const];
    };
    // The root that expires first: while a rotation overlaps, the old one.
    const root = (ca: CaInfo) => ca.roots.map((c) => c.notAfter).sort((a, b) => Date.parse(a) - Date.parse(b))[0];
    const signer = (ca: CaInfo) => ca.signer.notAfter;
    r.gauge('citadel_server_root_cert_expiry_timestamp', 'The unix timestamp, in seconds, when the first trusted root cert will expire.').collect(expiry(root));
    r.gauge('citadel_server_root_cert_expiry_seconds', 'The time remaining, in seconds, before the first trusted root cert will expire. A negative value indicates the cert is expired.').collect(remaining(root));
    r.gauge('citadel_server_cert_chain_expiry_timestamp', 'The unix timestamp, in seconds, when the CA signing certificate will expire.').collect(expiry(signer));
    r.gauge('citadel_server_cert_chain_expiry_seconds', 'The time remaining, in seconds, before the CA signing certificate will expire. A negative value indicates the cert is expired.').collect(remaining(signer));
  }

  /** Monotonic milliseconds (the clock of every duration here). */
  now(): number {
    return this.#now();
  }

  /** A config version became current; returns when (for {@link pushed}). */
  configChanged(version: string): number {
    this.#changes.inc();
    return this.#changed('config', version);
  }

  /** An endpoints version (of a namespace's view) became current; returns when. */
  endpointsChanged(version: string, at = this.#now()): number {
    return this.#changed('endpoints', version, at);
  }

  #changed(kind: 'config' | 'endpoints', version: string, at = this.#now()): number {
    const m = this.#changedAt[kind];
    if (!m.has(version)) {
      m.set(version, at);
      if (m.size > REMEMBERED_VERSIONS) m.delete(m.keys().next().value as string);
    }
    return at;
  }

  /** A stream opened / closed. */
  opened(connection: string): void {
    this.#opened.set(connection, this.#now());
  }

  closed(connection: string): void {
    this.#opened.delete(connection);
  }

  /** An event was written to a stream; `changedAt` when a change (not the stream's opening) made it. */
  pushed(type: PushType, bytes: number, changedAt?: number): void {
    this.#pushes.inc({ type });
    // A change made it (not a stream's first events, which istiod sends outside its push queue, uncounted).
    if (changedAt !== undefined) this.#triggers.inc({ type: TRIGGER[type] });
    if (type === 'trust-bundle') return;
    // The config's sizes: a MeshConfig is a few settings, not config.
    if (type !== 'mesh-config') this.#configSize.observe({ type }, bytes);
    if (changedAt !== undefined) this.#convergence.observe({}, Math.max(0, this.#now() - changedAt) / 1000);
  }

  /**
   * A workload ACKed or NACKed a version. An ACK of a version that became current while the
   * stream was open is a propagation: its delay is observed (a version the stream got when it
   * opened is not: that measures the workload's start, not the push).
   */
  acked(connection: string, type: 'config' | 'endpoints', version: string, status: 'ACK' | 'NACK'): void {
    this.#acks.inc({ type, status });
    if (status === 'NACK') {
      this.#rejects.inc({ type });
      return;
    }
    const at = this.#changedAt[type].get(version);
    const opened = this.#opened.get(connection);
    if (at !== undefined && opened !== undefined && opened <= at) this.#propagation.observe({ type }, Math.max(0, this.#now() - at) / 1000);
  }

  /** A certificate request arrived (counted before it is authenticated, as istiod does). */
  csrReceived(): void {
    this.#csr.inc();
  }

  /** A certificate was issued, `startedAt` (monotonic ms) after the request arrived. */
  issued(startedAt: number): void {
    this.#issued.inc();
    this.#issuance.observe({}, Math.max(0, this.#now() - startedAt) / 1000);
  }

  csrFailed(why: CsrFailure): void {
    this.#failures[why].inc();
  }

  /** The text exposition. */
  expose(): string {
    return this.registry.expose();
  }
}
