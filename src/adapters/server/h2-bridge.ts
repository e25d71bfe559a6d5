/**
 * HTTP/2 callers of a mesh server whose app speaks HTTP/1.1, bridged as Envoy's inbound listener
 * does it: Istio's inbound HTTP connection manager takes HTTP/1.1 and HTTP/2 on one port (codec
 * AUTO: it reads the HTTP/2 preface), and its inbound cluster talks to the app in the protocol the
 * app speaks. So a caller whose cluster speaks HTTP/2 — a service port declared `HTTP2`/`GRPC`,
 * `h2UpgradePolicy: UPGRADE`, meshlet's client and an Istio sidecar alike (over mTLS they speak
 * HTTP/2 whatever ALPN settled on) — reaches an app served by `mesh.createServer`.
 *
 * Each HTTP/2 connection gets a session of an inner `http2` server (never listening); each of its
 * streams is sent as an HTTP/1.1 request to the app's node:http server over an in-memory
 * connection (`duplexPair`) that carries the real connection's addresses, TLS state and verified
 * peer, through an undici Pool per session (its connections are the app's, as Envoy's inbound
 * pool's are: the inbound connection pool limits them). The app's answer goes back on the stream.
 * The app sees a node:http request, with `req.httpVersion` `1.1`, behind the same admission as
 * any other (JWT, authorization, rate limits run in the HTTP/1.1 server's listener).
 *
 * @module
 */
import { constants, createServer as createH2Server, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { type Duplex, duplexPair, pipeline, type Readable } from 'node:stream';
import { type Context, context } from '@opentelemetry/api';
import { Pool } from 'undici';
import { suppressedContext, undiciRequestsObserved } from '../undici/untraced.ts';
import { bridgedOver } from './close-connection.ts';

/** The client connection preface of HTTP/2 (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** True when a connection's first bytes are (the start of) the HTTP/2 preface: no HTTP/1 method is `PRI`. */
export function isHttp2Preface(first: Buffer): boolean {
  const n = Math.min(first.length, PREFACE.length);
  return n >= 3 && first.subarray(0, n).equals(PREFACE.subarray(0, n));
}

/** Headers that belong to one hop (RFC 9110 §7.6.1) and HTTP/2's pseudo-headers: never copied across the bridge. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings', 'host']);
/** Not sent on to the app: `expect` (HTTP/2 has its own 100-continue; undici refuses the header). */
const NOT_FORWARDED = new Set([...HOP, 'expect']);

/** The socket properties a server, the app and the mesh read, copied from the real connection. */
const SOCKET_FIELDS = ['remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort', 'encrypted', 'authorized', 'authorizationError', 'alpnProtocol', 'servername'] as const;

/** What the bridge hands an in-memory connection to: the app's HTTP/1.1 server, as if `real` had connected. */
export type HandOver = (socket: Socket, real: Socket) => void;

/** The HTTP/2 side of one mesh server. */
export class Http2Bridge {
  readonly #h2: Http2Server;
  readonly #handOver: HandOver;
  readonly #sessions = new Set<ServerHttp2Session>();
  /** The connection being handed to the inner server (its session is made in that call). */
  #connecting: Socket | undefined;
  /** Set by close(): sessions are told GOAWAY. */
  #draining = false;

  /** Istio's `proxyHeaders.server.value`, for the answers the bridge makes itself. */
  readonly #server: () => string | undefined;

  constructor(handOver: HandOver, server: () => string | undefined = () => undefined) {
    this.#handOver = handOver;
    this.#server = server;
    this.#h2 = createH2Server();
    this.#h2.on('session', (session: BridgedSession) => {
      // The socket itself: `session.socket` is a proxy, which the mesh's per-socket records (the verified peer) do not know.
      session.meshletSocket = this.#connecting;
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
    });
    this.#h2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.#stream(stream, headers));
  }

  /** Serves an HTTP/2 connection (its first bytes are still on it); `real` stays the socket the app's requests report. */
  accept(socket: Socket): void {
    // A TLS connection whose ALPN named no HTTP/2 protocol ('istio', none) still speaks it, as Envoy's codec AUTO reads it.
    const tls = socket as unknown as { alpnProtocol?: string | false | null };
    if (tls.alpnProtocol !== undefined) tls.alpnProtocol = 'h2';
    this.#connecting = socket;
    try {
      this.#h2.emit('connection', socket);
    } finally {
      this.#connecting = undefined;
    }
  }

  /**
   * Stops taking new streams: each session ends once its streams are done (GOAWAY). A session
   * that comes later (the server still accepts during a drain) gets its GOAWAY with its first stream.
   */
  close(): void {
    this.#draining = true;
    for (const s of this.#sessions) s.close();
  }

  /** Ends the sessions with no stream open (GOAWAY), as node:http closes its idle keep-alive connections. */
  closeIdle(): void {
    for (const s of this.#sessions) if (openStreams(s) === 0) s.close();
  }

  /** Ends every session now. */
  destroy(): void {
    for (const s of this.#sessions) s.destroy();
    this.#sessions.clear();
  }

  /** The session's pool of in-memory HTTP/1.1 connections to the app (made with the session, closed with it). */
  #pool(session: ServerHttp2Session): Pool {
    const own = session as BridgedSession;
    if (own.meshletPool !== undefined) return own.meshletPool;
    const real = own.meshletSocket ?? (session.socket as Socket);
    // The app's side of each in-memory connection runs in the context the session came in (as a
    // socket's callbacks do), never in the one the bridge sends its request in (see #stream).
    const outer = context.active();
    const pool = new Pool('http://localhost', {
      connect: (_opts, callback) => {
        const [client, server] = duplexPair();
        callerSide(client, server);
        // node:http's parser keeps the context it was made in for its callbacks (the request, the app's handler).
        context.with(outer, this.#handOver, undefined, inContext(asSocket(server, real), outer), real);
        // Called back later, never in the call: undici starts the next request from this callback, which it cannot do inside its own dispatch.
        queueMicrotask(() => callback(null, client as unknown as Socket));
      },
      // The app may take as long as the caller waits: no timeouts of the bridge's own.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    own.meshletPool = pool;
    session.once('close', () => void pool.destroy().catch(() => undefined));
    return pool;
  }

  #stream(stream: ServerHttp2Stream, h2: IncomingHttpHeaders): void {
    const session = stream.session as BridgedSession;
    // A stream the caller resets fails with an 'error' event: the answer is dropped, nothing else.
    stream.on('error', () => undefined);
    session.meshletStreams = (session.meshletStreams ?? 0) + 1;
    if (this.#draining) session.close();
    stream.once('close', () => {
      session.meshletStreams = (session.meshletStreams ?? 1) - 1;
    });
    const method = String(h2[':method'] ?? 'GET');
    const path = String(h2[':path'] ?? '/');
    // Not a path (`OPTIONS *`): Envoy's connection manager answers 404 (absolute_path_rejected),
    // as the mesh's guard does for HTTP/1.1; undici would not send it to the app anyway.
    if (path.charCodeAt(0) !== 47 /* / */) {
      const server = this.#server();
      stream.respond(server === undefined ? { ':status': 404 } : { ':status': 404, server }, { endStream: true });
      return;
    }
    const headers: Record<string, string | string[]> = { host: String(h2[':authority'] ?? h2.host ?? 'localhost') };
    for (const k in h2) {
      if (k.startsWith(':') || NOT_FORWARDED.has(k)) continue;
      const v = h2[k];
      if (v === undefined) continue;
      // Cookies may come as separate fields in HTTP/2; HTTP/1.1 has one (RFC 9113 §8.2.3).
      headers[k] = k === 'cookie' && Array.isArray(v) ? v.join('; ') : (v as string | string[]);
    }
    const ac = new AbortController();
    const abort = (): void => ac.abort();
    stream.once('aborted', abort);
    stream.once('close', () => {
      if (!stream.writableFinished) abort();
    });
    const ended = stream.readableEnded || (stream as { endAfterHeaders?: boolean }).endAfterHeaders === true;
    const pool = this.#pool(session);
    // The body as an iterable of the stream's chunks (undici takes async iterables; its types do not say so): given
    // the stream itself, undici destroys it once the body is sent, and the answer with it.
    const send = () => pool.request({ method: method as 'GET', path, headers, body: ended ? null : (chunksOf(stream) as unknown as Readable), signal: ac.signal });
    // An HTTP client instrumentation of the app (undici's) would take this hop for a call the app made (a span, and its
    // traceparent over the caller's): sent with tracing suppressed, as the mesh's own upstream requests are.
    (undiciRequestsObserved() ? context.with(suppressedContext(context.active()), send) : send())
      .then(
        (res) => {
          if (stream.destroyed) {
            res.body.destroy();
            return;
          }
          const out: Record<string, string | string[] | number> = { ':status': res.statusCode };
          for (const k in res.headers) {
            const v = res.headers[k];
            if (v !== undefined && !HOP.has(k)) out[k] = v;
          }
          stream.respond(out, { endStream: method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304 });
          if (stream.writableEnded) {
            res.body.resume();
            stopUpload(stream);
            return;
          }
          pipeline(res.body, stream, (err) => {
            if (err == null) stopUpload(stream);
          });
        },
        () => {
          // The app's connection failed or the caller went away: the stream is reset, as Envoy resets it.
          if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
        },
      );
  }
}

/**
 * The request body's chunks, read from the stream as undici asks for them. The stream outlives an
 * iteration undici stops (an answer that came before the whole body, a refusal): its reset is
 * {@link stopUpload}'s, once the answer is sent.
 */
async function* chunksOf(stream: ServerHttp2Stream): AsyncGenerator<Buffer> {
  for await (const c of stream.iterator({ destroyOnReturn: false })) yield c as Buffer;
}

/**
 * The answer is whole and the caller may still be sending its body (a refusal before the upload
 * ended): the rest is read and dropped, so the stream ends cleanly. (Resetting it at once, even
 * with NO_ERROR, would go out before the answer's queued DATA frames and lose the answer; letting
 * the iteration destroy the stream reset it with CANCEL, which clients such as curl fail.)
 */
function stopUpload(stream: ServerHttp2Stream): void {
  if (!stream.destroyed && !stream.readableEnded) stream.resume();
}

/** The app's sides of in-memory connections the bridge's side ended first (the caller left: a reset stream, a closed session). */
const callerGone = new WeakSet<object>();

/**
 * Notes who ends an in-memory connection. undici destroys its side when the caller's stream is
 * reset (the request aborted) or its session closes, and the app's side then only sees its
 * socket destroyed — no FIN, no error — as when the app destroys it itself; the app's side is
 * marked first, so the end of the request is told apart (`DC`, not `UC`). Once the app's side
 * is destroyed, the app ended it (undici only reacts).
 */
function callerSide(client: Duplex, server: Duplex): void {
  const destroy = client.destroy;
  client.destroy = function (this: Duplex, err?: Error) {
    if (!server.destroyed) callerGone.add(server);
    return destroy.call(this, err);
  };
}

/** True when `socket` is the app's side of a bridged connection that the caller's side ended. */
export function bridgedCallerLeft(socket: object): boolean {
  return callerGone.has(socket);
}

/** A session with what the bridge keeps on it: its pool to the app and how many of its streams are open. */
type BridgedSession = ServerHttp2Session & { meshletPool?: Pool; meshletStreams?: number; meshletSocket?: Socket | undefined };

/** How many of the session's streams are open (node:http2 has no public count). */
function openStreams(s: ServerHttp2Session): number {
  return (s as BridgedSession).meshletStreams ?? 0;
}

/** Every event of `s` is emitted in `ctx`: the app's request handling, driven by the bridge's writes, runs in the connection's context. */
function inContext(s: Socket, ctx: Context): Socket {
  const emit = s.emit;
  s.emit = function (this: Socket, ...args: Parameters<Socket['emit']>): boolean {
    return context.with(ctx, emit, this, ...args);
  } as Socket['emit'];
  return s;
}

/** The in-memory connections of bridged streams. */
const bridged = new WeakSet<object>();

/** True when `socket` carries a stream an HTTP/2 caller sent (telemetry reports the caller's protocol, HTTP/2, as Envoy's downstream). */
export function cameOverHttp2(socket: object): boolean {
  return bridged.has(socket);
}

/**
 * An in-memory connection made to look like `real` to node:http, the app and the mesh (addresses,
 * TLS, byte counts as a net.Socket keeps them, no timers of its own).
 */
function asSocket(d: Duplex, real: Socket): Socket {
  const s = d as Duplex & Record<string, unknown>;
  bridged.add(s);
  // A mesh that refuses a request on it closes `real` (close-connection.ts).
  bridgedOver(s, real);
  let written = 0;
  let read = 0;
  const write = d.write;
  s.write = function (this: Duplex, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    written += typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : (chunk as Uint8Array).byteLength;
    return (write as (...a: unknown[]) => boolean).call(this, chunk, encoding, cb);
  };
  d.on('data', (c: Buffer) => {
    read += c.length;
  });
  Object.defineProperty(s, 'bytesWritten', { get: () => written });
  Object.defineProperty(s, 'bytesRead', { get: () => read });
  for (const f of SOCKET_FIELDS) {
    const v = (real as unknown as Record<string, unknown>)[f];
    if (v !== undefined) Object.defineProperty(s, f, { value: v, enumerable: true });
  }
  const tls = real as unknown as { getPeerCertificate?: (detailed?: boolean) => unknown; getCertificate?: () => unknown; getProtocol?: () => unknown; getCipher?: () => unknown };
  if (tls.getPeerCertificate !== undefined) {
    s.getPeerCertificate = (detailed?: boolean) => tls.getPeerCertificate?.call(real, detailed);
    s.getCertificate = () => tls.getCertificate?.call(real);
    s.getProtocol = () => tls.getProtocol?.call(real);
    s.getCipher = () => tls.getCipher?.call(real);
  }
  s.setNoDelay = () => s;
  s.setKeepAlive = () => s;
  s.ref = () => s;
  s.unref = () => s;
  s.address = () => real.address();
  return s as unknown as Socket;
}
