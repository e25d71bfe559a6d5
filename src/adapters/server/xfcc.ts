/**
 * The caller's certificate as Envoy's connection manager writes it into `x-forwarded-client-cert`
 * (`mutateXfccRequestHeader`): `By=<each URI SAN of the server's own certificate>`,
 * `Hash=<hex SHA-256 of the caller's certificate>`, then, as `setCurrentClientCertDetails` asks,
 * `Cert="<URL-encoded PEM>"`, `Subject="<RFC 2253 subject>"`,
 * `URI=<each URI SAN>` (`URI=` when there is none) and `DNS=<each DNS SAN>`, joined with `;`.
 * An Istio sidecar's answer for a call from `sleep` to `httpbin`:
 * `By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash=…;Subject="";URI=spiffe://cluster.local/ns/foo/sa/sleep`.
 *
 * The text is the same for every request of a connection: it is made at the connection's first
 * request and remembered with it.
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { ProxyHeaders } from '../../core/proxy-headers.ts';
import { rfc2253, sansOf, urlEncodePem } from '../../core/certificate-text.ts';

type Details = ProxyHeaders['details'];

/** What a TLS socket (or the HTTP/2 bridge's stand-in for one) tells of both certificates. */
export interface CertificateSource {
  getPeerCertificate(): PeerCertificate | object | null;
  getCertificate?(): PeerCertificate | object | null;
}

const bySource = new WeakMap<object, { readonly details: Details; readonly text: string | undefined }>();

/**
 * The details of the certificate the caller of `socket` presented, for `details`; undefined
 * when it presented none. Remembered per socket.
 */
export function clientCertDetailsOf(socket: CertificateSource, details: Details): string | undefined {
  const hit = bySource.get(socket);
  if (hit !== undefined && hit.details === details) return hit.text;
  const peer = socket.getPeerCertificate() as PeerCertificate | null;
  let text: string | undefined;
  if (peer !== null && typeof peer === 'object' && Buffer.isBuffer(peer.raw)) {
    const local = socket.getCertificate?.() as PeerCertificate | null | undefined;
    text = clientCertDetails(peer, sansOf(local?.subjectaltname, 'URI'), details);
  }
  bySource.set(socket, { details, text });
  return text;
}

/** The details of `peer` (a certificate whose `raw` DER is known), for `details`; `localUris`: the server certificate's URI SANs. */
export function clientCertDetails(peer: Pick<PeerCertificate, 'raw' | 'subjectaltname' | 'fingerprint256'>, localUris: readonly string[], details: Details): string {
  const out: string[] = [];
  for (const u of localUris) out.push(`By=${u}`);
  const fp = peer.fingerprint256;
  out.push(`Hash=${typeof fp === 'string' && fp !== '' ? fp.replaceAll(':', '').toLowerCase() : ''}`);
  const x509 = details.cert || details.subject ? new X509Certificate(peer.raw) : undefined;
  if (details.cert && x509 !== undefined) out.push(`Cert="${urlEncodePem(x509.toString())}"`);
  // The "Subject" key is written even when the subject is empty, as Envoy does.
  if (details.subject && x509 !== undefined) out.push(`Subject="${rfc2253(x509.subject)}"`);
  if (details.uri) {
    const uris = sansOf(peer.subjectaltname, 'URI');
    if (uris.length === 0) out.push('URI=');
    for (const u of uris) out.push(`URI=${u}`);
  }
  if (details.dns) for (const d of sansOf(peer.subjectaltname, 'DNS')) out.push(`DNS=${d}`);
  return out.join(';');
}
