/**
 * Host-name semantics: short names, FQDNs, wildcards and visibility (`exportTo`), as Istio
 * applies them.
 *
 * @module
 */

/** The cluster domain meshlet assumes, as Istio's default trust domain and DNS suffix. */
export const DEFAULT_DOMAIN = 'cluster.local';

/**
 * Resolves a host written in a resource to its full name: a name without dots is a short
 * name and resolves against the resource's namespace (`reviews` in `default` →
 * `reviews.default.svc.cluster.local`). Other names (and wildcards) are kept as written, lower-cased.
 */
export function resolveHost(host: string, namespace: string, domain = DEFAULT_DOMAIN): string {
  const h = host.toLowerCase();
  if (h.startsWith('*') || h.includes('.')) return h;
  return `${h}.${namespace}.svc.${domain}`;
}

/**
 * True if `host` is a wildcard pattern: `*`, `*.suffix`, or a partial wildcard such as
 * `*foo.com` (Istio: any host starting with `*`).
 */
export function isWildcard(host: string): boolean {
  return host.startsWith('*');
}

/**
 * True if `pattern` (a host, possibly a wildcard) covers the concrete or wildcard host `host`,
 * as Istio's `host.Name.SubsetOf` decides: a wildcard covers every host ending with what
 * follows its `*`. `*.example.com` covers `a.example.com`, `a.b.example.com` and the narrower
 * wildcard `*.a.example.com`; `*foo.com` covers `foo.com` and `barfoo.com`.
 */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern === host) return true;
  if (pattern.startsWith('*')) {
    const suffix = pattern.slice(1);
    if (host.startsWith('*')) return host.length >= pattern.length && host.slice(1).endsWith(suffix);
    return host.endsWith(suffix);
  }
  return false;
}

/**
 * Whether two hosts overlap, as Istio's `host.Name.Matches` decides (either covers the other):
 * `*.foo.com` and `*.com` overlap, `a.com` and `*.com` overlap, `a.com` and `b.com` do not.
 */
export function hostsOverlap(a: string, b: string): boolean {
  return hostMatches(a, b) || hostMatches(b, a);
}

/** Orders candidate patterns most specific first: exact hosts, then longer wildcard suffixes. */
export function specificity(pattern: string): number {
  if (pattern === '*') return 0;
  if (pattern.startsWith('*')) return pattern.length;
  return 1_000_000 + pattern.length;
}

/**
 * The names a workload in `clientNamespace` can use for the service `fqdn`, as Kubernetes DNS
 * search paths allow: `reviews`, `reviews.default`, `reviews.default.svc`, the FQDN.
 */
export function aliasesFor(fqdn: string, clientNamespace: string, domain = DEFAULT_DOMAIN): string[] {
  const suffix = `.svc.${domain}`;
  if (!fqdn.endsWith(suffix)) return [fqdn];
  const nameNs = fqdn.slice(0, -suffix.length); // "reviews.default"
  const dot = nameNs.lastIndexOf('.');
  if (dot === -1) return [fqdn];
  const name = nameNs.slice(0, dot);
  const ns = nameNs.slice(dot + 1);
  const out = [fqdn, `${nameNs}.svc`, nameNs];
  if (ns === clientNamespace) out.push(name);
  return out;
}

/**
 * Whether a resource in `ownerNamespace` with `exportTo` is visible to workloads in `clientNamespace`.
 * Empty or absent means `*` (Istio's default).
 */
export function isVisible(exportTo: readonly string[] | undefined, ownerNamespace: string, clientNamespace: string): boolean {
  if (exportTo === undefined || exportTo.length === 0) return true;
  for (const e of exportTo) {
    if (e === '*') return true;
    if (e === '.' && ownerNamespace === clientNamespace) return true;
    if (e === clientNamespace) return true;
  }
  return false;
}

/** Istio's annotation that sets a Kubernetes Service's visibility (what `exportTo` is to a ServiceEntry). */
export const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';

/**
 * The namespaces of a `networking.istio.io/exportTo` annotation (comma-separated, trimmed, as
 * Istio reads it); undefined (visible everywhere) when absent or empty.
 */
export function parseExportTo(annotation: string | undefined): string[] | undefined {
  if (annotation === undefined || annotation.trim() === '') return undefined;
  return annotation.split(',').map((s) => s.trim());
}
