/**
 * One HTTP/2 connection of the gRPC transport: a `node:http2` client session to one endpoint
 * (plaintext, or TLS from the cluster's plan), made as grpc-js makes its own — TCP, the TLS
 * handshake, then the server's HTTP/2 settings before any call goes on it — with what grpc-js
 * does not have: the connect timeout (`tcp.connectTimeout`), HTTP/2 keepalive PINGs on the mesh
 * clock (`http2KeepAlive`), the idle timeout (`idleTimeout`), retirement after
 * `maxRequestsPerConnection` calls or at `maxConnectionDuration`, and its events on
 * `meshlet:upstream:connection` (the admin endpoint's `upstream_cx_*`).
 *
 * A connection that cannot be made fails the attempts waiting for it as Envoy's pool fails the
 * requests waiting for a connection: a connect failure (refused, TLS refused, the connect
 * timeout: `connect-failure`), or a connection the server closed once made and before its
 * settings (`reset`: Envoy's `connection termination`, e.g. a STRICT server refusing plaintext).
 *
 * @module
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Clock, Timer } from '../../core/clock.ts';
import { upstreamConnectionChannel as events, type UpstreamConnectionMessage } from '../../core/observe-connections.ts';
import { tlsFailureReason } from '../../core/tls-failure.ts';
import { formatHostPort } from '../../core/host-port.ts';
import type { TcpKeepalive } from '../../routing/cluster-settings.ts';
import { applyKeepalive } from '../keepalive.ts';
import { type TlsPlan, tlsConnector } from '../undici/tls-connector.ts';
import { GrpcCallError } from './classify.ts';

/** How the connections to one endpoint are made. */
export interface ConnTarget {
  /** The address and port dialled. */
  readonly address: string;
  readonly port: number;
  /** TLS (undefined: plaintext), and the SNI it sends (undefined: none for an address). */
  readonly tls: TlsPlan | undefined;
  readonly servername: string | undefined;
  /** `tcp.tcpKeepalive` on each socket. */
  readonly tcpKeepalive: TcpKeepalive | undefined;
  /** `http.http2KeepAlive`: a PING every interval, the connection dropped when one is not answered within the timeout. */
  readonly ping: { readonly intervalMs: number; readonly timeoutMs: number } | undefined;
  /** The connect timeout of a new connection, read when it is made (0 or Infinity: none). */
  readonly connectTimeoutMs: number;
  readonly clock: Clock;
  /** The cluster whose connection events these are (`meshlet:upstream:connection`); undefined: not published (passthrough). */
  readonly observe: { readonly name: string } | undefined;
}

/** An attempt waiting for its connection to come up. */
export interface ConnWaiter {
  /** The connection is up: open the stream. */
  connected(): void;
  /** The connection could not be made. */
  connectFailed(err: GrpcCallError): void;
}

/** The session options grpc-js makes its connections with (no session memory limit: Node degrades badly at it). */
const SESSION_OPTIONS = { maxSessionMemory: Number.MAX_SAFE_INTEGER, maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER } as http2.ClientSessionOptions;

/** The TLS connector's clock: the connection's own connect timeout covers the handshake (and the server's settings after it). */
const UNTIMED: Clock = Object.freeze({ now: () => 0, setTimer: () => Object.freeze({ clear: () => undefined }) });

/** The words of a connect failure's details (grpc-js's, which classify.ts and upstream-failure.ts read). */
const NO_CONNECTION = 'No connection established. Last error: ';

/** One HTTP/2 connection to an endpoint, and the calls on it. */
export class Conn {
  active = 0;
  /** Calls given this connection so far (`maxRequestsPerConnection`). */
  calls = 0;
  /** When it was opened, on the mesh clock (`maxConnectionDuration`); set by its owner. */
  openedAt = 0;
  /** Takes no new calls (`maxRequestsPerConnection` or `maxConnectionDuration` reached); closes when its last call ends. */
  retired = false;
  /** A call used it since its owner last looked (passthrough connections close when unused: passthrough.ts). */
  used = false;
  /** It failed to connect, went away (GOAWAY, closed, PING unanswered) or was closed: not used for new calls again. */
  dead = false;
  /** The session: made once the socket is (TLS: after the handshake). */
  session: http2.ClientHttp2Session | undefined;
  /** The server's settings came: calls go on it. */
  ready = false;
  /** `http` or `https`: the `:scheme` its streams send. */
  scheme = 'http';
  /** The session dropped (closed, errored) while calls were on it: their streams end as `Connection dropped`. */
  dropped = false;
  readonly #t: ConnTarget;
  /** Told when the connection is dead (its owner forgets it; the next call opens another). */
  readonly #onDead: ((c: Conn) => void) | undefined;
  #waiting: ConnWaiter[] = [];
  #socket: net.Socket | undefined;
  #connectTimer: Timer | undefined;
  #ping: Timer | undefined;
  #idle: Timer | undefined;
  #closed = false;
  /** When the connect began, on the mesh clock (`upstream_cx_connect_ms`). */
  readonly #startedAt: number;

  /** The socket's local end (`address:port`), once it is connected. */
  /** The connection's socket (TLS for mTLS), once connecting started. */
  get socket(): net.Socket | undefined {
    return this.#socket;
  }

  get localAddress(): string | undefined {
    const a = this.#socket?.localAddress;
    return a === undefined ? undefined : formatHostPort(a, this.#socket?.localPort ?? 0);
  }

  constructor(t: ConnTarget, onDead?: (c: Conn) => void) {
    this.#t = t;
    this.#onDead = onDead;
    this.#startedAt = t.clock.now();
    const ms = t.connectTimeoutMs;
    if (ms > 0 && Number.isFinite(ms)) this.#connectTimer = t.clock.setTimer(() => this.#timedOut(ms), ms);
    if (t.tls === undefined) this.#plain();
    else this.#secure(t.tls);
  }

  #plain(): void {
    const t = this.#t;
    const socket = net.connect({ host: t.address, port: t.port });
    socket.setNoDelay(true);
    if (t.tcpKeepalive !== undefined) applyKeepalive(socket, t.tcpKeepalive);
    this.#socket = socket;
    const onError = (err: Error): void => this.#failed(new GrpcCallError('connect-failure', 14, `${NO_CONNECTION}Error: ${err.message}`, undefined, err));
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.removeListener('error', onError);
      this.#start(socket, 'http');
    });
  }

  #secure(plan: TlsPlan): void {
    const t = this.#t;
    // The mesh's TLS connector (the HTTP path's): the plan's SNI, ALPN, roots and server check, its failures worded.
    const connect = tlsConnector(plan, Number.POSITIVE_INFINITY, UNTIMED, t.tcpKeepalive);
    const s = connect({ hostname: t.address, port: t.port, servername: t.servername ?? null }, (err, socket) => {
      if (err !== null || socket === null) {
        const e = err ?? new Error('TLS connect failed');
        this.#failed(new GrpcCallError('connect-failure', 14, `${NO_CONNECTION}${e.name}: ${e.message}`, undefined, e));
        return;
      }
      this.#start(socket, 'https');
    });
    if (s !== undefined) this.#socket = s;
  }

  /** TCP (and TLS) are up: the HTTP/2 session, ready at the server's settings. */
  #start(socket: net.Socket | TLSSocket, scheme: string): void {
    this.#socket = socket;
    this.scheme = scheme;
    if (this.#closed || this.dead) {
      socket.destroy();
      return;
    }
    const session = http2.connect(`${scheme}://${formatHostPort(this.#t.address, this.#t.port)}`, { ...SESSION_OPTIONS, createConnection: () => socket });
    this.session = session;
    let lastError: Error | undefined;
    session.on('error', (err: Error) => {
      lastError = err;
    });
    session.once('remoteSettings', () => this.#ready());
    session.once('close', () => {
      if (!this.ready) {
        // Made, then closed before its settings: Envoy's connection termination (UC), unless TLS refused us (an alert).
        const tls = lastError !== undefined && tlsFailureReason(lastError) !== undefined;
        this.#failed(new GrpcCallError(tls ? 'connect-failure' : 'reset', 14, `${NO_CONNECTION}${lastError === undefined ? 'Failed to connect' : lastError.message}`, undefined, lastError));
        return;
      }
      this.#gone(false);
    });
    session.on('goaway', () => this.#retireOnGoaway());
    // Seen before the streams on it close: they end `Connection dropped`, as grpc-js's do.
    socket.once('close', () => {
      if (this.ready) this.dropped = true;
    });
    if (this.active === 0) session.unref();
  }

  #ready(): void {
    this.#connectTimer?.clear();
    this.#connectTimer = undefined;
    if (this.dead) return;
    this.ready = true;
    // With its socket (bytes after TLS: upstream_cx_rx/tx_bytes_total) and the time TCP, TLS and the server's settings took (upstream_cx_connect_ms).
    this.#publish('connect', false, false, this.#socket, this.#t.clock.now() - this.#startedAt);
    if (this.#t.ping !== undefined) this.#schedulePing();
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w.connected();
  }

  /** The attempt goes on when the connection is up (now, when it is). */
  wait(w: ConnWaiter): void {
    if (this.ready) w.connected();
    else this.#waiting.push(w);
  }

  /** An attempt no longer waits (cancelled). */
  unwait(w: ConnWaiter): void {
    const i = this.#waiting.indexOf(w);
    if (i !== -1) this.#waiting.splice(i, 1);
  }

  /** A call starts on it (keeps the process alive while calls run, as grpc-js's connections do). */
  begin(): void {
    if (this.active++ === 0) this.session?.ref();
  }

  /** A call on it ended. */
  end(): void {
    if (--this.active === 0 && this.session !== undefined && !this.session.destroyed) this.session.unref();
  }

  #timedOut(ms: number): void {
    this.#connectTimer = undefined;
    if (this.ready || this.dead) return;
    // classify.ts and upstream-failure.ts read the timeout from these words (Envoy: reset reason "connection timeout").
    this.#failed(new GrpcCallError('connect-failure', 14, `${NO_CONNECTION}connect timeout: not connected within ${ms} ms (connectTimeout)`), true);
  }

  /** The connection could not be made: the attempts waiting for it fail, the connection is given up. */
  #failed(err: GrpcCallError, timeout = false): void {
    if (this.dead || this.ready) return;
    this.#kill();
    this.#publish('error', timeout, false);
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w.connectFailed(err);
  }

  /** A connection that was up went away (`local`: the mesh dropped it, a PING unanswered): the streams on it end, no call goes on it again. */
  #gone(local: boolean): void {
    this.dropped = true;
    if (this.#disconnected) return;
    this.#disconnected = true;
    const remote = !local && !this.#closed;
    this.#kill();
    this.#publish('disconnect', false, remote, undefined, undefined, this.active);
  }

  #disconnected = false;

  /** GOAWAY: the calls on it finish (Node ends those the server did not take as refused), new ones go on another connection. */
  #retireOnGoaway(): void {
    if (this.dead) return;
    this.dead = true;
    this.#stopTimers();
    this.#onDead?.(this);
  }

  /** Marks it dead, stops its timers, destroys what is left of it and tells its owner. */
  #kill(): void {
    const first = !this.dead;
    this.dead = true;
    this.#stopTimers();
    if (!this.ready) {
      this.session?.destroy();
      this.#socket?.destroy();
    } else if (this.session !== undefined && !this.session.destroyed) this.session.destroy();
    if (first) this.#onDead?.(this);
  }

  #stopTimers(): void {
    this.#connectTimer?.clear();
    this.#connectTimer = undefined;
    this.#ping?.clear();
    this.#ping = undefined;
    this.#idle?.clear();
    this.#idle = undefined;
  }

  // ── http2KeepAlive: Envoy's connection_keepalive, a PING every interval whether calls run or not ──

  #schedulePing(): void {
    const p = this.#t.ping as { intervalMs: number; timeoutMs: number };
    this.#ping = this.#t.clock.setTimer(() => this.#sendPing(p.timeoutMs), p.intervalMs);
  }

  #sendPing(timeoutMs: number): void {
    const s = this.session;
    if (s === undefined || s.destroyed || this.#closed) return;
    let answered = false;
    this.#ping = this.#t.clock.setTimer(() => {
      this.#ping = undefined;
      if (!answered) this.#gone(true);
    }, timeoutMs);
    try {
      s.ping((err) => {
        answered = true;
        this.#ping?.clear();
        this.#ping = undefined;
        if (err !== null) this.#gone(true);
        else if (!this.dead) this.#schedulePing();
      });
    } catch {
      this.#ping?.clear();
      this.#gone(true);
    }
  }

  // ── lifecycle ──

  /**
   * Its last call ended: `onIdle` is told if no call has used it for `ms` (`idleTimeout`, on the
   * mesh clock), as Envoy closes a pool connection idle for `idle_timeout`.
   */
  idleAfter(clock: Clock, ms: number, onIdle: (c: Conn) => void): void {
    this.#idle?.clear();
    // A call that ends after the connection was closed (mesh.close(), its endpoint removed) arms nothing.
    if (this.#closed || this.dead) return;
    const calls = this.calls;
    this.#idle = clock.setTimer(() => {
      this.#idle = undefined;
      if (this.active === 0 && this.calls === calls && !this.retired && !this.dead) onIdle(this);
    }, ms);
  }

  /** Takes no new calls; closes once the calls on it have ended (now, when there are none). */
  retire(): void {
    this.retired = true;
    if (this.active === 0) this.close();
  }

  /** Closes it: calls already on it finish (GOAWAY, then the session closes with its last stream); attempts waiting for it fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    if (!this.ready) {
      const waiting = this.#waiting;
      this.#waiting = [];
      this.dead = true;
      this.session?.destroy();
      this.#socket?.destroy();
      for (const w of waiting) w.connectFailed(new GrpcCallError('connect-failure', 14, `${NO_CONNECTION}the connection was closed before it connected`));
      return;
    }
    this.dead = true;
    const s = this.session;
    if (s !== undefined && !s.closed) s.close();
  }

  #publish(event: UpstreamConnectionMessage['event'], timeout: boolean, remote: boolean, socket?: net.Socket, connectMs?: number, activeRequests?: number): void {
    const o = this.#t.observe;
    if (o !== undefined && events.hasSubscribers) events.publish({ cluster: o.name, owner: o, event, timeout, remote, socket, connectMs, activeRequests } satisfies UpstreamConnectionMessage);
  }
}
