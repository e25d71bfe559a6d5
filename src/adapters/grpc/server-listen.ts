/**
 * `mesh.grpc.bind(server, address)`: a grpc-js server's port with PeerAuthentication in front of
 * it, plaintext and mTLS on one port, as an Istio sidecar's inbound listener serves it.
 *
 * grpc-js's own listeners are TLS or plaintext, never both, so the port is a meshlet listener
 * (a `net.Server`) that takes each connection in as `mesh.createServer` does, and hands those
 * that pass to the grpc-js server through its connection injector
 * (`server.createConnectionInjector`, grpc-js ≥ 1.14):
 *
 * ```
 * accept ─► mode of the local port (STRICT | PERMISSIVE | DISABLE)
 *   no workload certificate: STRICT refuses (fail closed), otherwise plaintext
 *   else read the first bytes (put back with unshift):
 *     0x16 0x03 (TLS) ─► DISABLE refuses; otherwise TLS with the workload certificate (client
 *        certificate required, chain checked against the trust bundle, one SPIFFE ID of the mesh's
 *        trust domain, ALPN h2 or Istio's istio-h2) ─► grpc-js, the verified peer remembered for the calls' admission
 *     anything else ─► STRICT refuses; otherwise grpc-js (HTTP/2 without TLS)
 * ```
 *
 * The TLS is terminated here by a `tls.Server` (never listening) whose secure context is swapped
 * when the workload certificate rotates: new handshakes present the new one. The mode is read per
 * connection, so a new PeerAuthentication applies to the next connection.
 *
 * @module
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import type { ConnectionInjector, Server as GrpcServer } from '@grpc/grpc-js';
import type { PeerIdentity } from '../../core/context.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { awaitFirstBytes } from '../server/first-bytes.ts';
import { HANDSHAKE_TIMEOUT_MS, type InboundTls } from '../server/inbound-tls.ts';
import type { GrpcJs } from './grpc-js.ts';

/** What a mesh listener knows of a connection it handed to grpc-js. */
export interface AcceptedConnection {
  /** The connection (closed when a new mode no longer allows it). */
  readonly socket: Socket;
  readonly tls: boolean;
  /** The verified mTLS peer (undefined for plaintext). */
  readonly peer: PeerIdentity | undefined;
  readonly sni: string | undefined;
}

/** The addresses of a connection as grpc-js reports them (`call.getConnectionInfo()`). */
export interface ConnectionAddresses {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

function keyOf(c: ConnectionAddresses): string {
  return `${c.remoteAddress}|${c.remotePort}|${c.localAddress}|${c.localPort}`;
}

/**
 * The connections the mesh's listeners handed to grpc-js, by their address pair (what a call can
 * see of its connection), so a call's admission knows what the connection proved.
 */
export class GrpcConnections {
  readonly #byKey = new Map<string, AcceptedConnection>();

  add(socket: Socket, c: AcceptedConnection): void {
    const k = keyOf(socket);
    this.#byKey.set(k, c);
    socket.once('close', () => {
      if (this.#byKey.get(k) === c) this.#byKey.delete(k);
    });
  }

  /** The connection a call came on, when a mesh listener accepted it. */
  get(c: ConnectionAddresses): AcceptedConnection | undefined {
    if (this.#byKey.size === 0) return undefined;
    return this.#byKey.get(keyOf(c));
  }
}

/** A TLS record of type handshake (22), protocol version 3.x. */
const TLS_HANDSHAKE = 0x16;
const TLS_MAJOR = 0x03;

/**
 * The ALPN protocols a gRPC port accepts, in its order of preference: `h2` (grpc-js, curl) and
 * Istio's in-mesh names for HTTP/2 (`istio-h2`, `istio`, as an Istio sidecar may offer them).
 */
const GRPC_ALPN = Object.freeze(['h2', 'istio-h2', 'istio']);

/** The first of {@link GRPC_ALPN} the client offers; a client that offers none of them is refused (`no_application_protocol`). */
function selectH2({ protocols }: { protocols: string[] }): string | undefined {
  for (const p of GRPC_ALPN) if (protocols.includes(p)) return p;
  return undefined;
}

/** Splits `host:port` / `[v6]:port`; the port is required. */
export function parseBindAddress(address: string): { readonly host: string; readonly port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(typeof address === 'string' ? address : '');
  const port = m === null ? Number.NaN : Number(m[3]);
  if (m === null || port > 65535) throw new InvalidArgumentError(`mesh.grpc.bind: address ${JSON.stringify(address)} is not host:port (e.g. '0.0.0.0:9090', '[::]:9090', '127.0.0.1:0')`);
  return { host: m[1] ?? m[2] ?? '', port };
}

/** One port of a grpc-js server, with PeerAuthentication in front of it. */
export class GrpcListener {
  readonly #mtls: InboundTls;
  readonly #connections: GrpcConnections;
  readonly #injector: ConnectionInjector;
  readonly #net: NetServer;
  #tls: TlsServer | undefined;
  #tlsGeneration = 0;
  /** Connections not handed to grpc-js yet (first bytes or handshake pending). */
  readonly #pending = new Set<Socket>();

  constructor(g: GrpcJs, server: GrpcServer, mtls: InboundTls, connections: GrpcConnections) {
    this.#mtls = mtls;
    this.#connections = connections;
    this.#injector = server.createConnectionInjector(g.ServerCredentials.createInsecure());
    this.#net = createServer((s) => this.#accept(s));
  }

  /** The port listened on (0 before listen). */
  get port(): number {
    const a = this.#net.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  }

  /** Listens on `host:port`; resolves to the port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#net.once('error', reject);
      this.#net.listen(port, host === '' ? undefined : host, () => {
        this.#net.removeListener('error', reject);
        const a = this.#net.address();
        resolve(typeof a === 'object' && a !== null ? a.port : port);
      });
    });
  }

  #hand(socket: Socket, c: AcceptedConnection): void {
    this.#connections.add(socket, c);
    this.#injector.injectConnection(socket);
  }

  #accept(socket: Socket): void {
    const mode = this.#mtls.modeFor(socket.localPort ?? 0);
    if (this.#mtls.context === undefined) {
      if (mode === 'STRICT') {
        this.#mtls.warnOnce('meshlet: PeerAuthentication STRICT applies but this workload has no usable certificate yet: every inbound connection is refused until it has one (see docs/mtls.md)');
        this.#mtls.refuse(socket, mode, 'unknown', 'STRICT and no workload certificate yet');
        return;
      }
      this.#hand(socket, { socket, tls: false, peer: undefined, sni: undefined });
      return;
    }
    this.#pending.add(socket);
    socket.once('close', () => this.#pending.delete(socket));
    awaitFirstBytes(socket, HANDSHAKE_TIMEOUT_MS, {
      gone: () => this.#pending.delete(socket),
      timeout: () => {
        this.#pending.delete(socket);
        this.#mtls.refuse(socket, this.#mtls.modeFor(socket.localPort ?? 0), 'unknown', `nothing received for ${HANDSHAKE_TIMEOUT_MS} ms`);
      },
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
      this.#hand(socket, { socket, tls: false, peer: undefined, sni: undefined });
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
    socket.allowHalfOpen = false;
    tls.emit('connection', socket);
  }

  /** The inner TLS server, its context brought up to the credentials in use. */
  #tlsServer(): TlsServer | undefined {
    const ctx = this.#mtls.context;
    if (ctx === undefined) return undefined;
    if (this.#tls === undefined) {
      const tls = new TlsServer({ ...ctx.options, requestCert: true, rejectUnauthorized: false, ALPNCallback: selectH2, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
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
    const servername = (s as TLSSocket & { servername?: string | false }).servername;
    this.#hand(s, { socket: s, tls: true, peer: v.peer, sni: typeof servername === 'string' && servername !== '' ? servername : undefined });
  }

  /**
   * Stops listening; connections not handed over yet are closed at once, those grpc-js serves are
   * closed by it (GOAWAY), their calls in flight given `graceMs` to finish before they are cancelled.
   */
  close(graceMs: number): Promise<void> {
    for (const s of this.#pending) s.destroy();
    this.#pending.clear();
    const closed = new Promise<void>((resolve) => (this.#net.listening ? this.#net.close(() => resolve()) : resolve()));
    this.#injector.drain(graceMs);
    this.#injector.destroy();
    return closed;
  }
}
