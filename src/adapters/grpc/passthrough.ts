/**
 * The gRPC transport's connections to hosts outside the mesh (Resolution NONE / PASSTHROUGH, and
 * ALLOW_ANY's PassthroughCluster): an HTTP/2 connection per address the caller named, without
 * stream limits, drained by close().
 *
 * An address's connection is closed once no call has used it for a cleanup interval, as Envoy
 * removes the hosts of an ORIGINAL_DST cluster (Istio's PassthroughCluster sets no
 * `cleanup_interval`: Envoy's default, 5 s) that were not used since the last cleanup, draining
 * their connections. A process that calls many addresses over its life (pod IPs, per-tenant
 * hosts) keeps only those it still calls, as the undici side (an Agent whose per-origin pools
 * close with their last idle connection) does.
 *
 * A connection that does not come up in time fails its calls as a connect timeout (UNAVAILABLE,
 * flag UF), as Envoy's pool times out a connect to an ORIGINAL_DST host: within the cluster's
 * `tcp.connectTimeout` for a ServiceEntry with resolution NONE (its DestinationRule applies, as
 * istiod builds that cluster), and within MeshConfig `connectTimeout` (`createMesh({ connectTimeoutMs })`, Istio's default 10 s) for
 * the PassthroughCluster of ALLOW_ANY — never unbounded, so a blackholed address does not hold a
 * call until its deadline (or for ever without one). A resolution-NONE cluster's DestinationRule
 * `tcp.tcpKeepalive` applies to its sockets too (istiod sets that cluster's
 * `upstream_connection_options` as any cluster's).
 *
 * @module
 */
import type { Clock, Timer } from '../../core/clock.ts';
import type { TcpKeepalive } from '../../routing/cluster-settings.ts';
import { Conn, type ConnTarget } from './conn.ts';
import { type GrpcJs, grpcJs } from './grpc-js.ts';
import { type Admitted, type AttemptOwner, type EndpointConns, Live } from './pools.ts';

/** Envoy's default `cleanup_interval` of an ORIGINAL_DST cluster. */
export const PASSTHROUGH_CLEANUP_MS = 5000;

/** Calls to addresses outside the mesh: a connection per address, closed when unused, drained on close. */
export class PassthroughConns implements AttemptOwner {
  readonly live = new Live();
  readonly clock: Clock;
  readonly #conns = new Map<string, Conn>();
  #sweep: Timer | undefined;
  #closed = false;
  readonly envoyHeaders: boolean;
  readonly userAgent: string;

  constructor(clock: Clock, userAgent: string, envoyHeaders = true) {
    this.clock = clock;
    this.userAgent = userAgent;
    this.envoyHeaders = envoyHeaders;
  }

  get grpc(): GrpcJs {
    return grpcJs();
  }

  /** How many addresses have a connection. */
  get size(): number {
    return this.#conns.size;
  }

  /**
   * The connection to `authority` (`host:port`, the host a name or an address), made when there is
   * none or it is dead; a new one must come up within `connectTimeoutMs`, and its socket gets
   * `tcpKeepalive` (a resolution-NONE cluster's DestinationRule `tcp.tcpKeepalive`). Connections
   * are kept per address, connect timeout and keepalive, so two clusters passing through to one
   * address with different settings each get theirs.
   */
  get(authority: string, connectTimeoutMs: number, tcpKeepalive?: TcpKeepalive): Conn {
    const key = tcpKeepalive === undefined ? `${authority} ${connectTimeoutMs}` : `${authority} ${connectTimeoutMs} ${tcpKeepalive.timeMs}/${tcpKeepalive.intervalMs}/${tcpKeepalive.probes}`;
    let c = this.#conns.get(key);
    if (c === undefined || c.dead) {
      c = new Conn(this.#target(authority, connectTimeoutMs, tcpKeepalive));
      this.#conns.set(key, c);
      // Background housekeeping: the timer does not keep the process alive.
      if (this.#sweep === undefined && !this.#closed) this.#sweep = this.clock.setTimer(() => this.#cleanup(), PASSTHROUGH_CLEANUP_MS);
    }
    return c;
  }

  /** A plaintext connection to the address (gRPC passthrough takes no DestinationRule TLS: transport.ts refuses it). */
  #target(authority: string, connectTimeoutMs: number, tcpKeepalive: TcpKeepalive | undefined): ConnTarget {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(authority) ?? /^([^:]+):(\d+)$/.exec(authority);
    return { address: m?.[1] ?? authority, port: Number(m?.[2] ?? 80), tls: undefined, servername: undefined, tcpKeepalive, ping: undefined, connectTimeoutMs, clock: this.clock, observe: undefined };
  }

  admit(_e: EndpointConns | undefined, a: Admitted): 'go' {
    if (a.liveIndex === -1 && a.conn !== undefined) {
      a.conn.begin();
      a.conn.used = true;
    }
    this.live.add(a);
    return 'go';
  }

  done(_e: EndpointConns | undefined, a: Admitted): void {
    if (a.liveIndex !== -1 && a.conn !== undefined) {
      a.conn.end();
      // Used until now: an idle interval starts when the last call ends.
      a.conn.used = true;
    }
    this.live.delete(a);
  }

  /** Envoy's cleanup: a connection with no call in flight and none since the last cleanup is closed. */
  #cleanup(): void {
    this.#sweep = undefined;
    for (const [authority, c] of this.#conns) {
      if (c.active > 0 || c.used) c.used = false;
      else {
        this.#conns.delete(authority);
        c.close();
      }
    }
    if (this.#conns.size > 0 && !this.#closed) this.#sweep = this.clock.setTimer(() => this.#cleanup(), PASSTHROUGH_CLEANUP_MS);
  }

  /** Closes the connections: calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs: number): Promise<void> {
    this.#closed = true;
    this.#sweep?.clear();
    this.#sweep = undefined;
    for (const c of this.#conns.values()) c.close();
    this.#conns.clear();
    await this.live.drain(graceMs, this.clock);
  }
}
