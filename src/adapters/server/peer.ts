/**
 * The mTLS peer of a connection, as the server adapters hand it to the admission phases: the
 * identity the verified client certificate proves (its one SPIFFE URI SAN), computed once per
 * connection and remembered with the socket.
 *
 * A mesh server ({@link MeshServers.createServer}) verifies the certificate during its own
 * checks and records the identity with {@link rememberPeer}. On any other TLS socket (an app's
 * own `https.createServer` with `mesh.express()`), the certificate counts only when Node
 * verified it against that server's `ca` (`socket.authorized`); otherwise the request has no
 * peer, as a plaintext one.
 *
 * @module
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { PeerIdentity } from '../../core/context.ts';
import { identityOfCertificate } from '../../security/identity/spiffe.ts';

/** Undefined is remembered too (a TLS connection that proves no identity). */
const peers = new WeakMap<Socket, PeerIdentity | undefined>();

/** The address as Envoy reports it: an IPv4 peer of a dual-stack server without `::ffff:`. */
export function plainAddress(addr: string | undefined): string {
  const a = addr ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Sockets a mesh server accepted: PeerAuthentication was enforced on them when they connected. */
const accepted = new WeakSet<Socket>();

/** Records the identity a mesh server verified for `socket`. */
export function rememberPeer(socket: Socket, peer: PeerIdentity | undefined): void {
  peers.set(socket, peer);
}

/** Marks a connection a mesh server let in (after its PeerAuthentication checks). */
export function markAccepted(socket: Socket): void {
  accepted.add(socket);
}

/** True when a mesh server accepted `socket` (and enforced PeerAuthentication on it). */
export function acceptedByMesh(socket: Socket): boolean {
  return accepted.has(socket);
}

/** The verified mTLS peer of `socket`, or undefined (plaintext, no certificate, not verified). */
export function peerOfSocket(socket: Socket): PeerIdentity | undefined {
  const tls = socket as TLSSocket;
  if (tls.encrypted !== true) return undefined;
  if (peers.has(socket)) return peers.get(socket);
  let peer: PeerIdentity | undefined;
  if (tls.authorized === true) {
    const cert = tls.getPeerCertificate();
    peer = cert === null || typeof cert !== 'object' ? undefined : identityOfCertificate(cert, plainAddress(socket.remoteAddress));
  }
  peers.set(socket, peer);
  return peer;
}
