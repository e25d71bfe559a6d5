/**
 * DestinationRule lookup and merging, as Istio does it: which rules apply to a client and a
 * host, how several rules for one host merge, and how subset and port-level policies override
 * the host policy block by block (never field by field).
 *
 * @module
 */
import { hostMatches, isVisible, isWildcard, resolveHost, specificity } from './hosts.ts';
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
  /** The rules merged into it: the first (a rule with a workloadSelector before those without, then the oldest), then those merged in. */
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

/** Who is asking: the client workload's namespace and labels. */
export interface ClientWorkload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** A consolidated rule as istiod keeps it (`ConsolidatedDestRule`): the first rule of a host with what later ones merged into it. */
interface Consolidated {
  readonly host: string;
  readonly exportTo: ReadonlySet<string>;
  readonly selector: Readonly<Record<string, string>> | undefined;
  readonly namespace: string;
  trafficPolicy: TrafficPolicy | undefined;
  readonly subsets: Map<string, Subset>;
  readonly rules: Resource<'DestinationRule'>[];
}

/** Rules of one namespace (one of istiod's `consolidatedDestRules`), by resolved host. */
class Pool {
  readonly exact = new Map<string, Consolidated[]>();
  readonly wildcard = new Map<string, Consolidated[]>();

  /**
   * `mergeDestinationRule` (pilot/pkg/model/destination_rule.go, with ENABLE_ENHANCED_DESTINATIONRULE_MERGE
   * on, istiod's default): a rule joins each consolidated rule of its host whose exportTo it equals
   * or is a superset of, unless both have different selectors; it merges there (subsets it adds,
   * its traffic policy when the consolidated one has none) and stands alone too unless it merged
   * with one of the same selector (or neither has one) and an equal exportTo.
   */
  merge(host: string, rule: Resource<'DestinationRule'>, exportTo: ReadonlySet<string>): void {
    const map = isWildcard(host) ? this.wildcard : this.exact;
    const list = map.get(host);
    const selector = rule.spec.workloadSelector === undefined ? undefined : (rule.spec.workloadSelector.matchLabels ?? {});
    const fresh = (): Consolidated => ({ host, exportTo, selector, namespace: rule.metadata.namespace, trafficPolicy: rule.spec.trafficPolicy, subsets: subsetsOf(rule), rules: [rule] });
    if (list === undefined) {
      map.set(host, [fresh()]);
      return;
    }
    let separately = true;
    for (const c of list) {
      const sameKind = (selector === undefined) === (c.selector === undefined);
      // istiod clears `appendSeparately` on an equal exportTo even when one rule has a selector and the other not, so a rule
      // without one merged into a selector rule reaches no other workload (istio/istio#58322, open): meshlet keeps it for them.
      if (sameSet(exportTo, c.exportTo)) {
        if (sameKind) separately = false;
      } else if (!(c.exportTo.size > 0 && [...c.exportTo].every((e) => exportTo.has(e)))) {
        separately = true;
        continue;
      }
      const bothWith = selector !== undefined && c.selector !== undefined;
      if (bothWith && !sameLabels(selector, c.selector)) {
        separately = true;
        continue;
      }
      if ((selector === undefined && c.selector === undefined) || bothWith) separately = false;
      for (const s of rule.spec.subsets ?? []) if (!c.subsets.has(s.name)) c.subsets.set(s.name, s);
      if (c.trafficPolicy === undefined) c.trafficPolicy = rule.spec.trafficPolicy;
      c.rules.push(rule);
    }
    if (separately) list.push(fresh());
  }

  /** `MostSpecificHostMatch`: the consolidated rules of the exact host, else of the most specific wildcard covering it. */
  match(host: string): Consolidated[] | undefined {
    const exact = isWildcard(host) ? this.wildcard.get(host) : this.exact.get(host);
    if (exact !== undefined) return exact;
    let best: string | undefined;
    for (const h of this.wildcard.keys()) if (hostMatches(h, host) && (best === undefined || specificity(h) > specificity(best))) best = h;
    return best === undefined ? undefined : this.wildcard.get(best);
  }
}

function subsetsOf(rule: Resource<'DestinationRule'>): Map<string, Subset> {
  const out = new Map<string, Subset>();
  for (const s of rule.spec.subsets ?? []) if (!out.has(s.name)) out.set(s.name, s);
  return out;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((e) => b.has(e));
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
}

/** istiod's `sortConfigBySelectorAndCreationTime`: rules with a workloadSelector first, then the oldest. */
function bySelectorThenAge(a: Resource<'DestinationRule'>, b: Resource<'DestinationRule'>): number {
  const sa = a.spec.workloadSelector !== undefined;
  const sb = b.spec.workloadSelector !== undefined;
  return sa === sb ? byAge(a, b) : sa ? -1 : 1;
}

/** Options of a {@link DestinationRuleIndex}. */
export interface DestinationRuleIndexOptions {
  /** Inbound traffic: istiod never applies a rule with a workloadSelector to it (`TrafficDirectionInbound`). */
  readonly inbound?: boolean;
}

/**
 * The DestinationRules that apply to one client workload, as istiod indexes them
 * (`setDestinationRules`) and picks them (`PushContext.destinationRule`, `SidecarScope.DestinationRule`).
 */
export class DestinationRuleIndex {
  /** Rules of each namespace for its own workloads (`namespaceLocal`): exported to `*`, `.`, the namespace, or to nothing named. */
  readonly #local = new Map<string, Pool>();
  /** Rules of each namespace for other namespaces (`exportedByNamespace`): all but those exported to their own namespace only. */
  readonly #exported = new Map<string, Pool>();
  /** The root namespace's rules exported to it only (`rootNamespaceLocal`): its own workloads' first stop. */
  readonly #rootLocal = new Pool();
  readonly #client: ClientWorkload;
  readonly #inbound: boolean;
  /** Answers of {@link find} (a compile asks once per cluster: per subset and port of a service). */
  readonly #found = new Map<string, { svcNs: string; clientNs: string; rule: MergedDestinationRule | undefined }[]>();
  /** MeshConfig `rootNamespace`: its rules are the mesh-wide fallback. */
  readonly #root: string;

  /** @param rootNamespace MeshConfig `rootNamespace`, whose rules apply when neither the client's nor the service's namespace has one. */
  constructor(resources: readonly AnyResource[] | readonly Resource<'DestinationRule'>[], client: ClientWorkload, rootNamespace: string = DEFAULT_ROOT_NAMESPACE, options: DestinationRuleIndexOptions = {}) {
    this.#root = rootNamespace;
    this.#client = client;
    this.#inbound = options.inbound === true;
    const pool = (m: Map<string, Pool>, ns: string) => {
      let p = m.get(ns);
      if (p === undefined) {
        p = new Pool();
        m.set(ns, p);
      }
      return p;
    };
    for (const r of [...ofKind(resources as readonly AnyResource[], 'DestinationRule')].sort(bySelectorThenAge)) {
      const ns = r.metadata.namespace;
      // Only the rules exported to the client's namespace, as the control plane sends them: in istiod a rule exported
      // elsewhere can still hide a less specific one or absorb a wider-exported one (istio/istio#49409); not here.
      // A rule with a selector counts as exported to its own namespace only ('.', as istiod's
      // setDestinationRules forces it), whatever its exportTo says.
      if (r.spec.workloadSelector === undefined ? !isVisible(r.spec.exportTo, ns, client.namespace) : ns !== client.namespace) continue;
      const host = resolveHost(r.spec.host, ns);
      // A rule with a selector is never exported: its namespace's workloads only.
      const exportTo: ReadonlySet<string> = r.spec.workloadSelector === undefined ? new Set(r.spec.exportTo ?? []) : new Set(['.']);
      if (exportTo.size === 0 || exportTo.has('*') || exportTo.has('.') || exportTo.has(ns)) pool(this.#local, ns).merge(host, r, exportTo);
      const privateOnly = exportTo.size === 1 && (exportTo.has('.') || exportTo.has(ns));
      if (!privateOnly) pool(this.#exported, ns).merge(host, r, exportTo);
      else if (ns === rootNamespace) this.#rootLocal.merge(host, r, exportTo);
    }
  }

  /**
   * The merged rule for traffic to `serviceHost` (declared in `serviceNamespace`), as istiod picks
   * it: the most specific host among the client namespace's rules (the root namespace's private
   * ones for a client there), else among those the service's namespace exports to the client's,
   * else the root namespace's. The first namespace holding a rule for the host decides, even when
   * none of its rules applies to this workload (a workloadSelector selecting others): then no rule applies.
   * Of that host's consolidated rules, the first whose workloadSelector selects the client, else the last without one.
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
    let list = clientNamespace !== this.#root ? this.#local.get(clientNamespace)?.match(serviceHost) : this.#rootLocal.match(serviceHost);
    if (list === undefined) {
      const exported = (ns: string) => this.#exported.get(ns)?.match(serviceHost)?.filter((c) => c.exportTo.size === 0 || c.exportTo.has('*') || c.exportTo.has(clientNamespace)) ?? [];
      list = exported(serviceNamespace);
      if (list.length === 0) list = exported(this.#root);
    }
    let catchAll: Consolidated | undefined;
    for (const c of list) {
      if (c.selector === undefined) catchAll = c;
      else if (!this.#inbound && c.namespace === clientNamespace && labelsMatch(c.selector, this.#client.labels)) return merged(c);
    }
    return catchAll === undefined ? undefined : merged(catchAll);
  }
}

function merged(c: Consolidated): MergedDestinationRule {
  return { host: c.host, trafficPolicy: c.trafficPolicy, subsets: c.subsets, rules: c.rules };
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
