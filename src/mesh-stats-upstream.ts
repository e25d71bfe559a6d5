/**
 * `/stats`'s counts of a cluster's connections and of the requests that waited for one: Envoy's
 * `upstream_cx_total`, `upstream_cx_connect_timeout`, `upstream_cx_destroy` (`_local`, `_remote`, and
 * `…_with_active_rq` for the gRPC transport's connections),
 * `upstream_cx_connect_ms` (histogram), `upstream_cx_rx_bytes_total` / `upstream_cx_tx_bytes_total`,
 * `upstream_rq_pending_total`, `upstream_cx_overflow`, `upstream_rq_cancelled` and the gRPC
 * transport's `upstream_rq_pending_overflow`. For {@link MeshStats} (mesh-stats.ts), which counts.
 *
 * The connections come from `meshlet:upstream:connection` (the undici pools' events,
 * `adapters/undici/pool-events.ts`; the gRPC transport's connections, `adapters/grpc/conn.ts`).
 * undici's pools do not say how long a connection took or which socket it is: undici's own
 * diagnostics channels do (`undici:client:beforeConnect`, then `undici:client:connected` right
 * before the pool's `connect` event, in the same tick), so while this listens, the socket undici
 * just connected is the one the pool's event is about.
 *
 * Bytes are what went over the connection's socket after TLS (Node's `bytesRead` / `bytesWritten`
 * of the TLS socket, as Envoy counts a connection's reads and writes above its transport socket),
 * read when `/stats` is asked: the connections that closed, plus the open ones so far.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import type { ConnectionBytes, UpstreamConnectionMessage, UpstreamPendingMessage } from './core/observe-connections.ts';
import { FlushedHistogram } from './mesh-stats-histogram.ts';

/** undici's channels (undici 7 and 8 publish them; `connector` is the connecting client's, one per client). */
export const undiciBeforeConnect = channel('undici:client:beforeConnect');
export const undiciConnected = channel('undici:client:connected');

/** Bytes of one cluster's connections. */
interface Bytes {
  rx: number;
  tx: number;
  readonly open: Set<ConnectionBytes>;
}

/** How the counts are written (MeshStats' per-cluster counters). */
export interface UpstreamCounter {
  inc(cluster: string, stat: string, n?: number): void;
  set(cluster: string, stat: string, value: number): void;
}

export class UpstreamConnectionStats {
  readonly #counter: UpstreamCounter;
  readonly #now: () => number;
  readonly #start: number;
  /** When each undici client began connecting (by its connector), on the mesh clock. */
  readonly #connecting = new WeakMap<object, number>();
  /** The socket undici connected last, and how long it took; taken by the pool's `connect` event that follows. */
  #last: { readonly socket: ConnectionBytes; readonly ms: number } | undefined;
  readonly #bytes = new Map<string, Bytes>();
  /** `upstream_cx_connect_ms` per cluster. */
  readonly connectMs = new Map<string, FlushedHistogram>();

  constructor(counter: UpstreamCounter, now: () => number, start: number) {
    this.#counter = counter;
    this.#now = now;
    this.#start = start;
  }

  /** `undici:client:beforeConnect`. */
  beforeConnect(m: { readonly connector?: unknown }): void {
    if (typeof m.connector === 'function' || (typeof m.connector === 'object' && m.connector !== null)) this.#connecting.set(m.connector, this.#now());
  }

  /** `undici:client:connected`. */
  connected(m: { readonly connector?: unknown; readonly socket?: ConnectionBytes }): void {
    if (m.socket === undefined) return;
    const k = m.connector as object | undefined;
    const began = k !== undefined ? this.#connecting.get(k) : undefined;
    this.#last = { socket: m.socket, ms: began === undefined ? -1 : this.#now() - began };
  }

  /** `meshlet:upstream:connection`, of one of this mesh's clusters. */
  connection(m: UpstreamConnectionMessage): void {
    const c = this.#counter;
    const cluster = m.cluster;
    if (m.event === 'disconnect') {
      c.inc(cluster, 'upstream_cx_destroy');
      c.inc(cluster, m.remote ? 'upstream_cx_destroy_remote' : 'upstream_cx_destroy_local');
      // codec_client.cc onEvent: a connection closed with streams still on it (the gRPC transport says how many; undici's pools do not).
      if ((m.activeRequests ?? 0) > 0) {
        c.inc(cluster, 'upstream_cx_destroy_with_active_rq');
        c.inc(cluster, m.remote ? 'upstream_cx_destroy_remote_with_active_rq' : 'upstream_cx_destroy_local_with_active_rq');
      }
      return;
    }
    // upstream_impl.h ALL_CLUSTER_TRAFFIC_STATS: every connection made counts in upstream_cx_total, failed ones too.
    c.inc(cluster, 'upstream_cx_total');
    if (m.timeout) c.inc(cluster, 'upstream_cx_connect_timeout');
    if (m.event !== 'connect') return;
    let socket = m.socket;
    let ms = m.connectMs ?? -1;
    if (socket === undefined) {
      // undici's: the socket it announced just before.
      socket = this.#last?.socket;
      ms = this.#last?.ms ?? -1;
    }
    this.#last = undefined;
    // conn_pool_base.cc onConnectionEvent(Connected): conn_connect_ms_->complete().
    if (ms >= 0) this.#histogram(cluster).record(ms, this.#now());
    if (socket !== undefined) this.#track(cluster, socket);
  }

  /** `meshlet:upstream:pending`, of one of this mesh's clusters. */
  pending(m: UpstreamPendingMessage): void {
    const c = this.#counter;
    if (m.event === 'queued') {
      // conn_pool_base.cc: a PendingStream counts upstream_rq_pending_total; no connection may be made for it (max_connections): upstream_cx_overflow.
      c.inc(m.cluster, 'upstream_rq_pending_total');
      c.inc(m.cluster, 'upstream_cx_overflow');
    } else if (m.event === 'cancelled') c.inc(m.cluster, 'upstream_rq_cancelled');
    else c.inc(m.cluster, 'upstream_rq_pending_overflow');
  }

  #track(cluster: string, socket: ConnectionBytes): void {
    let b = this.#bytes.get(cluster);
    if (b === undefined) {
      b = { rx: 0, tx: 0, open: new Set() };
      this.#bytes.set(cluster, b);
    }
    const bytes = b;
    bytes.open.add(socket);
    socket.once('close', () => {
      if (!bytes.open.delete(socket)) return;
      bytes.rx += socket.bytesRead;
      bytes.tx += socket.bytesWritten;
    });
  }

  /** Writes each cluster's byte counters as of now (closed connections', plus the open ones' so far). */
  syncBytes(): void {
    for (const [cluster, b] of this.#bytes) {
      let rx = b.rx;
      let tx = b.tx;
      for (const s of b.open) {
        rx += s.bytesRead;
        tx += s.bytesWritten;
      }
      this.#counter.set(cluster, 'upstream_cx_rx_bytes_total', rx);
      this.#counter.set(cluster, 'upstream_cx_tx_bytes_total', tx);
    }
  }

  #histogram(cluster: string): FlushedHistogram {
    let h = this.connectMs.get(cluster);
    if (h === undefined) {
      h = new FlushedHistogram(this.#start);
      this.connectMs.set(cluster, h);
    }
    return h;
  }

  /** Forgets clusters not in `present` (MeshStats' bound on clusters counted); `all`: every one. */
  forget(present: ReadonlySet<string> | undefined): void {
    for (const name of [...this.connectMs.keys()]) if (present === undefined || !present.has(name)) this.connectMs.delete(name);
    for (const name of [...this.#bytes.keys()]) if (present === undefined || !present.has(name)) this.#bytes.delete(name);
  }
}
