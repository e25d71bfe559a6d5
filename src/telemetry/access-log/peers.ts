/**
 * The peer workload's metadata an access-log record carries (`%FILTER_STATE(upstream_peer)%`,
 * `filter_state.downstream_peer`, an `envoyHttpAls` entry's `filter_state_objects`), as Istio's
 * metadata exchange gives it to the proxy: on the client side what the destination said of itself
 * in its response (the metrics' response tap keeps it on the call), else its registry entry (as
 * the metrics label it); on the server side what the caller sent in its request headers.
 *
 * @module
 */
import type { CallEndMessage, InboundEndMessage, TappedCall } from '../../core/observe.ts';
import { celPeer } from '../metrics/istio-metrics.ts';
import { endpointPeer } from '../metrics/labels.ts';
import { PEER_ID_HEADER, PEER_METADATA_HEADER, type PeerMetadata, PeerMetadataCache } from '../metrics/peer-metadata.ts';
import type { PeerMetadata as RecordPeer } from '../record.ts';

/** Finds the peer of each call and request (decoded headers cached, as the metrics cache them). */
export class AccessLogPeers {
  readonly #cache = new PeerMetadataCache();

  /** The destination of a call the app made. */
  client(m: CallEndMessage): RecordPeer | undefined {
    const exchanged = (m.call as Partial<TappedCall>).tapState as PeerMetadata | undefined;
    const p = exchanged ?? (m.destination === undefined ? undefined : endpointPeer(m.destination));
    return p === undefined ? undefined : celPeer(p);
  }

  /** The caller of a request the mesh's server answered. */
  server(m: InboundEndMessage): RecordPeer | undefined {
    const id = m.peerMetadata?.id ?? m.headers[PEER_ID_HEADER];
    const value = m.peerMetadata?.value ?? m.headers[PEER_METADATA_HEADER];
    const p = typeof value === 'string' && value !== '' ? this.#cache.get(typeof id === 'string' ? id : '', value) : undefined;
    return p === undefined ? undefined : celPeer(p);
  }
}
