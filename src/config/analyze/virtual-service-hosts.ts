/**
 * VirtualService hosts written as `<name>.<namespace>` (or `<name>.<namespace>.svc`) where the
 * full name is a service (`MESHLET0104`). Istio expands only names without a dot
 * (`ResolveShortnameToFQDN`): `reviews.backend` stays a host of its own that no service has, so
 * istiod routes it only on port 80, or beside a service another host of the VirtualService names,
 * and the calls to `reviews.backend:9080` take the service's own routes, not this VirtualService's
 * — meshlet routes it as istiod does (src/routing/compile.ts), so this warns of a likely mistake.
 * Istio's analyzers have no code for it.
 *
 * @module
 */
import { DEFAULT_DOMAIN, isWildcard } from '../hosts.ts';
import { appliesToMesh, type Analyzer } from './context.ts';

/** The service name `host` looks like a short form of (`a.b` → `a.b.svc.cluster.local`, `a.b.svc` → `a.b.svc.cluster.local`), or undefined. */
function expanded(host: string): string | undefined {
  const labels = host.split('.');
  if (labels.length === 2) return `${host}.svc.${DEFAULT_DOMAIN}`;
  if (labels.length === 3 && labels[2] === 'svc') return `${host}.${DEFAULT_DOMAIN}`;
  return undefined;
}

/** `MESHLET0104`: a VirtualService host that is a partial name of a service, which Istio does not expand. */
export const virtualServiceHostAnalyzer: Analyzer = {
  name: 'virtualservice.hosts',
  codes: ['MESHLET0104'],
  description: 'VirtualService hosts written as <name>.<namespace>, which Istio does not expand to the service they look like',
  *analyze(ctx, issues) {
    for (const vs of ctx.virtualServices) {
      yield;
      if (!appliesToMesh(vs)) continue;
      (vs.spec.hosts ?? []).forEach((h, i) => {
        const host = h.toLowerCase();
        if (isWildcard(host) || ctx.registry.byHost.has(host)) return;
        const full = expanded(host);
        if (full === undefined || !ctx.registry.byHost.has(full)) return;
        issues.at(
          vs,
          ['spec', 'hosts', i],
          'warning',
          `host "${h}" is not service ${full}: Istio expands only names without a dot, so istiod (and meshlet, as istiod) routes this host only on port 80 (or beside a service another host of this VirtualService names) and calls to ${host}:<service port> take ${full}'s own routes. Write ${full}`,
          'MESHLET0104',
        );
      });
    }
  },
};
