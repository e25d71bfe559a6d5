/**
 * `mesh.protect(server)`: a server the app made (`app.listen()`, `http.createServer`,
 * `https.createServer` with the mesh's credentials, Fastify's own `fastify.server`) judges every
 * request node:http hands it, as the servers from `mesh.createServer` do — not only those that
 * reach the mesh's middleware. node:http gives an upgrade (WebSocket: `ws`'s
 * `WebSocketServer({ server })`, `@fastify/websocket`, socket.io) or a `CONNECT` to the
 * `'upgrade'`/`'connect'` listeners, a request with `Expect: 100-continue` to `'checkContinue'`
 * listeners, and lets libraries (engine.io's long-polling) put their own `'request'` listener in
 * front of the app's: none of them pass through `app.use(mesh.express())`, so without this they
 * reach the app unjudged, where an Istio sidecar would have run its filters on each.
 *
 * The server's `emit` is wrapped (on the instance): each of those events is judged first — a
 * refusal answered (on the socket, for an upgrade) and the listeners never called; an admitted
 * one reaches them with the normalized path, `req.meshlet` and the phases' headers, inside its
 * MeshContext. The middleware and handlers find the request judged and do not judge it again.
 * PeerAuthentication applies per request, as on any server the mesh did not make.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { InvalidArgumentError } from '../../core/errors.ts';
import type { InboundGuard } from '../../inbound/guard.ts';
import { serveH2Connect } from './h2-connect.ts';
import { MeshHttpServer } from './mesh-server.ts';
import { serveNode } from './node.ts';
import { serveUpgrade } from './upgrade.ts';

/** What protect() needs of a server: node:http's, https', http2's (its HTTP/1 and compat requests) — an EventEmitter with listen. */
interface EmittingServer {
  emit(event: string | symbol, ...args: unknown[]): boolean;
  listen: unknown;
}

/**
 * The meshes (their inbound guards) protect() made judge each server: a second call by one mesh
 * changes nothing, and another mesh's call has that mesh judge too — each mesh applies its own
 * policies, as two sidecars would (a server, its upgrades included, that two workloads serve).
 */
const PROTECTED = new WeakMap<object, Set<InboundGuard>>();

/** Whether protect() wrapped this server (the middleware's hint about unguarded upgrade listeners is not needed then). */
export function isProtected(server: unknown): boolean {
  return typeof server === 'object' && server !== null && (PROTECTED.has(server) || server instanceof MeshHttpServer);
}

/**
 * Wraps `server.emit` so that what node:http hands any listener is judged first by this mesh;
 * returns the server. The mesh that protected a server last judges first.
 */
export function protectServer<S>(server: S, guard: () => InboundGuard): S {
  const s = server as unknown as EmittingServer;
  if (typeof s !== 'object' || s === null || typeof s.emit !== 'function' || typeof s.listen !== 'function') {
    throw new InvalidArgumentError('mesh.protect(server): a node:http, https or http2 server is required (the one app.listen() returns, http.createServer(app), fastify.server)');
  }
  const own = guard();
  // The mesh's own servers judge all of this already; the one from mesh.fastifyOptions() leaves
  // requests to the Fastify plugin's hook until now: from here on it judges them first.
  if (s instanceof MeshHttpServer && s.judgedBy(own)) {
    s.judgeAll();
    return server;
  }
  const by = PROTECTED.get(s) ?? new Set<InboundGuard>();
  if (by.has(own)) return server;
  by.add(own);
  PROTECTED.set(s, by);
  const emit = s.emit;
  s.emit = function (this: EmittingServer, event: string | symbol, ...args: unknown[]): boolean {
    switch (event) {
      case 'request':
      case 'checkContinue':
      case 'checkExpectation': {
        const [req, res] = args as [IncomingMessage, ServerResponse];
        serveNode(guard(), req, res, () => emit.call(this, event, req, res));
        return true;
      }
      case 'upgrade':
      case 'connect': {
        if (event === 'connect' && (args[0] as IncomingMessage).httpVersionMajor === 2) {
          // node:http2 gives a CONNECT's listeners a request and a response, not a socket.
          const [req, res] = args as [IncomingMessage, ServerResponse];
          serveH2Connect(guard(), req, res, () => emit.call(this, event, req, res));
          return true;
        }
        const [req, socket, head] = args as [IncomingMessage, Duplex, Buffer];
        serveUpgrade(guard(), req, socket, () => emit.call(this, event, req, socket, head));
        return true;
      }
      default:
        return emit.call(this, event, ...args);
    }
  };
  return server;
}

/** The events whose listeners a middleware never sees. */
const UNSEEN_EVENTS = ['upgrade', 'connect', 'checkContinue', 'checkExpectation'] as const;

/**
 * For the middleware and handlers (`mesh.express()`, `mesh.handler()`, `mesh.fastify()`): says
 * once per server when the server a request came through has listeners they cannot guard
 * (`'upgrade'` for WebSockets, …) and is not protected — the fix in the message.
 */
export function unguardedListenersHint(warn: (message: string) => void): (req: IncomingMessage) => void {
  const seen = new WeakSet<object>();
  return (req) => {
    const server = (req.socket as { server?: { listenerCount?(event: string): number } } | null)?.server;
    if (server === undefined || server === null || seen.has(server)) return;
    seen.add(server);
    if (isProtected(server) || typeof server.listenerCount !== 'function') return;
    const events = UNSEEN_EVENTS.filter((e) => (server.listenerCount?.(e) ?? 0) > 0);
    if (events.length === 0) return;
    warn(
      `meshlet: this server has ${events.map((e) => `'${e}'`).join(', ')} listeners (WebSockets, CONNECT or 100-continue uploads): node:http hands those requests to them, never to mesh.express(), mesh.handler() or the Fastify plugin, so they reach your app unjudged (no RequestAuthentication, AuthorizationPolicy or rate limit). Call mesh.protect(server) on the server you listen on (the one app.listen() returns, fastify.server), or serve with mesh.createServer(app)`,
    );
  };
}
