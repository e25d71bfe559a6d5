/**
 * Which AuthorizationPolicies apply to a workload, compiled once per config into rule sets per
 * action, as Istio's builder lays them out in Envoy's filters
 * (`pilot/pkg/security/authz/builder/builder.go`, `pilot/pkg/model/authorization.go`):
 *
 * - a policy applies when it is in the workload's namespace or the mesh's root namespace
 *   (`istio-system` by default) and its `selector.matchLabels` are a subset of the workload's
 *   labels (no selector: every workload of its namespace; in the root namespace, of the mesh);
 * - a policy with `targetRef`/`targetRefs` applies to gateways and waypoints only, never to a
 *   sidecar workload (Istio ignores it there; so does meshlet, with a finding);
 * - `istio.io/dry-run: "true"` puts a policy's rules in the shadow set of its action
 *   (evaluated and reported, never enforced);
 * - `rules` unset or empty gives one rule that never matches (an ALLOW policy without rules
 *   therefore still denies everything it selects); every rule is compiled by {@link compileRule};
 * - rules are ordered by Envoy's policy id (`ns[<ns>]-policy[<name>]-rule[<i>]`, the key order
 *   of Envoy's RBAC policy map), so the rule reported as the match is the one Envoy reports;
 * - CUSTOM policies are grouped by provider (sorted by name); a provider that is not configured,
 *   or more than one provider on a workload without `multipleCustomProviders`
 *   (`PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS`), turns that provider's rules into DENY
 *   rules, as Istio does.
 *
 * @module
 */
import { byAge, DEFAULT_ROOT_NAMESPACE, type Resource } from '../../config/resource.ts';
import { NEVER, type Pred } from './generators.ts';
import { compileRule, type RbacAction } from './rules.ts';
import { type TrustDomainBundle, trustDomainBundle } from './trust-domain.ts';
import type { AuthzAction, ExtAuthzCheck } from './types.ts';

/** The workload whose inbound requests are judged. */
export interface AuthzWorkload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Options of the engine: the mesh-wide settings Istio takes from MeshConfig. */
export interface AuthzOptions {
  /** MeshConfig `rootNamespace`: policies here apply to every workload. @defaultValue `"istio-system"` */
  readonly rootNamespace?: string;
  /** MeshConfig `trustDomain`. @defaultValue `"cluster.local"` */
  readonly trustDomain?: string;
  /** MeshConfig `trustDomainAliases`. @defaultValue `[]` */
  readonly trustDomainAliases?: readonly string[];
  /**
   * How `remote.ip` / `remoteIpBlocks` read X-Forwarded-For. Unset: as an Istio sidecar (the
   * last entry, else the peer — any client can set it). A number N: as an Istio gateway with
   * `gatewayTopology.numTrustedProxies: N` (0: the peer; N: the N-th entry from the right).
   * @defaultValue undefined (sidecar behaviour)
   */
  readonly numTrustedProxies?: number;
  /** CUSTOM extension providers by name (MeshConfig `extensionProviders[].name`). @defaultValue `{}` */
  readonly providers?: Readonly<Record<string, ExtAuthzCheck>>;
  /** Allow more than one CUSTOM provider per workload (`PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS`). @defaultValue false */
  readonly multipleCustomProviders?: boolean;
}

/**
 * Something worth telling about the compiled policies (a dropped rule, an ignored policy).
 * @category Server
 */
export interface AuthzFinding {
  readonly level: 'info' | 'warning' | 'error';
  /** `namespace/name`. */
  readonly policy: string;
  readonly message: string;
}

/** One compiled rule. */
export interface CompiledRule {
  /** Envoy's policy id: `ns[foo]-policy[bar]-rule[0]`. */
  readonly id: string;
  /** `namespace/name`. */
  readonly policy: string;
  readonly rule: number;
  readonly match: Pred;
}

/** The enforced and the dry-run rules of one action. */
export interface RuleSets {
  /** Undefined when no enforced policy of this action applies (Envoy builds no enforcing rules). */
  readonly enforced: readonly CompiledRule[] | undefined;
  /** Undefined when no dry-run policy of this action applies. */
  readonly shadow: readonly CompiledRule[] | undefined;
  /** `namespace/name` of the enforced policies (for messages). */
  readonly policies: readonly string[];
}

/** The CUSTOM policies of one provider. */
export interface CustomStage {
  readonly provider: string;
  /** The provider; undefined when it cannot be used (then {@link unusable} says why and the rules deny). */
  readonly check: ExtAuthzCheck | undefined;
  readonly unusable: string | undefined;
  readonly rules: readonly CompiledRule[];
}

/**
 * A policy that applies, as compiled.
 * @category Server
 */
export interface AppliedPolicy {
  readonly ref: string;
  readonly action: AuthzAction;
  readonly dryRun: boolean;
  readonly provider: string | undefined;
  /** Rules compiled (the others were dropped: see the findings). */
  readonly rules: number;
}

/** Everything evaluation needs, built once per config. */
export interface CompiledAuthz {
  readonly custom: readonly CustomStage[];
  readonly audit: RuleSets;
  readonly deny: RuleSets;
  readonly allow: RuleSets;
  readonly policies: readonly AppliedPolicy[];
  readonly findings: readonly AuthzFinding[];
  readonly numTrustedProxies: number | undefined;
}

/** Go's `strconv.ParseBool`. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

function selects(matchLabels: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (matchLabels === undefined) return true;
  for (const k of Object.keys(matchLabels)) {
    if (!Object.hasOwn(labels, k) || labels[k] !== matchLabels[k]) return false;
  }
  return true;
}

/** The policies that apply to the workload, in Istio's order (root namespace first, then oldest first). */
export function selectPolicies(
  resources: readonly Resource[],
  workload: AuthzWorkload,
  rootNamespace: string,
  findings: AuthzFinding[],
): Resource<'AuthorizationPolicy'>[] {
  const aps = resources.filter((r): r is Resource<'AuthorizationPolicy'> => r.kind === 'AuthorizationPolicy').sort(byAge);
  const out: Resource<'AuthorizationPolicy'>[] = [];
  for (const ns of rootNamespace === workload.namespace ? [rootNamespace] : [rootNamespace, workload.namespace]) {
    for (const r of aps) {
      if (r.metadata.namespace !== ns) continue;
      const spec = r.spec;
      if ((spec.targetRefs?.length ?? 0) > 0 || spec.targetRef !== undefined) {
        findings.push({ level: 'info', policy: refOf(r), message: 'targetRef/targetRefs policies apply to gateways and waypoints, not to a sidecar workload; ignored (Istio ignores it too)' });
        continue;
      }
      if (selects(spec.selector?.matchLabels, workload.labels)) out.push(r);
    }
  }
  return out;
}

function refOf(r: Resource): string {
  return `${r.metadata.namespace}/${r.metadata.name}`;
}

function envoyId(r: Resource, i: number): string {
  return `ns[${r.metadata.namespace}]-policy[${r.metadata.name}]-rule[${i}]`;
}

const RBAC_ACTION: Readonly<Record<AuthzAction, RbacAction>> = { ALLOW: 'ALLOW', DENY: 'DENY', AUDIT: 'LOG', CUSTOM: 'DENY' };

function compilePolicy(r: Resource<'AuthorizationPolicy'>, action: AuthzAction, bundle: TrustDomainBundle, findings: AuthzFinding[]): CompiledRule[] {
  const ref = refOf(r);
  const rules = r.spec.rules ?? [];
  if (rules.length === 0) return [{ id: envoyId(r, 0), policy: ref, rule: 0, match: NEVER }];
  const out: CompiledRule[] = [];
  rules.forEach((rule, i) => {
    const c = compileRule(rule, r.metadata.namespace, RBAC_ACTION[action], bundle);
    if ('dropped' in c) {
      const effect =
        action === 'ALLOW' ? 'it never allows anything' : action === 'DENY' ? 'it never denies anything (Istio drops it too)' : 'it never matches (Istio drops it too)';
      findings.push({ level: action === 'ALLOW' ? 'warning' : 'error', policy: ref, message: `rule ${i} dropped: ${c.dropped}; ${effect}` });
      return;
    }
    for (const m of c.ignored) findings.push({ level: 'warning', policy: ref, message: `rule ${i}: ${m}` });
    out.push({ id: envoyId(r, i), policy: ref, rule: i, match: c.match });
  });
  return out;
}

const byId = (a: CompiledRule, b: CompiledRule): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

interface SetBuilder {
  enforced: CompiledRule[] | undefined;
  shadow: CompiledRule[] | undefined;
  policies: string[];
}

function freeze(s: SetBuilder): RuleSets {
  return { enforced: s.enforced?.sort(byId), shadow: s.shadow?.sort(byId), policies: s.policies };
}

/** Compiles the policies that apply to `workload`. */
export function compilePolicies(resources: readonly Resource[], workload: AuthzWorkload, options: AuthzOptions = {}): CompiledAuthz {
  const findings: AuthzFinding[] = [];
  const bundle = trustDomainBundle(options.trustDomain, options.trustDomainAliases);
  const selected = selectPolicies(resources, workload, options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE, findings);
  const sets: Record<'AUDIT' | 'DENY' | 'ALLOW', SetBuilder> = {
    AUDIT: { enforced: undefined, shadow: undefined, policies: [] },
    DENY: { enforced: undefined, shadow: undefined, policies: [] },
    ALLOW: { enforced: undefined, shadow: undefined, policies: [] },
  };
  const customRules = new Map<string, CompiledRule[]>();
  const policies: AppliedPolicy[] = [];
  for (const r of selected) {
    const ref = refOf(r);
    const action = r.spec.action ?? 'ALLOW';
    const annotation = r.metadata.annotations?.['istio.io/dry-run'];
    let dryRun = false;
    if (annotation !== undefined) {
      const b = parseGoBool(annotation);
      if (b === undefined) findings.push({ level: 'warning', policy: ref, message: `istio.io/dry-run: "${annotation}" is not a boolean; the policy is enforced` });
      dryRun = b === true;
    }
    const compiled = compilePolicy(r, action, bundle, findings);
    const provider = action === 'CUSTOM' ? (r.spec.provider?.name ?? '') : undefined;
    policies.push({ ref, action, dryRun, provider, rules: compiled.filter((c) => c.match !== NEVER).length });
    if (action === 'CUSTOM') {
      if (dryRun) {
        findings.push({ level: 'warning', policy: ref, message: 'istio.io/dry-run is not supported with action CUSTOM (Istio rejects it); the policy is ignored' });
        continue;
      }
      const list = customRules.get(provider as string) ?? [];
      list.push(...compiled);
      customRules.set(provider as string, list);
      continue;
    }
    const set = sets[action];
    if (dryRun) set.shadow = [...(set.shadow ?? []), ...compiled];
    else {
      set.enforced = [...(set.enforced ?? []), ...compiled];
      set.policies.push(ref);
    }
  }
  const providers = [...customRules.keys()].sort();
  const tooMany = providers.length > 1 && options.multipleCustomProviders !== true;
  const custom: CustomStage[] = providers.map((name) => {
    const rules = (customRules.get(name) as CompiledRule[]).sort(byId);
    const check = options.providers !== undefined && Object.hasOwn(options.providers, name) ? options.providers[name] : undefined;
    let unusable: string | undefined;
    if (tooMany) unusable = `${providers.length} CUSTOM providers select this workload (${providers.join(', ')}), and multipleCustomProviders is off`;
    else if (check === undefined) {
      const known = Object.keys(options.providers ?? {});
      unusable = `extension provider "${name}" is not configured${known.length === 0 ? ' (no providers are)' : `; available: ${known.join(', ')}`}`;
    }
    if (unusable !== undefined) {
      for (const p of new Set(rules.map((r) => r.policy))) findings.push({ level: 'error', policy: p, message: `${unusable}: the requests this CUSTOM policy matches are denied` });
    }
    return { provider: name, check: unusable === undefined ? check : undefined, unusable, rules };
  });
  return {
    custom,
    audit: freeze(sets.AUDIT),
    deny: freeze(sets.DENY),
    allow: freeze(sets.ALLOW),
    policies,
    findings,
    numTrustedProxies: options.numTrustedProxies,
  };
}
