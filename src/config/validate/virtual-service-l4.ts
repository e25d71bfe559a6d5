/**
 * VirtualService TCP and TLS rules. meshlet does not route them (it warns that they are
 * ignored), but checks them as Istio's `validateTCPRoute` and `validateTLSRoute` do, so a file
 * that meshlet accepts is one Istio accepts too.
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { L4MatchAttributes, RouteDestination, TCPRoute, TLSMatchAttributes, TLSRoute } from '../types/networking.ts';
import { checkIpOrCidr, isIpAddress, labels, namespaceName } from './common.ts';
import { checkGatewayHost, MESH_GATEWAY } from './gateway-names.ts';
import { hostMatches } from '../hosts.ts';
import { destination } from './http-route.ts';
import { gatewayNames } from './http-match.ts';
import { fail, int, list, obj, port, req, str, strWith, type Ctx, type Validator } from './schema.ts';

const l4Destination = obj<RouteDestination>({ destination: req(destination), weight: int({ min: 0, max: 2147483647 }) });

/** A route list of a TCP or TLS rule: at least one destination, and a total weight > 0 when there are several. */
const l4Destinations = (kind: string): Validator<RouteDestination[]> => (v, path, ctx) => {
  const out = list(l4Destination)(v, path, ctx);
  if (out === undefined) return undefined;
  if (out.length === 0) return fail(ctx, path, `${kind} route is required (at least one destination)`);
  if (out.length > 1 && out.reduce((s, d) => s + (d.weight ?? 0), 0) === 0) fail(ctx, path, 'total weight of the destinations must be > 0');
  return out;
};

const subnets = list(strWith(checkIpOrCidr));

const tlsMatch = obj<TLSMatchAttributes>({
  sniHosts: req(list(str, { min: 1 })),
  destinationSubnets: subnets,
  port,
  sourceLabels: labels,
  gateways: gatewayNames,
  sourceNamespace: namespaceName,
});

const l4Match = obj<L4MatchAttributes & { sourceSubnet?: string }>({
  destinationSubnets: subnets,
  port,
  sourceLabels: labels,
  gateways: gatewayNames,
  sourceNamespace: namespaceName,
  sourceSubnet: str,
});

function routeRequired(kind: string) {
  return (_r: unknown, path: FieldPath, ctx: Ctx, raw: Record<string, unknown>) => {
    if (raw.route === undefined || raw.route === null) fail(ctx, [...path, 'route'], `${kind} route is required (at least one destination)`);
  };
}

/** Validates a TLS rule (its SNI hosts are checked against the VirtualService by {@link checkSniHosts}). */
export const tlsRoute: Validator<TLSRoute> = obj<TLSRoute>(
  { match: req(list(tlsMatch, { min: 1 })), route: l4Destinations('TLS') },
  { check: routeRequired('TLS') },
);

/** Validates a TCP rule. */
export const tcpRoute: Validator<TCPRoute> = obj<TCPRoute>(
  { match: list(l4Match), route: l4Destinations('TCP') },
  { check: routeRequired('TCP') },
);

/**
 * Checks the SNI hosts of TLS rules as Istio's `validateSniHost`: a host name (an
 * auto-generated `outbound_…` name when the VirtualService is not bound to `mesh`), an IP
 * address only with a warning, and covered by one of the VirtualService's hosts.
 */
export function checkSniHosts(tls: readonly TLSRoute[], hosts: readonly string[], gateways: readonly string[], path: FieldPath, ctx: Ctx): void {
  const gatewayBound = !gateways.includes(MESH_GATEWAY);
  tls.forEach((rule, i) => {
    (rule.match ?? []).forEach((m, j) => {
      (m.sniHosts ?? []).forEach((sni, k) => {
        const p = [...path, i, 'match', j, 'sniHosts', k];
        const problem = checkGatewayHost(sni, gatewayBound);
        if (problem !== undefined) {
          if (isIpAddress(sni)) {
            ctx.issues.at(ctx.subject, p, 'warning', `"${sni}" is an IP address: using one as an SNI host goes against the SNI spec, and most clients do not support it`);
          } else {
            fail(ctx, p, problem);
          }
          return;
        }
        if (!hosts.some((h) => hostMatches(h.toLowerCase(), sni.toLowerCase()))) {
          fail(ctx, p, `SNI host "${sni}" is not covered by any host of the VirtualService (${hosts.join(', ')})`);
        }
      });
    });
  });
}
