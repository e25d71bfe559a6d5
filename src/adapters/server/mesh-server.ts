/**
 * The server `mesh.createServer` returns: a node:http `Server` (listen, close, address,
 * closeIdleConnections, 'request' events — what apps and frameworks rely on) that applies
 * PeerAuthentication to each connection before any HTTP is read from it, and serves plaintext
 * and mTLS on one port.
 *
 * How a connection is taken in, as an Istio sidecar's inbound listener does with Envoy's
 * tls_inspector:
 *
 * ```
 * accept ─► mode of the local port (STRICT | PERMISSIVE | DISABLE)
 *   no workload certificate: STRICT refuses (fail closed), otherwise plaintext HTTP as before
 *   else read the first bytes (put back with unshift):
 *     0x16 0x03 (a TLS handshake record) ─► DISABLE refuses; otherwise TLS (client certificate
 *        required, verified against the trust bundle, one SPIFFE ID of the mesh's trust domain)
 *        ─► the HTTP server, with the peer remembered for the request's admission
 *     anything else ─► STRICT refuses (with `probePaths`: the HTTP server, for the probes only);
 *        otherwise the HTTP server
 * ```
 *
 * The HTTP server's own connection listener is taken off and called for the sockets that pass
 * (plaintext ones as they came, TLS ones once the handshake and the peer check are done), so
 * everything after the handshake — keep-alive, timeouts, idle tracking, close — is node:http's.
 * TLS is terminated by an inner `tls.Server` (never listening) whose secure context is swapped
 * with `setSecureContext` when the credentials change: new handshakes present the new
 * certificate, connections already open go on with theirs.
 *
 * A connection that has not sent its first bytes or finished its handshake yet is not an HTTP
 * connection: `close()` and `closeAllConnections()` end those at once, and one that stays silent
 * for `HANDSHAKE_TIMEOUT_MS` (15 s) is closed. The taking in is `PeerAuthAcceptor`
 * (peer-acceptor.ts), which `mesh.grpc.bind` shares.
 *
 * Once let in, a connection whose first bytes (after the handshake, for TLS) are the HTTP/2
 * preface is served by the HTTP/2 bridge (h2-bridge.ts: each stream an HTTP/1.1 request to this
 * server, as Envoy's inbound listener takes both protocols on one port); any other goes to
 * node:http.
 *
 * @module
 */
import { type IncomingMessage, Server, type RequestListener, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { InboundGuard } from '../../inbound/guard.ts';
import { awaitFirstBytes } from './first-bytes.ts';
import { Http2Bridge, isHttp2Preface } from './h2-bridge.ts';
import { answerOn, Http1Connections } from './idle-connections.ts';
import { PeerAuthAcceptor } from './peer-acceptor.ts';
import { HANDSHAKE_TIMEOUT_MS, type InboundTls, SERVER_ALPN } from './inbound-tls.ts';
import { markAccepted, peerOfSocket, rememberDownstream, rememberPeer } from './peer.ts';
import { serveUpgrade } from './upgrade.ts';
import { isProbeRequest, serveNode } from './node.ts';
import { closingConnections, listeningAgain } from './closed-by.ts';

/** Events node:http emits instead of 'request' for some requests: judged before the app's listeners get them. */
const JUDGED_EVENTS = new Set<string | symbol>(['upgrade', 'connect', 'checkContinue', 'checkExpectation']);

/** A node:http server with PeerAuthentication and mTLS in front of it. */
export class MeshHttpServer extends Server {
  readonly #mtls: InboundTls;
  readonly #guard: InboundGuard;
  /** node:http's own connection listener: what a connection that passed is handed to. */
  readonly #http: (socket: Socket) => void;
  readonly #acceptor: PeerAuthAcceptor;
  /** Plaintext connections taken under STRICT for the health probes only (`probePaths`). */
  readonly #probesOnly = new WeakSet<Socket>();
  /** HTTP/2 callers: their streams come in as HTTP/1.1 requests to this server. */
  readonly #h2: Http2Bridge;
  /** Connections let in whose first bytes (HTTP/1 or HTTP/2?) have not come yet. */
  readonly #sniffing = new Set<Socket>();
  /** Connections an upgrade (WebSocket) or a CONNECT took out of node:http's hands: closeAllConnections() ends them too. */
  readonly #upgraded = new Set<Duplex>();

  /** The HTTP/1 connections node:http serves, busy or idle since when: a drain closes them once idle for a moment. */
  readonly #http1 = new Http1Connections();
  /** Set by close(): every HTTP/1 answer from then on says `Connection: close`. */
  #draining = false;

  /** Whether this server judges its requests itself (mesh.createServer), or leaves it to the app (Fastify's plugin, through its reply). */
  #judge: boolean;

  /**
   * The TCP port the last `listen()` asked for (0 or a path: undefined), so `mesh.register()` right
   * after `mesh.createServer(app).listen(9080)` counts the port as served before it is bound.
   */
  requestedPort: number | undefined;

  override listen(...args: unknown[]): this {
    this.requestedPort = portOf(args[0]);
    return (Server.prototype.listen as (...a: unknown[]) => this).apply(this, args);
  }

  /**
   * `judge`: the requests are judged before any `'request'` listener gets them — `listener`, and
   * any an app or a library adds or puts in its place (engine.io, behind socket.io, takes the
   * listeners off and calls them from its own, which serves its HTTP long-polling itself).
   */
  constructor(listener: RequestListener, mtls: InboundTls, guard: InboundGuard, judge = false) {
    super(listener);
    this.#judge = judge;
    // Closed and listening again: its drain (and a close of its connections) is over.
    this.on('listening', () => {
      this.#draining = false;
      this.#http1.reset();
      listeningAgain(this);
    });
    if (!judge) {
      // Fastify's plugin judges what reaches Fastify's handler. Once another 'request' listener is
      // added, or the handler taken off (engine.io does both, and serves its long-polling
      // itself), requests may reach code no plugin guards: from then on this server judges them
      // all (the plugin sees them judged), on the normalized path.
      const foreign = (event: string | symbol, l: unknown, added: boolean): void => {
        if (event === 'request' && (added ? l !== listener : l === listener)) this.#judge = true;
      };
      this.on('newListener', (event: string | symbol, l: unknown) => foreign(event, l, true));
      this.on('removeListener', (event: string | symbol, l: unknown) => foreign(event, l, false));
    }
    this.#mtls = mtls;
    this.#guard = guard;
    const own = this.listeners('connection');
    if (own.length !== 1) throw new Error(`meshlet: node:http's Server has ${own.length} connection listeners, expected 1; this Node.js version is not supported by mesh.createServer`);
    this.#http = own[0] as (socket: Socket) => void;
    this.removeListener('connection', this.#http);
    // A bridged stream's in-memory connection is the real one's to the mesh: accepted, same peer, same probe-only rule.
    this.#h2 = new Http2Bridge((socket, real) => {
      if (this.#probesOnly.has(real)) this.#probesOnly.add(socket);
      rememberPeer(socket, peerOfSocket(real, guard), guard);
      rememberDownstream(socket, real);
      markAccepted(socket, guard);
      this.#http1.add(socket);
      this.#http.call(this, socket);
    }, () => guard.proxyHeaders.server);
    this.#acceptor = new PeerAuthAcceptor(mtls, SERVER_ALPN, {
      plaintext: (socket, first) => {
        markAccepted(socket, guard);
        this.#serve(socket, first);
      },
      secured: (socket, peer) => {
        rememberPeer(socket, peer, guard);
        markAccepted(socket, guard);
        this.#serve(socket, undefined);
      },
      probesOnly:
        guard.probes === undefined
          ? undefined
          : (socket, first) => {
              this.#probesOnly.add(socket);
              markAccepted(socket, guard);
              this.#serve(socket, first);
            },
    });
    this.on('connection', (socket: Socket) => this.#acceptor.accept(socket));
  }

  /**
   * Every request is judged here, before any listener gets it (`judge`; otherwise only the
   * PeerAuthentication rules of the connection apply here). Requests node:http gives to other
   * listeners than the request listener are judged here first too:
   * an upgrade (WebSocket) or a CONNECT goes to the app's `'upgrade'`/`'connect'` listeners
   * (upgrade.ts), a request with `Expect: 100-continue` (or another expectation) to its
   * `'checkContinue'`/`'checkExpectation'` listeners when it has some — as Envoy judges each of
   * them like any request. Every other event is node:http's.
   */
  // Named parameters, not a rest list: node:http emits 'request' for every request, and a rest
  // parameter made an array for each. Other events go on with the arguments they came with.
  override emit(event: string | symbol, a?: unknown, b?: unknown, c?: unknown): boolean {
    if (event === 'request') {
      const req = a as IncomingMessage;
      const res = b as ServerResponse;
      if (this.#refusedPlaintext(req)) return true;
      this.#drainIfRefused(req, res);
      this.#answer(res);
      if (!this.#judge) return super.emit(event, req, res);
      try {
        serveNode(this.#guard, req, res, () => super.emit(event, req, res));
      } catch (err) {
        // A listener's synchronous throw, as node:http lets it escape: on a connection whose first
        // bytes were read and put back (sniffing), node:http parses on a path where Node drops an
        // error thrown from inside the request's async scope, and the request would hang unseen.
        rethrowUncaught(err);
      }
      return true;
    }
    if (!JUDGED_EVENTS.has(event)) {
      // biome-ignore lint/complexity/noArguments: how many arguments the event came with (a listener may count them)
      switch (arguments.length) {
        case 1:
          return super.emit(event as string);
        case 2:
          return super.emit(event as string, a);
        case 3:
          return super.emit(event as string, a, b);
        case 4:
          return super.emit(event as string, a, b, c);
        default:
          // biome-ignore lint/complexity/noArguments: an event with more arguments than the three named (an app's own), handed on as they came
          return Reflect.apply(Server.prototype.emit, this, arguments);
      }
    }
    const req = a as IncomingMessage;
    if (this.#refusedPlaintext(req)) return true;
    if (event === 'checkContinue' || event === 'checkExpectation') {
      const res = b as ServerResponse;
      // Judged before the app decides on the 100 Continue: a refused request gets its answer instead.
      this.#drainIfRefused(req, res);
      this.#answer(res);
      serveNode(this.#guard, req, res, () => super.emit(event as string, req, res));
      return true;
    }
    const socket = b as Duplex;
    const head = c as Buffer;
    // node:http no longer counts it as its connection, yet close() waits for it: ended with the rest after a drain.
    this.#upgraded.add(socket);
    this.#http1.forget(req.socket);
    socket.once('close', () => this.#upgraded.delete(socket));
    serveUpgrade(this.#guard, req, socket, () => super.emit(event as string, req, socket, head));
    return true;
  }

  /** Under STRICT a plaintext connection serves the probes and nothing else: true (and the connection refused) for any other request on one. */
  #refusedPlaintext(req: IncomingMessage): boolean {
    const guard = this.#guard;
    if (guard.probes === undefined || !this.#probesOnly.has(req.socket) || this.#mtls.modeFor(req.socket.localPort ?? 0) !== 'STRICT' || isProbeRequest(guard, req, req.url)) return false;
    this.#mtls.refuse(req.socket, 'STRICT', 'plaintext', 'plaintext under STRICT (only the health probes, probePaths, are served in plaintext)');
    return true;
  }

  /** HTTP/2 (its preface first) to the bridge, anything else to node:http; `first`: the first bytes when already read. */
  #serve(socket: Socket, first: Buffer | undefined): void {
    if (first !== undefined) {
      if (isHttp2Preface(first)) this.#h2.accept(socket);
      else {
        this.#http1.add(socket);
        this.#http.call(this, socket);
      }
      return;
    }
    this.#sniffing.add(socket);
    awaitFirstBytes(socket, this.headersTimeout > 0 ? this.headersTimeout : HANDSHAKE_TIMEOUT_MS, {
      data: (f) => {
        this.#sniffing.delete(socket);
        this.#serve(socket, f);
      },
      gone: () => this.#sniffing.delete(socket),
      timeout: () => {
        this.#sniffing.delete(socket);
        socket.destroy();
      },
    });
  }

  /**
   * A keep-alive connection let in under a mode a new config no longer allows (plaintext after a
   * change to STRICT, mTLS after DISABLE) is drained as Envoy drains the connections of a changed
   * filter chain: this request is served, with `Connection: close`.
   */
  #drainIfRefused(req: IncomingMessage, res: ServerResponse): void {
    const mode = this.#mtls.modeFor(req.socket.localPort ?? 0);
    if (mode === 'PERMISSIVE') return;
    const tls = (req.socket as TLSSocket).encrypted === true;
    if ((mode === 'STRICT' && !tls) || (mode === 'DISABLE' && tls)) closeAfter(res);
  }

  /**
   * During a drain, `res` says `Connection: close`, as Envoy's HTTP connection manager answers
   * HTTP/1 requests while its listener drains (source/common/http/conn_manager_impl.cc,
   * encodeHeaders: "If the connection manager is draining send Connection: Close on HTTP/1.1
   * connections"): the caller opens a new connection for its next request instead of sending it
   * on one this server is closing. (Answers already started when the drain begins are found
   * then, on their connections: nothing is tracked per request.)
   */
  #answer(res: ServerResponse): void {
    if (this.#draining) closeAfter(res);
  }

  /**
   * From now on every request is judged here, before any listener (`mesh.protect()` of the server
   * from `mesh.fastifyOptions()`: Fastify hooks added before the plugin's — NestJS's adapter and
   * its middleware — then see judged requests only).
   */
  judgeAll(): void {
    this.#judge = true;
  }

  /** True when `guard` is the one this server judges with (its mesh's; another mesh's protect() wraps it as any server). */
  judgedWith(guard: object): boolean {
    return this.#guard === guard;
  }

  /**
   * Stops accepting; connections that have not sent a request yet (first bytes, handshake) are
   * closed at once; answers not started yet, and requests still to come on open HTTP/1
   * connections, say `Connection: close`.
   */
  override close(callback?: (err?: Error) => void): this {
    this.startDrain();
    this.#dropPending();
    return super.close(callback);
  }

  /**
   * Discourages the connections open now and to come while the server still accepts, as an
   * Envoy listener does during its graceful drain (`drain_listeners?graceful`, which
   * istio-agent asks for on SIGTERM): HTTP/1 answers say `Connection: close`, HTTP/2 callers
   * get a GOAWAY (their streams in flight finish). close() starts it too.
   */
  startDrain(): void {
    this.#draining = true;
    for (const socket of this.#http1.connections()) {
      const res = answerOn(socket);
      if (res !== undefined) closeAfter(res);
    }
    this.#h2.close();
  }

  override closeAllConnections(): void {
    closingConnections(this);
    this.#dropPending();
    this.#h2.destroy();
    for (const s of this.#upgraded) s.destroy();
    this.#upgraded.clear();
    super.closeAllConnections();
  }

  /** During a drain, HTTP/1 connections are closed once idle for a moment (idle-connections.ts); otherwise as node:http does. */
  override closeIdleConnections(): void {
    this.#h2.closeIdle();
    if (this.#draining) this.#http1.closeIdle();
    else super.closeIdleConnections();
  }

  #dropPending(): void {
    this.#acceptor.dropPending();
    for (const s of this.#sniffing) s.destroy();
    this.#sniffing.clear();
  }
}

/**
 * An answer whose headers have not gone out yet says `Connection: close` and node:http closes the
 * connection after it: node:http's own framing (`shouldKeepAlive`), not a header the app could
 * have set — those are taken off the app's answers (hop-by-hop.ts).
 */
function closeAfter(res: ServerResponse): void {
  if (!res.headersSent) res.shouldKeepAlive = false;
}

/** Throws `err` from a fresh stack (the next tick), where it reaches `'uncaughtException'` as a listener's throw does on a plain server. */
function rethrowUncaught(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}

/** The port of `server.listen(port | '9080' | { port }, …)`; undefined for 0, a path, a handle. */
function portOf(first: unknown): number | undefined {
  const raw = typeof first === 'object' && first !== null ? (first as { port?: unknown }).port : first;
  const port = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  return typeof port === 'number' && Number.isInteger(port) && port > 0 ? port : undefined;
}
