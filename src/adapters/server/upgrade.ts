/**
 * Upgrade requests (WebSocket, `Connection: Upgrade`) and `CONNECT` on the servers the mesh
 * makes. node:http hands them to the server's `'upgrade'` / `'connect'` listeners (a `ws`
 * `WebSocketServer({ server })`, `@fastify/websocket`) with the raw socket and never to the
 * request listener, so without this they would reach the app unjudged. As an Envoy sidecar runs
 * its HTTP filters (jwt_authn, RBAC, local rate limit) on a WebSocket upgrade like on any request,
 * each one is judged first: a denial is written on the socket (Envoy's status, headers and text,
 * `Connection: close`) and the app's listeners never run; an admitted one reaches them with the
 * normalized path, the headers the phases left, `req.meshlet`, inside its MeshContext. A slot of
 * the inbound connection pool is held until the upgraded connection closes, as Envoy counts an
 * upgraded stream as a request in flight. With telemetry on, each upgrade is one observed request,
 * ended when its connection closes (observe-upgrade.ts). An HTTP/2 `CONNECT` (node:http2 gives its
 * listeners a request and a response, not a socket) is judged in h2-connect.ts.
 *
 * @module
 */
import { type IncomingMessage, STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Headers } from '../../core/handler.ts';
import { callerGone, callerLeft, type ConnectionInfo, type InboundGuard, type Judgement, pendingRequest, releaseSlot } from '../../inbound/guard.ts';
import type { Denial } from '../../inbound/pipeline.ts';
import { absoluteForm, applyAdmittedHeaders, headersFromRaw } from './headers.ts';
import { stripRequestHopByHop } from './hop-by-hop.ts';
import { admitWith, judgedBy } from './judged.ts';
import { connectionOf, enterContext, first, type MeshRequest } from './node.ts';
import { internalError } from './denial.ts';
import { observeUpgrade, type UpgradeObservation } from './observe-upgrade.ts';

/** Writes a denial as a whole HTTP/1.1 response on the upgrade's socket, then closes it; `server` (Istio's `proxyHeaders.server.value`) replaces any `server` header the denial has. */
export function refuseUpgrade(socket: Duplex, d: Denial, server?: string): void {
  if (socket.destroyed) return;
  if (d.closeConnection === true) {
    socket.destroy();
    return;
  }
  const body = Buffer.from(d.body);
  let head = `HTTP/1.1 ${d.status} ${STATUS_CODES[d.status] ?? ''}\r\n`;
  let typed = false;
  for (const [k, vs] of Object.entries(d.headers ?? {})) {
    // Written below, as Envoy sets them on its local reply.
    if (k === 'content-length' || k === 'connection' || (server !== undefined && k.toLowerCase() === 'server')) continue;
    for (const v of typeof vs === 'string' ? [vs] : vs) {
      try {
        validateHeaderName(k);
        validateHeaderValue(k, v);
      } catch {
        continue;
      }
      head += `${k}: ${v}\r\n`;
      if (k === 'content-type') typed = true;
    }
  }
  if (server !== undefined) head += `server: ${server}\r\n`;
  // Envoy's local reply keeps a content-type the filter's headers set (text/plain otherwise).
  head += `${typed ? '' : 'content-type: text/plain\r\n'}content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
}

/**
 * Judges an upgrade request and calls `next` (the app's `'upgrade'` listeners) only when it is
 * admitted; otherwise answers on the socket.
 */
export function serveUpgrade(guard: InboundGuard, req: MeshRequest, socket: Duplex, next: () => void): void {
  if (judgedBy(req, guard)) {
    next();
    return;
  }
  // Its keep-alive and proxy-connection go, as Envoy's connection manager drops them (connection and upgrade stay).
  stripRequestHopByHop(req);
  // Never a health probe (probePaths): kubelet's probes ask for no upgrade, and an upgrade to a
  // probe path would reach the app's 'upgrade' listeners (a WebSocket server), not the probe.
  const headers = guard.active ? headersFromRaw(req.rawHeaders) : (req.headers as Headers);
  const target = req.url ?? '/';
  const method = req.method ?? 'GET';
  // CONNECT's authority-form target (`CONNECT host:443`) is the request's host, as Envoy's HTTP/1
  // codec takes it, whatever Host says (codec_impl.cc ServerConnectionImpl::handlePath:
  // headers.setHost(absolute_url.hostAndPort())).
  const connect = method === 'CONNECT';
  const abs = connect ? undefined : absoluteForm(target);
  if (abs !== undefined) headers.host = abs.authority;
  else if (connect) headers.host = target;
  const conn = connectionOf(req, guard);
  const authority = first(headers.host) ?? '';
  const path = abs?.path ?? target;
  const ob = observeUpgrade(guard.observer, req, socket, headers, method, authority, path, conn);
  // Observed, and nothing wraps the rest of the request: judged as it is, no closure made.
  if (ob?.wraps !== true) judgeUpgrade(guard, req, socket, next, headers, method, authority, path, conn, abs !== undefined || connect, ob);
  else ob.run(() => judgeUpgrade(guard, req, socket, next, headers, method, authority, path, conn, abs !== undefined || connect, ob));
}

function judgeUpgrade(guard: InboundGuard, req: MeshRequest, socket: Duplex, next: () => void, headers: Headers, method: string, authority: string, path: string, conn: ConnectionInfo, hostChanged: boolean, ob: UpgradeObservation | undefined): void {
  let j: Judgement | Promise<Judgement>;
  try {
    j = guard.judge(method, authority, path, headers, conn);
  } catch (err) {
    // Fail closed.
    const d = internalError(err);
    ob?.denied(d);
    refuseUpgrade(socket, d, guard.proxyHeaders.server);
    return;
  }
  if (!(j instanceof Promise)) {
    const slot = j.serve ? j.request.slot : undefined;
    if (slot !== undefined) socket.once('close', () => slot.release());
    admit(req, socket, j, hostChanged, next, ob, guard.proxyHeaders.server);
    return;
  }
  const view = pendingRequest(j);
  if (view !== undefined) {
    // When the connection closes first: its slot (or its place in the queue) goes back, and what is
    // pending for it (an external authorizer's check) is cancelled, as for any request.
    const pooled = guard.pooled;
    if (pooled) view.alive = () => !socket.destroyed;
    socket.once('close', () => {
      if (pooled) releaseSlot(view);
      callerLeft(view);
    });
  }
  // A caller that ends its side while it is judged has gone away (Envoy resets such a stream); the
  // server's socket allows half-open connections, so it is closed here.
  const leftEarly = () => socket.destroy();
  socket.once('end', leftEarly);
  j.then(
    (x) => {
      socket.off('end', leftEarly);
      if (x.serve && socket.destroyed) return;
      admit(req, socket, x, hostChanged, next, ob, guard.proxyHeaders.server);
    },
    (err: unknown) => {
      socket.off('end', leftEarly);
      const d = internalError(err);
      ob?.denied(d);
      refuseUpgrade(socket, d, guard.proxyHeaders.server);
    },
  );
}

function admit(req: MeshRequest, socket: Duplex, j: Judgement, hostChanged: boolean, next: () => void, ob: UpgradeObservation | undefined, server: string | undefined): void {
  ob?.judged(j);
  if (!j.serve) {
    if (!callerGone(j.denial)) refuseUpgrade(socket, j.denial, server);
    return;
  }
  admitWith(req, j.info);
  applyAdmittedHeaders(req, j.request, hostChanged || (!j.request.headersChanged && ob?.added === true));
  // The app's upgrade handler reads the path the mesh judged (a consumed access_token removed);
  // a CONNECT handler its authority-form target, which has no path.
  if (req.method !== 'CONNECT') req.url = j.request.path;
  enterContext(req as IncomingMessage, j, next);
}
