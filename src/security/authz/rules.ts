/**
 * One AuthorizationPolicy rule compiled into one predicate, as Istio's model turns a rule into
 * an Envoy RBAC policy (`pilot/pkg/security/authz/model/model.go`):
 *
 * - a rule matches when one of its `from` sources, one of its `to` operations and every `when`
 *   condition match; a missing section matches anything (`rules: [{}]` matches every request);
 * - inside a source or operation the fields are ANDed, the values of a field ORed, and a
 *   `not*` field is NOT(any of its values);
 * - a `when` key Istio does not know drops the rule whatever the action (`model.New` fails);
 * - a value that cannot be evaluated (an `experimental.envoy.filters.*` key, a path template
 *   Envoy would reject, a malformed key or address) follows Istio's `checkError`: for ALLOW the
 *   whole rule is dropped (a narrower allow), for DENY, AUDIT and CUSTOM just that value (or,
 *   for the JWT keys, that list) is dropped (a wider deny).
 *
 * `principals` and `source.principal` values get the trust-domain aliases, `trustDomains` and
 * `source.trustDomain` values are expanded, as `Model.MigrateTrustDomain` does.
 *
 * @module
 */
import type { AuthorizationCondition, AuthorizationOperation, AuthorizationRule, AuthorizationSource } from '../../config/types/security.ts';
import * as g from './generators.ts';
import type { Gen, Pred } from './generators.ts';
import { expandTrustDomainAliases, replaceTrustDomainAliases, type TrustDomainBundle } from './trust-domain.ts';

/** How a rule's unevaluable values are treated: Envoy's RBAC action of the filter it lands in. */
export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

/** What compiling a rule gave. */
export type CompiledRuleResult =
  | { readonly match: Pred; readonly ignored: readonly string[] }
  | { readonly dropped: string };

class Dropped extends Error {}

interface Scope {
  readonly action: RbacAction;
  readonly namespace: string;
  readonly bundle: TrustDomainBundle;
  readonly ignored: string[];
}

function unevaluable(scope: Scope, what: string, error: string): void {
  if (scope.action === 'ALLOW') throw new Dropped(`${what}: ${error}`);
  scope.ignored.push(`${what}: ${error} (ignored, so the ${scope.action === 'LOG' ? 'AUDIT' : 'DENY'} rule matches more requests)`);
}

/** Terms for one attribute with per-value generators: OR(values), NOT(OR(notValues)). */
function terms(scope: Scope, what: string, values: readonly string[] | undefined, notValues: readonly string[] | undefined, gen: (v: string) => Gen, out: Pred[]): void {
  for (const [list, negate] of [
    [values, false],
    [notValues, true],
  ] as const) {
    if (list === undefined || list.length === 0) continue;
    const preds: Pred[] = [];
    for (const v of list) {
      const r = gen(v);
      if (typeof r === 'function') preds.push(r);
      else unevaluable(scope, `${what} "${v}"`, r.error);
    }
    if (preds.length === 0) continue;
    out.push(negate ? g.not(g.or(preds)) : g.or(preds));
  }
}

/** Terms for one attribute whose generator takes the whole list (the JWT keys, Envoy metadata). */
function listTerms(scope: Scope, what: string, values: readonly string[] | undefined, notValues: readonly string[] | undefined, gen: (vs: readonly string[]) => Gen, out: Pred[]): void {
  for (const [list, negate] of [
    [values, false],
    [notValues, true],
  ] as const) {
    if (list === undefined || list.length === 0) continue;
    const r = gen(list);
    if (typeof r === 'function') out.push(negate ? g.not(r) : r);
    else unevaluable(scope, what, r.error);
  }
}

const PLAIN_KEYS = new Set([
  'destination.ip',
  'destination.port',
  'connection.sni',
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.trustDomain',
  'source.serviceAccount',
  'source.principal',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
]);

/** True for a `when` key `model.New` knows (its value may still be malformed). */
export function isKnownKey(k: string): boolean {
  return PLAIN_KEYS.has(k) || k.startsWith('experimental.envoy.filters.') || k.startsWith('request.headers') || k.startsWith('request.auth.claims');
}

/** The `when` keys, in `model.New`'s order; false for a key Istio does not know. */
function conditionTerms(scope: Scope, c: AuthorizationCondition, out: Pred[]): boolean {
  const k = c.key;
  const what = `when ${k}`;
  const v = c.values;
  const nv = c.notValues;
  const ns = scope.namespace;
  if (k === 'destination.ip') terms(scope, what, v, nv, g.destIp, out);
  else if (k === 'destination.port') terms(scope, what, v, nv, g.destPort, out);
  else if (k === 'connection.sni') terms(scope, what, v, nv, g.connSni, out);
  else if (k.startsWith('experimental.envoy.filters.')) listTerms(scope, what, v, nv, () => g.envoyFilter(k), out);
  else if (k === 'source.ip') terms(scope, what, v, nv, g.srcIp, out);
  else if (k === 'remote.ip') terms(scope, what, v, nv, g.remoteIp, out);
  else if (k === 'source.namespace') terms(scope, what, v, nv, g.srcNamespace, out);
  else if (k === 'source.trustDomain') terms(scope, what, tds(scope, v), tds(scope, nv), g.srcTrustDomain, out);
  else if (k === 'source.serviceAccount') terms(scope, what, v, nv, (x) => g.srcServiceAccount(ns, x), out);
  else if (k === 'source.principal') terms(scope, what, principals(scope, v), principals(scope, nv), g.srcPrincipal, out);
  else if (k === 'request.auth.principal') listTerms(scope, what, v, nv, g.requestPrincipal, out);
  else if (k === 'request.auth.audiences') listTerms(scope, what, v, nv, g.requestAudiences, out);
  else if (k === 'request.auth.presenter') listTerms(scope, what, v, nv, g.requestPresenter, out);
  else if (k.startsWith('request.headers')) terms(scope, what, v, nv, (x) => g.requestHeader(k, x), out);
  else if (k.startsWith('request.auth.claims')) listTerms(scope, what, v, nv, (xs) => g.requestClaims(k, xs), out);
  else return false;
  return true;
}

function principals(scope: Scope, v: readonly string[] | undefined): string[] | undefined {
  return v === undefined || v.length === 0 ? undefined : replaceTrustDomainAliases(scope.bundle, v);
}

function tds(scope: Scope, v: readonly string[] | undefined): string[] | undefined {
  return v === undefined || v.length === 0 ? undefined : expandTrustDomainAliases(scope.bundle, v);
}

function sourcePred(scope: Scope, s: AuthorizationSource, j: number): Pred {
  const out: Pred[] = [];
  const at = `from[${j}]`;
  terms(scope, `${at} principals`, principals(scope, s.principals), principals(scope, s.notPrincipals), g.srcPrincipal, out);
  listTerms(scope, `${at} requestPrincipals`, s.requestPrincipals, s.notRequestPrincipals, g.requestPrincipal, out);
  terms(scope, `${at} serviceAccounts`, s.serviceAccounts, s.notServiceAccounts, (x) => g.srcServiceAccount(scope.namespace, x), out);
  terms(scope, `${at} trustDomains`, tds(scope, s.trustDomains), tds(scope, s.notTrustDomains), g.srcTrustDomain, out);
  terms(scope, `${at} namespaces`, s.namespaces, s.notNamespaces, g.srcNamespace, out);
  terms(scope, `${at} remoteIpBlocks`, s.remoteIpBlocks, s.notRemoteIpBlocks, g.remoteIp, out);
  terms(scope, `${at} ipBlocks`, s.ipBlocks, s.notIpBlocks, g.srcIp, out);
  return g.and(out);
}

function operationPred(scope: Scope, o: AuthorizationOperation, j: number): Pred {
  const out: Pred[] = [];
  const at = `to[${j}]`;
  terms(scope, `${at} hosts`, o.hosts, o.notHosts, g.host, out);
  terms(scope, `${at} methods`, o.methods, o.notMethods, g.method, out);
  terms(scope, `${at} paths`, o.paths, o.notPaths, g.path, out);
  terms(scope, `${at} ports`, o.ports, o.notPorts, g.destPort, out);
  return g.and(out);
}

/**
 * Compiles one rule of a policy in `namespace` for a filter of `action`. A null rule (YAML
 * `- null`) is dropped, as Istio skips it.
 */
export function compileRule(rule: AuthorizationRule | null | undefined, namespace: string, action: RbacAction, bundle: TrustDomainBundle): CompiledRuleResult {
  if (rule === null || rule === undefined) return { dropped: 'the rule is null' };
  const scope: Scope = { action, namespace, bundle, ignored: [] };
  try {
    const parts: Pred[] = [];
    // model.New first: an unknown `when` key fails the whole rule, for every action.
    const unknown = (rule.when ?? []).find((c) => !isKnownKey(c.key));
    if (unknown !== undefined) return { dropped: `unknown attribute ${unknown.key}` };
    for (const c of rule.when ?? []) conditionTerms(scope, c, parts);
    const tos = rule.to ?? [];
    if (tos.length > 0) parts.unshift(g.or(tos.map((t, j) => (t.operation === undefined ? g.ANY : operationPred(scope, t.operation, j)))));
    const froms = rule.from ?? [];
    if (froms.length > 0) parts.push(g.or(froms.map((f, j) => (f.source === undefined ? g.ANY : sourcePred(scope, f.source, j)))));
    return { match: g.and(parts), ignored: scope.ignored };
  } catch (err) {
    if (err instanceof Dropped) return { dropped: err.message };
    throw err;
  }
}
