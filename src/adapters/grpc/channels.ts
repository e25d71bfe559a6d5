/**
 * The gRPC transport's connections: per cluster, per endpoint, connections (a grpc-js channel
 * each, with grpc-js's retries off) made from the cluster's connection-pool settings and TLS
 * decision; the stream slots of each connection (`maxConcurrentStreams`, more connections up to
 * `maxConnections`, then the pending queue); the connect timeout of each connection
 * (`tcp.connectTimeout`, which grpc-js does not have); and the attempts in flight that `close()`
 * drains.
 *
 * @module
 */
import type { Socket } from 'node:net';
import type { ChannelInterface as Channel, ChannelOptions } from '@grpc/grpc-js';
import type { Clock, } from '../../core/clock.ts';
import { formatHostPort } from '../../core/host-port.ts';
import type { ClusterState, ClusterTransport } from '../../outbound/cluster-state.ts';
import { upstreamPendingChannel as pendingChannel, type UpstreamPendingMessage } from '../../core/observe-connections.ts';
import { UNLIMITED } from '../../policies/limits.ts';
import type { HostState } from '../../routing/balancer/host.ts';
import type { ResolvedConnectionPool } from '../../routing/cluster-settings.ts';
import { applyKeepalive } from '../keepalive.ts';
import { checkServer, type TlsPlan } from '../undici/tls-connector.ts';
import { ClusterTlsPlans, type TlsEnvironment } from '../undici/tls-plans.ts';
import type { GrpcJs } from './grpc-js.ts';
import { Conn, type ConnectTimeout, watchingSockets } from './conn.ts';
import { type Admitted, Live } from './live.ts';

export { Conn };

export type { Admitted };

/** Makes a connection's channel, given a hook for its sockets and whether the mesh closed it (so a close is not the upstream's). */
type OpenConn = (onSocket: ((socket: Socket) => void) | undefined, closedByMesh: () => boolean) => Channel;
export { Live };

/** The channel options of a cluster's endpoint channels, from its connection-pool settings. */
export function channelOptions(cs: ClusterState): ChannelOptions {
  const pool = cs.cluster.settings.connectionPool;
  const o: ChannelOptions = {
    // The mesh retries; grpc-js must not (nor take a retry policy from a service config).
    'grpc.enable_retries': 0,
    'grpc.service_config_disable_resolution': 1,
    // This mesh's connections are its own (not shared with the app's channels or another mesh).
    'grpc.use_local_subchannel_pool': 1,
    // The caller's client decides message sizes; the mesh carries what it is given.
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    'grpc.enable_channelz': 0,
  };
  if (pool.idleTimeoutMs !== undefined && pool.idleTimeoutMs > 0) o['grpc.client_idle_timeout_ms'] = pool.idleTimeoutMs;
  const ka = pool.http2KeepAlive;
  if (ka !== undefined) {
    // Envoy's connection_keepalive: a PING every interval, busy or idle; no answer within the timeout closes the connection.
    o['grpc.keepalive_time_ms'] = ka.intervalMs;
    o['grpc.keepalive_timeout_ms'] = ka.timeoutMs;
    o['grpc.keepalive_permit_without_calls'] = 1;
  }
  return o;
}

/**
 * One endpoint's connections, and the attempts waiting for a stream on one. A connection
 * carries up to `maxConcurrentStreams` calls; more calls open another connection, up to
 * `tcp.maxConnections`, as Envoy's HTTP/2 pool does.
 */
export class EndpointChannel {
  /** Makes a connection (given a hook for its sockets), or undefined when the endpoint's TLS cannot be set up (`failure` says why). */
  readonly #open: OpenConn | undefined;
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
  constructor(open: OpenConn | undefined, failure: string | undefined, endpoint: HostState['endpoint'], epoch: number, key: string, istioMtls = false, trust?: string) {
    this.#open = open;
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
      if (c.active < maxStreams) {
        c.calls++;
        return c;
      }
    }
    if (this.#open === undefined || (maxConnections !== UNLIMITED && this.conns.length >= maxConnections)) return undefined;
    const c = new Conn(this.#open, this.connectTimeout);
    c.openedAt = maxAge === undefined ? clock.now() : now;
    c.calls = 1;
    this.conns.push(c);
    return c;
  }

  /** The connect timeout of new connections (undefined: none). */
  connectTimeout: ConnectTimeout | undefined;

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

/**
 * grpc-js credentials for a TLS plan (ISTIO_MUTUAL with the workload's certificate, or a
 * DestinationRule's SIMPLE/MUTUAL): the plan's secure context, and its server check (the
 * destination's SPIFFE identities, the rule's subjectAltNames, or the host name).
 */
function credentialsFor(g: GrpcJs, plan: TlsPlan) {
  if (plan.verify.kind === 'none') return g.credentials.createFromSecureContext(plan.context, { rejectUnauthorized: false });
  return g.credentials.createFromSecureContext(plan.context, { checkServerIdentity: (host, cert) => checkServer(plan, host, cert) });
}

/** Where an attempt runs: it admits the attempt to a stream and keeps it until it ends (close() drains them). */
export interface AttemptOwner {
  /** grpc-js, and the mesh clock: an attempt reads them here rather than keeping its own copies. */
  readonly grpc: GrpcJs;
  readonly clock: Clock;
  /** Attempts carry `x-envoy-expected-rq-timeout-ms` (Istio's `proxyHeaders.envoyDebugHeaders` not disabled). */
  readonly envoyHeaders: boolean;
  /** Sends the attempt now, queues it for a stream, or refuses it (overflow). */
  admit(e: EndpointChannel | undefined, a: Admitted): 'go' | 'queued' | 'overflow';
  /** The attempt left the wire (`onWire`: the stream on `a.conn` is free) or the queue. */
  done(e: EndpointChannel | undefined, a: Admitted, onWire: boolean): void;
}

/** The channels of one cluster, by endpoint. */
export class ClusterChannels implements ClusterTransport, AttemptOwner {
  readonly #g: GrpcJs;
  readonly #env: TlsEnvironment;
  #plans: ClusterTlsPlans | undefined;
  readonly #hosts = new Map<HostState, EndpointChannel>();
  readonly options: ChannelOptions;
  readonly #clock: Clock;
  readonly #cs: ClusterState;
  /** Attempts in flight on these channels (close() waits for them, then cancels them). */
  readonly #live = new Live();
  #closed = false;
  readonly envoyHeaders: boolean;

  constructor(g: GrpcJs, options: ChannelOptions, cs: ClusterState, clock: Clock, env: TlsEnvironment, envoyHeaders = true) {
    this.#g = g;
    this.envoyHeaders = envoyHeaders;
    this.#env = env;
    this.options = options;
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
    return this.#tlsPlans().planFor(host.endpoint).plan?.renewed?.(this.#cs.cluster.settings.connectionPool.connectTimeoutMs);
  }

  /**
   * The endpoint's channel, made on first use, and again when its TLS decision changed (new
   * credentials, a new DestinationRule or PeerAuthentication): the old channel's calls finish.
   */
  get(host: HostState): EndpointChannel {
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
    const g = this.#g;
    let open: OpenConn | undefined;
    if (failure === undefined) {
      const target = formatHostPort(host.endpoint.address, host.endpoint.port);
      // TLS names the service (Istio's SNI for mTLS); the channel still dials the endpoint's address.
      // A rule without sni (Envoy's auto_sni): the service's host, the authority the mesh's gRPC calls carry.
      const service = this.#cs.cluster.host;
      const sni = plan?.servername ?? (plan !== undefined && plan.mode !== 'ISTIO_MUTUAL' && !service.startsWith('*') ? service : undefined);
      const options = sni === undefined ? this.options : { ...this.options, 'grpc.ssl_target_name_override': sni };
      const creds = plan === undefined ? g.credentials.createInsecure() : credentialsFor(g, plan);
      // tcpKeepalive: set on each TCP socket the channel connects (grpc-js sets none itself).
      const ka = this.#cs.cluster.settings.connectionPool.tcpKeepalive;
      // Each connection is published while /stats listens (the channel's subchannels are its own: grpc.use_local_subchannel_pool).
      const { name: cluster } = this.#cs;
      const owner = this.#cs;
      const clock = this.#clock;
      open = (onSocket, closedByMesh) => {
        const events = { cluster, owner, clock, closedByMesh };
        const hook =
          ka === undefined
            ? onSocket
            : (socket: Socket) => {
                applyKeepalive(socket, ka);
                onSocket?.(socket);
              };
        return new g.Channel(target, watchingSockets(g, creds, hook, events), options);
      };
    }
    const next = new EndpointChannel(open, failure, host.endpoint, this.#env.epoch, key, failure === undefined && plan?.mode === 'ISTIO_MUTUAL', plan?.trust);
    const cs = this.#cs;
    // Read when a connection is made: a new DestinationRule applies to the next connection.
    next.connectTimeout = {
      clock: this.#clock,
      get ms() {
        return cs.cluster.settings.connectionPool.connectTimeoutMs;
      },
      onDead: (c) => next.drop(c),
    };
    this.#hosts.set(host, next);
    return next;
  }

  /** Whether calls to `host` go over Istio mTLS, as its channel was last set up (telemetry's client-side principals). Decides nothing. */
  usesIstioMtls(host: HostState): boolean {
    return this.#hosts.get(host)?.istioMtls === true;
  }

  /** Sends the attempt now, or queues it for a stream of its endpoint's connection, or refuses it (the queue is full). */
  admit(e: EndpointChannel | undefined, a: Admitted): 'go' | 'queued' | 'overflow' {
    if (e === undefined) return 'go';
    const conn = e.take(this.#cs.cluster.settings.connectionPool, this.#cs.limiter.limits.maxConnections, this.#clock);
    if (conn !== undefined) {
      conn.active++;
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

  done(e: EndpointChannel | undefined, a: Admitted, onWire: boolean): void {
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
    conn.active--;
    // A retired connection closes with its last call; an idle one after `idleTimeout` without calls.
    if (conn.retired && conn.active === 0) conn.close();
    else if (conn.active === 0) this.#idleAfter(e, conn);
    if (next === undefined) return;
    // Its connection timed out connecting or is retired: the waiting attempt takes a stream on another one.
    const other = e.take(this.#cs.cluster.settings.connectionPool, this.#cs.limiter.limits.maxConnections, this.#clock);
    if (other !== undefined) {
      e.waiting.shift();
      other.active++;
      next.conn = other;
      next.go();
    }
  }

  #idleAfter(e: EndpointChannel, conn: Conn): void {
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
    // grpc-js lets the calls already on the connection finish.
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
