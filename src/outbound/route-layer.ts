/**
 * The first layers of the outbound pipeline: route the request against the current snapshot
 * (first match wins, weighted pick), answer what the route answers itself (redirect, direct
 * response, no route, missing cluster, hosts outside the mesh), then apply the route's and
 * destination's request header operations and rewrites in Istio's order.
 *
 * @module
 */
import type { Random } from '../core/clock.ts';
import { MeshletError } from '../core/errors.ts';
import { applyHeaderOps, type Exchange, type Headers, NO_CONTROLLER, type ResponseHandler, type ResponseHeaderOps } from '../core/exchange.ts';
import { corsOutcome } from '../routing/cors.ts';
import type { Dispatch, Layer } from '../core/layer.ts';
import type { UnknownHostPolicy } from '../routing/compile.ts';
import type { RouteTable } from '../routing/route-table.ts';
import { type CompiledRoute, NO_ROUTE, type RouteDecision, type RouteTarget, toDraw } from '../routing/route-table.ts';
import { connectPort, portColon } from '../routing/request-head.ts';
import { normalizePath, type PathNormalization } from '../core/path-normalization.ts';
import type { RequestMatcher } from '../routing/request-matcher.ts';
import type { ClusterState } from './cluster-state.ts';
import { addResponseOps, type OutboundRateLimits, refuseCall } from './rate-limit.ts';
import type { RateLimitRefusal } from '../policies/rate-limit/run-filters.ts';

/** Envoy's gRPC status for a local reply of HTTP 500 (`Grpc::Utility::httpToGrpcStatus`: UNKNOWN). */
const GRPC_UNKNOWN = 2;

/** What the route layer needs from the mesh. */
export interface RouteLayerOptions {
  readonly random: Random;
  /** The current route table (read once per call: a call finishes on the snapshot it started with). */
  routes(): RouteTable;
  /** The state of a cluster of the current snapshot. */
  clusterState(name: string): ClusterState | undefined;
  /**
   * What calls to hosts outside the mesh get (read only for such calls): `ALLOW_ANY` passes them
   * through (or routes them to the egress proxy); `REGISTRY_ONLY` answers 502. The applied
   * Sidecar's policy, else the mesh's.
   */
  unknownHosts(): UnknownHostPolicy;
  /** Sends a request for a host outside the mesh unchanged (Istio's PassthroughCluster). */
  readonly passthrough: Dispatch;
  /**
   * The current snapshot's outbound local rate limits, undefined when none can limit anything
   * (then a call pays one read for them). Checked once per call right after the route is chosen,
   * before anything is answered or sent: Envoy's HTTP filters run before its router.
   */
  rateLimits(): OutboundRateLimits | undefined;
  /**
   * A rewritten call carries its original path in `x-envoy-original-path` (false: Istio's
   * `proxyHeaders.envoyDebugHeaders` disabled, Envoy's `suppress_envoy_headers`). @defaultValue true
   */
  readonly originalPath?: boolean;
  /**
   * MeshConfig `pathNormalization`, which istiod sets on every HTTP connection manager, the
   * outbound ones too (listener_builder.go): a call's path is normalized before it is routed and
   * is sent so. Calls to hosts outside the mesh keep their path. @defaultValue 'NONE'
   */
  readonly pathNormalization?: PathNormalization;
  /**
   * The fault layer, for a route whose destination has no cluster: Envoy's fault filter runs
   * before the router finds no cluster, so the route's delay and abort come first (an abort answers
   * instead of the 503 NC).
   */
  readonly fault?: Layer;
}

const scratch = { queryStart: -1, query: undefined };

/** The match block of `route` that accepted the request (for prefix rewrites). */
function matchedBlock(route: CompiledRoute, ex: Exchange): RequestMatcher | undefined {
  scratch.queryStart = ex.path.indexOf('?');
  scratch.query = undefined;
  for (const m of route.matchers) if (m.matches(ex, scratch)) return m;
  return undefined;
}

/**
 * The request's Host for a redirect's Location (Envoy's processRequestHost): its port goes when
 * the redirect sets a port, or when the scheme changes and the port is the old scheme's default
 * (`http://svc:80` → `https://svc`); any other port stays (`https://svc:9080`).
 */
function redirectHost(host: string, scheme: string, requestScheme: string, newPort: boolean): string {
  const end = portColon(host);
  if (end === -1) return host;
  const port = host.slice(end);
  const remove = newPort || (scheme !== requestScheme && ((requestScheme === 'https' && port === ':443') || (requestScheme === 'http' && port === ':80')));
  return remove ? host.slice(0, end) : host;
}

/**
 * How much of the path Envoy's `prefix_rewrite` (a rewrite's or a redirect's) replaces, for the
 * match block that accepted the call: a prefix match's prefix, the whole path for an exact or a
 * regex match (Envoy's Path and Regex route entries), `/` for a block without a uri (Istio's
 * `prefix: /`).
 */
function replacedLength(m: RequestMatcher | undefined, pathOnly: string): number {
  const rp = m?.rewritePrefix;
  if (rp === undefined || rp.kind === 'other') return 1;
  return rp.kind === 'prefix' ? rp.value.length : pathOnly.length;
}

/**
 * A redirect's answer, as istiod configures Envoy's RedirectAction and Envoy builds the Location
 * (RouteEntryImplBase::newUri): `uri` replaces the path and keeps the request's query unless it
 * has its own; `port`, or the port the call was made to with `derivePort: FROM_REQUEST_PORT`, is
 * added unless it is the scheme's default; the request's Host keeps its port otherwise.
 */
function redirect(ex: Exchange, route: CompiledRoute): void {
  const r = route.redirect;
  if (r === undefined) return;
  const q = ex.path.indexOf('?');
  const pathOnly = q === -1 ? ex.path : ex.path.slice(0, q);
  const query = q === -1 ? '' : ex.path.slice(q);
  let path = ex.path;
  if (r.uri !== undefined) path = r.uri.includes('?') ? r.uri : r.uri + query;
  else if (r.prefixRewrite !== undefined) {
    path = r.prefixRewrite + pathOnly.slice(replacedLength(matchedBlock(route, ex), pathOnly)) + query;
  }
  if (!path.startsWith('/')) path = `/${path}`;
  const scheme = r.scheme ?? ex.scheme;
  let port = r.port ?? (r.derivePort === 'FROM_REQUEST_PORT' ? connectPort(ex.urlAuthority, ex.scheme) : undefined);
  // istiod leaves out :80 for http and :443 for https.
  if ((port === 80 && scheme === 'http') || (port === 443 && scheme === 'https')) port = undefined;
  const newPort = port === undefined ? '' : `:${port}`;
  // An empty authority is no host_redirect (Envoy keeps the request's Host).
  const host = r.authority || redirectHost(ex.authority, scheme, ex.scheme, newPort !== '');
  const headers: Headers = Object.create(null) as Headers;
  headers.location = `${scheme}://${host}${newPort}${path}`;
  ex.reply('redirect', r.redirectCode, headers, undefined);
}

/**
 * Applies header operations and rewrites. A weighted destination's header operations come before
 * the route's (Envoy's WeightedClusterEntry::finalizeRequestHeaders), so the route's win; a single
 * destination's were merged into the route's lists at compile time, as istiod does, and come after.
 */
function rewriteRequest(ex: Exchange, route: CompiledRoute, target: RouteTarget, originalPath: boolean): void {
  const weighted = route.weightedClusters === true;
  const firstOps = weighted ? target.requestHeaders : route.requestHeaders;
  const lastOps = weighted ? route.requestHeaders : target.requestHeaders;
  if (firstOps !== undefined) applyHeaderOps(ex.headers, firstOps);
  if (lastOps !== undefined) applyHeaderOps(ex.headers, lastOps);
  const rw = route.rewrite;
  const authority = rw?.authority ?? target.authority;
  if (authority !== undefined) ex.authority = authority;
  if (rw !== undefined && (rw.uriPrefix !== undefined || rw.uriRegex !== undefined)) {
    const q = ex.path.indexOf('?');
    const pathOnly = q === -1 ? ex.path : ex.path.slice(0, q);
    const query = q === -1 ? '' : ex.path.slice(q);
    let path = pathOnly;
    if (rw.uriPrefix !== undefined) {
      path = rw.uriPrefix + pathOnly.slice(replacedLength(matchedBlock(route, ex), pathOnly));
    } else if (rw.uriRegex !== undefined) {
      path = rw.uriRegex.replaceAll(pathOnly, rw.uriRegexReplacement ?? '');
    }
    // Envoy's finalizePathHeader keeps the original path whenever the route rewrites, even when the
    // rewrite leaves the path as it was (a regex that does not match, a prefix replaced by itself).
    if (originalPath) ex.headers['x-envoy-original-path'] = ex.path;
    ex.path = path + query;
  }
  const firstResponse = weighted ? target.responseHeaders : route.responseHeaders;
  const lastResponse = weighted ? route.responseHeaders : target.responseHeaders;
  if (firstResponse !== undefined || lastResponse !== undefined) {
    ex.responseOps ??= [];
    const ops = ex.responseOps;
    if (firstResponse !== undefined) ops.push(firstResponse);
    if (lastResponse !== undefined) ops.push(lastResponse);
  }
}

/** A call refused before it is routed on still names its route and cluster (for its error, access log and metrics). */
function placeRefused(ex: Exchange, d: RouteDecision, o: RouteLayerOptions): void {
  ex.route = d.route;
  const t = d.target;
  if (t === undefined) return;
  ex.target = t;
  const state = t.cluster === undefined ? undefined : o.clusterState(t.cluster.name);
  if (state !== undefined) state.assign(ex);
}

/** Builds the route layer. */
export function routeLayer(o: RouteLayerOptions): Layer {
  return (next: Dispatch): Dispatch =>
    (ex, handler) => {
      const draw = toDraw(o.random.next());
      const table = o.routes();
      const received = ex.path;
      const mode = o.pathNormalization;
      // A path the canonicalizer refuses: routed as it came, then refused unless it is passed through.
      let unnormalizable = false;
      if (mode !== undefined && mode !== 'NONE') {
        const normal = normalizePath(received, mode);
        if (normal === undefined) unnormalizable = true;
        else ex.path = normal;
      }
      let d = table.route(ex, draw);
      if (d === undefined && ex.urlAuthority !== ex.authority) {
        // The Host header names no mesh service: the URL may. Route by it (and send it as Host),
        // so a forged Host can neither hide a mesh call from its policies nor redirect it.
        const host = ex.authority;
        ex.authority = ex.urlAuthority;
        d = table.route(ex, draw);
        if (d === undefined) ex.authority = host;
      }
      // A host outside the mesh is passed through as it was asked for.
      if (d === undefined) ex.path = received;
      else if (unnormalizable) {
        // Envoy's connection manager answers 400 (path_normalization_failed) before routing.
        ex.fail(new MeshletError('MESHLET_ERR_INVALID_ARG', `path ${JSON.stringify(received)} cannot be normalized (pathNormalization ${mode})`, { httpStatus: 400, grpcStatus: 13 }));
        return;
      }
      // The route's CORS policy (Envoy's CORS filter runs before the rate limit and the router):
      // a preflight is answered here; the answer to a request from an allowed origin gets its
      // headers last, over the route's own header operations.
      let cors: ResponseHeaderOps | undefined;
      const corsRule = d === undefined || d === NO_ROUTE ? undefined : d.route.cors;
      if (corsRule !== undefined) {
        const c = corsOutcome(corsRule, ex.method, ex.headers);
        if (c.kind === 'preflight') {
          placeRefused(ex, d as RouteDecision, o);
          ex.reply('cors', 200, c.headers as Headers, undefined);
          return;
        }
        if (c.kind === 'answer') cors = c.ops;
      }
      // The mesh's own calls (a rate limit service's) skip the filters, as Envoy's async client does.
      const limits = ex.sideCall ? undefined : o.rateLimits();
      if (limits !== undefined) {
        // The caller leaving cancels a call to a rate limit service (Envoy's filter onDestroy cancels its request).
        const ac = limits.asksServices ? new AbortController() : undefined;
        const r = limits.check(ex, table, d, o.unknownHosts, ac?.signal);
        if (r instanceof Promise) {
          // A global rate limit filter waits for its service's answer (the caller leaving ends the wait).
          let gone = false;
          const waiter = {
            cancel(reason: Error): void {
              gone = true;
              ac?.abort();
              handler.onResponseError?.(NO_CONTROLLER, reason);
            },
          };
          ex.waiting = waiter;
          const settle = (refusal: RateLimitRefusal | undefined): void => {
            if (gone) return;
            if (ex.waiting === waiter) ex.waiting = undefined;
            if (refusal !== undefined) refused(ex, d, refusal, cors, o);
            else routed(ex, handler, d, cors, next, o);
          };
          r.then(settle, (err: unknown) => settle({ status: 500, grpcStatus: 13, headers: {}, reason: `rate limit filter failed: ${(err as Error).message}`, body: '', flag: 'RLSE' }));
          return;
        }
        if (r !== undefined) {
          refused(ex, d, r, cors, o);
          return;
        }
      }
      routed(ex, handler, d, cors, next, o);
    };
}

/** Fails a call a rate limit refused, naming its route and cluster. */
function refused(ex: Exchange, d: RouteDecision | typeof NO_ROUTE | undefined, refusal: RateLimitRefusal, cors: ResponseHeaderOps | undefined, o: RouteLayerOptions): void {
  if (d !== undefined && d !== NO_ROUTE) placeRefused(ex, d, o);
  refuseCall(ex, refusal, cors);
}

/** The call after the rate limits: answered by its route, or sent on. */
function routed(ex: Exchange, handler: ResponseHandler, decision: RouteDecision | typeof NO_ROUTE | undefined, cors: ResponseHeaderOps | undefined, next: Dispatch, o: RouteLayerOptions): void {
  let d = decision;
  if (d === undefined) {
    const policy = o.unknownHosts();
    if (policy.mode === 'REGISTRY_ONLY') {
      ex.catchAll = 'block_all';
      ex.fail(new MeshletError('MESHLET_ERR_REGISTRY_ONLY', `${ex.authority} is not in the mesh registry${policy.source === '' ? '' : ` or the egress hosts of ${policy.source}`} and outboundTrafficPolicy is REGISTRY_ONLY`));
      return;
    }
    if (policy.egressProxy === undefined) {
      ex.catchAll = 'allow_any';
      o.passthrough(ex, handler);
      return;
    }
    d = policy.egressProxy; // Istio's allow_any virtual host to the Sidecar's egressProxy
  }
  if (d === NO_ROUTE) {
    ex.fail(new MeshletError('MESHLET_ERR_NO_ROUTE', `no route matched ${ex.method} ${ex.authority}${ex.path}`));
    return;
  }
  const route = d.route;
  ex.route = route;
  if (route.action === 'redirect') {
    if (route.responseHeaders !== undefined) addResponseOps(ex, route.responseHeaders);
    if (cors !== undefined) addResponseOps(ex, cors);
    redirect(ex, route);
    return;
  }
  if (route.action === 'direct-response') {
    if (route.responseHeaders !== undefined) addResponseOps(ex, route.responseHeaders);
    if (cors !== undefined) addResponseOps(ex, cors);
    const dr = route.directResponse;
    ex.reply('direct', dr?.status ?? 200, Object.create(null) as Headers, dr?.body);
    return;
  }
  const target = d.target as RouteTarget;
  ex.target = target;
  const cluster = target.cluster;
  const state = cluster === undefined ? undefined : o.clusterState(cluster.name);
  if (state === undefined) {
    if (cors !== undefined) addResponseOps(ex, cors);
    const err = new MeshletError('MESHLET_ERR_NO_CLUSTER', `cluster not found: ${target.missing ?? target.host}`, { ...ex.errorContext(), httpStatus: route.clusterNotFoundStatus, grpcStatus: route.clusterNotFoundStatus === 500 ? GRPC_UNKNOWN : undefined });
    if (route.fault !== undefined && o.fault !== undefined) o.fault((e) => e.fail(err))(ex, handler);
    else ex.fail(err);
    return;
  }
  state.assign(ex);
  if (route.requestHeaders !== undefined || target.requestHeaders !== undefined || route.rewrite !== undefined || target.authority !== undefined || route.responseHeaders !== undefined || target.responseHeaders !== undefined) {
    rewriteRequest(ex, route, target, o.originalPath !== false);
  }
  if (cors !== undefined) addResponseOps(ex, cors);
  next(ex, handler);
}
