/**
 * The gRPC transport's connections on `meshlet:upstream:connection`, as the undici transport's
 * pools publish theirs (`adapters/undici/pool-events.ts`), while someone subscribes (the admin
 * endpoint's `/stats`: `upstream_cx_total`, `upstream_cx_connect_ms`, `upstream_cx_destroy*`,
 * `upstream_cx_rx_bytes_total` / `tx_bytes_total`). A connection is one grpc-js connect: TCP, then
 * TLS (or plaintext HTTP/2); it is published once that is done, with its socket (after TLS) and
 * the time since grpc-js began it; a TLS handshake that fails is an `error`. Costs nothing per
 * call, and nothing per connection without a subscriber.
 *
 * @module
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.ts';
import { upstreamConnectionChannel as ch, type UpstreamConnectionMessage } from '../../core/observe-connections.ts';

/** Whose connections they are: the cluster's name and data-plane state, and the mesh's clock. */
export interface ConnectionEvents {
  readonly cluster: string;
  readonly owner: object;
  readonly clock: Clock;
  /** The mesh closed the connection (idle, retired, its endpoint gone, the mesh closing): a close that follows is not the upstream's. */
  readonly closedByMesh: () => boolean;
}

/** Errors of a connection the upstream closed or reset. */
const REMOTE = new Set(['ECONNRESET', 'EPIPE']);

/** `p` (grpc-js's secure connect of a connection begun at `startedAt`), its outcome published. */
export function observeConnect<T extends { readonly socket: Duplex }>(e: ConnectionEvents, p: Promise<T>, startedAt: number): Promise<T> {
  return p.then(
    (r) => {
      if (ch.hasSubscribers) connected(e, r.socket as Duplex & { bytesRead: number; bytesWritten: number }, startedAt);
      return r;
    },
    (err: unknown) => {
      if (ch.hasSubscribers) ch.publish({ cluster: e.cluster, owner: e.owner, event: 'error', timeout: false, remote: false } satisfies UpstreamConnectionMessage);
      throw err;
    },
  );
}

function connected(e: ConnectionEvents, socket: Duplex & { bytesRead: number; bytesWritten: number }, startedAt: number): void {
  const { cluster, owner } = e;
  ch.publish({ cluster, owner, event: 'connect', timeout: false, remote: false, socket, connectMs: Math.max(0, e.clock.now() - startedAt) } satisfies UpstreamConnectionMessage);
  // The upstream ended it (its FIN, or a reset) rather than the mesh (grpc-js closing an idle or retired connection).
  let remote = false;
  socket.once('end', () => {
    if (!e.closedByMesh()) remote = true;
  });
  socket.on('error', (err: { code?: string }) => {
    if (err.code !== undefined && REMOTE.has(err.code) && !e.closedByMesh()) remote = true;
  });
  socket.once('close', () => {
    if (ch.hasSubscribers) ch.publish({ cluster, owner, event: 'disconnect', timeout: false, remote } satisfies UpstreamConnectionMessage);
  });
}
