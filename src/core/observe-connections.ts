/**
 * `meshlet:inbound:connection`: the connections a mesh server's port accepts (PeerAuthentication's
 * acceptor, `adapters/server/peer-acceptor.ts`): accepted and closed, TLS handshakes that
 * completed with a peer certificate that passed or that failed, and those handed to the server
 * (HTTP or gRPC). Published only while someone subscribes (the admin endpoint's `/stats`:
 * Envoy's `listener.*`, `ssl.*` and `downstream_cx_*`), as the channels of `observe.ts`.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import type { WorkloadIdentity } from './observe.ts';

/**
 * What happened to a connection: `open` (accepted), `close` (an accepted one closed),
 * `handshake` (TLS done, the peer's certificate accepted), `tls-error` (the handshake failed),
 * `verify-failed` (the handshake completed and the peer's certificate was refused, or it sent
 * none: `noCertificate`), `served` (handed to the server; `tls`: over TLS), `served-close` (a
 * served one closed).
 */
export type InboundConnectionEvent = 'open' | 'close' | 'handshake' | 'tls-error' | 'verify-failed' | 'served' | 'served-close';

/** `meshlet:inbound:connection`. */
export interface InboundConnectionMessage {
  readonly workload: WorkloadIdentity;
  readonly localPort: number;
  readonly event: InboundConnectionEvent;
  /** For `served` and `served-close`: over TLS. */
  readonly tls: boolean;
  /** For `verify-failed`: the peer sent no certificate. */
  readonly noCertificate: boolean;
}

/** The channel. */
export const inboundConnectionChannel = channel('meshlet:inbound:connection');

/**
 * `meshlet:upstream:connection`: a connection of a cluster's pools (undici's, the gRPC transport's) was made
 * (`connect`), could not be made (`error`; `timeout`: the connect timeout), or closed
 * (`disconnect`; `remote`: the upstream closed or reset it).
 */
export interface UpstreamConnectionMessage {
  /** `outbound|port|subset|host`. */
  readonly cluster: string;
  /** The cluster's data-plane state (which mesh's it is). */
  readonly owner: object;
  readonly event: 'connect' | 'error' | 'disconnect';
  readonly timeout: boolean;
  readonly remote: boolean;
  /**
   * For `connect`, when the transport has them: the connection's socket (its `bytesRead` and
   * `bytesWritten`, after TLS: Envoy's `upstream_cx_rx_bytes_total` / `tx_bytes_total`), and the
   * milliseconds from the start of the connect to a connection requests can go on (TCP and the
   * TLS handshake: Envoy's `upstream_cx_connect_ms`), on the mesh's clock. The undici transport
   * leaves them out: the admin endpoint's stats take them from undici's own channels.
   */
  readonly socket?: ConnectionBytes | undefined;
  readonly connectMs?: number | undefined;
  /**
   * For `disconnect`, when the transport knows it (the gRPC transport's connections): the calls
   * still on the connection when it went (Envoy's `upstream_cx_destroy_with_active_rq`).
   */
  readonly activeRequests?: number | undefined;
}

/** What the stats read of a connection's socket. */
export interface ConnectionBytes {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  once(event: 'close', listener: () => void): unknown;
}

/** The channel. */
export const upstreamConnectionChannel = channel('meshlet:upstream:connection');

/**
 * `meshlet:upstream:pending`: an attempt waits for a connection of its cluster (`queued`: the
 * connection limit is reached, Envoy's `upstream_rq_pending_total` and `upstream_cx_overflow`),
 * gave up waiting (`cancelled`: Envoy's `upstream_rq_cancelled`), or was refused because the
 * pending queue is full (`overflow`, when a transport's own queue refuses it: the gRPC
 * transport's streams). Published only while someone subscribes, on these rare paths only.
 */
export interface UpstreamPendingMessage {
  readonly cluster: string;
  /** The cluster's data-plane state (which mesh's it is). */
  readonly owner: object;
  readonly event: 'queued' | 'cancelled' | 'overflow';
}

/** The channel. */
export const upstreamPendingChannel = channel('meshlet:upstream:pending');
