/**
 * Kubernetes core `v1` Service, the parts meshlet reads (as Istio's Kubernetes registry
 * does) plus the fields a real (e.g. `kubectl get -o yaml`) Service carries, accepted as is.
 *
 * @module
 */

/** A port of a Service. */
export interface KubeServicePort {
  /** Required when the Service has more than one port; its prefix may name the protocol (`http-web`). */
  name?: string;
  /** `TCP` (the default), `UDP` or `SCTP`. */
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  /** The application protocol; Istio reads it before the port name (`http`, `grpc`, `kubernetes.io/h2c`, …). */
  appProtocol?: string;
  port: number;
  /** The workload's port: a number, or the name of a workload port. @defaultValue `port` */
  targetPort?: number | string;
  /** Allocated by Kubernetes for NodePort and LoadBalancer Services; not used by meshlet. */
  nodePort?: number;
}

/** `Service.spec`. Fields meshlet does not use are kept as given. */
export interface KubeServiceSpec {
  ports?: KubeServicePort[];
  /** Picks the WorkloadEntries (and registered workloads) of the Service's namespace by label. */
  selector?: Record<string, string>;
  /** `None` makes a headless Service (no load balancing: calls go to the address they name). */
  clusterIP?: string;
  clusterIPs?: string[];
  /** @defaultValue ClusterIP */
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  /** The DNS name an `ExternalName` Service stands for. */
  externalName?: string;
  externalIPs?: string[];
  sessionAffinity?: 'None' | 'ClientIP';
  sessionAffinityConfig?: unknown;
  loadBalancerIP?: string;
  loadBalancerSourceRanges?: string[];
  loadBalancerClass?: string;
  externalTrafficPolicy?: 'Cluster' | 'Local';
  internalTrafficPolicy?: 'Cluster' | 'Local';
  healthCheckNodePort?: number;
  publishNotReadyAddresses?: boolean;
  ipFamilies?: ('IPv4' | 'IPv6')[];
  ipFamilyPolicy?: 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
  allocateLoadBalancerNodePorts?: boolean;
  trafficDistribution?: string;
}
