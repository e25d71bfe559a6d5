/**
 * networking.istio.io DestinationRule types (re-exported by `networking.ts`).
 *
 * @module
 */
import type { LabelSelector, PortSelector } from './common.ts';

/** `DestinationRule.spec`. */
export interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: TrafficPolicy;
  subsets?: Subset[];
  exportTo?: string[];
  /** Apply only to these client workloads (same namespace); Istio's `matchLabels` selector. */
  workloadSelector?: LabelSelector;
}

/** A named subset of a service's endpoints. */
export interface Subset {
  name: string;
  labels?: Record<string, string>;
  trafficPolicy?: TrafficPolicy;
}

/** Policies applied to traffic towards a destination. */
export interface TrafficPolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
  portLevelSettings?: PortTrafficPolicy[];
  tunnel?: TunnelSettings;
  proxyProtocol?: ProxyProtocol;
  retryBudget?: RetryBudget;
}

/** Per-port policy; replaces the destination-level blocks for that port. */
export interface PortTrafficPolicy {
  port?: PortSelector;
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

/** Load-balancing settings. */
export interface LoadBalancerSettings {
  /** @defaultValue LEAST_REQUEST (what Istio picks for UNSPECIFIED) */
  simple?: 'UNSPECIFIED' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_REQUEST';
  consistentHash?: ConsistentHashLB;
  localityLbSetting?: LocalityLoadBalancerSetting;
  zoneAwareLbSetting?: ZoneAwareLoadBalancerSetting;
  warmupDurationSecs?: string;
  warmup?: WarmupConfiguration;
  /** Utilization-based balancing on backend-reported ORCA metrics: not supported by meshlet. */
  backendUtilization?: BackendUtilizationLB;
}

/** Utilization-based load balancing (ORCA), as Istio's API names it. */
export interface BackendUtilizationLB {
  errorUtilizationPenaltyPercent?: number;
  metricNamesForComputingUtilization?: string[];
  weightExpirationPeriod?: string;
  weightStabilizationPeriod?: string;
  weightUpdatePeriod?: string;
}

/** Consistent-hash load balancing (soft affinity). */
export interface ConsistentHashLB {
  httpHeaderName?: string;
  httpCookie?: HTTPCookie;
  useSourceIp?: boolean;
  httpQueryParameterName?: string;
  ringHash?: { minimumRingSize?: number };
  maglev?: { tableSize?: number };
  /** Deprecated; use `ringHash.minimumRingSize`. */
  minimumRingSize?: number;
}

/** Cookie used as a hash key; generated with `ttl` when missing. */
export interface HTTPCookie {
  name: string;
  path?: string;
  ttl?: string;
  attributes?: { name: string; value?: string }[];
}

/** Locality-aware load balancing. */
export interface LocalityLoadBalancerSetting {
  distribute?: { from?: string; to?: Record<string, number> }[];
  failover?: { from?: string; to?: string }[];
  failoverPriority?: string[];
  enabled?: boolean;
}

/** Zone-aware load balancing (Istio 1.31-alpha). */
export interface ZoneAwareLoadBalancerSetting {
  enabled?: boolean;
  failover?: { from?: string; to?: string }[];
  failoverPriority?: string[];
  minClusterSize?: number;
}

/** Slow start for new endpoints. */
export interface WarmupConfiguration {
  duration: string;
  /** @defaultValue 10 */
  minimumPercent?: number;
  /** @defaultValue 1.0 */
  aggression?: number;
}

/** Connection-pool (circuit-breaking) settings. */
export interface ConnectionPoolSettings {
  tcp?: TCPSettings;
  http?: HTTPSettings;
}

/** TCP-level pool settings. */
export interface TCPSettings {
  maxConnections?: number;
  /** @defaultValue "10s" */
  connectTimeout?: string;
  tcpKeepalive?: { probes?: number; time?: string; interval?: string };
  maxConnectionDuration?: string;
  /** @defaultValue "1h" */
  idleTimeout?: string;
}

/** HTTP-level pool settings. */
export interface HTTPSettings {
  http1MaxPendingRequests?: number;
  http2MaxRequests?: number;
  maxRequestsPerConnection?: number;
  maxRetries?: number;
  /** @defaultValue "1h" */
  idleTimeout?: string;
  h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  useClientProtocol?: boolean;
  maxConcurrentStreams?: number;
  http2KeepAlive?: { interval?: string; timeout?: string };
}

/** Per-endpoint outlier detection (passive health checking). */
export interface OutlierDetection {
  /** Deprecated; use consecutive5xxErrors. */
  consecutiveErrors?: number;
  splitExternalLocalOriginErrors?: boolean;
  consecutiveLocalOriginFailures?: number;
  consecutiveGatewayErrors?: number;
  /** @defaultValue 5 */
  consecutive5xxErrors?: number;
  /** @defaultValue "10s" */
  interval?: string;
  /** @defaultValue "30s" */
  baseEjectionTime?: string;
  /** @defaultValue 10 */
  maxEjectionPercent?: number;
  /** @defaultValue 0 */
  minHealthPercent?: number;
  outlierDetectionHttpErrorCodes?: number[];
}

/** Client-side TLS towards the destination. */
export interface ClientTLSSettings {
  mode?: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  clientCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  credentialName?: string;
  subjectAltNames?: string[];
  sni?: string;
  insecureSkipVerify?: boolean;
  caCrl?: string;
}

/** Tunnel settings (TCP/TLS only). */
export interface TunnelSettings {
  protocol?: string;
  targetHost: string;
  targetPort: number;
}

/** PROXY protocol towards the upstream. */
export interface ProxyProtocol {
  version?: 'V1' | 'V2';
}

/** Retry budget (Istio 1.27): retries may be at most `percent` of active requests. */
export interface RetryBudget {
  /** @defaultValue 20 */
  percent?: number;
  /** @defaultValue 3 */
  minRetryConcurrency?: number;
  /** The window in which requests count towards the budget: not supported by meshlet (it counts active requests). */
  budgetInterval?: string;
}
