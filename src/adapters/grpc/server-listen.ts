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
 *     anything else ─► STRICT refuses (with `probePaths`: grpc-js, for the probes' calls only);
 *        otherwise grpc-js (HTTP/2 without TLS)
 * ```
 *
 * The TLS is terminated here by a `tls.Server` (never listening) whose secure context is swapped
 * when the workload certificate rotates: new handshakes present the new one. The mode is read per
 * connection, so a new PeerAuthentication applies to the next connection.
 *
 * @module
 */
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConnectionInjector, Server as GrpcServer } from '@grpc/grpc-js';
import type { PeerIdentity } from '../../core/context.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { PeerAuthAcceptor } from '../server/peer-acceptor.ts';
import type { InboundTls } from '../server/inbound-tls.ts';
import type { GrpcJs } from './grpc-js.ts';

/** What a mesh listener knows of a connection it handed to grpc-js. */
export interface AcceptedConnection {
  /** The connection (closed when a new mode no longer allows it). */
  readonly socket: Socket;
  readonly tls: boolean;
  /** The verified mTLS peer (undefined for plaintext). */
  readonly peer: PeerIdentity | undefined;
  readonly sni: string | undefined;
  /** A plaintext connection taken under STRICT for the health probes only (`probePaths`): its other calls are refused. */
  readonly probesOnly?: boolean;
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

/**
 * The ALPN protocols a gRPC port accepts, in its order of preference: `h2` (grpc-js, curl) and
 * Istio's in-mesh names for HTTP/2 (`istio-h2`, `istio`, as an Istio sidecar may offer them); a
 * client that offers none of them is refused (`no_application_protocol`).
 */
const GRPC_ALPN = Object.freeze(['h2', 'istio-h2', 'istio']);

/** Splits `host:port` / `[v6]:port`; the port is required. */
export function parseBindAddress(address: string): { readonly host: string; readonly port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(typeof address === 'string' ? address : '');
  const port = m === null ? Number.NaN : Number(m[3]);
  if (m === null || port > 65535) throw new InvalidArgumentError(`mesh.grpc.bind: address ${JSON.stringify(address)} is not host:port (e.g. '0.0.0.0:9090', '[::]:9090', '127.0.0.1:0')`);
  return { host: m[1] ?? m[2] ?? '', port };
}

/** One port of a grpc-js server, with PeerAuthentication in front of it. */
export class GrpcListener {
  readonly #connections: GrpcConnections;
  readonly #injector: ConnectionInjector;
  readonly #net: NetServer;
  readonly #acceptor: PeerAuthAcceptor;
  readonly #mtls: InboundTls;
  /** The connections this port handed to grpc-js (without the mesh's interceptors: closed when a new mode no longer allows them). */
  readonly #handed = new Set<AcceptedConnection>();
  /** The sockets this port handed to grpc-js that are still open (server.tryShutdown() waits for them). */
  readonly #open = new Set<Socket>();
  /** The grpc-js server was shut down (tryShutdown / forceShutdown): the port takes no more connections. */
  #stopped = false;
  /** mesh.close()'s drain began ({@link GrpcListener.startDrain}): the port still accepts, and tells each caller to go. */
  #draining = false;
  /** The HTTP/2 sessions grpc-js serves on this port (when its server was found: `#sessionsSeen`). */
  readonly #sessions = new Set<ServerHttp2Session>();
  #sessionsSeen = false;
  readonly #unsubscribe: (() => void) | undefined;

  /**
   * `probes`: the mesh has health-probe paths (`probePaths`), so STRICT takes plaintext connections
   * for them (only when `judged`: the server has the mesh's interceptors, which refuse every other
   * call on such a connection). Without them (`judged` false) nothing checks a call, so a
   * connection a new PeerAuthentication no longer allows is closed when it comes into force.
   */
  constructor(g: GrpcJs, server: GrpcServer, mtls: InboundTls, connections: GrpcConnections, probes = false, judged = true) {
    this.#connections = connections;
    this.#mtls = mtls;
    this.#unsubscribe = judged ? undefined : mtls.onInstall(() => this.#closeDisallowed());
    const known = new Set(http2ServersOf(server)?.keys());
    this.#injector = server.createConnectionInjector(g.ServerCredentials.createInsecure());
    // The HTTP/2 server grpc-js made for the injector (its http2Servers' new entry): its sessions
    // are told GOAWAY during mesh.close()'s drain ({@link GrpcListener.startDrain}).
    for (const h2 of http2ServersOf(server)?.keys() ?? []) {
      if (known.has(h2) || typeof (h2 as Http2Server).on !== 'function') continue;
      (h2 as Http2Server).on('session', (s: ServerHttp2Session) => this.#session(s));
      this.#sessionsSeen = true;
    }
    this.#acceptor = new PeerAuthAcceptor(mtls, GRPC_ALPN, {
      plaintext: (socket) => this.#hand(socket, { socket, tls: false, peer: undefined, sni: undefined }),
      secured: (socket, peer) => {
        const servername = (socket as TLSSocket & { servername?: string | false }).servername;
        this.#hand(socket, { socket, tls: true, peer, sni: typeof servername === 'string' && servername !== '' ? servername : undefined });
      },
      probesOnly: probes && judged ? (socket) => this.#hand(socket, { socket, tls: false, peer: undefined, sni: undefined, probesOnly: true }) : undefined,
    });
    this.#net = createServer((s) => this.#acceptor.accept(s));
    hookShutdown(server, this);
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
    if (this.#stopped) {
      // Accepted as the server was shut down: refused, as grpc-js's own closed port would.
      socket.destroy();
      return;
    }
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
    this.#connections.add(socket, c);
    if (this.#unsubscribe !== undefined) {
      this.#handed.add(c);
      socket.once('close', () => this.#handed.delete(c));
    }
    this.#injector.injectConnection(socket);
  }

  /** A session grpc-js made: kept while open; during the drain, closed (GOAWAY) after its first call, which is served. */
  #session(s: ServerHttp2Session): void {
    this.#sessions.add(s);
    s.once('close', () => this.#sessions.delete(s));
    if (this.#draining) s.once('stream', () => s.close());
  }

  /**
   * Tells the callers to go while the port still accepts (mesh.close() before it deregisters and
   * waits `drainMs`), as an Envoy listener in its graceful drain does on HTTP/2: each connection
   * served now gets a GOAWAY (its calls in flight finish), each new one its GOAWAY with its first
   * call (served), so callers move to other endpoints rather than come back to this one.
   */
  startDrain(): void {
    if (this.#draining || this.#stopped) return;
    this.#draining = true;
    if (this.#sessionsSeen) {
      for (const s of this.#sessions) s.close();
      return;
    }
    // No session of grpc-js's seen (another grpc-js): its drain closes every session it serves
    // (GOAWAY), its timer, which would cancel their calls after the grace, held off past any
    // close (close() sets the one that counts); connections made later are served until close().
    this.#injector.drain(HOLD_MS);
  }

  /** Closes the connections the port's new mode refuses (plaintext under STRICT, TLS under DISABLE), as Envoy drains a changed filter chain's. */
  #closeDisallowed(): void {
    for (const c of this.#handed) {
      const mode = this.#mtls.modeFor(c.socket.localPort ?? 0);
      if ((mode === 'STRICT' && !c.tls) || (mode === 'DISABLE' && c.tls)) {
        this.#handed.delete(c);
        c.socket.destroy();
      }
    }
  }

  /**
   * The grpc-js server is shutting down (`server.tryShutdown()` / `forceShutdown()`): the port
   * stops listening, as grpc-js closes its own ports; the connections it serves are grpc-js's to
   * close. Resolves once every connection handed to it has closed.
   */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#acceptor.dropPending();
    if (this.#net.listening) this.#net.close();
    const open = [...this.#open];
    return Promise.all(open.map((s) => (s.closed ? undefined : new Promise((r) => s.once('close', r))))).then(() => undefined);
  }

  /**
   * Stops listening; connections not handed over yet are closed at once, those grpc-js serves are
   * closed by it (GOAWAY), their calls in flight given `graceMs` to finish before they are cancelled.
   */
  close(graceMs: number): Promise<void> {
    this.#unsubscribe?.();
    this.#acceptor.dropPending();
    const closed = new Promise<void>((resolve) => (this.#net.listening ? this.#net.close(() => resolve()) : resolve()));
    this.#injector.drain(graceMs);
    this.#injector.destroy();
    return closed;
  }
}

/** The longest a timer waits (setTimeout's bound): a drain's own cancel timer never comes before close()'s. */
const HOLD_MS = 2 ** 31 - 1;

/** grpc-js's HTTP/2 servers of `server` (its `http2Servers` map, grpc-js 1.14), when it has them. */
function http2ServersOf(server: GrpcServer): Map<unknown, unknown> | undefined {
  const m = (server as unknown as { http2Servers?: unknown }).http2Servers;
  return m instanceof Map ? m : undefined;
}

const LISTENERS = Symbol.for('meshlet.grpc.listeners');

type Hooked = GrpcServer & { [LISTENERS]?: Set<GrpcListener> };

/**
 * Makes `server.tryShutdown()` and `forceShutdown()` close the ports `mesh.grpc.bind` opened for
 * the server, as they close grpc-js's own: no new connection is taken, and tryShutdown calls back
 * once the connections the ports handed over have closed (grpc-js alone would call back at once:
 * it sees the injected connections closing as closed, and would serve new ones after it).
 */
function hookShutdown(server: GrpcServer, l: GrpcListener): void {
  const h = server as Hooked;
  let set = h[LISTENERS];
  if (set === undefined) {
    const listeners = new Set<GrpcListener>();
    set = listeners;
    Object.defineProperty(h, LISTENERS, { value: listeners });
    const tryShutdown = server.tryShutdown;
    const forceShutdown = server.forceShutdown;
    server.tryShutdown = function (this: GrpcServer, callback: (error?: Error) => void): void {
      const stopped = Promise.all([...listeners].map((x) => x.stop()));
      tryShutdown.call(this, (error?: Error) => {
        void stopped.then(() => callback(error));
      });
    };
    server.forceShutdown = function (this: GrpcServer): void {
      for (const x of listeners) void x.stop();
      forceShutdown.call(this);
    };
  }
  set.add(l);
}
