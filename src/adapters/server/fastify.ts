/**
 * The Fastify adapter: an encapsulation-free plugin (`await fastify.register(mesh.fastify())`)
 * that judges every request in an `onRequest` hook, answers denials itself, decorates
 * `request.meshlet`, and runs the rest of the request inside its MeshContext.
 *
 * Fastify routes before `onRequest` hooks run, so a plugin cannot change the path a request is
 * routed on. For the app to route on exactly the path the mesh judged, give Fastify
 * `mesh.fastifyOptions()` (its `rewriteUrl` normalizes the path before routing). Without it, a
 * request whose path is not already normal (`/public/../admin`) is refused with 400 rather than
 * served on a path other than the one judged.
 *
 * @module
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Headers } from '../../core/handler.ts';
import type { ConnectionInfo, InboundGuard, Judgement } from '../../inbound/guard.ts';
import { normalizePath, type PathNormalization } from '../../core/path-normalization.ts';
import { isGrpcContentType } from '../../core/classify.ts';
import { finishRequestHopByHop, stripRequestHopByHop } from './hop-by-hop.ts';
import { addOnHead, admittedOnHead, overwriteOnHead } from './on-head.ts';
import { absoluteForm, applyAdmittedHeaders, authorityAsHost, dropRemovedQueryKeys, headersFromRaw, namesOfLastView, syncRawPath } from './headers.ts';
import { admitWith, judgedBy } from './judged.ts';
import { connectionOf, enterContext, first, handedToNobody, isGone, isProbeRequest, releaseOnClose, releaseOnEnd } from './node.ts';
import { answeredBeforeBody, internalError, notNormalized } from './denial.ts';
import type { Denial } from '../../inbound/pipeline.ts';
import { type InboundObservation, observeInbound } from './observe-inbound.ts';
import { exchangePeerMetadata } from './peer-exchange.ts';
import { closeConnection } from './close-connection.ts';

/** The slice of Fastify's request and reply this adapter uses (no compile-time dependency on fastify). */
/**
 * The slice of a Fastify request the plugin uses.
 * @category Server
 */
export interface FastifyRequestLike {
  url: string;
  readonly method: string;
  readonly query?: unknown;
  readonly raw: IncomingMessage;
  meshlet?: unknown;
}
/**
 * The slice of a Fastify reply the plugin uses.
 * @category Server
 */
export interface FastifyReplyLike {
  readonly raw: ServerResponse;
  code(status: number): FastifyReplyLike;
  header(name: string, value: string | readonly string[]): FastifyReplyLike;
  send(body?: unknown): FastifyReplyLike;
  hijack(): FastifyReplyLike;
}
/**
 * The slice of a Fastify instance the plugin uses.
 * @category Server
 */
export interface FastifyLike {
  decorateRequest(name: string, value: unknown): unknown;
  addHook(name: 'onRequest', hook: (req: FastifyRequestLike, reply: FastifyReplyLike, done: (err?: Error) => void) => void): unknown;
  /** Fastify's `hasPlugin` (Fastify 4 and 5): whether a plugin of that name was registered before. */
  hasPlugin?(name: string): boolean;
  /** Fastify's `hasRequestDecorator`: true when `meshlet` is there already (another mesh's plugin on this instance or an ancestor). */
  hasRequestDecorator?(name: string): boolean;
}

/**
 * The plugin function Fastify registers.
 * @category Server
 */
export type FastifyPlugin = ((fastify: FastifyLike, opts: unknown, done: (err?: Error) => void) => void) & Record<symbol, unknown>;

/** The router options of a Fastify instance that make it route two spellings of a path alike. */
interface RouterLeniency {
  readonly ignoreDuplicateSlashes?: boolean;
  readonly ignoreTrailingSlash?: boolean;
  readonly useSemicolonDelimiter?: boolean;
}

/** Per Fastify instance: its initial config is fixed when it is made, and rewriteUrl runs for every request. */
const leniencies = new WeakMap<object, RouterLeniency>();

function leniencyOf(instance: unknown): RouterLeniency {
  if (typeof instance !== 'object' || instance === null) return readLeniency(instance);
  let l = leniencies.get(instance);
  if (l === undefined) {
    l = readLeniency(instance);
    leniencies.set(instance, l);
  }
  return l;
}

function readLeniency(instance: unknown): RouterLeniency {
  const ic = (instance as { initialConfig?: RouterLeniency & { routerOptions?: RouterLeniency } } | undefined)?.initialConfig;
  const ro = ic?.routerOptions;
  return {
    ignoreDuplicateSlashes: ro?.ignoreDuplicateSlashes ?? ic?.ignoreDuplicateSlashes,
    ignoreTrailingSlash: ro?.ignoreTrailingSlash ?? ic?.ignoreTrailingSlash,
    useSemicolonDelimiter: ro?.useSemicolonDelimiter ?? ic?.useSemicolonDelimiter,
  };
}

/** Whether a Fastify instance was made with `caseSensitive: false` (top-level or in `routerOptions`). */
function caseInsensitive(instance: unknown): boolean {
  const ic = (instance as { initialConfig?: { caseSensitive?: boolean; routerOptions?: { caseSensitive?: boolean } } } | undefined)?.initialConfig;
  return (ic?.routerOptions?.caseSensitive ?? ic?.caseSensitive) === false;
}

/**
 * The path find-my-way routes a normalized target on, written out, so that authorization judges
 * the route's own spelling: `;` starts the query (`useSemicolonDelimiter`), repeated slashes are
 * one (`ignoreDuplicateSlashes`), one trailing slash is dropped (`ignoreTrailingSlash`).
 */
function asRouted(target: string, l: RouterLeniency): string {
  const q = target.indexOf('?');
  let path = q === -1 ? target : target.slice(0, q);
  let query = q === -1 ? '' : target.slice(q);
  if (l.useSemicolonDelimiter === true) {
    const sc = path.indexOf(';');
    if (sc !== -1) {
      query = `?${path.slice(sc + 1)}${query}`;
      path = path.slice(0, sc);
    }
  }
  if (l.ignoreDuplicateSlashes === true && path.indexOf('//') !== -1) path = path.replace(/\/{2,}/g, '/');
  // find-my-way drops one trailing slash of what rewriteUrl returns, again: every one goes, so
  // that the path handed on is read as it is (`/admin//` is `/admin`, never `/admin/` judged and
  // `/admin` routed).
  if (l.ignoreTrailingSlash === true) while (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return path + query;
}

/**
 * True when this instance's router reads the path `judged` as another spelling (its
 * `ignoreDuplicateSlashes`, `ignoreTrailingSlash`, `useSemicolonDelimiter`): without
 * `mesh.fastifyOptions()` — or when a server judged the request before Fastify's rewriteUrl wrote
 * it the router's way — `//admin` would be judged as `//admin` and served by the `/admin` route.
 * (A rewriteUrl of the app's own, which maps one path to another, is the app's: a sidecar never
 * sees it either.)
 */
function routedElsewhere(judged: string, l: RouterLeniency): boolean {
  if (l.ignoreDuplicateSlashes !== true && l.ignoreTrailingSlash !== true && l.useSemicolonDelimiter !== true) return false;
  return asRouted(judged, l) !== judged;
}

/**
 * What `mesh.fastifyOptions()` returns, for `Fastify({ ...mesh.fastifyOptions() })`.
 * @category Server
 */
export interface FastifyServerOptions {
  /** Normalizes the path before Fastify routes it. */
  rewriteUrl(this: unknown, req: IncomingMessage): string;
  /** Makes the mesh's server (PeerAuthentication, mTLS and plaintext on one port) for Fastify's handler. */
  serverFactory(handler: (req: IncomingMessage, res: ServerResponse) => void, opts?: unknown): Server;
}

/**
 * Options to pass to `Fastify({ ...mesh.fastifyOptions() })`: normalize the path before routing
 * (an absolute-form target becomes its path), written the way this instance's router reads it;
 * and serve on the mesh's server (`serverFactory`).
 */
export function fastifyOptions(normalization: () => PathNormalization, serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server): FastifyServerOptions {
  return {
    serverFactory: (handler) => serverFactory(handler),
    rewriteUrl(req) {
      const url = req.url ?? '/';
      const target = absoluteForm(url)?.path ?? url;
      // Not a path (`*`): left as it is, for the onRequest hook to refuse (404, as Envoy) — never routed as `/*`.
      if (target.charCodeAt(0) !== 47 /* / */) return url;
      const normal = normalizePath(target, normalization());
      // A path that cannot be normalized stays as it is; the onRequest hook refuses it (400).
      return normal === undefined ? url : asRouted(normal, leniencyOf(this));
    },
  };
}

/** Answers a denial through Fastify's reply (its onSend/onResponse hooks and logging still run). */
function deny(reply: FastifyReplyLike, d: Denial, grpc: boolean, raw?: IncomingMessage): void {
  // The request is answered here, not handed on: its headers lose what stripRequestHopByHop left them.
  finishRequestHopByHop(reply.raw.req);
  if (d.closeConnection === true && raw !== undefined) {
    closeConnection(raw.socket);
    return;
  }
  reply.code(grpc ? 200 : d.status);
  for (const [k, v] of Object.entries(d.headers ?? {})) reply.header(k, v);
  if (!grpc && raw !== undefined && answeredBeforeBody(raw)) reply.header('connection', 'close');
  if (grpc) {
    reply.header('content-type', 'application/grpc').header('grpc-status', String(d.grpcStatus)).header('grpc-message', encodeURIComponent(d.body)).send();
    return;
  }
  // Envoy's local reply keeps a content-type the filter's headers set (text/plain otherwise), as
  // written: a Buffer, so that Fastify adds no charset to it.
  if (d.headers?.['content-type'] === undefined) reply.header('content-type', 'text/plain').send(d.body);
  else reply.send(Buffer.from(d.body));
}

/** A denial the adapter answers outside a judgement (admission failed, a path routed already). */
function refuse(reply: FastifyReplyLike, ob: InboundObservation | undefined, d: Denial, grpc: boolean): void {
  ob?.denied(d);
  deny(reply, d, grpc);
}

/**
 * judgeFastify inside what the subscribers wrapped around the request. The judgement's closures
 * are made in functions of their own (here, judgeLater, releaseOnEnd): a closure in the hook or in
 * judgeFastify, even one never made, would make V8 allocate their captured variables on every request.
 */
function judgeObserved(ob: InboundObservation, g: InboundGuard, request: FastifyRequestLike, reply: FastifyReplyLike, next: (err?: Error) => void, headers: Headers, authority: string, conn: ConnectionInfo, absolute: boolean, l: RouterLeniency): void {
  ob.run(() => judgeFastify(g, request, reply, next, headers, authority, conn, absolute, ob, l));
}

/** Judges the request (functions with arguments, not closures per request: the hook runs for every request). */
function judgeFastify(g: InboundGuard, request: FastifyRequestLike, reply: FastifyReplyLike, next: (err?: Error) => void, headers: Headers, authority: string, conn: ConnectionInfo, absolute: boolean, ob: InboundObservation | undefined, l: RouterLeniency): void {
  let j: Judgement | Promise<Judgement>;
  try {
    j = g.judge(request.method, authority, request.url, headers, conn, request.raw);
  } catch (err) {
    refuse(reply, ob, internalError(err), isGrpcContentType(headers['content-type']));
    return;
  }
  if (j instanceof Promise) {
    judgeLater(j, g, request, reply, next, headers, absolute, ob, l);
    return;
  }
  const slot = j.serve ? j.request.slot : undefined;
  if (slot !== undefined) releaseOnEnd(reply.raw, slot);
  proceedFastify(request, reply, next, j, absolute, ob, l, g.proxyHeaders.envoyDebugHeaders);
}

/** A judgement that waits (see judgeObserved on why this is a function of its own). */
function judgeLater(j: Promise<Judgement>, g: InboundGuard, request: FastifyRequestLike, reply: FastifyReplyLike, next: (err?: Error) => void, headers: Headers, absolute: boolean, ob: InboundObservation | undefined, l: RouterLeniency): void {
  releaseOnClose(request.raw, reply.raw, j, g.pooled);
  j.then(
    (x) => {
      if (handedToNobody(request.raw, reply.raw, x)) {
        // Nobody to answer: no made-up 503 goes through the reply (its onSend hooks, its log).
        reply.hijack();
        return;
      }
      proceedFastify(request, reply, next, x, absolute, ob, l, g.proxyHeaders.envoyDebugHeaders);
    },
    (err: unknown) => {
      refuse(reply, ob, internalError(err), isGrpcContentType(headers['content-type']));
    },
  );
}

/** Answers a denial, or hands the app the request (its `meshlet`, headers and URL as the phases left them) inside its context. */
function proceedFastify(request: FastifyRequestLike, reply: FastifyReplyLike, next: (err?: Error) => void, x: Judgement, absolute: boolean, ob: InboundObservation | undefined, l: RouterLeniency, timed: boolean): void {
  const raw = request.raw;
  ob?.judged(x);
  if (!x.serve) {
    deny(reply, x.denial, x.grpc, raw);
    return;
  }
  if (x.normalizedPath !== request.url || routedElsewhere(request.url, l)) {
    // Routed already on a path other than the one judged: refuse rather than serve it.
    refuse(reply, ob, notNormalized(`path ${request.url} is not normalized; give Fastify mesh.fastifyOptions() to route on the normalized path`), x.request.protocol === 'grpc');
    return;
  }
  admitWith(raw as { meshlet?: unknown }, x.info);
  request.meshlet = x.info;
  // Headers a subscriber of inbound:start added are counted only when the phases changed none (then they are rebuilt anyway).
  applyAdmittedHeaders(raw, x.request, absolute || (!x.request.headersChanged && ob?.added === true), ob?.changed, true);
  if (x.request.path !== x.normalizedPath) {
    // A phase took a parameter out of the query (a consumed access_token): the app sees it gone,
    // from the URL, the query Fastify parsed, and the target as received (request.originalUrl).
    raw.url = x.request.path;
    if ((raw as { originalUrl?: string }).originalUrl !== undefined) (raw as { originalUrl?: string }).originalUrl = x.request.path;
    dropRemovedQueryKeys(request.query, x.normalizedPath, x.request.path);
    syncRawPath(raw);
  }
  if (x.responseHeaders !== undefined) addOnHead(reply.raw, x.responseHeaders);
  // The app's answer: no hop-by-hop headers, and x-envoy-upstream-service-time unless the debug headers are off (on-head.ts).
  admittedOnHead(reply.raw, timed);
  enterContext(raw, x, next);
}

/** Said once when @fastify/middie's hook runs before the plugin's on requests the mesh has not judged. */
const EARLIER_HOOKS =
  "meshlet: mesh.fastify() was registered after @fastify/middie (NestJS's FastifyAdapter registers it as it makes the instance): its middleware — Nest's middleware, Express-style middleware — runs in an onRequest hook before the mesh's, on every request before the mesh judges it, the ones it refuses too. Have the server judge every request first: mesh.protect(fastify.server) (NestJS: mesh.protect(app.getHttpServer())), or register mesh.fastify() before @fastify/middie — see docs/server.md";

/** The plugin: `await fastify.register(mesh.fastify())`. */
export function fastifyPlugin(guard: () => InboundGuard, hint?: (req: IncomingMessage) => void, warn?: (message: string) => void): FastifyPlugin {
  const plugin = ((fastify: FastifyLike, _opts: unknown, done: (err?: Error) => void) => {
    // Another mesh's plugin may have added it (two workloads' routes on one instance): each judges with its own policies.
    if (fastify.hasRequestDecorator?.('meshlet') !== true) fastify.decorateRequest('meshlet', null);
    if (warn !== undefined && caseInsensitive(fastify)) {
      warn(
        "meshlet: this Fastify instance routes case-insensitively (caseSensitive: false): /ADMIN reaches the route app.get('/admin') while AuthorizationPolicy paths match case-sensitively, as in Istio, so a DENY on /admin does not stop it. Leave caseSensitive on, or write ALLOW policies (see docs/server.md, Routing looser than the policy)",
      );
    }
    // @fastify/middie registered before this plugin (NestJS's FastifyAdapter registers it as it
    // makes the instance, to run Nest's middleware) runs middleware in an onRequest hook of its
    // own, before this one: on requests the mesh has not judged. Said once, at the first request
    // that reaches the plugin unjudged (mesh.protect() has the server judge them all first).
    let earlier = warn !== undefined && typeof fastify.hasPlugin === 'function' && fastify.hasPlugin('@fastify/middie');
    fastify.addHook('onRequest', (request, reply, next) => {
      const g = guard();
      const raw = request.raw;
      hint?.(raw);
      const seen = (raw as { meshlet?: unknown }).meshlet;
      // What another mesh decided does not count: this mesh applies its own policies (judged.ts).
      const judged = judgedBy(raw, g) ? seen : undefined;
      const l = leniencyOf(fastify);
      // Not for a health probe (probePaths): a server that judges everything still lets those through unjudged.
      if (earlier && seen === undefined && !isProbeRequest(g, raw, (raw as { originalUrl?: string }).originalUrl ?? raw.url)) {
        earlier = false;
        warn?.(EARLIER_HOOKS);
      }
      if (judged !== undefined) {
        // Already judged (mesh.protect(fastify.server), a server from mesh.createServer): once is
        // enough — if the router routes on the path that was judged (the target as it was before
        // rewriteUrl, when Fastify has one). Otherwise refused: it cannot be judged again.
        const target = (raw as { originalUrl?: string }).originalUrl ?? request.url;
        if (routedElsewhere(target, l)) {
          refuse(reply, undefined, notNormalized(`path ${target} was judged as it is, and this Fastify instance's router reads it as another path (ignoreDuplicateSlashes, ignoreTrailingSlash, useSemicolonDelimiter)`), isGrpcContentType(raw.headers['content-type']));
          return;
        }
        request.meshlet = judged;
        next();
        return;
      }
      // A health probe (probePaths): served as istio-agent serves kubelet's, outside the mesh.
      // Matched on the target as sent (originalUrl, before rewriteUrl normalized it), as on any server: exact.
      if (isProbeRequest(g, raw, (raw as { originalUrl?: string }).originalUrl ?? raw.url)) {
        next();
        return;
      }
      if (g.pooled && isGone(raw, reply.raw)) {
        // The caller went away during an earlier hook: its 'close' has fired already, so a slot it
        // took would never be released. Nobody to judge, serve or answer.
        reply.hijack();
        next();
        return;
      }
      // With a view (built from rawHeaders), raw.headers loses them when the request is answered or handed on (hop-by-hop.ts).
      stripRequestHopByHop(raw, g.active);
      // Istio's proxyHeaders.server.value on every answer: the app's and the mesh's own (a denial, a local reply).
      const server = g.proxyHeaders.server;
      if (server !== undefined) overwriteOnHead(reply.raw, 'server', server);
      const headers = g.active ? headersFromRaw(raw.rawHeaders) : (raw.headers as Headers);
      const names = g.active ? namesOfLastView() : undefined;
      // An absolute-form target (rewriteUrl made it origin-form): the URL's authority is the Host, as Envoy forwards it.
      const abs = absoluteForm((raw as { originalUrl?: string }).originalUrl ?? '');
      if (abs !== undefined) headers.host = abs.authority;
      // Fastify's http2 server: `:authority` is the host (Fastify's request.host reads it when no Host came), as Envoy takes it.
      const changed = abs !== undefined || authorityAsHost(headers);
      const conn = connectionOf(raw, g);
      const authority = first(headers.host) ?? first(headers[':authority']) ?? '';
      const mx = g.peerExchange === undefined ? undefined : exchangePeerMetadata(g.peerExchange, headers, raw, reply.raw);
      // An absolute-form Host, or the exchange taking the caller's metadata headers off the view: its names are listed then.
      const ob = observeInbound(g.observer, raw, reply.raw, headers, request.method, authority, request.url, conn, mx, !changed && mx === undefined ? names : undefined);
      // Observed, and nothing wraps the rest of the request (metrics without a tracer): judged as it is, no closure made.
      if (ob?.wraps !== true) judgeFastify(g, request, reply, next, headers, authority, conn, changed, ob, l);
      else judgeObserved(ob, g, request, reply, next, headers, authority, conn, changed, l);
    });
    done();
  }) as FastifyPlugin;
  // fastify-plugin's markers: no encapsulation (the hook guards every route), and a name.
  plugin[Symbol.for('skip-override')] = true;
  plugin[Symbol.for('fastify.display-name')] = 'meshlet';
  return plugin;
}
