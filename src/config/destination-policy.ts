/**
 * DestinationRule lookup and merging, as Istio does it: which rules apply to a client and a
 * host, how several rules for one host merge, and how subset and port-level policies override
 * the host policy block by block (never field by field).
 *
 * @module
 */
import { hostMatches, isVisible, resolveHost, specificity } from './hosts.ts';
import { labelsMatch } from './registry.ts';
import { byAge, DEFAULT_ROOT_NAMESPACE, ofKind, type AnyResource, type Resource } from './resource.ts';
import type { Subset, TrafficPolicy } from './types/networking.ts';

/**
 * The DestinationRules for one host, merged: first rule's policy wins, subsets concatenated.
 * @category Snapshot
 */
export interface MergedDestinationRule {
  /** The (resolved) host pattern of the rules. */
  readonly host: string;
  readonly trafficPolicy: TrafficPolicy | undefined;
  /** Subsets by name (a duplicate name keeps the first). */
  readonly subsets: ReadonlyMap<string, Subset>;
  /** The rules merged, oldest first. */
  readonly rules: readonly Resource<'DestinationRule'>[];
}

/** The policy blocks that override one another whole (a port-level setting replaces the first four). */
const BLOCKS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'tunnel', 'proxyProtocol', 'retryBudget'] as const;

/**
 * Lays `policy` over `out` block by block (never field by field); then, when `policy` has a
 * port-level setting for `port`, that setting replaces the four core blocks — with no
 * inheritance: blocks it omits fall back to defaults.
 */
function overlay(out: TrafficPolicy, policy: TrafficPolicy, port: number | undefined): void {
  for (const b of BLOCKS) if (policy[b] !== undefined) (out as Record<string, unknown>)[b] = policy[b];
  const pl = port === undefined ? undefined : policy.portLevelSettings?.find((p) => p.port?.number === port);
  if (pl === undefined) return;
  out.loadBalancer = pl.loadBalancer;
  out.connectionPool = pl.connectionPool;
  out.outlierDetection = pl.outlierDetection;
  out.tls = pl.tls;
}

/**
 * The effective traffic policy for a subset (or none) and port: DR policy (with its port-level
 * settings), then the subset's blocks, then the subset's port-level settings — Istio's
 * `MergeTrafficPolicy` order: subset-port > subset > DR-port > DR.
 */
export function effectivePolicy(rule: MergedDestinationRule | undefined, subset: string | undefined, port: number | undefined): TrafficPolicy {
  const out: TrafficPolicy = {};
  if (rule?.trafficPolicy !== undefined) overlay(out, rule.trafficPolicy, port);
  const sp = subset === undefined ? undefined : rule?.subsets.get(subset)?.trafficPolicy;
  if (sp !== undefined) overlay(out, sp, port);
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
 * The DestinationRules visible to one client workload, indexed by host, so finding the rule
 * for each of thousands of services stays linear.
 */
export class DestinationRuleIndex {
  readonly #exact = new Map<string, Resource<'DestinationRule'>[]>();
  readonly #wildcard: { host: string; rule: Resource<'DestinationRule'> }[] = [];
  /** Answers of {@link find} (a compile asks once per cluster: per subset and port of a service). */
  readonly #found = new Map<string, { svcNs: string; clientNs: string; rule: MergedDestinationRule | undefined }[]>();
  /** MeshConfig `rootNamespace`: its rules are the mesh-wide fallback. */
  readonly #root: string;

  /** @param rootNamespace MeshConfig `rootNamespace`, whose rules apply when neither the client's nor the service's namespace has one. */
  constructor(resources: readonly AnyResource[] | readonly Resource<'DestinationRule'>[], client: ClientWorkload, rootNamespace: string = DEFAULT_ROOT_NAMESPACE) {
    this.#root = rootNamespace;
    for (const r of ofKind(resources as readonly AnyResource[], 'DestinationRule')) {
      const ns = r.metadata.namespace;
      if (!isVisible(r.spec.exportTo, ns, client.namespace)) continue;
      // A rule with a selector applies only to selected workloads in its own namespace.
      if (r.spec.workloadSelector !== undefined && (ns !== client.namespace || !labelsMatch(r.spec.workloadSelector.matchLabels ?? {}, client.labels))) continue;
      const host = resolveHost(r.spec.host, ns);
      if (host.startsWith('*')) this.#wildcard.push({ host, rule: r });
      else {
        const list = this.#exact.get(host) ?? [];
        list.push(r);
        this.#exact.set(host, list);
      }
    }
  }

  /**
   * The merged rule for traffic to `serviceHost` (declared in `serviceNamespace`), following
   * Istio's precedence: a rule in the client's namespace, then the service's namespace, then the
   * root namespace (a rule elsewhere does not apply); within a namespace, rules with a workload
   * selector beat those without, and the most specific host wins; rules with that host merge.
   */
  find(serviceHost: string, serviceNamespace: string, clientNamespace: string): MergedDestinationRule | undefined {
    let seen = this.#found.get(serviceHost);
    if (seen !== undefined) {
      for (const f of seen) if (f.svcNs === serviceNamespace && f.clientNs === clientNamespace) return f.rule;
    } else {
      seen = [];
      this.#found.set(serviceHost, seen);
    }
    const rule = this.#find(serviceHost, serviceNamespace, clientNamespace);
    seen.push({ svcNs: serviceNamespace, clientNs: clientNamespace, rule });
    return rule;
  }

  #find(serviceHost: string, serviceNamespace: string, clientNamespace: string): MergedDestinationRule | undefined {
    const exact = this.#exact.get(serviceHost);
    if (exact === undefined && this.#wildcard.length === 0) return undefined;
    // The common case: one rule for the host, no wildcard rules.
    if (exact !== undefined && exact.length === 1 && this.#wildcard.length === 0) {
      const r = exact[0] as Resource<'DestinationRule'>;
      const ns = r.metadata.namespace;
      return ns === clientNamespace || ns === serviceNamespace || ns === this.#root ? mergeRules(serviceHost, exact) : undefined;
    }
    const candidates = exact === undefined ? [] : [...exact];
    for (const w of this.#wildcard) if (hostMatches(w.host, serviceHost)) candidates.push(w.rule);
    if (candidates.length === 0) return undefined;
    // Istio looks only in these three namespaces, in this order.
    for (const ns of [clientNamespace, serviceNamespace, this.#root]) {
      const tier = candidates.filter((r) => r.metadata.namespace === ns);
      if (tier.length === 0) continue;
      const selected = tier.some((r) => r.spec.workloadSelector !== undefined) ? tier.filter((r) => r.spec.workloadSelector !== undefined) : tier;
      const hostOf = (r: Resource<'DestinationRule'>) => resolveHost(r.spec.host, r.metadata.namespace);
      let best = -1;
      for (const r of selected) best = Math.max(best, specificity(hostOf(r)));
      const host = hostOf(selected.find((r) => specificity(hostOf(r)) === best) as Resource<'DestinationRule'>);
      return mergeRules(host, selected.filter((r) => hostOf(r) === host));
    }
    return undefined;
  }
}

/** One-off lookup; build a {@link DestinationRuleIndex} when looking up many hosts. */
export function findDestinationRule(
  resources: readonly AnyResource[] | readonly Resource<'DestinationRule'>[],
  client: ClientWorkload,
  serviceHost: string,
  serviceNamespace: string,
  rootNamespace: string = DEFAULT_ROOT_NAMESPACE,
): MergedDestinationRule | undefined {
  return new DestinationRuleIndex(resources, client, rootNamespace).find(serviceHost, serviceNamespace, client.namespace);
}
