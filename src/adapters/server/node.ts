/**
 * The server adapter for Node's own request objects — node:http and every framework built on
 * them (Express 4 and 5, Koa's and Hono's node adapters through a wrapped listener): builds the
 * request view, asks the mesh's {@link InboundGuard} for a judgement, answers a denial itself,
 * or hands the app the request with the normalized path and `req.meshlet`, running the rest of
 * the request inside its MeshContext (including body events, so handlers after a body parser
 * see the context too).
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Headers } from '../../core/handler.ts';
import { type ConnectionInfo, callerGone, callerLeft, type InboundGuard, type Judgement, pendingRequest, type RequestMeshInfo, releaseSlot } from '../../inbound/guard.ts';
import { runInWholeContextLast } from '../../core/context.ts';
import { isGrpcContentType } from '../../core/classify.ts';
import { absoluteForm, applyAdmittedHeaders, authorityAsHost, dropRemovedQueryKeys, headersFromRaw, namesOfLastView, syncRawPath } from './headers.ts';
import { type InboundObservation, observeInbound } from './observe-inbound.ts';
import { exchangePeerMetadata } from './peer-exchange.ts';
import { admitWith, judgedBy } from './judged.ts';
import { acceptedByAnyMesh, acceptedByMesh, downstreamOf, peerOfSocket, plainAddress } from './peer.ts';
import { countOwnServerConnection } from './own-server-connections.ts';
import { inboundConnectionChannel } from '../../core/observe-connections.ts';
import { clientCertDetailsOf } from './xfcc.ts';
import { internalError, notNormalized, writeDenial } from './denial.ts';
import { stripRequestHopByHop } from './hop-by-hop.ts';
import { addOnHead, admittedOnHead, overwriteOnHead } from './on-head.ts';
import { listenInContext } from './listen-in-context.ts';

export { listenInContext };

/** `req.meshlet` on requests the mesh let through. */
export interface MeshRequest extends IncomingMessage {
  meshlet?: RequestMeshInfo;
}

/** Where a request came from, as its socket says: addresses, and for TLS the verified peer and the SNI. */
export function connectionOf(req: IncomingMessage, guard?: InboundGuard): ConnectionInfo {
  const s = req.socket;
  // A connection no mesh server accepted (the app's own server): PeerAuthentication is applied here, per request.
  const policy = guard?.sockets;
  // …and /stats counts it at its first request (a mesh server counted its own when it accepted it).
  if (inboundConnectionChannel.hasSubscribers && guard?.observer !== undefined && !acceptedByAnyMesh(s)) countOwnServerConnection(s, guard.observer.workload);
  const admitted = guard === undefined || policy === undefined || acceptedByMesh(s, guard) ? undefined : policy.admit(s);
  if (admitted !== undefined && 'refused' in admitted) {
    return { remoteAddress: plainAddress(s.remoteAddress), remotePort: s.remotePort ?? 0, localPort: s.localPort ?? 0, scheme: (s as TLSSocket).encrypted === true ? 'https' : 'http', refused: admitted.refused, connection: downstreamOf(req) };
  }
  if ((s as TLSSocket).encrypted !== true) {
    // The same for every request of an HTTP/1 connection: made at its first (HTTP/2's compatibility requests share a session, not a socket of their own).
    const known = (req as { stream?: unknown }).stream === undefined ? plainConnections.get(s) : undefined;
    if (known !== undefined) return known;
    // Dual-stack servers report IPv4 peers as ::ffff:a.b.c.d.
    const conn: ConnectionInfo = { remoteAddress: plainAddress(s.remoteAddress), remotePort: s.remotePort ?? 0, localPort: s.localPort ?? 0, localAddress: plainAddress(s.localAddress), scheme: 'http', connection: downstreamOf(req) };
    if ((req as { stream?: unknown }).stream === undefined && !s.destroyed) plainConnections.set(s, conn);
    return conn;
  }
  const servername = (s as TLSSocket & { servername?: string | false }).servername;
  const peer = admitted !== undefined ? admitted.peer : guard === undefined ? undefined : peerOfSocket(s, guard);
  const details = peer === undefined ? undefined : guard?.certDetails;
  return {
    remoteAddress: plainAddress(s.remoteAddress),
    remotePort: s.remotePort ?? 0,
    localPort: s.localPort ?? 0,
    localAddress: plainAddress(s.localAddress),
    scheme: 'https',
    peer,
    sni: typeof servername === 'string' && servername !== '' ? servername : undefined,
    clientCert: details === undefined ? undefined : clientCertDetailsOf(s as TLSSocket, details),
    connection: downstreamOf(req),
  };
}

/** A plaintext HTTP/1 connection's {@link ConnectionInfo} (read-only), made at its first request. */
const plainConnections = new WeakMap<object, ConnectionInfo>();

function admitted(req: IncomingMessage, next: () => void): void {
  listenInContext(req);
  next();
}

/**
 * Runs the rest of the request — the app's handler and the listeners it adds — inside the
 * admitted context (what `runAdmitted` does, without a closure per request). The adapters call it
 * last, at the end of admission: inside the tracer's scope, the context is entered in place.
 */
export function enterContext(req: IncomingMessage, j: Extract<Judgement, { serve: true }>, next: () => void): void {
  runInWholeContextLast(j.admission.context, admitted, req, next);
}

function proceed(req: MeshRequest, res: ServerResponse, j: Judgement, next: () => void, rewrite: boolean, hostChanged: boolean, mounted: string | undefined, ob: InboundObservation | undefined, timed: boolean): void {
  ob?.judged(j);
  if (!j.serve) {
    writeDenial(res, j.denial, j.grpc);
    return;
  }
  if (mounted !== undefined && j.normalizedPath !== mounted) {
    // Under a mount (app.use('/api', mesh.express())) Express routed on the path before the mesh
    // saw it: a path that normalization changed cannot be routed again, so it is refused.
    const where = (req as { baseUrl?: string }).baseUrl;
    const d = notNormalized(`path ${mounted} is not normalized and mesh.express() is mounted under ${where}; use app.use(mesh.express()) first`);
    ob?.denied(d);
    writeDenial(res, d, j.request.protocol === 'grpc');
    return;
  }
  admitWith(req, j.info);
  // Headers a subscriber of inbound:start added are counted only when the phases changed none (then they are rebuilt anyway).
  applyAdmittedHeaders(req, j.request, hostChanged || (!j.request.headersChanged && ob?.added === true), ob?.changed, true);
  if (j.responseHeaders !== undefined) addOnHead(res, j.responseHeaders);
  // The app's answer: no hop-by-hop headers, and x-envoy-upstream-service-time unless the debug headers are off (on-head.ts).
  admittedOnHead(res, timed);
  if (mounted !== undefined) {
    const e = req as { originalUrl?: string; query?: unknown };
    if (j.request.path !== j.normalizedPath) {
      // A consumed access_token: gone from both URLs and from the parsed query.
      const q = j.request.path.indexOf('?');
      if (e.originalUrl === mounted) e.originalUrl = j.request.path;
      req.url = (req.url ?? '/').split('?')[0] + (q === -1 ? '' : j.request.path.slice(q));
      if (Object.hasOwn(req, 'query')) dropRemovedQueryKeys(e.query, j.normalizedPath, j.request.path);
    }
  } else if (rewrite && req.url !== j.request.path) {
    // The app routes on exactly the path the mesh judged.
    const e = req as { originalUrl?: string; query?: unknown };
    if (e.originalUrl === req.url) e.originalUrl = j.request.path;
    req.url = j.request.path;
    // Express 4 parsed the query before any middleware ran.
    if (j.request.path !== j.normalizedPath && Object.hasOwn(req, 'query')) dropRemovedQueryKeys(e.query, j.normalizedPath, j.request.path);
    syncRawPath(req);
  }
  enterContext(req, j, next);
}

/** How an HTTP/2 CONNECT is judged (h2-connect.ts): its method and target as Envoy takes them, and what changes in the view. */
export interface JudgedAs {
  readonly method: string;
  readonly target?: string;
  view?(headers: Headers): void;
}

/**
 * Judges a Node request and either answers it (denied) or calls `next` (admitted), with
 * `req.url` rewritten to the normalized path when `rewrite`. When someone observes the server
 * side (`meshlet:inbound:*`), the request is published and the rest of it runs inside what the
 * subscribers wrapped around it.
 */
export function serveNode(guard: InboundGuard, req: MeshRequest, res: ServerResponse, next: () => void, rewrite = true, mounted?: string, as?: JudgedAs): void {
  // Judged once by each mesh: an app behind mesh.createServer that also uses mesh.express() is
  // not judged again on a request whose token the first judgement already consumed. Another
  // mesh's verdict does not count: this mesh applies its own policies (judged.ts).
  if (judgedBy(req, guard)) {
    next();
    return;
  }
  // A health probe (probePaths): served as istio-agent serves kubelet's, outside the mesh.
  if (isProbeRequest(guard, req, mounted ?? req.url)) {
    next();
    return;
  }
  // The caller went away before the mesh ran (during an earlier async middleware): its 'close'
  // has fired already, so a slot it took would never be released. Nobody to judge or serve.
  if (guard.pooled && isGone(req, res)) return;
  const viewed = guard.active;
  // With a view (built from rawHeaders), req.headers loses them when the request is answered or
  // handed on: most requests the phases change get headers rebuilt from the view then.
  stripRequestHopByHop(req, viewed);
  // Istio's proxyHeaders.server.value on every answer: the app's and the mesh's own (a denial, a local reply).
  const server = guard.proxyHeaders.server;
  if (server !== undefined) overwriteOnHead(res, 'server', server);
  const headers = viewed || as !== undefined ? headersFromRaw(req.rawHeaders) : (req.headers as Headers);
  let names = viewed ? namesOfLastView() : undefined;
  // An absolute-form target: judged (and handed to the app) as Envoy forwards it, path and Host from the URL.
  const target = mounted ?? as?.target ?? req.url ?? '/';
  const abs = absoluteForm(target);
  if (abs !== undefined) {
    headers.host = abs.authority;
    names = undefined;
  }
  // HTTP/2 (a server of the app's own): `:authority` is the host judged and handed on, as Envoy takes it.
  const hostReplaced = authorityAsHost(headers);
  if (hostReplaced || as !== undefined) names = undefined;
  as?.view?.(headers);
  const conn = connectionOf(req, guard);
  const method = as?.method ?? req.method ?? 'GET';
  const authority = first(headers.host) ?? first(headers[':authority']) ?? '';
  const path = abs?.path ?? target;
  const mx = guard.peerExchange === undefined ? undefined : exchangePeerMetadata(guard.peerExchange, headers, req, res);
  // The exchange takes the caller's metadata headers off the view: its names are listed then.
  const ob = observeInbound(guard.observer, req, res, headers, method, authority, path, conn, mx, mx === undefined ? names : undefined);
  // Observed, and nothing wraps the rest of the request (metrics without a tracer): judged as it is, no closure made.
  if (ob?.wraps !== true) judgeNode(guard, req, res, next, rewrite, mounted, headers, method, authority, path, conn, abs !== undefined || hostReplaced, ob);
  else judgeObserved(ob, guard, req, res, next, rewrite, mounted, headers, method, authority, path, conn, abs !== undefined || hostReplaced);
}

/**
 * judgeNode inside what the subscribers wrapped around the request. The closures of the
 * judgement (here, in judgeLater and in releaseOnEnd) are made in functions of their own: a
 * closure in serveNode or judgeNode, even one never made, would make V8 allocate their captured
 * variables on every request.
 */
function judgeObserved(
  ob: InboundObservation,
  guard: InboundGuard,
  req: MeshRequest,
  res: ServerResponse,
  next: () => void,
  rewrite: boolean,
  mounted: string | undefined,
  headers: Headers,
  method: string,
  authority: string,
  path: string,
  conn: ConnectionInfo,
  headersChanged: boolean,
): void {
  ob.run(() => judgeNode(guard, req, res, next, rewrite, mounted, headers, method, authority, path, conn, headersChanged, ob));
}

function judgeNode(
  guard: InboundGuard,
  req: MeshRequest,
  res: ServerResponse,
  next: () => void,
  rewrite: boolean,
  mounted: string | undefined,
  headers: Headers,
  method: string,
  authority: string,
  path: string,
  conn: ConnectionInfo,
  headersChanged: boolean,
  ob: InboundObservation | undefined,
): void {
  let j: Judgement | Promise<Judgement>;
  try {
    j = guard.judge(method, authority, path, headers, conn, req);
  } catch (err) {
    // Fail closed.
    const d = internalError(err);
    ob?.denied(d);
    writeDenial(res, d, isGrpcContentType(headers['content-type']));
    return;
  }
  if (j instanceof Promise) {
    judgeLater(j, guard, req, res, next, rewrite, mounted, headers, headersChanged, ob);
    return;
  }
  const slot = j.serve ? j.request.slot : undefined;
  if (slot !== undefined) releaseOnEnd(res, slot);
  proceed(req, res, j, next, rewrite, headersChanged, mounted, ob, guard.proxyHeaders.envoyDebugHeaders);
}

/** A judgement that waits (see judgeObserved on why this is a function of its own). */
function judgeLater(j: Promise<Judgement>, guard: InboundGuard, req: MeshRequest, res: ServerResponse, next: () => void, rewrite: boolean, mounted: string | undefined, headers: Headers, headersChanged: boolean, ob: InboundObservation | undefined): void {
  releaseOnClose(req, res, j, guard.pooled);
  j.then(
    (x) => {
      if (handedToNobody(req, res, x)) return;
      proceed(req, res, x, next, rewrite, headersChanged, mounted, ob, guard.proxyHeaders.envoyDebugHeaders);
    },
    (err: unknown) => {
      const d = internalError(err);
      ob?.denied(d);
      writeDenial(res, d, isGrpcContentType(headers['content-type']));
    },
  );
}

/** The connection-pool slot of a request goes back when its response closes (ended, or its caller gone). */
export function releaseOnEnd(res: ServerResponse, slot: { release(): void }): void {
  res.once('close', () => slot.release());
}

/**
 * A request whose judgement is pending: when the response ends or the caller goes away, what is
 * pending for it is cancelled (an external authorizer's check: {@link callerLeft}) and, while the
 * connection-pool phase is in use (`pooled`), its slot is released — or it leaves the queue, or
 * the phase lets it go without taking one. (The response's 'close' comes after its end, and when
 * the connection closes first.)
 */
export function releaseOnClose(req: IncomingMessage, res: ServerResponse, j: Promise<Judgement>, pooled = true): void {
  const view = pendingRequest(j);
  if (view === undefined) return;
  if (pooled) view.alive = () => !isGone(req, res);
  res.once('close', () => {
    if (pooled) releaseSlot(view);
    callerLeft(view);
  });
}

/** Whether the caller of `req` is gone: the response closed, or the connection (its 'close' may not have come yet). */
export function isGone(req: IncomingMessage, res: ServerResponse): boolean {
  return res.closed || res.destroyed || req.socket?.destroyed === true;
}

/**
 * True when a judgement that came late is for nobody: a request that took a slot (or waited for
 * one) whose caller is gone by now, or a waiting request whose caller left. Its slot goes back at
 * once, and the request is neither answered nor handed to the app.
 */
export function handedToNobody(req: IncomingMessage, res: ServerResponse, x: Judgement): boolean {
  if (!x.serve) return callerGone(x.denial);
  const slot = x.request.slot;
  if (slot === undefined || !isGone(req, res)) return false;
  slot.release();
  return true;
}

/**
 * True for a health probe (`probePaths`) as kubelet sends one: a plaintext GET/HEAD of exactly a
 * probe path that asks for no protocol upgrade. A WebSocket (any `Upgrade`) to a probe path is an
 * ordinary request: it would reach the app's `'upgrade'` listeners (a `ws` server answers any
 * path), never the probe's handler, and istio-agent's probe rewrite carries no upgrade either.
 */
export function isProbeRequest(guard: InboundGuard, req: IncomingMessage, target: string | undefined): boolean {
  return guard.probes !== undefined && req.headers.upgrade === undefined && guard.isProbe(req.method, target, (req.socket as TLSSocket).encrypted !== true);
}

export function first(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : v?.[0];
}

/** Wraps any `(req, res)` listener (node:http, Koa's `app.callback()`, Hono's node adapter, …). */
export function wrapListener(guard: () => InboundGuard, listener: (req: IncomingMessage, res: ServerResponse) => void, hint?: (req: IncomingMessage) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    hint?.(req);
    serveNode(guard(), req, res, () => listener(req, res));
  };
}
