/**
 * Why a call's host matched no service, for explanations: the names a workload's call to a host
 * can mean (`reviews` → `reviews.<ns>.svc.cluster.local`, `reviews.ns` → `reviews.ns.svc…`), a
 * service found on other ports than the call's, and the nearest service names when none is found
 * (a typo).
 *
 * @module
 */
import { DEFAULT_DOMAIN, isVisible } from './hosts.ts';
import type { ServiceRegistry } from './registry.ts';
import { editDistance } from '../core/did-you-mean.ts';

/** The hostnames a call from `namespace` to `host` can mean, as Kubernetes' search domains resolve it. */
export function candidateNames(host: string, namespace: string, domain = DEFAULT_DOMAIN): string[] {
  const h = host.toLowerCase();
  const parts = h.split('.');
  if (parts.length === 1) return [h, `${h}.${namespace}.svc.${domain}`];
  if (parts.length === 2) return [h, `${h}.svc.${domain}`];
  if (h.endsWith('.svc')) return [h, `${h}.${domain}`];
  return [h];
}

/**
 * Why `host:port`, called from a workload of `namespace`, reaches no service: the service it
 * names has other ports, or no visible service has that name (with the nearest names, if any is
 * close). Undefined when a service has that name and port (the reason lies elsewhere).
 */
export function whyNotInMesh(registry: ServiceRegistry, namespace: string, host: string, port: number | undefined): string | undefined {
  for (const name of candidateNames(host, namespace)) {
    const svc = registry.lookup(name, namespace);
    if (svc === undefined) continue;
    const p = svc.ports.find((x) => x.number === port);
    if (p !== undefined) return undefined;
    const ports = svc.ports.map((x) => `${x.number}${x.protocol === undefined ? '' : ` (${x.protocol})`}`);
    return `${svc.hostname} is in the mesh on port${ports.length === 1 ? '' : 's'} ${ports.join(', ') || '(none)'}, not ${port ?? '(none)'}`;
  }
  const near = nearestNames(registry, namespace, host);
  return `${host} is not in the registry (no visible ServiceEntry or Service)${near.length === 0 ? '' : `; did you mean ${near.join(' or ')}?`}`;
}

/** The names of visible services closest to `host` (at most two edits away), nearest first, at most three. */
function nearestNames(registry: ServiceRegistry, namespace: string, host: string): string[] {
  const h = host.toLowerCase();
  const short = !h.includes('.');
  const scored: { name: string; d: number }[] = [];
  for (const svc of registry.services) {
    if (!isVisible(svc.exportTo, svc.namespace, namespace)) continue;
    // A short name is compared with the short names of the caller's namespace, as it would resolve.
    const local = svc.hostname.endsWith(`.${svc.namespace}.svc.${DEFAULT_DOMAIN}`) ? svc.hostname.slice(0, svc.hostname.indexOf('.')) : undefined;
    const name = short && local !== undefined && svc.namespace === namespace ? local : svc.hostname;
    const d = editDistance(h, name);
    if (d > 0 && d <= 2) scored.push({ name, d });
  }
  return [...new Set(scored.sort((a, b) => a.d - b.d || (a.name < b.name ? -1 : 1)).map((s) => s.name))].slice(0, 3);
}
