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
import { sansOf } from '../../security/identity/spiffe.ts';

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

/** PEM text as Envoy puts it in XFCC (`urlEncodedPemEncodedPeerCertificate`): five characters escaped. */
function urlEncodePem(pem: string): string {
  return pem.replaceAll('\n', '%0A').replaceAll(' ', '%20').replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D');
}

/**
 * A subject in RFC 2253 form, as OpenSSL's `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` prints it for
 * Envoy, from Node's `X509Certificate.subject` (one line per RDN, ` + ` between the attributes
 * of a multi-valued RDN, already escaped as RFC 2253 escapes them): the attributes last first,
 * `,` between RDNs and `+` within one, and every byte of a non-ASCII character as `\XX`.
 */
export function rfc2253(subject: string | undefined): string {
  // Node gives no subject (undefined) for an empty one, as Istio's workload certificates have.
  if (subject === undefined || subject === '') return '';
  const rdns = subject.split('\n');
  const out: string[] = [];
  for (let i = rdns.length - 1; i >= 0; i--) out.push((rdns[i] as string).split(' + ').reverse().join('+'));
  return escapeNonAscii(out.join(','));
}

function escapeNonAscii(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is what stays as it is.
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  let out = '';
  for (const ch of s) {
    if (ch.charCodeAt(0) < 0x80) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += `\\${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
