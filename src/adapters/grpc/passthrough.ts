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
 * call until its deadline (or for ever without one). A resolution-NONE cluster's connection pool
 * settings apply as istiod builds that cluster's (cluster_traffic_policy.go applyConnectionPool):
 * TCP keepalive (its DestinationRule's `tcp.tcpKeepalive` over MeshConfig's `tcpKeepalive`), HTTP/2
 * keepalive PINGs (`http.http2KeepAlive`) and the idle timeout (`http.idleTimeout`, else
 * `tcp.idleTimeout`: a connection no call has used for that long is closed). The PassthroughCluster
 * gets MeshConfig's `tcpKeepalive` (cluster_builder.go buildDefaultPassthroughCluster).
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

/** How a passthrough connection is made and kept: its cluster's (a resolution-NONE ServiceEntry's) settings, or the PassthroughCluster's. */
export interface PassthroughSettings {
  /** The connect timeout of a new connection. */
  readonly connectTimeoutMs: number;
  /** TCP keepalive on its socket; undefined: none. */
  readonly tcpKeepalive?: TcpKeepalive | undefined;
  /** `http.http2KeepAlive`: a PING every interval, the connection dropped when one is not answered in time. */
  readonly ping?: { readonly intervalMs: number; readonly timeoutMs: number } | undefined;
  /** `idleTimeout`: the connection closes once no call has used it for this long; undefined: only the cleanup closes it. */
  readonly idleTimeoutMs?: number | undefined;
}

/** Calls to addresses outside the mesh: a connection per address, closed when unused, drained on close. */
export class PassthroughConns implements AttemptOwner {
  readonly live = new Live();
  readonly clock: Clock;
  readonly #conns = new Map<string, Conn>();
  /** The idle timeout of connections whose cluster sets one, and their key. */
  readonly #idle = new WeakMap<Conn, { key: string; ms: number }>();
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
   * none or it is dead, with settings `s`. Connections are kept per address and settings, so two
   * clusters passing through to one address with different settings each get theirs.
   */
  get(authority: string, s: PassthroughSettings): Conn {
    const k = s.tcpKeepalive;
    const key = `${authority} ${s.connectTimeoutMs} ${k === undefined ? '-' : `${k.timeMs}/${k.intervalMs}/${k.probes}`} ${s.ping === undefined ? '-' : `${s.ping.intervalMs}/${s.ping.timeoutMs}`} ${s.idleTimeoutMs ?? '-'}`;
    let c = this.#conns.get(key);
    if (c === undefined || c.dead) {
      c = new Conn(this.#target(authority, s));
      this.#conns.set(key, c);
      if (s.idleTimeoutMs !== undefined && s.idleTimeoutMs > 0 && Number.isFinite(s.idleTimeoutMs)) this.#idle.set(c, { key, ms: s.idleTimeoutMs });
      // Background housekeeping: the timer does not keep the process alive.
      if (this.#sweep === undefined && !this.#closed) this.#sweep = this.clock.setTimer(() => this.#cleanup(), PASSTHROUGH_CLEANUP_MS);
    }
    return c;
  }

  /** A plaintext connection to the address (gRPC passthrough takes no DestinationRule TLS: transport.ts refuses it). */
  #target(authority: string, s: PassthroughSettings): ConnTarget {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(authority) ?? /^([^:]+):(\d+)$/.exec(authority);
    return { address: m?.[1] ?? authority, port: Number(m?.[2] ?? 80), tls: undefined, servername: undefined, tcpKeepalive: s.tcpKeepalive, ping: s.ping, connectTimeoutMs: s.connectTimeoutMs, clock: this.clock, observe: undefined };
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
      const idle = a.conn.active === 0 ? this.#idle.get(a.conn) : undefined;
      // idleTimeout: Envoy's pool closes a connection no stream used for idle_timeout.
      if (idle !== undefined) a.conn.idleAfter(this.clock, idle.ms, (c) => this.#forget(idle.key, c));
    }
    this.live.delete(a);
  }

  /** Closes an idle connection (its `idleTimeout` passed), forgetting it unless another replaced it. */
  #forget(key: string, c: Conn): void {
    if (this.#conns.get(key) === c) this.#conns.delete(key);
    c.close();
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
