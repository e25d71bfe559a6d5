/**
 * The authorization engine: compiled once per config and workload ({@link compileAuthz}),
 * then asked about every inbound request, in the order of Envoy's filters on an Istio sidecar:
 *
 * 1. CUSTOM: for each provider (sorted by name), if one of its policies' rules matches, the
 *    external authorizer decides; a deny ends here, an allow may add request headers.
 * 2. AUDIT: the first matching rule is reported as an audit hit; it never decides.
 * 3. DENY: a matching rule denies (403, `RBAC: access denied`).
 * 4. ALLOW: when enforced ALLOW policies apply, a matching rule allows and no match denies
 *    (the default-deny trap); with none, the request is allowed.
 *
 * Dry-run policies are evaluated where their action's filter runs (Envoy's shadow rules) and
 * reported, never enforced. Evaluation is synchronous and allocation-free on the common path
 * (the verdicts are built at compile time); it returns a promise only when an external
 * authorizer must be asked.
 *
 * @module
 */
import type { Resource } from '../../config/resource.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { Attrs } from './attrs.ts';
import { type AuthzFinding, type AuthzOptions, type AuthzWorkload, type CompiledAuthz, type CompiledRule, compilePolicies, type CustomStage, type RuleSets } from './compile.ts';
import type { AuthzDenialResponse, AuthzHeaders, AuthzRequest, AuthzResult, DryRunOutcome, ExtAuthzResponse, RuleRef } from './types.ts';

/** Envoy's RBAC denial: 403 `RBAC: access denied`. */
export const RBAC_DENIAL: AuthzDenialResponse = Object.freeze({ status: 403, headers: Object.freeze({}), body: 'RBAC: access denied' });

const NO_DRY_RUN: readonly DryRunOutcome[] = Object.freeze([]);

function verdict(fields: Pick<AuthzResult, 'decision' | 'policy' | 'rule' | 'action' | 'reason' | 'details' | 'denial'>): AuthzResult {
  return Object.freeze({
    ...fields,
    provider: undefined,
    dryRun: NO_DRY_RUN,
    audit: undefined,
    headersToUpstream: undefined,
    headersToRemove: undefined,
    headersToDownstream: undefined,
  });
}

/** The first rule of `rules` that matches, in Envoy's order. */
function firstMatch(rules: readonly CompiledRule[], a: Attrs): CompiledRule | undefined {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i] as CompiledRule;
    if (r.match(a)) return r;
  }
  return undefined;
}

/** What the CUSTOM stage leaves for the next stages: nothing, or the headers the authorizers set. */
export interface CustomOutcome {
  readonly provider: string;
  readonly set: Record<string, string>;
  readonly remove: string[];
  readonly downstream: Record<string, string | readonly string[]>;
}

/** A request view with the headers an external authorizer set or removed (what later filters see). */
function withHeaders(req: AuthzRequest, c: CustomOutcome | undefined): AuthzRequest {
  if (c === undefined || (Object.keys(c.set).length === 0 && c.remove.length === 0)) return req;
  const headers: Record<string, string | readonly string[] | undefined> = Object.create(null);
  for (const k of Object.keys(req.headers)) headers[k] = req.headers[k];
  for (const k of c.remove) delete headers[k];
  for (const k of Object.keys(c.set)) headers[k] = c.set[k];
  return { ...req, headers: headers as AuthzHeaders };
}

/** Compiled authorization for one workload. */
export class AuthzEngine {
  readonly #c: CompiledAuthz;
  readonly #attrs: Attrs;
  readonly #allowed: Map<CompiledRule, AuthzResult> = new Map();
  readonly #denied: Map<CompiledRule, AuthzResult> = new Map();
  readonly #noAllowPolicy: AuthzResult;
  readonly #defaultDeny: AuthzResult;
  #filters: { readonly audit: boolean; readonly deny: boolean; readonly allow: boolean } | undefined;

  constructor(compiled: CompiledAuthz) {
    this.#c = compiled;
    this.#attrs = new Attrs(compiled.numTrustedProxies);
    for (const r of compiled.allow.enforced ?? []) {
      this.#allowed.set(r, verdict({ decision: 'allow', policy: r.policy, rule: r.rule, action: 'ALLOW', reason: `allowed by ALLOW policy ${r.policy} rule ${r.rule}`, details: '', denial: undefined }));
    }
    for (const r of compiled.deny.enforced ?? []) {
      this.#denied.set(
        r,
        verdict({ decision: 'deny', policy: r.policy, rule: r.rule, action: 'DENY', reason: `denied by DENY policy ${r.policy} rule ${r.rule}`, details: `rbac_access_denied_matched_policy[${r.id}]`, denial: RBAC_DENIAL }),
      );
    }
    this.#noAllowPolicy = verdict({ decision: 'allow', policy: undefined, rule: undefined, action: undefined, reason: 'allowed: no ALLOW policy applies to this workload', details: '', denial: undefined });
    this.#defaultDeny = verdict({
      decision: 'deny',
      policy: undefined,
      rule: undefined,
      action: 'ALLOW',
      reason: `denied: no rule of the ALLOW policies (${compiled.allow.policies.join(', ')}) matched`,
      details: 'rbac_access_denied_matched_policy[none]',
      denial: RBAC_DENIAL,
    });
  }

  /** The policies that apply, as compiled. */
  get policies(): CompiledAuthz['policies'] {
    return this.#c.policies;
  }

  /** Dropped rules, ignored values and policies, unusable providers. */
  get findings(): readonly AuthzFinding[] {
    return this.#c.findings;
  }

  /** Which of Istio's RBAC filters this engine stands for: one per action with enforced (not dry-run) policies, AUDIT, DENY, ALLOW. */
  get rbacFilters(): { readonly audit: boolean; readonly deny: boolean; readonly allow: boolean } {
    this.#filters ??= Object.freeze({ audit: this.#c.audit.enforced !== undefined, deny: this.#c.deny.enforced !== undefined, allow: this.#c.allow.enforced !== undefined });
    return this.#filters;
  }

  /** True when at least one CUSTOM policy applies (evaluation may then wait for an authorizer). */
  get hasCustom(): boolean {
    return this.#c.custom.length > 0;
  }

  /** AUDIT, DENY and ALLOW once the CUSTOM answer is in (a function of its own: a closure in the caller, even one never made, would make V8 allocate what it captures on every call). */
  #localAfter(req: AuthzRequest, c: Promise<AuthzResult | CustomOutcome | undefined>): Promise<AuthzResult> {
    return c.then((o) => (o !== undefined && 'decision' in o ? o : this.#local(withHeaders(req, o), o)));
  }

  /**
   * Judges a request: CUSTOM, then AUDIT, DENY and ALLOW. Synchronous unless an external
   * authorizer must be asked. (Istio's validation refuses `request.auth.*` conditions and
   * `requestPrincipals` in CUSTOM rules, since its ext_authz filter runs before JWT
   * authentication: judging CUSTOM on a request that has been authenticated changes nothing.)
   */
  evaluate(req: AuthzRequest): AuthzResult | Promise<AuthzResult> {
    if (this.#c.custom.length === 0) return this.#local(req, undefined);
    const c = this.custom(req);
    if (c instanceof Promise) return this.#localAfter(req, c);
    if (c !== undefined && 'decision' in c) return c;
    return this.#local(withHeaders(req, c), c);
  }

  /**
   * The CUSTOM stage alone (Envoy's ext_authz filter, which Istio puts before JWT authentication:
   * the inbound pipeline runs it as its own phase): a denial, the headers the authorizers set or
   * removed, or undefined when no CUSTOM rule matched. Synchronous unless an authorizer is asked.
   */
  custom(req: AuthzRequest): AuthzResult | CustomOutcome | undefined | Promise<AuthzResult | CustomOutcome | undefined> {
    if (this.#c.custom.length === 0) return undefined;
    const stages = this.#c.custom;
    for (let i = 0; i < stages.length; i++) {
      const stage = stages[i] as CustomStage;
      const hit = firstMatch(stage.rules, this.#attrs.reset(req));
      if (hit === undefined) continue;
      if (stage.check === undefined) return this.#unusable(stage, hit);
      return this.#ask(req, i, hit, undefined);
    }
    return undefined;
  }

  #unusable(stage: CustomStage, hit: CompiledRule): AuthzResult {
    return verdict({
      decision: 'deny',
      policy: hit.policy,
      rule: hit.rule,
      action: 'CUSTOM',
      reason: `denied: CUSTOM policy ${hit.policy} rule ${hit.rule} matched, and ${stage.unusable}`,
      details: `rbac_access_denied_matched_policy[istio-ext-authz-${stage.provider}-${hit.id}-deny-due-to-bad-CUSTOM-action]`,
      denial: RBAC_DENIAL,
    });
  }

  /** Asks stage `i`'s provider (its rule `hit` matched), then goes on with the later providers. */
  async #ask(req: AuthzRequest, i: number, hit: CompiledRule, before: CustomOutcome | undefined): Promise<AuthzResult | CustomOutcome | undefined> {
    const stages = this.#c.custom;
    let outcome = before;
    let stage = stages[i] as CustomStage;
    let rule: CompiledRule | undefined = hit;
    for (;;) {
      if (rule !== undefined) {
        if (stage.check === undefined) return this.#unusable(stage, rule);
        let res: ExtAuthzResponse;
        try {
          res = await stage.check(withHeaders(req, outcome));
        } catch {
          // A provider must answer, not throw; if one does, the request fails closed.
          res = { allowed: false, status: 403, headers: {}, body: '', error: true };
        }
        if (!res.allowed) {
          return Object.freeze({
            ...verdict({
              decision: 'deny',
              policy: rule.policy,
              rule: rule.rule,
              action: 'CUSTOM',
              reason:
                res.local !== undefined
                  ? `denied before the external authorizer "${stage.provider}" was asked (CUSTOM policy ${rule.policy} rule ${rule.rule}): ${res.local.reason}`
                  : `denied by the external authorizer "${stage.provider}" (CUSTOM policy ${rule.policy} rule ${rule.rule}), status ${res.status}${res.error === true ? ' (authorizer unreachable or failing)' : ''}`,
              details: res.local?.details ?? (res.error === true ? 'ext_authz_error' : 'ext_authz_denied'),
              denial: { status: res.status, headers: res.headers, body: res.body },
            }),
            provider: stage.provider,
          });
        }
        const o: CustomOutcome = outcome ?? { provider: stage.provider, set: Object.create(null), remove: [], downstream: Object.create(null) };
        // Envoy applies an answer's removals after its other mutations: a header both set and removed is gone.
        // (`set` and `remove` stay disjoint, so the order they are applied in later does not matter.)
        for (const [k, v] of Object.entries(res.headersToUpstream ?? {})) {
          o.set[k] = v;
          const at = o.remove.indexOf(k);
          if (at !== -1) o.remove.splice(at, 1);
        }
        for (const k of res.headersToRemove ?? []) {
          if (!o.remove.includes(k)) o.remove.push(k);
          delete o.set[k];
        }
        for (const [k, v] of Object.entries(res.headersToDownstream ?? {})) o.downstream[k] = v;
        outcome = { ...o, provider: outcome === undefined ? stage.provider : `${outcome.provider},${stage.provider}` };
      }
      i++;
      if (i >= stages.length) return outcome;
      stage = stages[i] as CustomStage;
      rule = firstMatch(stage.rules, this.#attrs.reset(withHeaders(req, outcome)));
    }
  }

  #shadow(set: RuleSets, action: 'AUDIT' | 'DENY' | 'ALLOW', a: Attrs, out: DryRunOutcome[] | undefined): DryRunOutcome[] | undefined {
    const shadow = set.shadow;
    if (shadow === undefined) return out;
    const hit = firstMatch(shadow, a);
    const result = action === 'ALLOW' ? (hit === undefined ? 'deny' : 'allow') : action === 'DENY' ? (hit === undefined ? 'allow' : 'deny') : 'allow';
    const o: DryRunOutcome = { action, result, policy: hit?.policy, rule: hit?.rule, id: hit?.id };
    if (out === undefined) return [o];
    out.push(o);
    return out;
  }

  /**
   * AUDIT, DENY and ALLOW (the RBAC filters) on `req` as it is after CUSTOM and JWT
   * authentication; `c` is what CUSTOM allowed with (reported in the verdict), if it ran.
   */
  local(req: AuthzRequest, c: CustomOutcome | undefined): AuthzResult {
    return this.#local(req, c);
  }

  #local(req: AuthzRequest, c: CustomOutcome | undefined): AuthzResult {
    const a = this.#attrs.reset(req);
    const { audit, deny, allow } = this.#c;
    let dry: DryRunOutcome[] | undefined;
    let auditHit: RuleRef | undefined;
    if (audit.shadow !== undefined) dry = this.#shadow(audit, 'AUDIT', a, dry);
    if (audit.enforced !== undefined) {
      const hit = firstMatch(audit.enforced, a);
      if (hit !== undefined) auditHit = { policy: hit.policy, rule: hit.rule };
    }
    let base: AuthzResult | undefined;
    if (deny.shadow !== undefined) dry = this.#shadow(deny, 'DENY', a, dry);
    if (deny.enforced !== undefined) {
      const hit = firstMatch(deny.enforced, a);
      if (hit !== undefined) base = this.#denied.get(hit);
    }
    if (base === undefined) {
      if (allow.shadow !== undefined) dry = this.#shadow(allow, 'ALLOW', a, dry);
      if (allow.enforced === undefined) base = this.#noAllowPolicy;
      else {
        const hit = firstMatch(allow.enforced, a);
        base = hit === undefined ? this.#defaultDeny : this.#allowed.get(hit);
      }
    }
    const result = base as AuthzResult;
    if (dry === undefined && auditHit === undefined && c === undefined) return result;
    return Object.freeze({
      ...result,
      dryRun: dry ?? NO_DRY_RUN,
      audit: auditHit,
      provider: c?.provider,
      headersToUpstream: c === undefined || Object.keys(c.set).length === 0 ? undefined : c.set,
      headersToRemove: c === undefined || c.remove.length === 0 ? undefined : c.remove,
      headersToDownstream: c === undefined || Object.keys(c.downstream).length === 0 ? undefined : c.downstream,
    });
  }

  /** The compiled policies, one per line: action, dry-run, rules, provider. */
  toString(): string {
    const lines = this.#c.policies.map((p) => `${p.action}${p.dryRun ? ' (dry-run)' : ''} ${p.ref}: ${p.rules} rule(s)${p.provider === undefined ? '' : ` → provider ${p.provider}`}`);
    return lines.length === 0 ? 'no AuthorizationPolicy applies' : lines.join('\n');
  }
}

/**
 * Compiles the AuthorizationPolicies among `resources` (validated) that apply to `workload`.
 * @throws InvalidArgumentError for bad options (a negative or fractional `numTrustedProxies`).
 */
export function compileAuthz(resources: readonly Resource[], workload: AuthzWorkload, options: AuthzOptions = {}): AuthzEngine {
  const n = options.numTrustedProxies;
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) {
    throw new InvalidArgumentError(`authorization: numTrustedProxies must be a whole number >= 0, got ${String(n)}`);
  }
  return new AuthzEngine(compilePolicies(resources, workload, options));
}
