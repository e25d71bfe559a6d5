/**
 * PeerAuthentication on a listening port, before any protocol runs on a connection: per the
 * port's mode (STRICT, PERMISSIVE, DISABLE), a new connection's first bytes say whether it is a
 * TLS handshake or plaintext (as Envoy's TLS inspector does); plaintext is refused under STRICT,
 * TLS under DISABLE; TLS is terminated with the workload certificate (swapped on rotation) and
 * the client's certificate checked. What passes goes to the owner: the mesh's HTTP servers
 * (node:http) and `mesh.grpc.bind` (grpc-js's connection injector).
 *
 * @module
 */
import type { Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import type { PeerIdentity } from '../../core/context.ts';
import { type InboundConnectionEvent, inboundConnectionChannel } from '../../core/observe-connections.ts';
import { awaitFirstBytes } from './first-bytes.ts';
import { HANDSHAKE_TIMEOUT_MS, type InboundTls } from './inbound-tls.ts';
import type { MtlsMode } from '../../security/peer-authentication.ts';

/** A TLS record of type handshake (22), protocol version 3.x. */
const TLS_HANDSHAKE = 0x16;
const TLS_MAJOR = 0x03;

/** Where the connections that pass go. */
export interface AcceptedHandlers {
  /** A plaintext connection the port's mode allows; `first`: its first bytes when they were read (they are back on it). */
  plaintext(socket: Socket, first?: Buffer): void;
  /** A TLS connection whose client proved `peer`. */
  secured(socket: TLSSocket, peer: PeerIdentity): void;
  /**
   * A plaintext connection under STRICT, taken to serve the health probes only (`probePaths`; the
   * owner refuses any other request on it; `first`: its first bytes, back on it). Absent: such a
   * connection is refused here.
   */
  readonly probesOnly?: ((socket: Socket, first: Buffer) => void) | undefined;
}

/** Accepts a port's connections as its PeerAuthentication says. */
export class PeerAuthAcceptor {
  readonly #mtls: InboundTls;
  readonly #alpn: readonly string[];
  readonly #on: AcceptedHandlers;
  #tls: TlsServer | undefined;
  #tlsGeneration = 0;
  /** Connections not handed over yet (first bytes or handshake pending). */
  readonly #pending = new Set<Socket>();

  /** `alpn`: the protocols the port speaks over TLS, in its order of preference (a client offering none is refused). */
  constructor(mtls: InboundTls, alpn: readonly string[], on: AcceptedHandlers) {
    this.#mtls = mtls;
    this.#alpn = alpn;
    this.#on = on;
  }

  accept(socket: Socket): void {
    if (inboundConnectionChannel.hasSubscribers) this.#observe(socket);
    const mode = this.#mtls.modeFor(socket.localPort ?? 0);
    if (this.#mtls.context === undefined) {
      if (mode === 'STRICT') {
        this.#mtls.warnOnce('meshlet: PeerAuthentication STRICT applies but this workload has no usable certificate yet: every inbound connection is refused until it has one (see docs/mtls.md)');
        // With probePaths the first bytes decide (plaintext: the probes still answer while the
        // certificate is on its way; a handshake: refused for want of a certificate).
        if (this.#on.probesOnly === undefined) {
          this.#mtls.refuse(socket, mode, 'unknown', 'STRICT and no workload certificate yet');
          return;
        }
      } else {
        // No identity: the workload neither offers nor accepts mTLS; plaintext, nothing read first.
        if (inboundConnectionChannel.hasSubscribers) this.#served(socket, false);
        this.#on.plaintext(socket);
        return;
      }
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
        if (this.#on.probesOnly === undefined) this.#mtls.refuse(socket, mode, 'plaintext', 'plaintext under STRICT');
        else {
          if (inboundConnectionChannel.hasSubscribers) this.#served(socket, false);
          this.#on.probesOnly(socket, first);
        }
        return;
      }
      if (inboundConnectionChannel.hasSubscribers) this.#served(socket, false);
      this.#on.plaintext(socket, first);
      return;
    }
    if (mode === 'DISABLE') {
      this.#pending.delete(socket);
      this.#mtls.refuse(socket, mode, 'tls', 'a TLS handshake under DISABLE (plaintext only)');
      return;
    }
    // The workload certificate expired (a process frozen past its renewal): the handshake waits for the renewal.
    const renewal = this.#mtls.renewal();
    if (renewal === undefined) this.#handshake(socket, mode);
    else void renewal.then(() => (socket.destroyed ? this.#pending.delete(socket) : this.#handshake(socket, mode)));
  }

  #handshake(socket: Socket, mode: MtlsMode): void {
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
      const alpn = this.#alpn;
      const tls = new TlsServer({
        ...ctx.options,
        requestCert: true,
        // Checked after the handshake (verifyPeer), so a refusal can say why.
        rejectUnauthorized: false,
        ALPNCallback: ({ protocols }: { protocols: string[] }) => alpn.find((p) => protocols.includes(p)),
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      });
      tls.on('secureConnection', (s: TLSSocket) => this.#secured(s));
      tls.on('tlsClientError', (err: Error & { code?: string }, s: TLSSocket) => {
        this.#released(s);
        if (inboundConnectionChannel.hasSubscribers) this.#publish(s, 'tls-error');
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
    const v = this.#mtls.verifyPeer(s);
    const observed = inboundConnectionChannel.hasSubscribers;
    if (!v.ok) {
      if (observed) this.#publish(s, 'verify-failed', false, Object.keys(s.getPeerCertificate()).length === 0);
      this.#mtls.refuse(s, this.#mtls.modeFor(s.localPort ?? 0), 'tls', v.reason);
      return;
    }
    if (observed) {
      this.#publish(s, 'handshake');
      this.#served(s, true);
    }
    this.#on.secured(s, v.peer);
  }

  #publish(socket: Socket, event: InboundConnectionEvent, tls = false, noCertificate = false): void {
    inboundConnectionChannel.publish({ workload: this.#mtls.workload, localPort: socket.localPort ?? 0, event, tls, noCertificate });
  }

  /** Publishes an accepted connection, and its close. */
  #observe(socket: Socket): void {
    this.#publish(socket, 'open');
    const port = socket.localPort ?? 0;
    socket.once('close', () => inboundConnectionChannel.publish({ workload: this.#mtls.workload, localPort: port, event: 'close', tls: false, noCertificate: false }));
  }

  /** Publishes a connection handed to the server, and its close. */
  #served(socket: Socket, tls: boolean): void {
    this.#publish(socket, 'served', tls);
    const port = socket.localPort ?? 0;
    socket.once('close', () => inboundConnectionChannel.publish({ workload: this.#mtls.workload, localPort: port, event: 'served-close', tls, noCertificate: false }));
  }

  /** Closes the connections not handed over yet. */
  dropPending(): void {
    for (const s of this.#pending) s.destroy();
    this.#pending.clear();
  }
}
