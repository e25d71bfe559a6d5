/**
 * The options of a compile (`compileSnapshot`): the mesh's settings each snapshot is compiled with.
 *
 * @module
 */
import type { NetworkSettings } from '../config/network-topology.ts';
import type { Resource } from '../config/resource.ts';
import type { HTTPRetry } from '../config/types/networking.ts';
import type { CompileCache } from './compile-cache.ts';
import type { TcpKeepalive } from './cluster-settings.ts';

/**
 * Options for `compileSnapshot`.
 * @category Snapshot
 */
export interface CompileOptions {
  /** Version label; defaults to a hash of the resources' content. */
  readonly version?: string | undefined;
  /** Extra WorkloadEntries (registered workloads) to add to the registry. */
  readonly extraWorkloads?: readonly Resource<'WorkloadEntry'>[] | undefined;
  /**
   * The mesh's root namespace: its selector-less Sidecar applies to workloads whose namespace has none.
   * @defaultValue 'istio-system'
   */
  readonly rootNamespace?: string | undefined;
  /**
   * The mesh's network and MeshNetworks: endpoints on other networks go through their east-west
   * gateways (`routing/network-filter.ts`). Absent: every endpoint is dialled directly.
   */
  readonly networks?: NetworkSettings | undefined;
  /**
   * MeshConfig's `defaultHttpRetryPolicy`: the retry policy of every HTTP and gRPC route without
   * `retries` (VirtualService rules, Gateway API routes, the default route of a service without a
   * VirtualService). Validated by the caller (`createMesh` refuses a bad one). Absent: Istio's
   * default (2 retries on connect-failure, refused-stream, unavailable, cancelled; no status code).
   */
  readonly defaultHttpRetryPolicy?: HTTPRetry | undefined;
  /**
   * The mesh's `outboundTrafficPolicy` mode and `connectTimeout`, carried in the snapshot
   * (the snapshot's `meshSettings`) so that a change applies with it: a mesh fed by a control
   * plane compiles them in from the control plane's MeshConfig under its own options. Absent: the
   * mesh's options apply (createMesh's `outboundTrafficPolicy`, `connectTimeoutMs`).
   */
  readonly meshSettings?: MeshWideSettings | undefined;
  /** @internal What the previous compile for this workload made, reused where unchanged (see `CompileCache`). */
  readonly cache?: CompileCache | undefined;
}

/**
 * Mesh-wide settings a snapshot carries (see {@link CompileOptions.meshSettings}).
 * @category Snapshot
 */
export interface MeshWideSettings {
  /** MeshConfig's `outboundTrafficPolicy.mode`: what calls to hosts outside the registry get when no Sidecar sets one. */
  readonly outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY' | undefined;
  /** MeshConfig's `connectTimeout`, for clusters whose DestinationRule sets no `tcp.connectTimeout`. */
  readonly connectTimeoutMs?: number | undefined;
  /**
   * MeshConfig's `tcpKeepalive` (whole seconds, as istiod writes it), for every cluster's new connections under
   * the fields a DestinationRule's `tcp.tcpKeepalive` sets, and the PassthroughCluster's; `null`: none; absent: the mesh's option applies.
   */
  readonly tcpKeepalive?: TcpKeepalive | null | undefined;
  /** Where each setting came from, for explain and the admin views (e.g. `control plane MeshConfig /etc/mesh.yaml`). */
  readonly origin?: Readonly<Record<string, string>> | undefined;
}
