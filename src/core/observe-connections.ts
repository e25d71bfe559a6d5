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
}

/** The channel. */
export const upstreamConnectionChannel = channel('meshlet:upstream:connection');
