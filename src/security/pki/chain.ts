/**
 * Checking that a certificate chain leads to a trusted root, as a TLS peer would check it.
 *
 * @module
 */
import type { X509Certificate } from 'node:crypto';

function signs(issuer: X509Certificate, cert: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/**
 * Why `leaf` (with the intermediates offered next to it) does not chain to one of `roots`, or
 * undefined when it does: each link's issuer name and signature are checked, and every
 * certificate on the path must be valid at `now` (epoch ms).
 * @category Identity
 */
export function chainProblem(leaf: X509Certificate, intermediates: readonly X509Certificate[], roots: readonly X509Certificate[], now: number): string | undefined {
  const path: X509Certificate[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth <= intermediates.length; depth++) {
    const root = roots.find((r) => signs(r, current));
    if (root !== undefined) {
      for (const c of [...path, root]) {
        if (c.validToDate.getTime() <= now) return `${c === leaf ? 'the certificate' : `"${c.subject ?? ''}" on its chain`} expired at ${c.validToDate.toISOString()}`;
        if (c.validFromDate.getTime() > now) return `${c === leaf ? 'the certificate' : `"${c.subject ?? ''}" on its chain`} is not valid before ${c.validFromDate.toISOString()}`;
      }
      return undefined;
    }
    const next = intermediates.find((i) => !path.includes(i) && signs(i, current));
    if (next === undefined) break;
    path.push(next);
    current = next;
  }
  return `the chain does not lead to any of the ${roots.length} trusted root${roots.length === 1 ? '' : 's'} (issuer "${current.issuer ?? ''}" is neither a trusted root nor an intermediate given with it)`;
}
