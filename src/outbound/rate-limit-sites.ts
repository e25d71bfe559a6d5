/**
 * Where an outbound call goes, as a sidecar's outbound listeners and route configurations name it
 * (the sites the local rate limit's EnvoyFilter patches match): the listener of the destination
 * port (`0.0.0.0_<port>`), route configuration `"<port>"`, virtual host `<host>:<port>` with the
 * domains istiod gives it for a sidecar, the route's Envoy name — and which sites of one config
 * the next still has.
 *
 * @module
 */
import { isIP } from 'node:net';
import { DEFAULT_DOMAIN } from '../config/hosts.ts';
import type { ListenerMatch, RouteConfigurationMatch } from '../config/types/envoy-filter.ts';
import { HCM } from '../policies/rate-limit/envoy-filters.ts';
import { envoyRouteName, type RouteTable, type VirtualHost } from '../routing/route-table.ts';

/** Where a call goes, as Envoy's outbound route configuration names it. */
export interface OutboundRouteSite {
  /** The outbound listener's port: the port the call connects to. */
  readonly port: number;
  /** `<host>:<port>`, `allow_any` or `block_all`. */
  readonly vhost: string;
  /** The virtual host's domains as istiod builds them for a sidecar ({@link sidecarDomains}; `*` for `allow_any` and `block_all`). */
  readonly domains: readonly string[];
  /** The Envoy route name; undefined when no route matched (no per-route config then). */
  readonly route: string | undefined;
  /**
   * Which route it is, when names do not tell (unnamed rules share the name ''; Envoy has a route
   * per rule and match block, each with its own per-route config): `<VirtualService>#<rule>#<block>`.
   * @defaultValue the route name
   */
  readonly routeId?: string;
  readonly action: 'ROUTE' | 'REDIRECT' | 'DIRECT_RESPONSE';
  /** The route's cluster (`destination_cluster`), when it forwards. */
  readonly cluster: string | undefined;
}

/** `<host>\0<port or *>` of every virtual host of a route table, with the keys of its routes. */
export function siteKeys(table: RouteTable): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const v of table.virtualHosts) {
    const routes = new Set<string>();
    for (const r of v.routes) {
      for (let b = 0; b < Math.max(1, r.matchers.length); b++) routes.add(`${envoyRouteName(r, b)}\u0000${HTTP_ACTION[r.action]}\u0000${r.virtualService ?? ''}#${r.index}#${b}`);
    }
    out.set(`${v.host}\u0000${v.port ?? '*'}`, routes);
  }
  return out;
}

/** Whether a site of the config before is one of the new config's (`allow_any` and `block_all` always are). */
export function siteExists(keys: ReadonlyMap<string, ReadonlySet<string>>, s: OutboundRouteSite): boolean {
  if (s.vhost === 'allow_any' || s.vhost === 'block_all') return true;
  const colon = s.vhost.lastIndexOf(':');
  const host = s.vhost.slice(0, colon);
  const routes = keys.get(`${host}\u0000${s.port}`) ?? keys.get(`${host}\u0000*`);
  if (routes === undefined) return false;
  return s.route === undefined || routes.has(`${s.route}\u0000${s.action}\u0000${s.routeId ?? ''}`);
}

export const CATCH_ALL_DOMAINS: readonly string[] = Object.freeze(['*']);
export const HTTP_ACTION = { forward: 'ROUTE', redirect: 'REDIRECT', 'direct-response': 'DIRECT_RESPONSE' } as const;

/** Whether an HTTP_FILTER patch's listener match fits the outbound HTTP listener of `port`. */
export function outboundListenerFits(m: ListenerMatch | undefined, port: number): boolean {
  if (m === undefined) return true;
  if (m.name !== undefined && m.name !== '' && m.name !== `0.0.0.0_${port}`) return false;
  if (m.portNumber !== undefined && m.portNumber !== 0 && m.portNumber !== port) return false;
  const fc = m.filterChain;
  if (fc === undefined) return true;
  // istiod's outbound HTTP filter chains match raw_buffer and the plaintext HTTP ALPNs, never a destination port.
  if (fc.destinationPort !== undefined && fc.destinationPort !== 0) return false;
  if (fc.transportProtocol !== undefined && fc.transportProtocol !== '' && fc.transportProtocol !== 'raw_buffer') return false;
  const f = fc.filter;
  if (f?.name !== undefined && f.name !== '' && f.name !== HCM) return false;
  return true;
}

/** Whether a route patch's routeConfiguration match fits the outbound route a call takes (istiod's routeConfigurationMatch, virtualHostMatch, routeMatch). */
export function outboundRouteFits(m: RouteConfigurationMatch | undefined, s: OutboundRouteSite, applyTo: 'HTTP_ROUTE' | 'VIRTUAL_HOST'): boolean {
  // Without a route, Envoy finds no per-route (or per-virtual-host) config.
  if (s.route === undefined) return false;
  if (m === undefined) return true;
  if (m.name !== undefined && m.name !== '' && m.name !== String(s.port)) return false;
  if (m.portNumber !== undefined && m.portNumber !== 0 && m.portNumber !== s.port) return false;
  const vh = m.vhost;
  if (vh === undefined) return true;
  if (vh.name !== undefined && vh.name !== '' && vh.name !== s.vhost) return false;
  if (vh.domainName !== undefined && vh.domainName !== '' && !s.domains.includes(vh.domainName)) return false;
  if (applyTo === 'VIRTUAL_HOST' || vh.route === undefined) return true;
  const r = vh.route;
  if (r.name !== undefined && r.name !== '' && r.name !== s.route) return false;
  return r.action === undefined || r.action === 'ANY' || r.action === s.action;
}

const SVC_SUFFIX = `.svc.${DEFAULT_DOMAIN}`;

/**
 * The short names istiod adds for a Kubernetes service name, in its order
 * (`generateAltVirtualHostsForKubernetesService`, ports left out; `aliasesFor` in config/hosts.ts
 * has the same names in the order a lookup tries them): in the client's namespace `name`,
 * `name.ns.svc`, `name.ns`; else `name.ns`, `name.ns.svc`.
 */
function kubeAltHosts(h: string, clientNamespace: string): string[] {
  const ih = h.indexOf('.svc.');
  const ns = h.indexOf('.');
  if (ih <= 0 || ns + 1 >= h.length || ns + 1 > ih) return [];
  const nameNs = h.slice(0, ih);
  return h.slice(ns + 1, ih) === clientNamespace ? [h.slice(0, ns), `${nameNs}.svc`, nameNs] : [nameNs, `${nameNs}.svc`];
}

/** A service's VIPs: a ServiceEntry's `addresses`, a Kubernetes Service's cluster IPs. */
function vipsOf(vhost: VirtualHost): string[] {
  const r = vhost.service?.resource;
  if (r === undefined) return [];
  const ips = r.kind === 'ServiceEntry' ? (r.spec.addresses ?? []) : (r.spec.clusterIPs ?? (r.spec.clusterIP === undefined ? [] : [r.spec.clusterIP]));
  return ips.filter((ip) => ip !== '' && ip !== 'None' && ip !== '0.0.0.0');
}

const sidecarDomainCache = new WeakMap<VirtualHost, Map<string, readonly string[]>>();

/**
 * A virtual host's domains as istiod builds them for a sidecar (`generateVirtualHostDomains`;
 * `SidecarIgnorePort`: never `host:port`, Envoy ignores the port): the service's host names (and
 * its ExternalName aliases'), each also as an absolute FQDN with a trailing dot, the short names
 * of a Kubernetes service name, `*.`-prefixed for a headless Service, and the service's VIPs; a
 * VirtualService host with no service behind it is its only domain.
 */
export function sidecarDomains(vhost: VirtualHost, clientNamespace: string): readonly string[] {
  let byNs = sidecarDomainCache.get(vhost);
  const cached = byNs?.get(clientNamespace);
  if (cached !== undefined) return cached;
  const svc = vhost.service;
  let domains: string[];
  if (svc === undefined) domains = [vhost.host];
  else {
    domains = [];
    for (const h of [svc.hostname, ...svc.aliases.map((a) => a.hostname)]) {
      domains.push(h);
      if (isIP(h) === 0) domains.push(`${h}.`);
      if (h.endsWith(SVC_SUFFIX)) domains.push(...kubeAltHosts(h, clientNamespace));
    }
    if (svc.headless === true) domains.push(...domains.map((d) => `*.${d}`));
    domains.push(...vipsOf(vhost));
  }
  const out = Object.freeze([...new Set(domains)]);
  if (byNs === undefined) {
    byNs = new Map();
    sidecarDomainCache.set(vhost, byNs);
  }
  byNs.set(clientNamespace, out);
  return out;
}

