/**
 * One connection of the gRPC transport: a grpc-js channel of its own, the calls on it, and its
 * connect timeout (`tcp.connectTimeout`), which grpc-js does not have.
 *
 * @module
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ChannelCredentials, ChannelInterface as Channel } from '@grpc/grpc-js';
import type { Clock, Timer } from '../../core/clock.ts';
import { upstreamConnectionChannel } from '../../core/observe-connections.ts';
import { type ConnectionEvents, observeConnect } from './conn-events.ts';
import type { GrpcJs } from './grpc-js.ts';

type CallOf = ReturnType<Channel['createCall']>;

/** The part of grpc-js's ChannelCredentials a channel uses to connect (grpc-js 1.14; subclassable, declared in its types). */
interface ConnectingCredentials {
  _isSecure(): boolean;
  _createSecureConnector(target: unknown, options: unknown, callCredentials?: unknown): { connect(socket: Socket): Promise<{ readonly socket: Duplex }>; waitForReady(): Promise<void>; getCallCredentials(): unknown; destroy(): void };
}

/**
 * `inner` credentials that hand each TCP socket grpc-js connected to `onSocket` before the TLS
 * handshake (or the plaintext HTTP/2 start), so the mesh can give up a connection that does not
 * come up in time. grpc-js keeps the socket of a connection attempt to itself; closing its
 * channel does not end a TCP connect or a TLS handshake in progress. With `events`, each
 * connection is published for the admin endpoint's `/stats` while it listens (conn-events.ts).
 */
export function watchingSockets(g: GrpcJs, inner: ChannelCredentials, onSocket: ((socket: Socket) => void) | undefined, events?: ConnectionEvents): ChannelCredentials {
  const base = inner as unknown as ConnectingCredentials;
  class Watching extends (g.ChannelCredentials as unknown as new () => object) {
    _isSecure(): boolean {
      return base._isSecure();
    }
    _equals(other: unknown): boolean {
      return other === this;
    }
    _createSecureConnector(target: unknown, options: unknown, callCredentials?: unknown) {
      const c = base._createSecureConnector(target, options, callCredentials);
      // grpc-js asks waitForReady() before each TCP connect: the connect's start, for upstream_cx_connect_ms.
      let startedAt = -1;
      return {
        connect: (socket: Socket) => {
          onSocket?.(socket);
          const p = c.connect(socket);
          if (startedAt === -1 || events === undefined) return p;
          const t0 = startedAt;
          startedAt = -1;
          return observeConnect(events, p, t0);
        },
        waitForReady: () => {
          if (events !== undefined && upstreamConnectionChannel.hasSubscribers) startedAt = events.clock.now();
          return c.waitForReady();
        },
        getCallCredentials: () => c.getCallCredentials(),
        destroy: () => c.destroy(),
      };
    }
  }
  return new Watching() as unknown as ChannelCredentials;
}

/** A channel whose new calls are handed to `track` (a connection's calls while it connects). */
class TrackingChannel implements Channel {
  readonly #inner: Channel;
  readonly #track: (call: CallOf) => void;
  constructor(inner: Channel, track: (call: CallOf) => void) {
    this.#inner = inner;
    this.#track = track;
  }
  createCall(...args: Parameters<Channel['createCall']>): CallOf {
    const call = this.#inner.createCall(...args);
    this.#track(call);
    return call;
  }
  close(): void {
    this.#inner.close();
  }
  getTarget(): string {
    return this.#inner.getTarget();
  }
  getConnectivityState(tryToConnect: boolean): ReturnType<Channel['getConnectivityState']> {
    return this.#inner.getConnectivityState(tryToConnect);
  }
  watchConnectivityState(...args: Parameters<Channel['watchConnectivityState']>): void {
    this.#inner.watchConnectivityState(...args);
  }
  getChannelzRef(): ReturnType<Channel['getChannelzRef']> {
    return this.#inner.getChannelzRef();
  }
}

/** grpc-js's connectivity states (`grpc.connectivityState`), as numbers. */
const TRANSIENT_FAILURE = 3;
const READY = 2;
const SHUTDOWN = 4;

/** The connect timeout of a connection: `tcp.connectTimeout` on the mesh clock. */
export interface ConnectTimeout {
  readonly clock: Clock;
  readonly ms: number;
  /** The connection timed out connecting (its calls were failed, its channel closed). */
  onDead(conn: Conn): void;
}

/**
 * One connection (a grpc-js channel of its own) and the calls on it.
 *
 * grpc-js has no connect timeout: a call on a channel still connecting waits for it (or for its
 * deadline). With a {@link ConnectTimeout}, the calls made while the channel is not READY are
 * remembered, and when it has not become READY `ms` after the first of them — TCP, the TLS
 * handshake and the server's HTTP/2 settings, as a connection grpc-js can send on — they end
 * `UNAVAILABLE` as a failed connection (retried on `connect-failure`, `UF`), the channel is closed
 * and the connection is not used again (`dead`), as Envoy's pool gives up a connection that did
 * not connect within `connect_timeout` and fails the requests waiting for it.
 */
export class Conn {
  readonly #channel: Channel;
  active = 0;
  /** Calls given this connection so far (`maxRequestsPerConnection`). */
  calls = 0;
  /** When it was opened, on the mesh clock (`maxConnectionDuration`); set by its owner. */
  openedAt = 0;
  /** Takes no new calls (`maxRequestsPerConnection` or `maxConnectionDuration` reached); closes when its last call ends. */
  retired = false;
  /** A call used it since its owner last looked (passthrough connections close when unused: passthrough.ts). */
  used = false;
  /** The connect timed out: the channel is closed, and the connection is not used again. */
  dead = false;
  readonly #timeout: ConnectTimeout | undefined;
  /** The connect timeout of this connection (its cluster's when it was made). */
  readonly #ms: number;
  #ready = false;
  /** Calls made while the channel was not READY (their connection may time out). */
  #pending: CallOf[] = [];
  #timer: Timer | undefined;
  /** The channel as the attempts see it while it is not READY: its calls are remembered. */
  readonly #tracking: Channel | undefined;

  /** The sockets of the connection attempt in progress (given up when it times out). */
  #sockets: Socket[] = [];

  /** `open` makes the channel; with a timeout, it gets a hook that is given each socket the channel connects. */
  constructor(open: Channel | ((onSocket: ((socket: Socket) => void) | undefined, closedByMesh: () => boolean) => Channel), timeout?: ConnectTimeout) {
    this.#timeout = timeout;
    this.#ms = timeout?.ms ?? 0;
    const timed = timeout !== undefined && this.#ms > 0 && Number.isFinite(this.#ms);
    const channel = typeof open === 'function' ? open(timed ? (socket) => this.#sockets.push(socket) : undefined, () => this.#closed || this.dead) : open;
    this.#channel = channel;
    if (!timed) return;
    this.#tracking = new TrackingChannel(channel, (call) => this.#track(call));
    this.#watch(channel.getConnectivityState(true));
  }

  /** The channel to make a call on. */
  get channel(): Channel {
    return this.#ready || this.#tracking === undefined ? this.#channel : this.#tracking;
  }

  #watch(state: number): void {
    if (state === SHUTDOWN) {
      this.#settle();
      return;
    }
    if (state === READY) {
      this.#ready = true;
      this.#settle();
    } else {
      this.#ready = false;
      // TRANSIENT_FAILURE: grpc-js fails the calls itself (the mesh's calls are not wait-for-ready).
      if (state === TRANSIENT_FAILURE) this.#settle();
    }
    this.#channel.watchConnectivityState(state as never, Number.POSITIVE_INFINITY, () => this.#watch(this.#channel.getConnectivityState(false)));
  }

  #track(call: CallOf): void {
    if (this.#ready) return;
    this.#pending.push(call);
    const t = this.#timeout as ConnectTimeout;
    this.#timer ??= t.clock.setTimer(() => this.#expire(), this.#ms);
  }

  /** The connection attempt is over (connected, failed, closed): nothing waits on it any more. */
  #settle(): void {
    this.#timer?.clear();
    this.#timer = undefined;
    this.#pending = [];
    this.#sockets = [];
  }

  #expire(): void {
    this.#timer = undefined;
    if (this.#ready || this.dead) return;
    const t = this.#timeout as ConnectTimeout;
    this.dead = true;
    const calls = this.#pending;
    this.#pending = [];
    // grpc-js's words for a connection that never came up (classify.ts: a connect failure).
    const details = `No connection established. Last error: connect timeout: not connected within ${this.#ms} ms (connectTimeout)`;
    const sockets = this.#sockets;
    this.#sockets = [];
    for (const c of calls) c.cancelWithStatus(14, details);
    this.#channel.close();
    // grpc-js does not end a TCP connect or TLS handshake in progress when its channel closes.
    for (const so of sockets) so.destroy();
    t.onDead(this);
  }

  /** The `idleTimeout` timer of a connection without calls. */
  #idle: Timer | undefined;

  /**
   * Its last call ended: `onIdle` is told if no call has used it for `ms` (`idleTimeout`, on the
   * mesh clock), as Envoy closes a pool connection idle for `idle_timeout`. grpc-js's own idle
   * timeout only lets go of the connection at its subchannel pool's next sweep (every 10 s).
   */
  idleAfter(clock: Clock, ms: number, onIdle: (c: Conn) => void): void {
    this.#idle?.clear();
    // A call that ends after the connection was closed (mesh.close(), its endpoint removed) arms nothing.
    if (this.#closed) return;
    const calls = this.calls;
    this.#idle = clock.setTimer(() => {
      this.#idle = undefined;
      if (this.active === 0 && this.calls === calls && !this.retired && !this.dead) onIdle(this);
    }, ms);
  }

  /** Takes no new calls; the channel closes once the calls on it have ended (now, when there are none). */
  retire(): void {
    this.retired = true;
    if (this.active === 0) this.close();
  }

  #closed = false;

  /** Closes the channel (calls already on it finish). */
  close(): void {
    this.#closed = true;
    this.#settle();
    this.#idle?.clear();
    this.#idle = undefined;
    this.#channel.close();
  }
}
