/**
 * Routing on JWT claims (`@request.auth.claims.*` header keys) at a gateway needs a
 * RequestAuthentication that applies to the gateway's workloads, or no request carries validated
 * claims and the match never succeeds (`IST0149`, as Istio's `JWTClaimRouteAnalyzer` reports
 * it). Istio accepts claim routing only in VirtualServices bound to gateways (validation refuses
 * it for the mesh), so only those are checked.
 *
 * @module
 */
import { DEFAULT_ROOT_NAMESPACE as ROOT_NAMESPACE } from '../resource.ts';
import { ofKind } from '../resource.ts';
import { appliesToMesh, type Analyzer } from './context.ts';

/** The header-key prefix Istio uses for routing on a validated JWT claim. */
export const JWT_CLAIM_PREFIX = '@request.auth.claims';

/**
 * `IST0149` JwtClaimBasedRoutingWithoutRequestAuthN: a VirtualService bound only to gateways
 * keys `headers` or `withoutHeaders` on `@request.auth.claims…`, and no RequestAuthentication
 * can apply to the gateways' workloads. Istio checks the gateway Pods the Gateway selects, in
 * their namespace and the root namespace; meshlet reads neither Gateways nor Pods, so it takes
 * the gateway's workloads to run in the Gateway's namespace (or are reached by one in the root
 * namespace, `istio-system`), and counts any RequestAuthentication there, with or without a
 * selector, as applying to them (it cannot see their labels).
 */
export const jwtClaimAnalyzer: Analyzer = {
  name: 'virtualservice.jwt-claim-routing',
  codes: ['IST0149'],
  description: 'JWT claim based routing at a gateway has a RequestAuthentication',
  *analyze(ctx, issues) {
    const raNamespaces = new Set(ofKind(ctx.resources, 'RequestAuthentication').map((ra) => ra.metadata.namespace));
    if (raNamespaces.has(ROOT_NAMESPACE)) return;
    for (const vs of ctx.virtualServices) {
      yield;
      if (appliesToMesh(vs)) continue;
      const ns = vs.metadata.namespace;
      const gateways = (vs.spec.gateways ?? []).map((g) => (g.includes('/') ? g : `${ns}/${g}`));
      const gatewayNamespaces = [...new Set(gateways.map((g) => g.slice(0, g.indexOf('/'))))];
      if (gatewayNamespaces.some((g) => raNamespaces.has(g))) continue;
      const where = [...new Set([...gatewayNamespaces, ROOT_NAMESPACE])].join(' or ');
      (vs.spec.http ?? []).forEach((rule, i) => {
        (rule.match ?? []).forEach((m, j) => {
          for (const field of ['headers', 'withoutHeaders'] as const) {
            for (const key of Object.keys(m[field] ?? {})) {
              if (!key.toLowerCase().startsWith(JWT_CLAIM_PREFIX)) continue;
              issues.at(
                vs,
                ['spec', 'http', i, 'match', j, field, key],
                'error',
                `routing on JWT claim "${key.slice(JWT_CLAIM_PREFIX.length).replace(/^\./, '')}" at gateway ${gateways.join(', ')} needs a RequestAuthentication for the gateway's workloads (in namespace ${where}); without one no request carries validated claims, so this match never succeeds`,
                'IST0149',
              );
            }
          }
        });
      });
    }
  },
};
