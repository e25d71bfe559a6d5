/**
 * The mTLS peer of a connection, as the server adapters hand it to the admission phases: the
 * identity the verified client certificate proves (its one SPIFFE URI SAN), computed once per
 * connection and remembered with the socket.
 *
 * A mesh server ({@link MeshServers.createServer}) verifies the certificate during its own
 * checks; on any other TLS socket (an app's own `https.createServer` with `mesh.express()`) the
 * mesh's servers check it at the first request, the same way (chain, one SPIFFE ID of the trust
 * domain, not a CA). Either records the identity with {@link rememberPeer}; a socket with no
 * record has no peer, as a plaintext one.
 *
 * @module
 */
import type { Socket } from 'node:net';
import type { PeerIdentity } from '../../core/context.ts';

/**
 * What each mesh verified, per socket (undefined is remembered too: a TLS connection that proves
 * no identity). Keyed by the mesh (`owner`: its inbound guard) first: several meshes in one
 * process may judge requests of one connection (two workloads' handlers on one server), and each
 * counts a certificate only by its own checks — its trust domain, its trust bundle.
 */
const peers = new WeakMap<object, WeakMap<Socket, PeerIdentity | undefined>>();

/** The address as Envoy reports it: an IPv4 peer of a dual-stack server without `::ffff:`. */
export function plainAddress(addr: string | undefined): string {
  const a = addr ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Sockets a mesh server accepted, and which mesh's: that mesh's PeerAuthentication was enforced on them when they connected (not another's). */
const accepted = new WeakMap<Socket, object>();

/** Records the identity the mesh `owner` verified for `socket`. */
export function rememberPeer(socket: Socket, peer: PeerIdentity | undefined, owner: object): void {
  let m = peers.get(owner);
  if (m === undefined) {
    m = new WeakMap();
    peers.set(owner, m);
  }
  m.set(socket, peer);
}

/** The real connections behind in-memory ones (a bridged HTTP/2 stream's HTTP/1.1 connection to the app). */
const downstreams = new WeakMap<Socket, Socket>();

/** Records that `socket` carries requests of the connection `real` (an HTTP/2 caller's). */
export function rememberDownstream(socket: Socket, real: Socket): void {
  downstreams.set(socket, real);
}

/**
 * The caller's connection a request arrived on (what buckets per downstream connection key on):
 * the real socket behind a bridged HTTP/2 stream, the HTTP/2 session of a request Node's own
 * http2 compatibility layer serves (its `req.socket` is a proxy per stream), else the socket.
 */
export function downstreamOf(req: { readonly socket: Socket; readonly stream?: { readonly session?: object } }): object {
  return req.stream?.session ?? downstreams.get(req.socket) ?? req.socket;
}

/** Marks a connection the mesh `owner`'s server let in (after its PeerAuthentication checks). */
export function markAccepted(socket: Socket, owner: object): void {
  accepted.set(socket, owner);
}

/** True when some mesh's server accepted `socket` (another mesh's, for a mesh that finds it not accepted by its own). */
export function acceptedByAnyMesh(socket: Socket): boolean {
  return accepted.has(socket);
}

/** True when the mesh `owner`'s server accepted `socket` (and enforced that mesh's PeerAuthentication on it). */
export function acceptedByMesh(socket: Socket, owner: object): boolean {
  return accepted.get(socket) === owner;
}

/** Whether the mesh `owner` checked `socket`'s peer already (its identity, or none, is recorded). */
export function peerChecked(socket: Socket, owner: object): boolean {
  return peers.get(owner)?.has(socket) === true;
}

/** The mTLS peer of `socket` the mesh `owner` verified, or undefined (plaintext, no certificate, not verified, not checked by that mesh). */
export function peerOfSocket(socket: Socket, owner: object): PeerIdentity | undefined {
  return peers.get(owner)?.get(socket);
}
