/**
 * DestinationRule lookup and merging, as Istio does it: which rules apply to a client and a
 * host, how several rules for one host merge, and how subset and port-level policies override
 * the host policy block by block (never field by field).
 *
 * @module
 */
import { hostMatches, isVisible, resolveHost, specificity } from './hosts.ts';
import { labelsMatch } from './registry.ts';
import { byAge, ofKind, type AnyResource, type Resource } from './resource.ts';
import type { Subset, TrafficPolicy } from './types/networking.ts';

/** Istio's root namespace: rules there apply mesh-wide. */
export const ROOT_NAMESPACE = 'istio-system';

/** The DestinationRules for one host, merged: first rule's policy wins, subsets concatenated. */
export interface MergedDestinationRule {
  /** The (resolved) host pattern of the rules. */
  readonly host: string;
  readonly trafficPolicy: TrafficPolicy | undefined;
  /** Subsets by name (a duplicate name keeps the first). */
  readonly subsets: ReadonlyMap<string, Subset>;
  /** The rules merged, oldest first. */
  readonly rules: readonly Resource<'DestinationRule'>[];
}

/** The four core blocks a port-level setting replaces, plus the ones only subsets override. */
const BLOCKS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'tunnel', 'proxyProtocol', 'retryBudget'] as const;

/** Applies the policy's own port-level settings for `port` (they replace the core blocks; no inheritance). */
function withPortLevel(policy: TrafficPolicy | undefined, port: number | undefined): TrafficPolicy | undefined {
  if (policy === undefined) return undefined;
  const out: TrafficPolicy = {};
  for (const b of BLOCKS) if (policy[b] !== undefined) (out as Record<string, unknown>)[b] = policy[b];
  const pl = port === undefined ? undefined : policy.portLevelSettings?.find((p) => p.port?.number === port);
  if (pl !== undefined) {
    out.loadBalancer = pl.loadBalancer;
    out.connectionPool = pl.connectionPool;
    out.outlierDetection = pl.outlierDetection;
    out.tls = pl.tls;
  }
  return out;
}

/**
 * The effective traffic policy for a subset (or none) and port: DR policy (with its port-level
 * settings), then the subset's blocks, then the subset's port-level settings — Istio's
 * `MergeTrafficPolicy` order: subset-port > subset > DR-port > DR.
 */
export function effectivePolicy(rule: MergedDestinationRule | undefined, subset: string | undefined, port: number | undefined): TrafficPolicy {
  const base = withPortLevel(rule?.trafficPolicy, port) ?? {};
  const sp = subset === undefined ? undefined : rule?.subsets.get(subset)?.trafficPolicy;
  if (sp === undefined) return base;
  const out: TrafficPolicy = { ...base };
  for (const b of BLOCKS) if (sp[b] !== undefined) (out as Record<string, unknown>)[b] = sp[b];
  const pl = port === undefined ? undefined : sp.portLevelSettings?.find((p) => p.port?.number === port);
  if (pl !== undefined) {
    out.loadBalancer = pl.loadBalancer;
    out.connectionPool = pl.connectionPool;
    out.outlierDetection = pl.outlierDetection;
    out.tls = pl.tls;
  }
  for (const k of Object.keys(out) as (keyof TrafficPolicy)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** Merges rules for the same host (oldest first). */
export function mergeRules(host: string, rules: readonly Resource<'DestinationRule'>[]): MergedDestinationRule {
  const sorted = [...rules].sort(byAge);
  const subsets = new Map<string, Subset>();
  let trafficPolicy: TrafficPolicy | undefined;
  for (const r of sorted) {
    if (trafficPolicy === undefined && r.spec.trafficPolicy !== undefined) trafficPolicy = r.spec.trafficPolicy;
    for (const s of r.spec.subsets ?? []) if (!subsets.has(s.name)) subsets.set(s.name, s);
  }
  return { host, trafficPolicy, subsets, rules: sorted };
}

/** Who is asking: the client workload's namespace and labels. */
export interface ClientWorkload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * Finds the DestinationRules that apply to traffic from `client` to `serviceHost` (in
 * `serviceNamespace`), following Istio's precedence: a rule in the client's namespace, then one in
 * the service's namespace, then one in the root namespace; within a namespace the most specific
 * host wins and rules with the same host are merged.
 */
export function findDestinationRule(
  resources: readonly AnyResource[] | readonly Resource<'DestinationRule'>[],
  client: ClientWorkload,
  serviceHost: string,
  serviceNamespace: string,
): MergedDestinationRule | undefined {
  const rules = ofKind(resources as readonly AnyResource[], 'DestinationRule');
  const candidates = rules.filter((r) => {
    const ns = r.metadata.namespace;
    if (!isVisible(r.spec.exportTo, ns, client.namespace)) return false;
    if (r.spec.workloadSelector !== undefined) {
      // A rule with a selector applies only to selected workloads in its own namespace.
      if (ns !== client.namespace || !labelsMatch(r.spec.workloadSelector.labels ?? {}, client.labels)) return false;
    }
    return hostMatches(resolveHost(r.spec.host, ns), serviceHost);
  });
  if (candidates.length === 0) return undefined;
  for (const ns of [client.namespace, serviceNamespace, ROOT_NAMESPACE, undefined]) {
    const tier = ns === undefined ? candidates : candidates.filter((r) => r.metadata.namespace === ns);
    if (tier.length === 0) continue;
    // Selector rules beat selector-less ones in the same namespace (Istio), then the most specific host.
    const selected = tier.some((r) => r.spec.workloadSelector !== undefined) ? tier.filter((r) => r.spec.workloadSelector !== undefined) : tier;
    let best = -1;
    for (const r of selected) best = Math.max(best, specificity(resolveHost(r.spec.host, r.metadata.namespace)));
    const top = selected.filter((r) => specificity(resolveHost(r.spec.host, r.metadata.namespace)) === best);
    const host = resolveHost((top[0] as Resource<'DestinationRule'>).spec.host, (top[0] as Resource<'DestinationRule'>).metadata.namespace);
    return mergeRules(host, top.filter((r) => resolveHost(r.spec.host, r.metadata.namespace) === host));
  }
  return undefined;
}
