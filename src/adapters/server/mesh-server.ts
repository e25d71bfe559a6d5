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
 *     anything else ─► STRICT refuses; otherwise the HTTP server
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
 * for {@link HANDSHAKE_TIMEOUT_MS} is closed.
 *
 * @module
 */
import { type IncomingMessage, Server, type RequestListener, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import { awaitFirstBytes } from './first-bytes.ts';
import { HANDSHAKE_TIMEOUT_MS, type InboundTls, SERVER_ALPN } from './inbound-tls.ts';
import { markAccepted, rememberPeer } from './peer.ts';

/** A TLS record of type handshake (22), protocol version 3.x. */
const TLS_HANDSHAKE = 0x16;
const TLS_MAJOR = 0x03;

/** Picks the first of {@link SERVER_ALPN} the client offers (undefined: refused with `no_application_protocol`). */
function selectAlpn({ protocols }: { protocols: string[] }): string | undefined {
  for (const p of SERVER_ALPN) if (protocols.includes(p)) return p;
  return undefined;
}

/** A node:http server with PeerAuthentication and mTLS in front of it. */
export class MeshHttpServer extends Server {
  readonly #mtls: InboundTls;
  /** node:http's own connection listener: what a connection that passed is handed to. */
  readonly #http: (socket: Socket) => void;
  #tls: TlsServer | undefined;
  #tlsGeneration = 0;
  /** Connections not handed to HTTP yet (first bytes or handshake pending). */
  readonly #pending = new Set<Socket>();

  constructor(listener: RequestListener, mtls: InboundTls) {
    super((req: IncomingMessage, res: ServerResponse) => {
      this.#drainIfRefused(req, res);
      listener(req, res);
    });
    this.#mtls = mtls;
    const own = this.listeners('connection');
    if (own.length !== 1) throw new Error(`meshlet: node:http's Server has ${own.length} connection listeners, expected 1; this Node.js version is not supported by mesh.createServer`);
    this.#http = own[0] as (socket: Socket) => void;
    this.removeListener('connection', this.#http);
    this.on('connection', (socket: Socket) => this.#accept(socket));
  }

  #accept(socket: Socket): void {
    const mode = this.#mtls.modeFor(socket.localPort ?? 0);
    if (this.#mtls.context === undefined) {
      if (mode === 'STRICT') {
        this.#mtls.warnOnce('meshlet: PeerAuthentication STRICT applies but this workload has no usable certificate yet: every inbound connection is refused until it has one (see docs/mtls.md)');
        this.#mtls.refuse(socket, mode, 'unknown', 'STRICT and no workload certificate yet');
        return;
      }
      // No identity: the workload neither offers nor accepts mTLS; plaintext as node:http serves it, nothing read first.
      markAccepted(socket);
      this.#http.call(this, socket);
      return;
    }
    this.#pending.add(socket);
    // Also when it closes during the TLS handshake (the TLS socket then never reaches #secured or a client error).
    socket.once('close', () => this.#pending.delete(socket));
    awaitFirstBytes(socket, HANDSHAKE_TIMEOUT_MS, {
      gone: () => this.#pending.delete(socket),
      timeout: () => {
        this.#pending.delete(socket);
        this.#mtls.refuse(socket, this.#mtls.modeFor(socket.localPort ?? 0), 'unknown', `nothing received for ${HANDSHAKE_TIMEOUT_MS} ms`);
      },
      // The mode when the first bytes came (a config applied meanwhile counts).
      data: (first) => this.#route(socket, first),
    });
  }

  #route(socket: Socket, first: Buffer): void {
    const mode = this.#mtls.modeFor(socket.localPort ?? 0);
    const isTls = first[0] === TLS_HANDSHAKE && (first.length < 2 || first[1] === TLS_MAJOR);
    if (!isTls) {
      this.#pending.delete(socket);
      if (mode === 'STRICT') {
        this.#mtls.refuse(socket, mode, 'plaintext', 'plaintext under STRICT');
        return;
      }
      markAccepted(socket);
      this.#http.call(this, socket);
      return;
    }
    if (mode === 'DISABLE') {
      this.#pending.delete(socket);
      this.#mtls.refuse(socket, mode, 'tls', 'a TLS handshake under DISABLE (plaintext only)');
      return;
    }
    const tls = this.#tlsServer();
    if (tls === undefined) {
      this.#pending.delete(socket);
      this.#mtls.refuse(socket, mode, 'tls', 'no usable workload certificate');
      return;
    }
    // Still pending until the handshake is done (or fails): TLS sockets allow no half-open.
    socket.allowHalfOpen = false;
    tls.emit('connection', socket);
  }

  /** The inner TLS server, its context brought up to the credentials in use. */
  #tlsServer(): TlsServer | undefined {
    const ctx = this.#mtls.context;
    if (ctx === undefined) return undefined;
    if (this.#tls === undefined) {
      const tls = new TlsServer({
        ...ctx.options,
        requestCert: true,
        // Checked after the handshake (verifyPeer), so a refusal can say why.
        rejectUnauthorized: false,
        ALPNCallback: selectAlpn,
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      });
      tls.on('secureConnection', (s: TLSSocket) => this.#secured(s));
      tls.on('tlsClientError', (err: Error & { code?: string }, s: TLSSocket) => {
        this.#released(s);
        this.#mtls.refuse(s, this.#mtls.modeFor(s.localPort ?? 0), 'tls', `TLS handshake failed: ${err.code ?? err.message}`);
      });
      this.#tls = tls;
      this.#tlsGeneration = ctx.generation;
    } else if (this.#tlsGeneration !== ctx.generation) {
      // New handshakes present the new certificate (and trust the new bundle); open connections keep theirs.
      this.#tls.setSecureContext(ctx.options);
      this.#tlsGeneration = ctx.generation;
    }
    return this.#tls;
  }

  /** The raw socket under a TLS socket is no longer pending. */
  #released(s: TLSSocket): void {
    const raw = (s as unknown as { _parent?: Socket })._parent;
    if (raw !== undefined) this.#pending.delete(raw);
  }

  #secured(s: TLSSocket): void {
    this.#released(s);
    const mode = this.#mtls.modeFor(s.localPort ?? 0);
    const v = this.#mtls.verifyPeer(s);
    if (!v.ok) {
      this.#mtls.refuse(s, mode, 'tls', v.reason);
      return;
    }
    rememberPeer(s, v.peer);
    markAccepted(s);
    this.#http.call(this, s);
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
    if ((mode === 'STRICT' && !tls) || (mode === 'DISABLE' && tls)) res.setHeader('connection', 'close');
  }

  #dropPending(): void {
    for (const s of this.#pending) s.destroy();
    this.#pending.clear();
  }

  /** Stops accepting; connections that have not sent a request yet (first bytes, handshake) are closed at once. */
  override close(callback?: (err?: Error) => void): this {
    this.#dropPending();
    return super.close(callback);
  }

  override closeAllConnections(): void {
    this.#dropPending();
    super.closeAllConnections();
  }
}
