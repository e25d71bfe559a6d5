/**
 * A service's traffic distribution, as istiod reads it (`model.GetTrafficDistribution`) and turns
 * it into locality load balancing (`loadbalancer.GetLocalityLbSetting`): a Kubernetes Service's
 * `spec.trafficDistribution` (`PreferClose` and `PreferSameZone` prefer the same zone,
 * `PreferSameNode` the same node), else the `networking.istio.io/traffic-distribution`
 * annotation (any case; also on a ServiceEntry). When the DestinationRule has no
 * `localityLbSetting`, the cluster prefers endpoints by `failoverPriority` on the topology labels
 * — and, unlike a DestinationRule's failover, without needing outlier detection.
 *
 * @module
 */
import { NETWORK_LABEL, REGION_LABEL, SUBZONE_LABEL, ZONE_LABEL } from './topology.ts';
import type { LocalityLoadBalancerSetting } from './types/destination-rule.ts';

/** The annotation Istio reads when the Service does not set `spec.trafficDistribution`. */
export const TRAFFIC_DISTRIBUTION_ANNOTATION = 'networking.istio.io/traffic-distribution';
/** `kubernetes.io/hostname`: the node, for `PreferSameNode`. */
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';

/** What a service prefers. */
export type TrafficDistribution = 'PreferSameZone' | 'PreferSameNode';

/** The values Kubernetes accepts in `spec.trafficDistribution`. */
export const KUBERNETES_TRAFFIC_DISTRIBUTIONS: readonly string[] = ['PreferClose', 'PreferSameZone', 'PreferSameNode'];

/** A `spec.trafficDistribution` value (exact) or annotation value (any case) → what it prefers; undefined when unknown. */
export function parseTrafficDistribution(v: string, caseless: boolean): TrafficDistribution | undefined {
  const s = caseless ? v.toLowerCase() : v;
  const is = (name: string) => s === (caseless ? name.toLowerCase() : name);
  if (is('PreferClose') || is('PreferSameZone')) return 'PreferSameZone';
  if (is('PreferSameNode')) return 'PreferSameNode';
  return undefined;
}

/** The distribution a Service or ServiceEntry asks for (the spec field wins; an unknown value is none). */
export function trafficDistributionOf(resource: { readonly kind: string; readonly metadata?: { readonly annotations?: Readonly<Record<string, string>> }; readonly spec: unknown }): TrafficDistribution | undefined {
  if (resource.kind === 'Service') {
    const v = (resource.spec as { trafficDistribution?: unknown }).trafficDistribution;
    const fromSpec = typeof v === 'string' ? parseTrafficDistribution(v, false) : undefined;
    if (fromSpec !== undefined) return fromSpec;
  }
  const a = resource.metadata?.annotations?.[TRAFFIC_DISTRIBUTION_ANNOTATION];
  return typeof a === 'string' ? parseTrafficDistribution(a, true) : undefined;
}

const SAME_ZONE: LocalityLoadBalancerSetting = Object.freeze({ enabled: true, failoverPriority: Object.freeze([NETWORK_LABEL, REGION_LABEL, ZONE_LABEL]) as string[] });
const SAME_NODE: LocalityLoadBalancerSetting = Object.freeze({ enabled: true, failoverPriority: Object.freeze([NETWORK_LABEL, REGION_LABEL, ZONE_LABEL, SUBZONE_LABEL, HOSTNAME_LABEL]) as string[] });

/** The locality setting istiod makes of a distribution. */
export function localityFor(d: TrafficDistribution): LocalityLoadBalancerSetting {
  return d === 'PreferSameNode' ? SAME_NODE : SAME_ZONE;
}
