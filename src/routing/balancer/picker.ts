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
 * on top. Ejected hosts are never returned: Istio sets the panic threshold to 0, so with
 * every host ejected the answer is undefined (503 UH).
 *
 * @module
 */
import type { Clock, Random } from '../../core/clock.ts';
import type { LoadBalancerSettings } from '../../config/types/destination-rule.ts';
import type { Algorithm } from './algorithm.ts';
import { ClusterPicker, type Picker } from './cluster-picker.ts';
import type { HostSet } from './host.ts';
import { LeastRequest } from './least-request.ts';
import { planLocality } from './locality.ts';
import { DEFAULT_MAGLEV_TABLE_SIZE, Maglev } from './maglev.ts';
import { RandomChoice } from './random.ts';
import { DEFAULT_MIN_RING_SIZE, RingHash } from './ring-hash.ts';
import { RoundRobin } from './round-robin.ts';
import { describeSlowStart, slowStartFrom } from './warmup.ts';

export type { Picker, PickRequest } from './cluster-picker.ts';

/** What a picker needs from the mesh and the client workload. */
export interface PickerContext {
  /** Draws (P2C, random, round-robin start, tiers, localities). */
  random: Random;
  /** For warmup. */
  clock: Clock;
  /** client locality 'region/zone/subzone' or '' */
  locality: string;
  /** client workload labels (for failoverPriority) */
  labels: Readonly<Record<string, string>>;
  /** true when the destination has outlierDetection (Istio applies locality failover / failoverPriority only then; `distribute` applies regardless) */
  outlierDetection: boolean;
}

/** The picker kind for `settings`: the algorithm Istio configures Envoy with. */
export function pickerKind(settings: LoadBalancerSettings | undefined): string {
  const ch = settings?.consistentHash;
  if (ch !== undefined) return ch.maglev !== undefined ? 'MAGLEV' : 'RING_HASH';
  switch (settings?.simple) {
    case 'ROUND_ROBIN':
    case 'RANDOM':
    case 'PASSTHROUGH':
      return settings.simple;
    default:
      return 'LEAST_REQUEST';
  }
}

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
  const kind = pickerKind(settings);
  const ch = settings?.consistentHash;
  const slowStart = kind === 'ROUND_ROBIN' || kind === 'LEAST_REQUEST' ? slowStartFrom(settings) : undefined;
  let newAlgorithm: () => Algorithm;
  let extra = slowStart === undefined ? '' : describeSlowStart(slowStart);
  switch (kind) {
    case 'MAGLEV': {
      const size = ch?.maglev?.tableSize ?? DEFAULT_MAGLEV_TABLE_SIZE;
      newAlgorithm = () => new Maglev(size);
      break;
    }
    case 'RING_HASH': {
      // 0 means unset (protobuf), so Envoy's default applies.
      const size = ch?.ringHash?.minimumRingSize || ch?.minimumRingSize || DEFAULT_MIN_RING_SIZE;
      newAlgorithm = () => new RingHash(size);
      break;
    }
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
  if (ch !== undefined) extra = hashKeyDescription(ch);
  // An original-destination cluster has no locality structure.
  const locality = kind === 'PASSTHROUGH' ? { enabled: false } : settings?.localityLbSetting;
  const plan = planLocality(set.hosts, locality, ctx);
  return new ClusterPicker({ kind, set, plan, hashed: ch !== undefined, newAlgorithm, random: ctx.random, extra });
}

function hashKeyDescription(ch: NonNullable<LoadBalancerSettings['consistentHash']>): string {
  if (ch.httpHeaderName !== undefined) return `hash on header ${ch.httpHeaderName}`;
  if (ch.httpCookie !== undefined) return `hash on cookie ${ch.httpCookie.name}`;
  if (ch.httpQueryParameterName !== undefined) return `hash on query ${ch.httpQueryParameterName}`;
  if (ch.useSourceIp === true) return 'hash on source IP';
  return '';
}
