/**
 * Load-balancer pickers: {@link createPicker} turns a DestinationRule's
 * `LoadBalancerSettings` into a {@link Picker} over a cluster's {@link HostSet}, with Istio's
 * semantics:
 *
 * | settings | picker |
 * |---|---|
 * | absent, `UNSPECIFIED`, `LEAST_CONN`, `LEAST_REQUEST` | LEAST_REQUEST: P2C, weighted when weights differ or hosts warm up |
 * | `ROUND_ROBIN` | ROUND_ROBIN: rotation, EDF when weighted |
 * | `RANDOM` | RANDOM: uniform (Envoy ignores endpoint weights here) |
 * | `PASSTHROUGH` | PASSTHROUGH: like RANDOM, no locality; the data plane dials the original address |
 * | `consistentHash` | RING_HASH (default; `ringHash.minimumRingSize`, default 1024) or MAGLEV (`maglev.tableSize`, default 65537) |
 *
 * Locality settings (see {@link planLocality}) and warmup (see {@link slowStartFrom}) apply
 * on top. Ejected hosts are not returned unless `panicThreshold` (Istio's
 * `outlierDetection.minHealthPercent`) puts a tier in panic: with Istio's default 0, with
 * every host ejected the answer is undefined (503 UH).
 *
 * @module
 */
import type { Clock, Random } from '../../core/clock.ts';
import type { LoadBalancerSettings, LocalityLoadBalancerSetting } from '../../config/types/destination-rule.ts';
import type { Algorithm } from './algorithm.ts';
import { ClusterPicker, type Picker } from './cluster-picker.ts';
import type { HostSet, HostState } from './host.ts';
import { LeastRequest } from './least-request.ts';
import { type LocalityClient, type LocalityPlan, planLocality } from './locality.ts';
import { type ResolvedLoadBalancer, resolveLoadBalancer } from './lb-settings.ts';
import { Maglev } from './maglev.ts';
import { RandomChoice } from './random.ts';
import { RingHash } from './ring-hash.ts';
import { RoundRobin } from './round-robin.ts';

export type { Picker, PickRequest } from './cluster-picker.ts';

/** What a picker needs from the mesh and the client workload. */
export interface PickerContext {
  /** Draws (P2C, random, round-robin start, tiers, localities). */
  random: Random;
  /** For warmup. */
  clock: Clock;
  /** client locality 'region/zone/subzone' or '' */
  locality: string;
  /** MeshConfig's `localityLbSetting`: used when neither the DestinationRule nor a `trafficDistribution` gives one (istiod's GetEffectiveLbSetting). */
  meshLocality?: LocalityLoadBalancerSetting | undefined;
  /** client workload labels (for failoverPriority) */
  labels: Readonly<Record<string, string>>;
  /** true when the destination has outlierDetection (Istio applies locality failover / failoverPriority only then; `distribute` applies regardless) */
  outlierDetection: boolean;
  /** Envoy's healthy panic threshold, in percent: Istio's `outlierDetection.minHealthPercent` (0 or absent = no panic mode). */
  panicThreshold?: number;
}

export { pickerKind, resolveLoadBalancer, type ResolvedLoadBalancer } from './lb-settings.ts';

/**
 * Builds the picker for one cluster.
 * @param set the cluster's hosts; the picker watches `set.healthVersion`
 * @param settings the effective `loadBalancer` block (undefined = Istio defaults)
 * @param ctx randomness, clock and the client's locality and labels
 * @example
 * const picker = createPicker(set, { simple: 'ROUND_ROBIN' }, ctx);
 * const host = picker.pick({ hash: -1, avoid: undefined });
 */
export function createPicker(set: HostSet, settings: LoadBalancerSettings | undefined, ctx: PickerContext): Picker {
  return pickerFor(set, resolveLoadBalancer(settings), ctx);
}

/**
 * Builds the picker for one cluster from its compiled load-balancer settings (a snapshot's
 * `cluster.settings.loadBalancer`).
 */
export function pickerFor(set: HostSet, lb: ResolvedLoadBalancer, ctx: PickerContext): Picker {
  const { kind, slowStart, tableSize } = lb;
  let newAlgorithm: () => Algorithm;
  switch (kind) {
    case 'MAGLEV':
      newAlgorithm = () => new Maglev(tableSize as number);
      break;
    case 'RING_HASH':
      newAlgorithm = () => new RingHash(tableSize as number);
      break;
    case 'ROUND_ROBIN':
      newAlgorithm = () => new RoundRobin(ctx.random, ctx.clock, slowStart);
      break;
    case 'RANDOM':
    case 'PASSTHROUGH':
      newAlgorithm = () => new RandomChoice(ctx.random);
      break;
    default:
      newAlgorithm = () => new LeastRequest(ctx.random, ctx.clock, slowStart);
  }
  const plan = clusterLocalityPlan(set.hosts, lb, ctx);
  return new ClusterPicker({ kind, set, plan, hashed: lb.hashKey !== undefined, newAlgorithm, random: ctx.random, extra: lb.description, panicThreshold: ctx.panicThreshold });
}

/**
 * The locality plan of a cluster's hosts: its setting, or the service's traffic distribution
 * (whose failover needs no outlier detection, and whose description says where it comes from).
 */
export function clusterLocalityPlan(hosts: readonly HostState[], lb: ResolvedLoadBalancer, client: LocalityClient & { readonly meshLocality?: LocalityLoadBalancerSetting | undefined }): LocalityPlan {
  const td = lb.trafficDistribution;
  // Resolution order as istiod's: DestinationRule > the Service's trafficDistribution > MeshConfig (lb.locality holds the first two).
  const plan = planLocality(hosts, lb.locality ?? client.meshLocality, { ...client, outlierDetection: client.outlierDetection || td !== undefined });
  return td === undefined || plan.description === '' ? plan : { ...plan, description: `trafficDistribution ${td}: ${plan.description}` };
}
