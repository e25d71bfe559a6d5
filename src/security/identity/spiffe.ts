/**
 * SPIFFE identities as Istio writes them: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`
 * (Istio's `spiffe.ParseIdentity` / `Identity.String`). An AuthorizationPolicy `principals` entry
 * is the same without `spiffe://`.
 *
 * @module
 */
import type { X509Certificate } from 'node:crypto';
import type { PeerIdentity } from '../../core/context.ts';
import { sansOf } from '../../core/certificate-text.ts';

/** The URI scheme prefix of a SPIFFE ID. */
export const SPIFFE_PREFIX = 'spiffe://';

/** A workload identity in Istio's SPIFFE form. */
export interface SpiffeId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
export function spiffeUri(id: SpiffeId): string {
  return `${SPIFFE_PREFIX}${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/**
 * Parses Istio's SPIFFE form; undefined for anything else (another scheme, a path that is not
 * exactly `/ns/<ns>/sa/<sa>`, an empty segment), as Istio's `ParseIdentity` refuses it.
 */
export function parseSpiffeUri(uri: string): SpiffeId | undefined {
  if (!uri.startsWith(SPIFFE_PREFIX)) return undefined;
  const parts = uri.slice(SPIFFE_PREFIX.length).split('/');
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') return undefined;
  const [trustDomain, , namespace, , serviceAccount] = parts as [string, string, string, string, string];
  if (trustDomain === '' || namespace === '' || serviceAccount === '') return undefined;
  return { trustDomain, namespace, serviceAccount };
}

/**
 * The URI SANs of a certificate, from Node's `subjectAltName` text (`URI:spiffe://…, DNS:…`).
 * Node escapes a SAN that contains `,` or `"` as a JSON string; those are decoded.
 */
export function uriSans(subjectAltName: string | undefined): string[] {
  return sansOf(subjectAltName, 'URI');
}


/**
 * The peer identity a verified certificate proves: its one SPIFFE URI SAN. A certificate with no
 * SPIFFE URI SAN, or with more than one (Istio refuses those), proves no identity (undefined).
 */
export function identityOfCertificate(cert: Pick<X509Certificate, 'subjectAltName'> | { readonly subjectaltname?: string }, address: string): PeerIdentity | undefined {
  const san = 'subjectAltName' in cert ? cert.subjectAltName : (cert as { subjectaltname?: string }).subjectaltname;
  const spiffe = uriSans(san).filter((u) => u.startsWith(SPIFFE_PREFIX));
  if (spiffe.length !== 1) return undefined;
  const id = parseSpiffeUri(spiffe[0] as string);
  if (id === undefined) return undefined;
  return Object.freeze({ principal: spiffe[0] as string, trustDomain: id.trustDomain, namespace: id.namespace, serviceAccount: id.serviceAccount, address });
}
