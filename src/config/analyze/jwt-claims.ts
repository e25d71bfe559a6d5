/**
 * Routing on JWT claims (`@request.auth.claims.*` header keys) needs a RequestAuthentication to
 * validate the token and expose its claims; without one the match never succeeds (`IST0149`).
 *
 * @module
 */
import { ROOT_NAMESPACE } from '../destination-policy.ts';
import { ofKind } from '../resource.ts';
import type { Analyzer } from './context.ts';

/** The header-key prefix Istio uses for routing on a validated JWT claim. */
export const JWT_CLAIM_PREFIX = '@request.auth.claims.';

/**
 * `IST0149` JwtClaimBasedRoutingWithoutRequestAuthN: a match block keys `headers` or
 * `withoutHeaders` on `@request.auth.claims.…` but there is no RequestAuthentication in the
 * VirtualService's namespace or the root namespace (`istio-system`).
 */
export const jwtClaimAnalyzer: Analyzer = {
  name: 'virtualservice.jwt-claim-routing',
  codes: ['IST0149'],
  description: 'JWT claim based routing has a RequestAuthentication',
  *analyze(ctx, issues) {
    const raNamespaces = new Set(ofKind(ctx.resources, 'RequestAuthentication').map((ra) => ra.metadata.namespace));
    for (const vs of ctx.virtualServices) {
      yield;
      const ns = vs.metadata.namespace;
      if (raNamespaces.has(ns) || raNamespaces.has(ROOT_NAMESPACE)) continue;
      (vs.spec.http ?? []).forEach((rule, i) => {
        (rule.match ?? []).forEach((m, j) => {
          for (const field of ['headers', 'withoutHeaders'] as const) {
            for (const key of Object.keys(m[field] ?? {})) {
              if (!key.startsWith(JWT_CLAIM_PREFIX)) continue;
              issues.at(
                vs,
                ['spec', 'http', i, 'match', j, field, key],
                'error',
                `routing on JWT claim "${key.slice(JWT_CLAIM_PREFIX.length)}" needs a RequestAuthentication in namespace ${ns} or ${ROOT_NAMESPACE}; without one no request carries validated claims, so this match never succeeds`,
                'IST0149',
              );
            }
          }
        });
      });
    }
  },
};
