/**
 * Checking that a certificate chain leads to a trusted root, as a TLS peer would check it.
 *
 * @module
 */
import type { X509Certificate } from 'node:crypto';

function signs(issuer: X509Certificate, cert: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/** A distinguished name on one line (Node writes one attribute a line). */
const dn = (name: string | undefined): string => (name ?? '').replaceAll('\n', ', ');

/**
 * Why `leaf` (with the intermediates offered next to it) does not chain to one of `roots`, or
 * undefined when it does: each link's issuer name and signature are checked, and every
 * certificate on the path must be valid at `now` (epoch ms). The path must end at a self-signed
 * root: an intermediate CA among `roots` is a step on the way (its own issuer must be there too),
 * not an anchor, as Node's TLS (OpenSSL without partial chains) verifies peers.
 * @category Identity
 */
export function chainProblem(leaf: X509Certificate, intermediates: readonly X509Certificate[], roots: readonly X509Certificate[], now: number): string | undefined {
  const path: X509Certificate[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth <= intermediates.length + roots.length; depth++) {
    const trusted = roots.find((r) => !path.includes(r) && signs(r, current));
    const next = trusted ?? intermediates.find((i) => !path.includes(i) && signs(i, current));
    if (next === undefined) break;
    path.push(next);
    current = next;
    if (trusted === undefined || !signs(trusted, trusted)) continue;
    for (const c of path) {
      if (c.validToDate.getTime() <= now) return `${c === leaf ? 'the certificate' : `"${dn(c.subject)}" on its chain`} expired at ${c.validToDate.toISOString()}`;
      if (c.validFromDate.getTime() > now) return `${c === leaf ? 'the certificate' : `"${dn(c.subject)}" on its chain`} is not valid before ${c.validFromDate.toISOString()}`;
    }
    return undefined;
  }
  if (roots.includes(current)) {
    return `the chain ends at "${dn(current.subject)}" among the trusted roots, an intermediate CA, not a root: TLS (Node's OpenSSL) verifies a chain up to a self-signed root, so no peer's certificate would verify (add the root "${dn(current.issuer)}" to the trusted roots)`;
  }
  return `the chain does not lead to any of the ${roots.length} trusted root${roots.length === 1 ? '' : 's'} (issuer "${dn(current.issuer)}" is neither a trusted root nor an intermediate given with it)`;
}
