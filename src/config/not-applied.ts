/**
 * Kinds meshlet validates but does not apply yet — none today: Sidecar is applied (egress
 * scoping and its outboundTrafficPolicy, `src/config/sidecar-scope.ts`), Telemetry is applied (tracing,
 * metrics, access logging), and PeerAuthentication, RequestAuthentication, AuthorizationPolicy
 * and the local rate limit EnvoyFilter are enforced by the server side. Such kinds are checked as Istio checks them, so a config can be
 * shared with an Istio cluster; one info notice per kind present says they have no effect in
 * meshlet yet (`MESHLET0003`), so nobody relies on a policy that is not enforced.
 *
 * @module
 */
import type { IssueList } from './issues.ts';
import type { AnyResource, Kind } from './resource.ts';

/** The code of the notice. */
export const NOT_APPLIED_CODE = 'MESHLET0003';

/** What a kind would do, and that meshlet does not do it yet. */
export const NOT_APPLIED_YET: Readonly<Partial<Record<Kind, string>>> = {};

/** Adds one info notice per not-yet-applied kind among `resources`, at its first resource. */
export function reportNotApplied(resources: readonly AnyResource[], issues: IssueList): void {
  const seen = new Map<Kind, { first: AnyResource; count: number }>();
  for (const r of resources) {
    if (NOT_APPLIED_YET[r.kind] === undefined) continue;
    const s = seen.get(r.kind);
    if (s === undefined) seen.set(r.kind, { first: r, count: 1 });
    else s.count++;
  }
  for (const [kind, { first, count }] of seen) {
    const what = count === 1 ? `1 ${kind}` : `${count} ${kind} resources`;
    issues.at(first, [], 'info', `${what} validated but not applied: ${NOT_APPLIED_YET[kind]}`, NOT_APPLIED_CODE);
  }
}
