/**
 * Trust-domain aliases, as Istio applies them to policies (`pilot/pkg/security/trustdomain`):
 * the mesh's trust domain and its aliases (MeshConfig `trustDomain`, `trustDomainAliases`) are
 * one identity space, and `cluster.local` in a policy means "the local trust domain".
 *
 * - A `principals` / `source.principal` value `<td>/ns/<ns>/sa/<sa>` whose trust domain is the
 *   mesh's, one of its aliases, or `cluster.local` is expanded to one value per trust domain of
 *   the bundle (a `*`-prefix/suffix trust domain is kept as written where it already matches).
 *   Values that do not have five `/`-separated parts, or start with `*`, are kept as they are.
 * - A `trustDomains` / `source.trustDomain` value equal to one of the bundle's trust domains is
 *   expanded to all of them.
 *
 * @module
 */

/** The local trust domain first, then its aliases (`trustdomain.NewBundle`). */
export type TrustDomainBundle = readonly string[];

/** Istio's default trust domain (MeshConfig `trustDomain`). */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** Builds the bundle. */
export function trustDomainBundle(trustDomain: string = DEFAULT_TRUST_DOMAIN, aliases: readonly string[] = []): TrustDomainBundle {
  return [trustDomain, ...aliases];
}

function prefixMatch(a: string, pattern: string): boolean {
  return pattern.endsWith('*') && a.startsWith(pattern.slice(0, -1));
}

function suffixMatch(a: string, pattern: string): boolean {
  return pattern.startsWith('*') && a.endsWith(pattern.slice(1));
}

/** `trustdomain.stringMatch`: either side may be the pattern. */
function stringMatch(a: string, list: readonly string[]): boolean {
  return list.some((s) => a === s || s === '*' || prefixMatch(a, s) || prefixMatch(s, a) || suffixMatch(a, s) || suffixMatch(s, a));
}

/** `Bundle.ReplaceTrustDomainAliases`. */
export function replaceTrustDomainAliases(bundle: TrustDomainBundle, principals: readonly string[]): string[] {
  const out: string[] = [];
  for (const principal of principals) {
    const parts = principal.split('/');
    if (parts.length !== 5 || parts[0] === '*') {
      out.push(principal);
      continue;
    }
    const td = parts[0] as string;
    if (!stringMatch(td, bundle) && td !== DEFAULT_TRUST_DOMAIN) {
      out.push(principal);
      continue;
    }
    const forAliases: string[] = [];
    for (const alias of bundle) {
      const p = suffixMatch(alias, td) ? principal : `${alias}/${parts.slice(1).join('/')}`;
      if (!forAliases.includes(p)) forAliases.push(p);
    }
    out.push(...forAliases);
  }
  return out;
}

/** `Bundle.ExpandTrustDomainAliases`. */
export function expandTrustDomainAliases(bundle: TrustDomainBundle, values: readonly string[]): string[] {
  const out: string[] = [];
  for (const v of values) {
    for (const x of bundle.includes(v) ? bundle : [v]) if (!out.includes(x)) out.push(x);
  }
  return out;
}
