/**
 * What a gRPC call's connection proved, for its admission: the addresses, whether it is TLS, the
 * verified mTLS peer (its SPIFFE identity), and — on a listener the mesh did not make under
 * STRICT without a verified peer — why PeerAuthentication refuses it.
 *
 * - A connection a mesh listener accepted (`mesh.grpc.bind`) was checked when it connected; its
 *   record says what it proved.
 * - On any other listener (`server.bindAsync` with `mesh.grpc.serverCredentials()` or the app's
 *   own credentials), the peer is the client certificate grpc-js's auth context reports (present
 *   only when the TLS handshake verified its chain), checked as the mesh's listeners check one:
 *   one SPIFFE ID of this mesh's trust domain, not a CA certificate.
 *
 * @module
 */
import type { ServerInterceptingCallInterface } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { setImmediate } from 'node:timers';
import type { ConnectionInfo } from '../../inbound/guard.ts';
import type { InboundTls, PeerVerdict } from '../server/inbound-tls.ts';
import { plainAddress } from '../server/peer.ts';
import { type CertificateSource, clientCertDetails, clientCertDetailsOf } from '../server/xfcc.ts';
import type { ProxyHeaders } from '../../core/proxy-headers.ts';

type CertDetails = ProxyHeaders['details'];
import type { GrpcConnections } from './server-listen.ts';

/** Verdicts per certificate (by fingerprint), so a connection's calls do not parse its certificate again. */
const CACHE_SIZE = 256;

/**
 * A verdict on a certificate, with the certificate's validity (ms since the epoch): it holds only
 * while the certificate is valid. A TLS session resumed from a ticket is not verified by OpenSSL
 * again, so a certificate that expired since an earlier call must be judged again, not found here.
 */
interface CachedVerdict {
  readonly verdict: PeerVerdict;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** The peers of a mesh's gRPC server calls. */
export class GrpcPeers {
  readonly tls: InboundTls;
  readonly connections: GrpcConnections;
  readonly #verdicts = new Map<string, CachedVerdict>();

  constructor(tls: InboundTls, connections: GrpcConnections) {
    this.tls = tls;
    this.connections = connections;
  }

  /** The verdict on a client certificate whose chain the TLS handshake verified. */
  verdictOf(cert: PeerCertificate, address: string): PeerVerdict {
    const key = cert.fingerprint256;
    const hit = key === undefined ? undefined : this.#verdicts.get(key);
    const now = Date.now();
    // Outside the certificate's validity (a session resumed after it expired): judged again below.
    if (hit !== undefined && now >= hit.notBefore && now <= hit.notAfter) {
      const v = hit.verdict;
      return v.ok ? { ok: true, peer: { ...v.peer, address } } : v;
    }
    const v = this.tls.identityOf(cert, address);
    const notBefore = Date.parse(cert.valid_from);
    const notAfter = Date.parse(cert.valid_to);
    // Only a verdict made within the validity is kept (one made outside it says "expired" or "not yet valid").
    if (key !== undefined && now >= notBefore && now <= notAfter) {
      if (this.#verdicts.size >= CACHE_SIZE) this.#verdicts.clear();
      this.#verdicts.set(key, { verdict: v, notBefore, notAfter });
    }
    return v;
  }

  /** The verified client certificate of a call's connection (grpc-js reports one only when its chain verified). */
  certificateOf(call: ServerInterceptingCallInterface): { readonly tls: boolean; readonly cert: PeerCertificate | undefined } {
    const auth = typeof call.getAuthContext === 'function' ? call.getAuthContext() : undefined;
    const cert = auth?.sslPeerCertificate;
    return { tls: auth?.transportSecurityType === 'ssl', cert: cert !== undefined && Object.keys(cert).length > 0 ? cert : undefined };
  }

  /** The call's connection is plaintext (a health probe may be served on it). */
  isPlaintext(call: ServerInterceptingCallInterface): boolean {
    const accepted = this.connections.get(call.getConnectionInfo());
    return accepted !== undefined ? !accepted.tls : !this.certificateOf(call).tls;
  }

  /** Certificate details of callers on listeners the mesh did not make, by certificate (fingerprint). */
  readonly #details = new Map<string, { readonly details: CertDetails; readonly text: string }>();

  /**
   * The caller's certificate details for `x-forwarded-client-cert` on a listener the mesh did not
   * make: grpc-js reports the client certificate, not the server's; the server presents the
   * mesh's own certificate (`mesh.grpc.serverCredentials()`), whose SPIFFE ID is `By`.
   */
  #detailsOf(cert: PeerCertificate, details: CertDetails): string {
    const key = cert.fingerprint256;
    const hit = this.#details.get(key);
    if (hit !== undefined && hit.details === details) return hit.text;
    const own = this.tls.context?.spiffeId;
    const text = clientCertDetails(cert, own === undefined ? [] : [own], details);
    if (this.#details.size >= CACHE_SIZE) this.#details.clear();
    this.#details.set(key, { details, text });
    return text;
  }

  /**
   * The connection a call came on, as the admission phases see it; `details`: the certificate
   * details the guard writes into `x-forwarded-client-cert` (undefined: none).
   */
  connectionOf(call: ServerInterceptingCallInterface, details?: CertDetails): ConnectionInfo {
    const ci = call.getConnectionInfo();
    const remoteAddress = plainAddress(ci.remoteAddress);
    const remotePort = ci.remotePort ?? 0;
    const localPort = ci.localPort ?? 0;
    const localAddress = plainAddress(ci.localAddress);
    const accepted = this.connections.get(ci);
    if (accepted !== undefined) {
      const scheme = accepted.tls ? 'https' : 'http';
      const mode = this.tls.modeFor(localPort);
      if ((mode === 'STRICT' && !accepted.tls) || (mode === 'DISABLE' && accepted.tls)) {
        // Taken under STRICT for the health probes only (the interceptor served those before asking),
        // or let in under a mode a new config no longer allows: refused, and the connection closed
        // once the refusal is written (the client connects again, under the new mode), as Envoy
        // drains the connections of a changed filter chain.
        setImmediate(() => accepted.socket.destroySoon());
        const why = accepted.probesOnly === true ? 'plaintext (only the health probes, probePaths, are served in plaintext)' : `a ${accepted.tls ? 'TLS' : 'plaintext'} connection to port ${localPort} accepted under an earlier mode`;
        return { remoteAddress, remotePort, localPort, localAddress, scheme, refused: `${mode}: ${why}` };
      }
      const clientCert = accepted.peer === undefined || details === undefined ? undefined : clientCertDetailsOf(accepted.socket as unknown as CertificateSource, details);
      return { remoteAddress, remotePort, localPort, localAddress, scheme, peer: accepted.peer, sni: accepted.sni, clientCert, connection: accepted };
    }
    const { tls, cert } = this.certificateOf(call);
    let peer: ConnectionInfo['peer'];
    if (cert !== undefined) {
      const v = this.verdictOf(cert, remoteAddress);
      if (v.ok) peer = v.peer;
    }
    const scheme = tls ? 'https' : 'http';
    if (peer === undefined && this.tls.modeFor(localPort) === 'STRICT') {
      this.tls.warnOnce(
        `meshlet: PeerAuthentication STRICT applies to port ${localPort}, served by a grpc-js listener the mesh did not make (server.bindAsync with credentials other than mesh.grpc.serverCredentials()): its calls without a verified mesh identity are refused. Bind it with mesh.grpc.bind(server, address) or mesh.grpc.serverCredentials() to accept mTLS`,
      );
      return { remoteAddress, remotePort, localPort, localAddress, scheme, refused: `STRICT: a call on port ${localPort} proves no mesh identity` };
    }
    const clientCert = peer === undefined || details === undefined || cert === undefined ? undefined : this.#detailsOf(cert, details);
    return { remoteAddress, remotePort, localPort, localAddress, scheme, peer, clientCert };
  }
}
