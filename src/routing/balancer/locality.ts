/**
 * Locality load balancing as Istio configures Envoy (`loadbalancer.ApplyLocalityLoadBalancer`
 * and `applyLocalityLoadBalancer` in cluster_traffic_policy.go): turns a
 * `localityLbSetting` plus the client's locality and labels into priority tiers of locality
 * groups. This runs when a picker is built, never per request.
 *
 * - `enabled: false` → one tier, no locality behaviour.
 * - `distribute` set → one tier of locality groups weighted by the first rule whose `from`
 *   matches the client; a `to` pattern that matches several localities splits its share by
 *   their endpoint weight (rounded up); localities no `to` names get no traffic. When no
 *   rule matches, every locality stays, weighted by its endpoint weight. Failover is then
 *   never applied (Istio: one of distribute or failover).
 * - Otherwise, only with outlier detection: tiers P0 same region/zone/subzone, P1 same
 *   region/zone, P2 same region, P3 other regions, P4 regions other than the `to` of the first
 *   `failover` entry whose `from` is the client's region (a client without a locality has the
 *   empty one, so endpoints without a locality are its P0 and the rest its next tier). With `failoverPriority` the tier is
 *   `n − (number of leading labels that match)` instead (a leading network label is preferred,
 *   not required: another network adds n), combined as `tier·5 + locality tier`
 *   when `failover` is also set. Empty tiers are dropped. Envoy's locality-weighted balancing
 *   is on inside tiers only when `failover` or `failoverPriority` is explicitly set.
 *
 * @module
 */
import { NETWORK_LABEL, REGION_LABEL, splitLocality, SUBZONE_LABEL, ZONE_LABEL } from '../../config/topology.ts';
import type { LocalityLoadBalancerSetting } from '../../config/types/destination-rule.ts';
import type { HostState } from './host.ts';

/** Hosts of one locality inside a tier, with their locality weight. */
export interface LocalityGroup {
  /** The endpoints' locality, `region/zone/subzone` (may be ''). */
  readonly locality: string;
  /** The group's hosts, healthy or not. */
  readonly hosts: readonly HostState[];
  /** Locality weight (Envoy `LocalityLbEndpoints.load_balancing_weight`); used only when the plan is locality-weighted. */
  readonly weight: number;
}

/** One priority level: its locality groups. */
export interface Tier {
  /** The tier's locality groups, in endpoint order of first appearance. */
  readonly groups: readonly LocalityGroup[];
}

/** The result of {@link planLocality}. */
export interface LocalityPlan {
  /** Priority tiers, highest priority first; at least one. */
  readonly tiers: readonly Tier[];
  /** Whether Envoy's locality-weighted balancing applies inside each tier. */
  readonly localityWeighted: boolean;
  /** Compact description for `toString()`, '' when locality plays no part. */
  readonly description: string;
}

/** The client side of locality balancing. */
export interface LocalityClient {
  /** Client locality `region/zone/subzone`, or ''. */
  readonly locality: string;
  /** Client workload labels (for `failoverPriority`). */
  readonly labels: Readonly<Record<string, string>>;
  /** Whether the destination has outlier detection (failover needs it). */
  readonly outlierDetection: boolean;
}

/** Topology labels Istio derives from a locality (`AugmentLabels`), usable in `failoverPriority`. */
export const TOPOLOGY_LABELS = Object.freeze({ region: REGION_LABEL, zone: ZONE_LABEL, subzone: SUBZONE_LABEL });

/**
 * Istio's `LocalityMatch`: each part of the pattern matches when it is `*`, equal, or (for
 * zone and subzone) absent. So `us-east`, `us-east/*` and `us-east/*\/*` all match every
 * locality in region us-east, and `*` matches everything.
 */
export function localityMatches(locality: string, pattern: string): boolean {
  const [r, z, s] = splitLocality(locality);
  const [pr, pz, ps] = splitLocality(pattern);
  return (pr === '*' || pr === r) && (pz === '*' || pz === '' || pz === z) && (ps === '*' || ps === '' || ps === s);
}

/** Istio's `LbPriority`: 0 same subzone, 1 same zone, 2 same region, 3 otherwise. */
export function localityPriority(client: string, endpoint: string): number {
  const [cr, cz, cs] = splitLocality(client);
  const [er, ez, es] = splitLocality(endpoint);
  if (cr !== er) return 3;
  if (cz !== ez) return 2;
  return cs === es ? 0 : 1;
}

/** Labels plus the topology labels derived from a locality (the locality wins, as in Istio's `AugmentLabels`). */
export function withTopologyLabels(labels: Readonly<Record<string, string>>, locality: string): Readonly<Record<string, string>> {
  if (locality === '') return labels;
  const [r, z, s] = splitLocality(locality);
  const out: Record<string, string> = { ...labels };
  if (r !== '') out[TOPOLOGY_LABELS.region] = r;
  if (z !== '') out[TOPOLOGY_LABELS.zone] = z;
  if (s !== '') out[TOPOLOGY_LABELS.subzone] = s;
  return out;
}

function sumWeights(hosts: readonly HostState[]): number {
  let s = 0;
  for (const h of hosts) s += h.weight;
  return s;
}

/** Groups hosts by locality, in order of first appearance; weight = sum of endpoint weights. */
function byLocality(hosts: readonly HostState[]): LocalityGroup[] {
  const m = new Map<string, HostState[]>();
  for (const h of hosts) {
    const l = h.endpoint.locality;
    const g = m.get(l);
    if (g === undefined) m.set(l, [h]);
    else g.push(h);
  }
  return [...m].map(([locality, hs]) => ({ locality, hosts: hs, weight: sumWeights(hs) }));
}

function flat(hosts: readonly HostState[], description = ''): LocalityPlan {
  return { tiers: [{ groups: byLocality(hosts) }], localityWeighted: false, description };
}

function distribute(hosts: readonly HostState[], rules: NonNullable<LocalityLoadBalancerSetting['distribute']>, client: string): LocalityPlan {
  const rule = rules.find((d) => d.from !== undefined && localityMatches(client, d.from));
  const all = byLocality(hosts);
  if (rule === undefined) return { tiers: [{ groups: all }], localityWeighted: true, description: `locality distribute: no rule for ${client === '' ? 'a client without a locality' : client}` };
  const claimed = new Set<LocalityGroup>();
  const groups: LocalityGroup[] = [];
  const shares: string[] = [];
  for (const [pattern, share] of Object.entries(rule.to ?? {})) {
    const matched = all.filter((g) => !claimed.has(g) && localityMatches(g.locality, pattern));
    const total = sumWeights(matched.flatMap((g) => g.hosts));
    for (const g of matched) {
      claimed.add(g);
      const w = Math.ceil((g.weight * share) / total);
      if (w > 0) groups.push({ locality: g.locality, hosts: g.hosts, weight: w });
    }
    shares.push(`${pattern} ${share}%`);
  }
  // Istio's map walk has no order; keep endpoint order for stable output.
  groups.sort((a, b) => all.findIndex((g) => g.locality === a.locality) - all.findIndex((g) => g.locality === b.locality));
  return { tiers: [{ groups }], localityWeighted: true, description: `locality distribute from ${rule.from}: ${shares.join(', ')}` };
}

/** `failoverPriority` entry → label and the value to compare with (`key=value` overrides the client's). */
function priorityLabels(entries: readonly string[], clientLabels: Readonly<Record<string, string>>): { key: string; value: string }[] {
  return entries.map((e) => {
    const parts = e.split('=');
    const key = parts[0] ?? '';
    return { key, value: parts.length === 2 ? (parts[1] ?? '') : (clientLabels[key] ?? '') };
  });
}

/**
 * `n − (number of leading labels matched)`: 0 when all match (Go map reads make missing = '').
 * When the first entry is exactly `topology.istio.io/network`, the network is preferred but not
 * required (istiod's `applyFailoverPriorityPerLocality`, Istio 1.31): an endpoint on another
 * network is ranked by the remaining labels and then placed after every same-network tier (+n).
 */
function labelTier(labels: Readonly<Record<string, string>>, wanted: readonly { key: string; value: string }[], networkFirst: boolean): number {
  let adjust = 0;
  for (let j = 0; j < wanted.length; j++) {
    const w = wanted[j] as { key: string; value: string };
    if ((labels[w.key] ?? '') === w.value) continue;
    if (j === 0 && networkFirst) {
      adjust = wanted.length;
      continue;
    }
    return wanted.length - j + adjust;
  }
  return adjust;
}

function regionTier(client: string, endpoint: string, failover: NonNullable<LocalityLoadBalancerSetting['failover']>): number {
  const p = localityPriority(client, endpoint);
  if (p !== 3) return p;
  const region = splitLocality(client)[0];
  const rule = failover.find((f) => f.from === region);
  return rule !== undefined && splitLocality(endpoint)[0] !== rule.to ? 4 : 3;
}

/**
 * Plans the priority tiers and locality groups for `hosts`.
 * @param hosts every host of the cluster (healthy or not)
 * @param setting the DestinationRule's `localityLbSetting` (undefined = the mesh default, enabled with no rules)
 * @param client the client's locality and labels, and whether outlier detection is on
 */
export function planLocality(hosts: readonly HostState[], setting: LocalityLoadBalancerSetting | undefined, client: LocalityClient): LocalityPlan {
  // No endpoint (none registered yet, all unhealthy): nothing to tier or weigh.
  if (setting?.enabled === false || hosts.length === 0) return flat(hosts);
  const rules = setting?.distribute ?? [];
  // istiod applies distribute to every proxy, one without a locality too (a rule from `*` matches its empty locality).
  if (rules.length > 0) return distribute(hosts, rules, client.locality);
  const failover = setting?.failover ?? [];
  const fpEntries = setting?.failoverPriority ?? [];
  if (!client.outlierDetection) {
    return flat(hosts, failover.length > 0 || fpEntries.length > 0 ? 'locality failover off (no outlierDetection)' : '');
  }
  // A caller without a locality is tiered too: istiod gives every proxy a locality (empty when
  // unknown, ads.go setTopologyLabels), and LbPriority ranks endpoints without one as its subzone (P0).
  const useRegions = fpEntries.length === 0 || failover.length > 0;
  const clientLabels = withTopologyLabels(client.labels, client.locality);
  const useLabels = fpEntries.length > 0 && Object.keys(clientLabels).length > 0;
  const untiered = (): LocalityPlan => {
    // No tiers, but Envoy still picks a locality first when failover or failoverPriority is set (istiod's LocalityWeightedLbConfig).
    const plan = flat(hosts);
    return failover.length > 0 || fpEntries.length > 0 ? { ...plan, localityWeighted: true } : plan;
  };
  if (!useRegions && !useLabels) return untiered();
  const wanted = useLabels ? priorityLabels(fpEntries, clientLabels) : [];
  // istiod compares the raw entry, so `topology.istio.io/network=n1` is an ordinary required label.
  const networkFirst = fpEntries[0] === NETWORK_LABEL;
  const byTier = new Map<number, HostState[]>();
  for (const h of hosts) {
    const ep = h.endpoint;
    const fp = useLabels ? labelTier(withTopologyLabels(ep.labels, ep.locality), wanted, networkFirst) : 0;
    const tier = useRegions ? fp * 5 + regionTier(client.locality, ep.locality, failover) : fp;
    const list = byTier.get(tier);
    if (list === undefined) byTier.set(tier, [h]);
    else list.push(h);
  }
  const order = [...byTier.keys()].sort((a, b) => a - b);
  if (order.length <= 1 && client.locality === '' && !useLabels) return untiered();
  const from = client.locality === '' ? '(no locality)' : client.locality;
  const tiers = order.map((t) => ({ groups: byLocality(byTier.get(t) ?? []) }));
  const sizes = tiers.map((t, i) => `P${i} ${t.groups.reduce((n, g) => n + g.hosts.length, 0)}`).join(', ');
  const what = useLabels
    ? `failoverPriority [${fpEntries.join(', ')}]${useRegions ? ` + failover from ${from}` : ''}`
    : `locality failover from ${from}${failover.length > 0 ? ` (${failover.map((f) => `${f.from}→${f.to}`).join(', ')})` : ''}`;
  return { tiers, localityWeighted: failover.length > 0 || fpEntries.length > 0, description: `${what}: ${sizes}` };
}
