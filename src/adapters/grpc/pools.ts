/**
 * The gRPC transport's connections: per cluster, per endpoint, HTTP/2 connections (conn.ts)
 * made from the cluster's connection-pool settings and TLS decision; the stream slots of each
 * connection (`maxConcurrentStreams`, more connections up to `maxConnections`, then the pending
 * queue); and the attempts in flight that `close()` drains.
 *
 * @module
 */
import type { Clock } from '../../core/clock.ts';
import type { ClusterState, ClusterTransport } from '../../outbound/cluster-state.ts';
import { UNLIMITED } from '../../policies/limits.ts';
import type { HostState } from '../../routing/balancer/host.ts';
import type { ResolvedConnectionPool } from '../../routing/cluster-settings.ts';
import { ClusterTlsPlans, type TlsEnvironment } from '../undici/tls-plans.ts';
import { Conn, type ConnTarget } from './conn.ts';
import { type Admitted, Live } from './live.ts';
import { upstreamPendingChannel as pendingChannel, type UpstreamPendingMessage } from '../../core/observe-connections.ts';
import type { GrpcJs } from './grpc-js.ts';

export { Conn, Live };
export type { Admitted };

/** What a cluster's connections are made with (they are made again when it changes; the old ones drain). */
export function connSettingsKey(cs: ClusterState): string {
  const pool = cs.cluster.settings.connectionPool;
  return JSON.stringify({ idleTimeoutMs: pool.idleTimeoutMs ?? null, tcpKeepalive: cs.tcpKeepalive ?? null, http2KeepAlive: pool.http2KeepAlive ?? null });
}

/**
 * One endpoint's connections, and the attempts waiting for a stream on one. A connection
 * carries up to `maxConcurrentStreams` calls; more calls open another connection, up to
 * `tcp.maxConnections`, as Envoy's HTTP/2 pool does.
 */
export class EndpointConns {
  /** How its connections are made, or undefined when the endpoint's TLS cannot be set up (`failure` says why). */
  readonly #target: ConnTarget | undefined;
  readonly failure: string | undefined;
  readonly conns: Conn[] = [];
  endpoint: HostState['endpoint'];
  /** The TLS epoch and plan key the connections are made for. */
  epoch: number;
  readonly key: string;
  readonly waiting: Admitted[] = [];
  /** The connections are Istio mTLS (ISTIO_MUTUAL with the workload's certificate): telemetry's client-side principals. */
  readonly istioMtls: boolean;
  /** The roots the connections' TLS verifies the server against, in words (for errors); undefined without TLS. */
  readonly trust: string | undefined;
  /** Forgets a connection that is dead (failed to connect, went away): the next attempt opens another. */
  readonly #drop = (c: Conn): void => this.drop(c);
  constructor(target: ConnTarget | undefined, failure: string | undefined, endpoint: HostState['endpoint'], epoch: number, key: string, istioMtls = false, trust?: string) {
    this.#target = target;
    this.failure = failure;
    this.endpoint = endpoint;
    this.epoch = epoch;
    this.key = key;
    this.istioMtls = istioMtls;
    this.trust = trust;
  }

  /**
   * A connection with a free stream, a new one when `maxConnections` allows, or undefined. A
   * connection that has carried `maxRequestsPerConnection` calls or is `maxConnectionDuration`
   * old is retired on the way: it takes no new call and closes once its calls end (Envoy drains
   * such a connection).
   */
  take(pool: ResolvedConnectionPool, maxConnections: number, clock: Clock): Conn | undefined {
    const conns = this.conns;
    const maxStreams = pool.maxConcurrentStreams;
    const perConn = pool.maxRequestsPerConnection;
    const maxAge = pool.maxConnectionDurationMs;
    const now = maxAge === undefined ? 0 : clock.now();
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i] as Conn;
      if ((perConn !== undefined && c.calls >= perConn) || (maxAge !== undefined && now - c.openedAt >= maxAge)) {
        conns.splice(i--, 1);
        c.retire();
        continue;
      }
      if (c.dead) {
        conns.splice(i--, 1);
        continue;
      }
      if (c.active < maxStreams) {
        c.calls++;
        return c;
      }
    }
    if (this.#target === undefined || (maxConnections !== UNLIMITED && this.conns.length >= maxConnections)) return undefined;
    const c = new Conn(this.#target, this.#drop);
    c.openedAt = maxAge === undefined ? clock.now() : now;
    c.calls = 1;
    this.conns.push(c);
    return c;
  }

  /** Forgets a connection that timed out connecting (the next attempt opens another). */
  drop(c: Conn): void {
    const i = this.conns.indexOf(c);
    if (i !== -1) this.conns.splice(i, 1);
  }

  /** Closes the connections (calls already on them finish). */
  close(): void {
    for (const c of this.conns) c.close();
  }
}

/** Where an attempt runs: it admits the attempt to a stream and keeps it until it ends (close() drains them). */
export interface AttemptOwner {
  /** grpc-js (its Metadata), and the mesh clock: an attempt reads them here rather than keeping its own copies. */
  readonly grpc: GrpcJs;
  /** The user-agent of a call whose caller gave none: grpc-js's own (`grpc-node-js/<version>`). */
  readonly userAgent: string;
  readonly clock: Clock;
  /** Attempts carry `x-envoy-expected-rq-timeout-ms` (Istio's `proxyHeaders.envoyDebugHeaders` not disabled). */
  readonly envoyHeaders: boolean;
  /** Sends the attempt now, queues it for a stream, or refuses it (overflow). */
  admit(e: EndpointConns | undefined, a: Admitted): 'go' | 'queued' | 'overflow';
  /** The attempt left the wire (`onWire`: the stream on `a.conn` is free) or the queue. */
  done(e: EndpointConns | undefined, a: Admitted, onWire: boolean): void;
}

/** The connections of one cluster, by endpoint. */
export class ClusterConns implements ClusterTransport, AttemptOwner {
  readonly #g: GrpcJs;
  readonly #env: TlsEnvironment;
  #plans: ClusterTlsPlans | undefined;
  readonly #hosts = new Map<HostState, EndpointConns>();
  readonly #clock: Clock;
  readonly #cs: ClusterState;
  /** Attempts in flight on these connections (close() waits for them, then cancels them). */
  readonly #live = new Live();
  #closed = false;
  readonly envoyHeaders: boolean;

  readonly userAgent: string;

  constructor(g: GrpcJs, userAgent: string, cs: ClusterState, clock: Clock, env: TlsEnvironment, envoyHeaders = true) {
    this.#g = g;
    this.userAgent = userAgent;
    this.envoyHeaders = envoyHeaders;
    this.#env = env;
    this.#cs = cs;
    this.#clock = clock;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The cluster's TLS plans of the current epoch. */
  #tlsPlans(): ClusterTlsPlans {
    let p = this.#plans;
    if (p === undefined || p.epoch !== this.#env.epoch) {
      p = new ClusterTlsPlans(this.#cs.cluster, this.#env, true);
      this.#plans = p;
    }
    return p;
  }

  get grpc(): GrpcJs {
    return this.#g;
  }

  get clock(): Clock {
    return this.#clock;
  }

  /** An ISTIO_MUTUAL endpoint's renewal to wait for, up to the connect timeout, when the workload certificate expired (TlsPlan.renewed). */
  renewal(host: HostState): Promise<unknown> | undefined {
    return this.#tlsPlans().planFor(host.endpoint).plan?.renewed?.(this.#cs.connectTimeoutMs);
  }

  /**
   * The endpoint's connections, set up on first use, and again when its TLS decision changed (new
   * credentials, a new DestinationRule or PeerAuthentication): the old connections' calls finish.
   */
  get(host: HostState): EndpointConns {
    const e = this.#hosts.get(host);
    if (e !== undefined && e.endpoint === host.endpoint && e.epoch === this.#env.epoch) return e;
    const { plan, failure } = this.#tlsPlans().planFor(host.endpoint);
    // The address dialled, not the endpoint's key: a LOGICAL_DNS host keeps its key while its address follows the answers.
    const key = `${host.endpoint.address}:${host.endpoint.port}|${failure !== undefined ? `fail|${failure}` : (plan?.key ?? '')}`;
    if (e !== undefined && e.key === key) {
      e.endpoint = host.endpoint;
      e.epoch = this.#env.epoch;
      return e;
    }
    e?.close();
    let target: ConnTarget | undefined;
    if (failure === undefined) {
      // TLS names the service (Istio's SNI for mTLS); the connection still dials the endpoint's address.
      // A rule without sni (Envoy's auto_sni): the service's host, the authority the mesh's gRPC calls carry.
      const service = this.#cs.cluster.host;
      const sni = plan?.servername ?? (plan !== undefined && plan.mode !== 'ISTIO_MUTUAL' && !service.startsWith('*') ? service : undefined);
      const cs = this.#cs;
      const pool = cs.cluster.settings.connectionPool;
      target = {
        address: host.endpoint.address,
        port: host.endpoint.port,
        tls: plan,
        servername: sni,
        tcpKeepalive: cs.tcpKeepalive,
        ping: pool.http2KeepAlive,
        // Read when a connection is made: a new DestinationRule applies to the next connection.
        get connectTimeoutMs() {
          return cs.connectTimeoutMs;
        },
        clock: this.#clock,
        observe: cs,
      };
    }
    const next = new EndpointConns(target, failure, host.endpoint, this.#env.epoch, key, failure === undefined && plan?.mode === 'ISTIO_MUTUAL', plan?.trust);
    this.#hosts.set(host, next);
    return next;
  }

  /** Whether calls to `host` go over Istio mTLS, as its connections were last set up (telemetry's client-side principals). Decides nothing. */
  usesIstioMtls(host: HostState): boolean {
    return this.#hosts.get(host)?.istioMtls === true;
  }

  /** Sends the attempt now, or queues it for a stream of its endpoint's connection, or refuses it (the queue is full). */
  admit(e: EndpointConns | undefined, a: Admitted): 'go' | 'queued' | 'overflow' {
    if (e === undefined) return 'go';
    const conn = e.take(this.#cs.cluster.settings.connectionPool, this.#cs.limiter.limits.maxConnections, this.#clock);
    if (conn !== undefined) {
      conn.begin();
      a.conn = conn;
      this.#live.add(a);
      return 'go';
    }
    const maxPending = this.#cs.limiter.limits.maxPending;
    if (maxPending !== UNLIMITED && e.waiting.length >= maxPending) {
      this.#pending('overflow');
      return 'overflow';
    }
    e.waiting.push(a);
    this.#live.add(a);
    this.#pending('queued');
    return 'queued';
  }

  /** Tells `/stats` (when it listens) an attempt waits for a stream, gave up waiting, or found the queue full. */
  #pending(event: UpstreamPendingMessage['event']): void {
    if (pendingChannel.hasSubscribers) pendingChannel.publish({ cluster: this.#cs.name, owner: this.#cs, event } satisfies UpstreamPendingMessage);
  }

  done(e: EndpointConns | undefined, a: Admitted, onWire: boolean): void {
    this.#live.delete(a);
    if (e === undefined) return;
    if (!onWire) {
      const i = e.waiting.indexOf(a);
      if (i !== -1) {
        e.waiting.splice(i, 1);
        this.#pending('cancelled');
      }
      return;
    }
    // The stream is free: the first attempt waiting for one takes it.
    const conn = a.conn as Conn;
    const next = e.waiting[0];
    if (!conn.dead && !conn.retired && next !== undefined) {
      // On this connection, unless it has reached its request count or age (take() retires it).
      const pool = this.#cs.cluster.settings.connectionPool;
      const perConn = pool.maxRequestsPerConnection;
      const maxAge = pool.maxConnectionDurationMs;
      if ((perConn === undefined || conn.calls < perConn) && (maxAge === undefined || this.#clock.now() - conn.openedAt < maxAge)) {
        e.waiting.shift();
        conn.calls++;
        next.conn = conn;
        next.go();
        return;
      }
    }
    conn.end();
    // A retired connection closes with its last call; an idle one after `idleTimeout` without calls.
    if (conn.retired && conn.active === 0) conn.close();
    else if (conn.active === 0) this.#idleAfter(e, conn);
    if (next === undefined) return;
    // Its connection timed out connecting or is retired: the waiting attempt takes a stream on another one.
    const other = e.take(this.#cs.cluster.settings.connectionPool, this.#cs.limiter.limits.maxConnections, this.#clock);
    if (other !== undefined) {
      e.waiting.shift();
      other.begin();
      next.conn = other;
      next.go();
    }
  }

  #idleAfter(e: EndpointConns, conn: Conn): void {
    const ms = this.#cs.cluster.settings.connectionPool.idleTimeoutMs;
    if (ms === undefined || ms <= 0 || !Number.isFinite(ms)) return;
    conn.idleAfter(this.#clock, ms, (c) => {
      e.drop(c);
      c.close();
    });
  }

  /** Connections to the endpoint in its pool now (Envoy's per-host `cx_active`). */
  connections(host: HostState): number {
    return this.#hosts.get(host)?.conns.length ?? 0;
  }

  removeHost(host: HostState): void {
    const e = this.#hosts.get(host);
    if (e === undefined) return;
    this.#hosts.delete(host);
    // The calls already on its connections finish.
    e.close();
  }

  /** Stops new calls; calls in flight may finish for `graceMs`, then they are cancelled. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.#closed = true;
    for (const e of this.#hosts.values()) e.close();
    this.#hosts.clear();
    await this.#live.drain(graceMs, this.#clock);
  }
}
