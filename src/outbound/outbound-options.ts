/**
 * What the outbound pipeline (`Outbound`, pipeline.ts) needs from the mesh and the adapter, and the
 * events it reports.
 *
 * @module
 */
import type { Clock, Random } from '../core/clock.ts';
import type { WorkloadIdentity } from '../core/observe.ts';
import type { PathNormalization } from '../core/path-normalization.ts';
import type { LocalityLoadBalancerSetting } from '../config/types/destination-rule.ts';
import type { RateLimitServiceClient } from '../policies/rate-limit/rls-client.ts';
import type { TcpKeepalive } from '../routing/cluster-settings.ts';
import type { DnsOptions } from './dns-target.ts';
import type { Transports } from './transport.ts';

/**
 * An event the data plane reports (ejections, returns).
 * @category Mesh
 */
export interface OutboundEvent {
  readonly type: 'ejected' | 'returned';
  readonly cluster: string;
  readonly endpoint: string;
  readonly reason: string;
  /** For `ejected`: when the endpoint returns, on the mesh clock. */
  readonly untilMs: number;
}

/** Everything the pipeline needs from the mesh and the adapter. */
export interface OutboundOptions {
  readonly clock: Clock;
  /** Calls the rate limit services of global rate limit filters. @defaultValue none: their calls fail */
  readonly rls?: RateLimitServiceClient | undefined;
  readonly random: Random;
  /** This workload's locality (`region/zone/subzone`), or ''. */
  readonly locality: string;
  /** MeshConfig's `localityLbSetting` (undefined: Istio's default, enabled with no rules). */
  readonly localityLbSetting?: LocalityLoadBalancerSetting | undefined;
  /** MeshConfig's `connectTimeout`, for clusters whose DestinationRule sets none (undefined: Istio's 10 s). */
  readonly connectTimeoutMs?: number | undefined;
  /** MeshConfig's `tcpKeepalive` (whole seconds), under the fields a DestinationRule's `tcp.tcpKeepalive` sets. */
  readonly tcpKeepalive?: TcpKeepalive | undefined;
  readonly labels: Readonly<Record<string, string>>;
  /** This workload's IP, the key of `consistentHash.useSourceIp`. */
  readonly sourceIp: string;
  readonly outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Longest upstream `Retry-After` honoured. */
  readonly maxRetryAfterMs: number;
  /** Mirrored requests in flight at most. */
  readonly maxMirrorsInFlight: number;
  /** The transports, by the name an Exchange carries in `transport` (`http`, `grpc`). */
  readonly transports: Transports;
  /** The mesh's identity, named in what is published on the observation channels. */
  readonly workload?: WorkloadIdentity;
  /** The mesh's root namespace (its EnvoyFilters apply mesh-wide). @defaultValue 'istio-system' */
  readonly rootNamespace?: string;
  /** Attempts carry `x-envoy-attempt-count` (Istio's `proxyHeaders.attemptCount`). @defaultValue true */
  readonly attemptCount?: boolean;
  /** Rewritten calls carry `x-envoy-original-path` (Istio's `proxyHeaders.envoyDebugHeaders`). @defaultValue true */
  readonly envoyHeaders?: boolean;
  /** A call's own `x-envoy-retry-on`, `x-envoy-upstream-rq-timeout-ms`, … are honoured, not removed (core/clean-internal-headers.ts). @defaultValue false */
  readonly trustEnvoyRequestHeaders?: boolean;
  /** MeshConfig `pathNormalization`, applied to calls to mesh hosts before routing. @defaultValue 'NONE' */
  readonly pathNormalization?: PathNormalization | undefined;
  /** How `resolution: DNS` names are resolved (STRICT_DNS). @defaultValue the OS resolver, refreshed every 60 s */
  readonly dns?: DnsOptions | undefined;
  onEvent(e: OutboundEvent): void;
  /** Where a call to a mesh service made with node:http (not through the mesh) is reported; unset: not watched. */
  readonly warn?: ((message: string) => void) | undefined;
}
