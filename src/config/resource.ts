/**
 * The resource envelope shared by every kind meshlet reads, and the table of kinds and
 * API versions it accepts.
 *
 * @module
 */
import type { ObjectMeta } from './types/common.ts';
import type { SourceRef } from './issues.ts';
import type { KubeServiceSpec } from './types/kubernetes.ts';
import type { EnvoyFilterSpec } from './types/envoy-filter.ts';
import type { SidecarSpec } from './types/sidecar.ts';
import type { DestinationRuleSpec, ServiceEntrySpec, VirtualServiceSpec, WorkloadEntrySpec, WorkloadGroupSpec } from './types/networking.ts';
import type { AuthorizationPolicySpec, PeerAuthenticationSpec, RequestAuthenticationSpec } from './types/security.ts';
import type { TelemetrySpec } from './types/telemetry.ts';
import type { GatewayGRPCRouteSpec, GatewayHTTPRouteSpec } from './gateway-api/types.ts';

/**
 * The kinds meshlet reads, mapped to their spec types.
 * @category Config
 */
export interface SpecByKind {
  VirtualService: VirtualServiceSpec;
  DestinationRule: DestinationRuleSpec;
  ServiceEntry: ServiceEntrySpec;
  WorkloadEntry: WorkloadEntrySpec;
  WorkloadGroup: WorkloadGroupSpec;
  /** Kubernetes core `v1` Service, read as Istio's Kubernetes registry reads it. */
  Service: KubeServiceSpec;
  PeerAuthentication: PeerAuthenticationSpec;
  RequestAuthentication: RequestAuthenticationSpec;
  AuthorizationPolicy: AuthorizationPolicySpec;
  Telemetry: TelemetrySpec;
  /** Only the local rate limit EnvoyFilters of Istio's rate-limit task; other EnvoyFilters are skipped when loaded. */
  EnvoyFilter: EnvoyFilterSpec;
  /** Egress scoping and the outbound traffic policy of the workloads it selects. */
  Sidecar: SidecarSpec;
  /** Gateway API HTTPRoute with a Service or ServiceEntry parent (mesh routing, GAMMA); routed as the VirtualServices istiod makes of it. */
  HTTPRoute: GatewayHTTPRouteSpec;
  /** Gateway API GRPCRoute with a Service or ServiceEntry parent (mesh routing, GAMMA). */
  GRPCRoute: GatewayGRPCRouteSpec;
}

/**
 * A kind meshlet reads.
 * @category Config
 */
export type Kind = keyof SpecByKind;

/**
 * API group (`''` is Kubernetes' core group, written `apiVersion: v1`) and the versions accepted, per kind.
 * @category Config
 */
/** Istio's default root namespace (MeshConfig `rootNamespace`): its policies and defaults apply mesh-wide. */
export const DEFAULT_ROOT_NAMESPACE = 'istio-system';

export const KIND_VERSIONS: Readonly<Record<Kind, { group: string; versions: readonly string[] }>> = {
  VirtualService: { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'] },
  DestinationRule: { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'] },
  ServiceEntry: { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'] },
  WorkloadEntry: { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'] },
  WorkloadGroup: { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'] },
  Service: { group: '', versions: ['v1'] },
  PeerAuthentication: { group: 'security.istio.io', versions: ['v1', 'v1beta1'] },
  RequestAuthentication: { group: 'security.istio.io', versions: ['v1', 'v1beta1'] },
  AuthorizationPolicy: { group: 'security.istio.io', versions: ['v1', 'v1beta1'] },
  Telemetry: { group: 'telemetry.istio.io', versions: ['v1', 'v1alpha1'] },
  EnvoyFilter: { group: 'networking.istio.io', versions: ['v1alpha3'] },
  Sidecar: { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'] },
  HTTPRoute: { group: 'gateway.networking.k8s.io', versions: ['v1', 'v1beta1', 'v1alpha2'] },
  GRPCRoute: { group: 'gateway.networking.k8s.io', versions: ['v1', 'v1alpha2'] },
};

/** `group/version`, or just `version` for the core group. */
export function apiVersionOf(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

/**
 * A validated resource of kind `K`.
 * @category Config
 */
export interface Resource<K extends Kind = Kind> {
  readonly apiVersion: string;
  readonly kind: K;
  /** Metadata, with `namespace` always filled in. */
  readonly metadata: ObjectMeta & { readonly namespace: string };
  readonly spec: SpecByKind[K];
  /**
   * The part of the resource's `status` meshlet reads: a WorkloadEntry's conditions (Istio's
   * `IstioStatus`: their `Healthy` condition decides whether a health-checked entry is an
   * endpoint), and a Service's load balancer ingress addresses (when it has some).
   */
  readonly status?: ResourceStatus;
  /** Where it came from. */
  readonly source: SourceRef;
  /** `Kind namespace/name`, used in messages. */
  readonly ref: string;
  /** Position in load order; breaks ties where Istio uses creation time. */
  readonly order: number;
}

/**
 * The part of a resource's `status` meshlet reads: its conditions' types and statuses.
 * @category Config
 */
export interface ResourceStatus {
  /** `{ type: 'Healthy', status: 'True' }` and the like, in their order. */
  readonly conditions: readonly { readonly type: string; readonly status: string }[];
  /**
   * A Service's `status.loadBalancer.ingress` (its load balancer's addresses: `ip`, or `hostname`
   * such as an AWS ELB's name), kept when it has any: an east-west gateway Service's addresses.
   */
  readonly loadBalancer?: { readonly ingress: readonly LoadBalancerIngress[] };
}

/**
 * One entry of a Service's `status.loadBalancer.ingress`.
 * @category Config
 */
export interface LoadBalancerIngress {
  readonly ip?: string;
  readonly hostname?: string;
}

/**
 * Any validated resource.
 * @category Config
 */
export type AnyResource = { [K in Kind]: Resource<K> }[Kind];

/** Narrows a resource list to one kind. */
export function ofKind<K extends Kind>(resources: readonly AnyResource[], kind: K): Resource<K>[] {
  return resources.filter((r): r is Resource<K> & AnyResource => r.kind === kind) as Resource<K>[];
}

/**
 * Istio's conflict order: oldest `creationTimestamp` first; at the same time, by name, then
 * namespace (istiod's `configCompareByCreationTime`: Kubernetes keeps seconds, so ties are
 * common); resources without a timestamp after those with one, in load order.
 */
export function byAge(a: AnyResource | Resource, b: AnyResource | Resource): number {
  const ta = a.metadata.creationTimestamp;
  const tb = b.metadata.creationTimestamp;
  if (ta !== undefined && tb !== undefined) {
    const d = Date.parse(ta) - Date.parse(tb);
    if (d !== 0 && !Number.isNaN(d)) return d;
    if (a.metadata.name !== b.metadata.name) return a.metadata.name < b.metadata.name ? -1 : 1;
    if (a.metadata.namespace !== b.metadata.namespace) return a.metadata.namespace < b.metadata.namespace ? -1 : 1;
    return a.order - b.order;
  }
  if (ta !== undefined && tb === undefined) return -1;
  if (ta === undefined && tb !== undefined) return 1;
  return a.order - b.order;
}
