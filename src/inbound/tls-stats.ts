/**
 * "Ready for STRICT?": how many of a workload's inbound requests arrived in plaintext and how
 * many over mTLS, and from which identities. Before a namespace moves from PERMISSIVE to STRICT,
 * the plaintext count must stop growing: every request it counts would be refused.
 *
 * Counted per request (not per connection), whatever the verdict, by every server adapter of the
 * mesh; each arrival is also published on `meshlet:inbound:request` when someone subscribes.
 *
 * @module
 */
import type { PeerIdentity } from '../core/context.ts';
import { channels, type InboundRequestMessage, type WorkloadIdentity } from '../core/observe.ts';

/**
 * The counts `mesh.diagnostics().inboundTls` reports.
 * @category Mesh
 */
export interface InboundTlsCounts {
  /** Requests that arrived in plaintext. */
  readonly plaintext: number;
  /** Requests that arrived over a verified mTLS connection. */
  readonly mtls: number;
  /**
   * mTLS requests by the peer's SPIFFE ID (`spiffe://…`): the 100 identities
   * seen most recently, each with its count since it was last (re)entered in the list.
   */
  readonly peers: Readonly<Record<string, number>>;
  /**
   * When the last plaintext request arrived (Unix time in ms, by the mesh's clock); absent
   * until one does. The counts are since the mesh started: once every client speaks mTLS,
   * `plaintext` stays where it was and this time stops moving.
   */
  readonly lastPlaintextAt?: number;
}

/** How many peer identities are kept (the most recently seen; an older one is forgotten). */
export const MAX_TRACKED_PEERS = 100;

/** The counters of one mesh. */
export class InboundTlsStats {
  #plaintext = 0;
  #mtls = 0;
  #lastPlaintextAt: number | undefined;
  readonly #now: () => number;
  /** Principal → count, in order of last use (Map order: oldest first). */
  readonly #peers = new Map<string, number>();
  readonly #workload: WorkloadIdentity;
  readonly #max: number;

  /** `now`: the time in whole Unix milliseconds (the mesh's clock as wall time). */
  constructor(workload: WorkloadIdentity, maxPeers = MAX_TRACKED_PEERS, now: () => number = Date.now) {
    this.#workload = workload;
    this.#now = now;
    this.#max = maxPeers;
  }

  /** Counts one request; publishes it when `meshlet:inbound:request` has subscribers. */
  record(peer: PeerIdentity | undefined, method: string, localPort: number, remoteAddress: string): void {
    const principal = peer?.principal;
    if (principal === undefined || principal === '') {
      this.#plaintext++;
      this.#lastPlaintextAt = this.#now();
    } else {
      this.#mtls++;
      const n = this.#peers.get(principal);
      if (n !== undefined) this.#peers.delete(principal);
      this.#peers.set(principal, (n ?? 0) + 1);
      if (n === undefined && this.#peers.size > this.#max) this.#peers.delete(this.#peers.keys().next().value as string);
    }
    const ch = channels.inboundRequest;
    if (ch.hasSubscribers) {
      ch.publish({ workload: this.#workload, mtls: principal !== undefined && principal !== '', peer: principal, method, localPort, remoteAddress } satisfies InboundRequestMessage);
    }
  }

  /** A copy of the counts. */
  counts(): InboundTlsCounts {
    const peers: Record<string, number> = Object.create(null);
    for (const [k, v] of this.#peers) peers[k] = v;
    const last = this.#lastPlaintextAt;
    return last === undefined ? { plaintext: this.#plaintext, mtls: this.#mtls, peers } : { plaintext: this.#plaintext, mtls: this.#mtls, peers, lastPlaintextAt: last };
  }
}
