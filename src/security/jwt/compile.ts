/**
 * Which RequestAuthentications apply to this workload, and their JWT rules compiled — what
 * istiod does before it writes Envoy's `jwt_authn` config (`getConfigsForWorkload`,
 * `newPolicyApplier`, `convertToEnvoyJwtConfig`):
 *
 * - Policies in the workload's namespace and in the root namespace (`istio-system`) apply when
 *   their `selector` is absent or its labels are a subset of the workload's; in the root
 *   namespace a selector matches workloads of every namespace. A policy with `targetRef(s)` does
 *   not apply to a sidecar workload (`ShouldAttachPolicy`), and meshlet is one.
 * - Policies are taken namespace first, then root, each oldest first; their rules are put in one
 *   list and sorted by issuer (each rule becomes one Envoy provider, `origins-<i>`).
 * - Per rule: issuer, audiences (none configured accepts any audience — Envoy does not check
 *   `aud` then; the API text "the service name will be accepted" is not what the generated
 *   config does), key source, locations (the defaults when none), `forwardOriginalToken`, the
 *   output headers, the space-delimited claims (plus `scope` and `permission`), the JWKS fetch
 *   `timeout` (5 s by default).
 *
 * @module
 */
import { parseDuration } from '../../config/duration.ts';
import { byAge, DEFAULT_ROOT_NAMESPACE, type Resource } from '../../config/resource.ts';
import type { JWTRule } from '../../config/types/security.ts';
import { labelsMatch } from '../../config/workloads.ts';
import type { JwksSource } from './jwks-source.ts';
import { ruleLocations, type TokenLocation } from './locations.ts';
import { type ClaimHeader, claimHeaders, DEFAULT_SPACE_DELIMITED } from './outputs.ts';
import { audienceSet } from './token.ts';

/** The default JWKS fetch timeout (JWTRule `timeout`). */
export const DEFAULT_JWKS_TIMEOUT_MS = 5000;

/** The workload the rules are compiled for. */
export interface JwtWorkload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** One JWT rule, ready for requests. */
export interface CompiledRule {
  /** Where it came from: `RequestAuthentication ns/name jwtRules[i]`. */
  readonly name: string;
  /** The issuer a token must name; '' accepts any (a rule with only a `jwksUri`). */
  readonly issuer: string;
  /** The configured audiences. */
  readonly audiences: readonly string[];
  /** The same, sanitized for matching; empty accepts any. */
  readonly audienceSet: ReadonlySet<string>;
  readonly locations: readonly TokenLocation[];
  readonly forwardOriginalToken: boolean;
  /** Lower-cased `outputPayloadToHeader`, '' when none. */
  readonly payloadHeader: string;
  readonly claimHeaders: readonly ClaimHeader[];
  /** Every header this rule writes (removed from incoming requests first). */
  readonly outputHeaders: readonly string[];
  readonly spaceDelimitedClaims: ReadonlySet<string>;
  readonly timeoutMs: number;
  /** `presence: REQUIRED`: a request without a token is refused. */
  readonly required: boolean;
  readonly source: JwksSource;
}

/**
 * The RequestAuthentications that apply to `workload`, in Istio's order: its namespace, then the
 * root namespace; each oldest first.
 */
export function selectRequestAuthentications(
  policies: readonly Resource<'RequestAuthentication'>[],
  workload: JwtWorkload,
  rootNamespace: string = DEFAULT_ROOT_NAMESPACE,
): Resource<'RequestAuthentication'>[] {
  const applies = (p: Resource<'RequestAuthentication'>): boolean => {
    const s = p.spec;
    if (s.targetRef !== undefined || (s.targetRefs !== undefined && s.targetRefs.length > 0)) return false;
    return labelsMatch(s.selector?.matchLabels, workload.labels);
  };
  const inNs = (ns: string) => policies.filter((p) => p.metadata.namespace === ns && applies(p)).sort(byAge);
  return workload.namespace === rootNamespace ? inNs(rootNamespace) : [...inNs(workload.namespace), ...inNs(rootNamespace)];
}

/** A rule with where it came from, in issuer order. */
export interface PlacedRule {
  readonly rule: JWTRule;
  readonly name: string;
}

/** The rules of the policies, sorted by issuer as istiod sorts them (stable: ties keep policy order). */
export function placedRules(policies: readonly Resource<'RequestAuthentication'>[]): PlacedRule[] {
  const rules = policies.flatMap((p) => (p.spec.jwtRules ?? []).map((rule, i) => ({ rule, name: `${p.ref} jwtRules[${i}]` })));
  return rules.sort((a, b) => {
    const x = a.rule.issuer ?? '';
    const y = b.rule.issuer ?? '';
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** The rule's JWKS fetch timeout in ms. */
export function timeoutOf(rule: JWTRule): number {
  if (rule.timeout === undefined) return DEFAULT_JWKS_TIMEOUT_MS;
  const ms = parseDuration(rule.timeout);
  return typeof ms === 'number' && ms > 0 ? ms : DEFAULT_JWKS_TIMEOUT_MS;
}

/** Compiles one rule around its key source. */
export function compileRule(placed: PlacedRule, source: JwksSource): CompiledRule {
  const { rule, name } = placed;
  const payloadHeader = (rule.outputPayloadToHeader ?? '').toLowerCase();
  const claims = claimHeaders(rule.outputClaimToHeaders);
  const outputHeaders = [...new Set([...(payloadHeader === '' ? [] : [payloadHeader]), ...claims.map((c) => c.header)])];
  return Object.freeze({
    name,
    issuer: rule.issuer ?? '',
    audiences: Object.freeze([...(rule.audiences ?? [])]),
    audienceSet: audienceSet(rule.audiences),
    locations: ruleLocations(rule),
    forwardOriginalToken: rule.forwardOriginalToken === true,
    payloadHeader,
    claimHeaders: claims,
    outputHeaders: Object.freeze(outputHeaders),
    spaceDelimitedClaims: new Set([...(rule.spaceDelimitedClaims ?? []), ...DEFAULT_SPACE_DELIMITED]),
    timeoutMs: timeoutOf(rule),
    required: rule.presence === 'REQUIRED',
    source,
  });
}
