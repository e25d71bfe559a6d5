/**
 * Validation of `VirtualService`, following Istio's `ValidateVirtualService`
 * (pkg/config/validation): hosts, gateways, delegation (a VirtualService without hosts is a
 * delegate, referenced by another's `delegate`), and the HTTP, TLS and TCP rules
 * (http-route.ts, virtual-service-l4.ts).
 *
 * @module
 */
import { hostsOverlap } from '../hosts.ts';
import type { HTTPMatchRequest, VirtualServiceSpec } from '../types/networking.ts';
import { isIpAddress } from './common.ts';
import { checkGatewayHost, MESH_GATEWAY } from './gateway-names.ts';
import { gatewayNames, isJwtClaimKey } from './http-match.ts';
import { httpRoute } from './http-route.ts';
import { fail, list, obj, str, unsupported, type Validator } from './schema.ts';
import { exportToList } from './shared-networking.ts';
import { checkSniHosts, tcpRoute, tlsRoute } from './virtual-service-l4.ts';

/** The keys of JWT-claim matches in a match block (headers and withoutHeaders). */
function jwtClaimKeys(m: HTTPMatchRequest): [field: 'headers' | 'withoutHeaders', key: string][] {
  const out: [field: 'headers' | 'withoutHeaders', key: string][] = [];
  for (const field of ['headers', 'withoutHeaders'] as const) for (const k of Object.keys(m[field] ?? {})) if (isJwtClaimKey(k)) out.push([field, k]);
  return out;
}

/** Validates a VirtualService spec. */
export const virtualServiceSpec: Validator<VirtualServiceSpec> = obj<VirtualServiceSpec>(
  {
    hosts: list(str),
    gateways: gatewayNames,
    http: list(httpRoute),
    tls: unsupported(list(tlsRoute), 'meshlet routes HTTP and gRPC; TLS passthrough routes are ignored'),
    tcp: unsupported(list(tcpRoute), 'meshlet routes HTTP and gRPC; TCP routes are ignored'),
    exportTo: exportToList({ allowNone: false }),
  },
  {
    check: (vs, path, ctx, raw) => {
      const hosts = vs.hosts ?? [];
      const gateways = vs.gateways ?? [];
      const appliesToGateway = gateways.length > 0 && !gateways.includes(MESH_GATEWAY);
      const sni = (vs.tls ?? []).some((t) => (t.match ?? []).some((m) => (m.sniHosts ?? []).length > 0));
      const isDelegate = hosts.length === 0;
      if (isDelegate) {
        // A delegate: its rules are merged under a root's rule, so it has no routing of its own.
        if (gateways.length > 0) fail(ctx, [...path, 'gateways'], 'a delegate VirtualService (one without hosts) must not have gateways; the root VirtualService decides where it applies');
        if ((vs.tls ?? []).length > 0) fail(ctx, [...path, 'tls'], 'a delegate VirtualService (one without hosts) must not have TLS routes');
        if ((vs.tcp ?? []).length > 0) fail(ctx, [...path, 'tcp'], 'a delegate VirtualService (one without hosts) must not have TCP routes');
      }

      let hostsValid = true;
      hosts.forEach((h, i) => {
        const problem = appliesToGateway ? checkGatewayHost(h, sni) : checkGatewayHost(h, false);
        if (problem !== undefined && !isIpAddress(h)) {
          fail(ctx, [...path, 'hosts', i], problem);
          hostsValid = false;
        } else if (!appliesToGateway && h === '*') {
          fail(ctx, [...path, 'hosts', i], 'wildcard host * is not allowed for virtual services bound to the mesh');
          hostsValid = false;
        }
      });
      // Istio: hosts that overlap (equal, or one wildcard covering the other) are duplicates.
      if (hostsValid) {
        for (let i = 0; i < hosts.length; i++) {
          for (let j = i + 1; j < hosts.length; j++) {
            const a = (hosts[i] as string).toLowerCase();
            const b = (hosts[j] as string).toLowerCase();
            if (hostsOverlap(a, b)) fail(ctx, [...path, 'hosts', j], `duplicate hosts in one VirtualService: "${hosts[i]}" and "${hosts[j]}" overlap`);
          }
        }
      }

      // JWT-claim routing needs the claims of an authenticated request, which only gateways have.
      if (!appliesToGateway) {
        (vs.http ?? []).forEach((rule, i) => {
          (rule.match ?? []).forEach((m, j) => {
            for (const [field, key] of jwtClaimKeys(m)) {
              fail(ctx, [...path, 'http', i, 'match', j, field, key], `JWT claim based routing is only supported on gateways; this VirtualService applies to sidecars (gateways: ${gateways.length === 0 ? 'none, i.e. mesh' : gateways.join(', ')})`);
            }
          });
        });
      }
      if (isDelegate) {
        (vs.http ?? []).forEach((rule, i) => {
          if (rule.delegate !== undefined) fail(ctx, [...path, 'http', i, 'delegate'], 'a delegate VirtualService cannot delegate again (one level of delegation only)');
        });
      }
      checkSniHosts(vs.tls ?? [], hosts, gateways, [...path, 'tls'], ctx);

      if (appliesToGateway) {
        ctx.issues.at(ctx.subject, [...path, 'gateways'], 'warning', 'not supported by meshlet: this VirtualService is bound only to gateways (no "mesh"), and meshlet is not a gateway: it ignores it', 'MESHLET0002');
      }
      if (!['http', 'tls', 'tcp'].some((k) => Array.isArray(raw[k]) && (raw[k] as unknown[]).length > 0)) fail(ctx, path, 'http, tcp or tls must be provided');
    },
  },
);
