/**
 * The options and events of {@link ControlPlaneSource} (the control plane as a mesh's config
 * source), kept apart from the class so the mesh and the docs can name them without it.
 *
 * @module
 */
import type { NetworkSettings } from '../config/network-topology.ts';
import type { HTTPRetry } from '../config/types/networking.ts';
import type { GatewayNames } from '../outbound/gateway-names.ts';
import type { Clock, Random } from '../core/clock.ts';
import type { MeshletError } from '../core/errors.ts';
import type { ConfigIssue } from '../config/issues.ts';
import type { AnalysisMode } from '../config/load-config.ts';
import type { Snapshot, WorkloadInfo } from '../routing/compile.ts';
import type { CredentialHolder } from '../security/identity/credentials.ts';
import type { BackoffOptions } from './backoff.ts';
import type { MeshConfigEvent, ReportedIdentity, ReportedInboundTls } from './protocol.ts';
import type { StateCompileOptions } from './state.ts';

/**
 * Where the config in use came from.
 * @category Mesh
 */
export type ConfigOrigin = 'control-plane' | 'cache' | 'none';

/** Options of {@link ControlPlaneSource}. */
export interface ControlPlaneSourceOptions {
  /** Control-plane base URLs (`http://host:port`), tried in turn. */
  readonly urls: readonly string[];
  /** PEM: the CA that verifies an `https://` control plane. @defaultValue the system's CAs */
  readonly ca?: string | undefined;
  /** The bearer token, or a function that reads it for each request (`tokenFile`). */
  readonly token: string | (() => string) | undefined;
  readonly workload: Required<WorkloadInfo>;
  /** The mesh's root namespace: its selector-less Sidecar is the default of namespaces without one. @defaultValue 'istio-system' */
  readonly rootNamespace?: string;
  /** MeshConfig's `defaultHttpRetryPolicy`: the retries of routes without their own (`createMesh({ defaultHttpRetryPolicy })`). @defaultValue Istio's default policy */
  readonly defaultHttpRetryPolicy?: HTTPRetry | undefined;
  /** The settings every compile reads, read at each compile (they change with the control plane's MeshConfig); absent: the fields above. */
  readonly compileSettings?: StateCompileOptions;
  /**
   * Takes the control plane's MeshConfig (`mesh-config` events, and the one in the last-known-good
   * cache at a start from it): true when compiles must run again; `event` is the one in use (kept
   * in the cache with the config).
   */
  readonly meshConfig?: { accept(event: MeshConfigEvent, url: string): boolean; readonly event: MeshConfigEvent | undefined };
  readonly locality: string;
  /** This workload's network and MeshNetworks (multi-network: compiles route endpoints on other networks through their gateways; registrations are on this network). */
  readonly networks?: NetworkSettings;
  /** The mesh's east-west gateway host names (resolved before a snapshot using them is installed; closed with the source). */
  readonly gatewayNames?: GatewayNames | undefined;
  /** This workload has an identity (MeshOptions `identity` is not 'none'): its registrations carry `security.istio.io/tlsMode: istio`, so clients' auto-mTLS calls it with mTLS. @defaultValue false */
  readonly acceptsMtls?: boolean;
  /** The workload's service account (its registrations name it). */
  readonly serviceAccount?: string;
  /** Istio's workload name: registrations carry it as `service.istio.io/workload-name` (how clients' metrics name the destination workload). */
  readonly workloadName?: string;
  readonly analysis?: AnalysisMode;
  readonly cacheDir?: string;
  readonly startupTimeoutMs: number;
  readonly failOpen: boolean;
  readonly drainMs: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: { warn(message: string): void };
  /** Reconnect backoff. @defaultValue 250 ms base, 15 s cap */
  readonly backoff?: BackoffOptions;
  /** Longest wait for the watch's headers and `hello`. @defaultValue 5000 */
  readonly connectTimeoutMs?: number;
  /** Get the workload certificate from the control plane's CA into this holder (`identity: 'control-plane'`). */
  readonly identity?: {
    readonly holder: CredentialHolder;
    readonly trustDomain: string;
    readonly serviceAccount: string;
    /** Which of them the mesh's options set (an issued identity contradicting them is warned about). */
    readonly explicit?: { readonly trustDomain?: boolean; readonly serviceAccount?: boolean };
    /** The mesh asked for it (`identity: 'control-plane'`), rather than having it by default. */
    readonly required?: boolean;
  };
  /** How often changed report contents (inbound TLS counts) are sent. @defaultValue 30000 */
  readonly reportIntervalMs?: number;
}

/** What a workload reports to the status (`POST /v1/report`). */
export interface ReportContents {
  readonly identity?: ReportedIdentity;
  readonly inboundTls?: ReportedInboundTls;
}

/**
 * Event `config`: a config (or set of registered endpoints) is in use. The same event in both modes.
 * @category Mesh
 */
export interface ConfigAppliedEvent {
  /** The config version: the control plane's content version, or the content hash of the files. */
  readonly version: string;
  /** The version of the registered endpoints in use ('' in embedded mode). */
  readonly endpointsVersion: string;
  /** `file` (embedded mode), `control-plane` (live) or `cache` (started from the last-known-good cache). */
  readonly source: 'file' | 'control-plane' | 'cache';
  /**
   * The analysis findings of this config (IST0101, …): advisory, as `istioctl analyze` is to
   * Istio, unless `analysis: 'blocking'`. Each is also logged once, when it first appears.
   */
  readonly findings: readonly ConfigIssue[];
}

/**
 * Event `connected`: a watch stream is up (after startup or an outage).
 * @category Mesh
 */
export interface ConnectedEvent {
  /** The control-plane URL. */
  readonly url: string;
  /** The replica serving the stream (from `hello`). */
  readonly server: string;
}

/**
 * Event `disconnected`: the control plane is unreachable; the last good config keeps serving.
 * @category Mesh
 */
export interface DisconnectedEvent {
  readonly error: MeshletError;
}

/** What the source drives once the mesh exists. */
export interface SourceSink {
  install(snapshot: Snapshot): void;
  emit(event: 'config' | 'rejected' | 'connected' | 'disconnected', payload: object): void;
  /** What to report to the status: the certificate in use and the inbound TLS counts. */
  report?(): ReportContents;
}
