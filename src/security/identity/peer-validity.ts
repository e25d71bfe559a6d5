/**
 * The validity window of a peer's certificate, checked after the TLS handshake. OpenSSL checks it
 * in a full handshake only: a resumed session (a ticket from an earlier connection, kept for up to
 * five minutes by Node) carries the verdict of the handshake it came from, so a certificate that
 * has expired since would be let in for the session's lifetime. The mesh's servers and clients
 * check it again on every connection.
 *
 * @module
 */
import type { PeerCertificate } from 'node:tls';

/** Why `cert` is outside its validity window at `now` (epoch ms), or undefined when it is within it (or its dates cannot be read). */
export function validityProblem(cert: Pick<PeerCertificate, 'valid_from' | 'valid_to'>, now: number): string | undefined {
  const notAfter = Date.parse(cert.valid_to);
  if (notAfter < now) return `certificate expired (CERT_HAS_EXPIRED) at ${new Date(notAfter).toISOString()}: a TLS session resumed from before it expired`;
  const notBefore = Date.parse(cert.valid_from);
  if (notBefore > now) return `certificate not yet valid (CERT_NOT_YET_VALID) before ${new Date(notBefore).toISOString()}`;
  return undefined;
}

