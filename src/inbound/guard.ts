/**
 * The server side of one mesh, as every adapter uses it: path normalization, admission through the current phases, what
 * the app gets to see (`req.meshlet`), and the caller's deadline. The phases are rebuilt from each config the mesh
 * applies; a request is admitted by the phases in use when it arrived.
 *
 * @module
 */
import type { BodyStream } from '../core/request-body.ts';
import { isGrpcContentType } from '../core/classify.ts';
import type { Socket } from 'node:net';
import type { PeerIdentity } from '../core/context.ts';
import type { Headers } from '../core/handler.ts';
import { inboundRequestId, receivedRequestId } from '../telemetry/request-id.ts';
import { DEFAULT_PROXY_HEADERS, type ProxyHeaders } from '../core/proxy-headers.ts';
import type { Clock } from '../core/clock.ts';
import type { WorkloadIdentity } from '../core/observe.ts';
import { type Admission, type AuthzDecision, type Denial, type InboundRequest, InboundPipeline } from './pipeline.ts';
import { normalizePath, type PathNormalization } from '../core/path-normalization.ts';
import { connectTargetProblem } from './connect-target.ts';
import { rateLimitResponseHeaders } from './rate-limit-phase.ts';
import { cleanInternalHeaders } from '../core/clean-internal-headers.ts';
import { AdmittedInfo } from './admitted-info.ts';
export { callerGone, releaseSlot } from './connection-pool.ts';
import { withoutEnvoyHeaders } from './connection-pool.ts';
export { callerLeft } from './pipeline.ts';
import type { InboundTlsStats } from './tls-stats.ts';

/**
 * What the app sees of the mesh's judgement on its request (`req.meshlet`, `request.meshlet`).
 * @category Server
 */
export interface RequestMeshInfo {
  /** `iss/sub` of the verified JWT, or undefined. */
  readonly requestPrincipal: string | undefined;
  /** The verified JWT's claims, or undefined. */
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  /** The mTLS peer's identity, or undefined (plaintext). */
  readonly peer: PeerIdentity | undefined;
  /** Which policy and rule allowed the request, or undefined when no AuthorizationPolicy applies. */
  readonly authz: AuthzDecision | undefined;
}

// Every node:http request (and so Express's, and Fastify's `request.raw`) may carry what the mesh
// decided, typed for apps without a cast; declared beside RequestMeshInfo so that every entry
// exporting it brings this too. Fastify's own `request.meshlet`: see docs/server.md.
declare module 'http' {
  interface IncomingMessage {
    /** What the mesh decided about this request (the request principal, claims, peer, authorization); set on requests a mesh server, middleware or plugin let through. */
    meshlet?: RequestMeshInfo;
  }
}

/** The header Envoy sends upstream with the time the caller still waits (ms). */
export const EXPECTED_TIMEOUT_HEADER = 'x-envoy-expected-rq-timeout-ms';

/** Where the request came from, as the adapter knows it. */
export interface ConnectionInfo {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  readonly scheme: 'http' | 'https';
  /** The peer the TLS handshake proved (mTLS), when there was one. */
  readonly peer?: PeerIdentity;
  /** The TLS SNI the client sent, when it sent one. */
  readonly sni?: string;
  /** The local address the connection arrived on. */
  readonly localAddress?: string;
  /**
   * The caller's certificate details for `x-forwarded-client-cert` (By, Hash, Subject, …), when
   * `peer` is set and the guard's `forwardedClientCert` writes them (see {@link InboundGuard.certDetails}).
   */
  readonly clientCert?: string;
  /** The connection itself (its socket, or the mesh's record of it): what a rate limit with buckets per downstream connection keys them on. */
  readonly connection?: object;
  /** Why PeerAuthentication refuses this connection (a server the mesh did not make, under STRICT): the request is not served and the connection is closed. */
  readonly refused?: string;
}

/**
 * PeerAuthentication for connections a mesh server did not accept (an app's own
 * `http.createServer` with `mesh.handler()`, `app.listen()` with `mesh.express()`): the peer a
 * TLS socket proves, checked as the mesh's servers check it, or why the port's mode refuses it.
 */
export interface SocketPolicy {
  admit(socket: Socket): { readonly peer: PeerIdentity | undefined } | { readonly refused: string };
}

/** What an adapter gets back: serve the app (with the path to route on) or answer with a denial. */
export type Judgement =
  | {
      readonly serve: true;
      readonly request: InboundRequest;
      readonly info: RequestMeshInfo;
      readonly admission: Extract<Admission, { admitted: true }>;
      /** The normalized path, before any phase changed it (a consumed `access_token` removed). */
      readonly normalizedPath: string;
      /** Headers the app's response gets (an external authorizer's, `x-ratelimit-*`), or undefined. */
      readonly responseHeaders: Readonly<Record<string, string | readonly string[]>> | undefined;
    }
  | {
      readonly serve: false;
      readonly denial: Denial;
      readonly grpc: boolean;
      /** The request view as far as the phases got (its principal, its verdict), when a phase refused it. */
      readonly request?: InboundRequest;
    };

function first(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : v?.[0];
}

/**
 * A caller's deadline from `x-envoy-expected-rq-timeout-ms` or `grpc-timeout`, in performance.now()
 * ms (the clock read only when there is one: most requests carry neither).
 */
export function deadlineOf(headers: Headers, clock: () => number = performanceNow): number {
  const envoy = first(headers[EXPECTED_TIMEOUT_HEADER]);
  // 0 is no timeout to Envoy (router.cc: it never sends 0, "Envoy treats 0 as infinite timeout").
  if (envoy !== undefined && /^\d{1,9}$/.test(envoy) && Number(envoy) > 0) return clock() + Number(envoy);
  const grpc = first(headers['grpc-timeout']);
  if (grpc !== undefined) {
    // gRPC: up to 8 digits and a unit (H, M, S, m, u, n).
    const m = /^(\d{1,8})([HMSmun])$/.exec(grpc);
    if (m !== null) {
      const n = Number(m[1]);
      const ms = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as 'H' | 'M' | 'S' | 'm' | 'u' | 'n'] * n;
      return clock() + ms;
    }
  }
  return Number.POSITIVE_INFINITY;
}

function performanceNow(): number {
  return performance.now();
}

/**
 * A health probe of `probes` (`probePaths`): a plaintext `GET`/`HEAD` whose target's path, before
 * `?`, is exactly one of them — or, for a gRPC call (`grpc`), a plaintext call whose path is
 * exactly one of them, query and all (kubelet's gRPC probe: `/grpc.health.v1.Health/Check`).
 */
export function isProbe(probes: ReadonlySet<string> | undefined, method: string | undefined, target: string | undefined, plaintext: boolean, grpc = false): boolean {
  if (probes === undefined || !plaintext || target === undefined) return false;
  if (grpc) return method === 'POST' && probes.has(target);
  if (method !== 'GET' && method !== 'HEAD') return false;
  const q = target.indexOf('?');
  return probes.has(q === -1 ? target : target.slice(0, q));
}

/** The mesh's server side. */
export class InboundGuard {
  #pipeline: InboundPipeline;
  readonly #normalization: PathNormalization;
  readonly #stats: InboundTlsStats | undefined;

  /** `stats`, when given, counts every request judged (plaintext or mTLS, and from whom). */
  constructor(pipeline: InboundPipeline, normalization: PathNormalization, stats?: InboundTlsStats) {
    this.#pipeline = pipeline;
    this.#pooled = pipeline.names.includes('connection-pool');
    this.#normalization = normalization;
    this.#stats = stats;
  }

  /** Swaps in the phases of a new config (requests already admitted keep their judgement). */
  install(pipeline: InboundPipeline): void {
    this.#pipeline = pipeline;
    this.#pooled = pipeline.names.includes('connection-pool');
  }

  #pooled = false;

  /**
   * True when the connection-pool phase is in use: the adapters then release the slot of each
   * request when its response ends or its caller goes away ({@link releaseSlot}), and watch a
   * request whose judgement is a promise from the start (it may be waiting for a slot).
   */
  get pooled(): boolean {
    return this.#pooled;
  }

  /** True when some phase is in use (the adapters then give the phases every repeated header). */
  get active(): boolean {
    return this.#pipeline.names.length > 0;
  }

  /** The phases in use, by name. */
  get phases(): readonly string[] {
    return this.#pipeline.names;
  }

  /** Set by the mesh's servers: PeerAuthentication for connections they did not accept. */
  sockets: SocketPolicy | undefined;

  /** The workload's health-probe paths (`probePaths`), or undefined for none. */
  probes: ReadonlySet<string> | undefined;

  /**
   * True for a health probe (`probePaths`): a `GET` or `HEAD` on a plaintext connection whose
   * target's path, before `?`, is exactly one of the paths, or a plaintext gRPC call (`grpc`) of
   * a method whose path is one of them. It is served without the phases,
   * PeerAuthentication or observation, as istio-agent serves kubelet's probes outside the sidecar.
   */
  isProbe(method: string | undefined, target: string | undefined, plaintext: boolean, grpc = false): boolean {
    return isProbe(this.probes, method, target, plaintext, grpc);
  }

  /** Set by the mesh's servers: who the requests are published as (`meshlet:inbound:*`); unset, nothing is published. */
  observer: { readonly workload: WorkloadIdentity; readonly clock: Clock } | undefined;

  /** Set by the mesh: Istio's ProxyConfig `proxyHeaders` (`x-forwarded-client-cert`, `x-request-id`). */
  proxyHeaders: ProxyHeaders = DEFAULT_PROXY_HEADERS;

  /**
   * The certificate details adapters give in {@link ConnectionInfo.clientCert} for a verified
   * peer, or undefined when `forwardedClientCert` writes none (no work per connection then).
   */
  get certDetails(): ProxyHeaders['details'] | undefined {
    const m = this.proxyHeaders.forwardedClientCert;
    return m === 'APPEND_FORWARD' || m === 'SANITIZE_SET' ? this.proxyHeaders.details : undefined;
  }

  /** Set by the mesh while Istio's metrics run: this workload's metadata-exchange headers (`x-envoy-peer-metadata-id`, `x-envoy-peer-metadata`), answered to callers that send theirs. */
  peerExchange: { readonly id: string; readonly value: string } | undefined;

  get normalization(): PathNormalization {
    return this.#normalization;
  }

  /**
   * Judges one request: `target` is the request target as received (path and query), `headers`
   * the request's own header object (phases may change it: a consumed token is removed), `body`
   * its body stream where the server has one (read only by an external authorizer that sends the
   * body in its check, and put back). Synchronous unless a phase must wait.
   */
  judge(method: string, authority: string, target: string, headers: Headers, conn: ConnectionInfo, body?: BodyStream): Judgement | Promise<Judgement> {
    this.#stats?.record(conn.peer, method, conn.localPort, conn.remoteAddress);
    // Envoy's connection manager: every request has an x-request-id before any filter sees it,
    // tracing or not (unless proxyHeaders.requestId is disabled), and x-forwarded-client-cert says
    // who called over mTLS — or is removed, so that a plaintext caller cannot claim a certificate.
    const ph = this.proxyHeaders;
    const rid = ph.requestId ? inboundRequestId(headers) : receivedRequestId(headers);
    const xfcc = forwardClientCert(headers, ph.forwardedClientCert, conn);
    // Envoy's cleanInternalHeaders: a sidecar's inbound listener takes every caller as external
    // (conn_manager_utility.cc), so a caller's router-steering x-envoy-* headers (and x-envoy-internal,
    // set only on internal requests) are removed; its deadline header stays (clean-internal-headers.ts).
    const cleaned = cleanInternalHeaders(headers, true);
    const grpc = isGrpcContentType(headers['content-type']);
    if (conn.refused !== undefined) {
      return { serve: false, grpc, denial: { status: 503, grpcStatus: 14, body: 'connection refused by PeerAuthentication', reason: conn.refused, phase: 'peer-identity', closeConnection: true } };
    }
    // Envoy's connection manager serves only origin-form paths (an absolute-form target arrives
    // here split by the adapter, as Envoy's HTTP/1 codec splits it): `OPTIONS *` and any other
    // target not starting with '/' get 404, no body, `absolute_path_rejected` (CONNECT's
    // authority-form target goes on to the app's 'connect' listeners, judged as before).
    if (target.charCodeAt(0) !== 47 /* / */ && method !== 'CONNECT') {
      return { serve: false, grpc, denial: { status: 404, grpcStatus: 12, body: '', reason: `request target ${JSON.stringify(target)} is not a path (Envoy answers 404, absolute_path_rejected)`, phase: 'path' } };
    }
    // CONNECT's target: exactly host:port, as Envoy's HTTP/1 codec parses it (http_parser in connect
    // mode: http_parser_parse_url wants the host and port fields and nothing else) — no userinfo, no
    // scheme, no path, which node's new URL(`http://${req.url}`) would read as another host.
    // A target starting with '/' is no exception (`CONNECT //evil:443` reads as evil:443 through
    // that URL too); an HTTP/2 extended CONNECT arrives here as the GET Envoy turns it into.
    const badTarget = method === 'CONNECT' ? connectTargetProblem(target) : undefined;
    if (badTarget !== undefined) {
      return { serve: false, grpc, denial: { status: 400, grpcStatus: 13, body: 'Bad Request', reason: `CONNECT target ${JSON.stringify(target)} ${badTarget}`, phase: 'path', details: 'http1.invalid_url' } };
    }
    // HTTP/2 with a host field naming another host than :authority: refused rather than judged on
    // :authority (as Envoy would, discarding host) — the app's router may have read host already.
    const conflict = hostConflict(headers);
    if (conflict !== undefined) {
      return { serve: false, grpc, denial: { status: 400, grpcStatus: 13, body: 'Bad Request', reason: conflict, phase: 'path', details: 'http2.violation.of.messaging.rule' } };
    }
    const path = normalizePath(target, this.#normalization);
    if (path === undefined) {
      return { serve: false, grpc, denial: { status: 400, grpcStatus: 13, body: 'Bad Request', reason: `path ${JSON.stringify(target)} cannot be normalized`, phase: 'path' } };
    }
    const req: InboundRequest = {
      protocol: grpc ? 'grpc' : 'http1',
      method,
      scheme: conn.scheme,
      authority,
      path,
      headers,
      remoteAddress: conn.remoteAddress,
      remotePort: conn.remotePort,
      localPort: conn.localPort,
      localAddress: conn.localAddress,
      sni: conn.sni,
      peer: conn.peer,
      requestPrincipal: undefined,
      claims: undefined,
      // Set by the jwt phase: in the literal, so that setting them changes no shape per request.
      audiences: undefined,
      presenter: undefined,
      authz: undefined,
      customAuthz: undefined,
      deadline: deadlineOf(headers),
      trace: rid.trace,
      headersChanged: cleaned,
      generatedRequestId: rid.added ? rid.trace?.['x-request-id'] : undefined,
      forwardedClientCert: xfcc,
      slot: undefined,
      alive: undefined,
      signal: undefined,
      body,
      connection: conn.connection,
    };
    const a = this.#pipeline.admit(req);
    if (!(a instanceof Promise)) return verdict(this, req, a, grpc, path);
    return pendingVerdict(this, a, req, grpc, path);
  }
}

const XFCC = 'x-forwarded-client-cert';

/**
 * `x-forwarded-client-cert` as Envoy's connection manager leaves it (`mutateXfccRequestHeader`)
 * for `mode`: over mTLS (a verified peer) kept, appended to or replaced by the caller's details;
 * on any other connection removed, unless `ALWAYS_FORWARD_ONLY`. Returns what changed in
 * `headers`: the new value, null when removed, undefined when unchanged.
 */
function forwardClientCert(headers: Headers, mode: ProxyHeaders['forwardedClientCert'], conn: ConnectionInfo): string | null | undefined {
  if (mode === 'ALWAYS_FORWARD_ONLY') return undefined;
  const had = headers[XFCC];
  if (mode === 'SANITIZE' || conn.peer === undefined) {
    if (had === undefined) return undefined;
    delete headers[XFCC];
    return null;
  }
  if (mode === 'FORWARD_ONLY') return undefined;
  const mine = conn.clientCert ?? '';
  const before = typeof had === 'string' ? had : had?.join(',');
  const value = mode === 'APPEND_FORWARD' && before !== undefined && before !== '' ? `${before},${mine}` : mine;
  headers[XFCC] = value;
  return value;
}

/** The request views of judgements still to come. */
const PENDING = new WeakMap<Promise<Judgement>, InboundRequest>();

/**
 * The judgement of a request whose admission waits. A function of its own: its closure inside
 * judge() would make V8 allocate judge()'s captured variables on every request, synchronous ones too.
 */
function pendingVerdict(judge: InboundGuard, a: Promise<Admission>, req: InboundRequest, grpc: boolean, path: string): Promise<Judgement> {
  const p = a.then((x) => verdict(judge, req, x, grpc, path));
  // The adapter finds the request view here: to release its slot (the connection-pool phase) and
  // to cancel what is pending for it (an external authorizer's check) if its caller goes away first.
  PENDING.set(p, req);
  return p;
}

/**
 * The request view a pending judgement is about, so that an adapter can release its slot (or
 * take it out of the queue) and cancel a pending check ({@link callerLeft}) if its caller goes
 * away first.
 */
export function pendingRequest(j: Promise<Judgement>): InboundRequest | undefined {
  return PENDING.get(j);
}

function verdict(judge: InboundGuard, req: InboundRequest, a: Admission, grpc: boolean, normalizedPath: string): Judgement {
  if (!a.admitted) return { serve: false, denial: judge.proxyHeaders.envoyDebugHeaders ? a.denial : withoutEnvoyHeaders(a.denial), grpc, request: req };
  const fromAuthz = req.authz?.responseHeaders;
  const fromLimits = rateLimitResponseHeaders(req);
  const responseHeaders = fromAuthz === undefined ? fromLimits : fromLimits === undefined ? fromAuthz : { ...fromLimits, ...fromAuthz };
  return {
    serve: true,
    request: req,
    admission: a,
    normalizedPath,
    responseHeaders,
    info: new AdmittedInfo(judge, req.requestPrincipal, req.claims, req.peer, req.authz),
  };
}

/** An empty guard: no phase, BASE normalization (a mesh whose config has no inbound policy). */
export function openGuard(normalization: PathNormalization = 'BASE'): InboundGuard {
  return new InboundGuard(new InboundPipeline([]), normalization);
}

/**
 * Why an HTTP/2 request is malformed when its `host` field names another host than its
 * `:authority` (RFC 9113 §8.3.1: a server SHOULD treat it as malformed), compared without regard
 * to letter case only, as `hosts` rules match: a default port or a trailing dot differs too (a
 * router that read `host` first would serve a route the judged `:authority` does not name).
 */
export function hostConflict(headers: Headers): string | undefined {
  const a = headers[':authority'];
  const host = headers.host;
  if (a === undefined || host === undefined) return undefined;
  const v = (typeof a === 'string' ? a : (a[0] as string)).toLowerCase();
  for (const h of typeof host === 'string' ? [host] : host) {
    if (h.toLowerCase() !== v) return `HTTP/2 request with host ${JSON.stringify(h)} and :authority ${JSON.stringify(v)}: a router that reads host would route on another host than the one judged (RFC 9113 §8.3.1: malformed)`;
  }
  return undefined;
}
