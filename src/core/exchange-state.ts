/**
 * What one {@link Exchange} holds: the request layers read and rewrite (protocol, method,
 * authority, path, headers, body), its deadlines, the slots the pipeline's layers fill as they
 * decide where it goes (route, cluster, endpoint, attempts, Envoy flags), the state of its
 * control (the attempt in flight, what it waits on, aborted, done) and its outcome (what
 * telemetry reads). The Exchange adds the behaviour — controller, outermost handler, local
 * replies — without fields or a constructor of its own, so a call is still one object built by
 * one constructor.
 *
 * @module
 */
import type { Protocol } from './classify.ts';
import type { Clock } from './clock.ts';
import type { DeadlineNode, DeadlineQueue } from './deadlines.ts';
import type { ErrorContext } from './errors.ts';
import type { Controller, ErrorMode, Headers, ResponseHandler, ResponseHeaderOps, Waiter } from './handler.ts';
import type { AttemptObserver, ResponseTap, WorkloadIdentity } from './observe.ts';

/** What made a reply the mesh answered itself: a route's direct response or redirect, a CORS preflight's answer, a rendered failure. */
export type LocalReplyKind = 'direct' | 'redirect' | 'cors' | 'failure';

/** The slots layers fill in, as the Exchange itself reads them (for error context and telemetry). */
export interface Named {
  readonly name?: string;
}
export interface ClusterRef {
  readonly name?: string;
  readonly cluster?: { readonly host?: string; readonly service?: { readonly namespace?: string } };
}
export interface HostRef {
  readonly key?: string;
  readonly endpoint?: { readonly serviceAccount?: string; readonly labels?: Readonly<Record<string, string>>; readonly namespace?: string; readonly workloadName?: string };
}

/** What a call holds while it runs (its cluster's state): told once when the call ends. */
export interface CallHolder {
  letGo(): void;
}

/** The state of one logical call; {@link Exchange} is the call itself. */
export class ExchangeState {
  // ── the request ──
  method: string;
  /** `http` or `https`. */
  scheme: string;
  /** Host header / :authority, with the port when given: what routing matches (rewrites change it). */
  authority: string;
  /**
   * The authority of the URL the caller named (`reviews:9080`): where a call that leaves the mesh
   * (passthrough, resolution NONE) connects. The Host header only ever chooses among mesh
   * services; it never sends a call to an address the URL did not name.
   */
  urlAuthority: string;
  /** Path with query. */
  path: string;
  /** Request headers; the exchange owns this object, layers may change it. */
  headers: Headers;
  /** Request body as the adapter gave it (a replayable body for streams). */
  body: unknown;
  /** What the call speaks (HTTP/1.1, HTTP/2, gRPC): the classifier and telemetry read it. */
  protocol: Protocol;
  /** Which of the mesh's transports carries the call (`http`: undici; `grpc`: grpc-js). */
  transport: string;
  /** The mesh the call belongs to (for observation). */
  workload: WorkloadIdentity | undefined = undefined;
  /** The mesh clock (for the call's duration in observation). */
  clock: Clock | undefined = undefined;
  /** When the call began, on the mesh clock. */
  readonly startedAt: number;
  /** Absolute deadline on the mesh clock (Infinity = none): the sooner of the route's and the caller's. */
  deadline = Number.POSITIVE_INFINITY;
  /**
   * The caller's own deadline on the mesh clock (a gRPC call's deadline, an inbound
   * `grpc-timeout` or `x-envoy-expected-rq-timeout-ms`), set by the adapter; Infinity = none.
   */
  callerDeadline = Number.POSITIVE_INFINITY;
  /**
   * The route's per-try timeout in ms (undefined = none), set by the retry layer: Envoy tells the
   * upstream the sooner of it and what is left of the route timeout (`x-envoy-expected-rq-timeout-ms`).
   */
  perTryTimeoutMs: number | undefined = undefined;
  /**
   * When the current attempt began (mesh clock; -1: not through the retry layer, a mirrored copy).
   * Under a deadline, what `x-envoy-expected-rq-timeout-ms` and `grpc-timeout` tell the
   * upstream is what was left of it then — Envoy's router computes them as it starts the attempt
   * (router.cc `setTimeoutHeaders`: elapsed 0 in `decodeHeaders`, the time since the request
   * completed in `doRetry`), before any wait for a pool slot or a connection.
   */
  attemptAt = -1;
  /** Attempts made so far. */
  attempts = 0;
  /** Envoy response flags gathered on the way (`DI`, `URX`, …), comma-separated. */
  flags = '';
  /** Slots for layers (route decision, cluster, endpoint, …); outbound/slots.ts reads them typed. */
  route: unknown = undefined;
  target: unknown = undefined;
  cluster: unknown = undefined;
  /** What counts this call as running until it ends (the state of the cluster it was routed to). */
  holder: CallHolder | undefined = undefined;
  host: unknown = undefined;
  /**
   * Istio's catch-all route a call for a host outside the registry took: `allow_any` (sent
   * unchanged, `PassthroughCluster`) or `block_all` (REGISTRY_ONLY's 502); undefined otherwise.
   */
  catchAll: 'allow_any' | 'block_all' | undefined = undefined;
  /** True for a mirrored copy (Envoy's shadow request): no `call:end`, as no `call:start`. */
  mirror = false;
  /**
   * True for a call the mesh makes for a filter (a global rate limit filter's call to its rate
   * limit service): Envoy makes it through the cluster with its async client, so the rate limit
   * filters do not judge it.
   */
  sideCall = false;
  /** Hosts tried by earlier attempts (allocated on first retry). */
  tried: unknown[] | undefined = undefined;
  /** The adapter's own options for the call (passed through to the transport). */
  options: unknown;

  // ── control ──
  /** Controller of the attempt in flight. */
  current: Controller | undefined = undefined;
  /** What the call is waiting on, when no attempt is in flight. */
  waiting: Waiter | undefined = undefined;
  aborted = false;
  paused = false;
  reason: Error | null = null;
  /** True once the caller's handler got its final callback. */
  done = false;
  /** True once the caller's handler got response headers. */
  responded = false;
  /** Response header operations to apply (route level, then destination level). */
  responseOps: ResponseHeaderOps[] | undefined = undefined;
  /** A subscriber's look at the response head before the caller's (see {@link ResponseTap}). */
  responseTap: ResponseTap | undefined = undefined;
  /** What the tap kept of the response head. */
  tapState: unknown = undefined;
  /** A subscriber's hook on this call's attempts (see {@link AttemptObserver}). */
  attemptObserver: AttemptObserver | undefined = undefined;
  /** The route timeout's entry in the deadline queue, removed when the call ends. */
  deadlineNode: DeadlineNode | undefined = undefined;
  deadlineQueue: DeadlineQueue | undefined = undefined;

  // ── outcome (what telemetry reads) ──
  /** Response status the caller got, 0 when none. */
  status = 0;
  /** The kind of answer the mesh made itself (a direct response, a redirect, a CORS preflight's, a failure), undefined when the upstream answered. */
  localReply: LocalReplyKind | undefined = undefined;
  /** gRPC status of the answer (head or trailers), -1 when none. */
  grpcStatus = -1;
  /** Response body bytes delivered to the caller (for an upgraded call, the bytes its connection read after the upgrade). */
  responseBytes = 0;
  /** Bytes an upgraded call's connection sent after the upgrade (a WebSocket's frames), counted with the request's. */
  upgradedBytesSent = 0;
  /** When a fault delay let the call go on to the router (mesh clock), 0 without one: Envoy's upstream service time starts after it. */
  routedAt = 0;
  /** The response head's headers as the caller got them (`%RESP(…)%` of the access log), undefined before one. */
  responseHeaders: Headers | undefined = undefined;
  /** The mesh-made failure the caller got as an answer rendered from it (`errors: 'respond'`), if any. */
  rendered: Error | undefined = undefined;
  /** The local end (`address:port`) of the connection the request last went out on, noted only while an access log asks (`upstream-connections.ts`). */
  upstreamLocal: string | undefined = undefined;

  protected _handler: ResponseHandler;
  protected readonly _errors: ErrorMode;

  /** How mesh-made failures reach the caller. */
  get errorMode(): ErrorMode {
    return this._errors;
  }

  constructor(
    handler: ResponseHandler,
    errors: ErrorMode,
    startedAt: number,
    method: string,
    scheme: string,
    authority: string,
    path: string,
    headers: Headers,
    body: unknown,
    options: unknown,
    protocol: Protocol = 'http1',
    transport = 'http',
  ) {
    this._handler = handler;
    this._errors = errors;
    this.startedAt = startedAt;
    this.method = method;
    this.scheme = scheme;
    this.authority = authority;
    this.urlAuthority = authority;
    this.path = path;
    this.headers = headers;
    this.body = body;
    this.options = options;
    this.protocol = protocol;
    this.transport = transport;
  }

  /** Adds an Envoy response flag. */
  flag(f: string): void {
    if (this.flags === '') this.flags = f;
    else if (!this.flags.split(',').includes(f)) this.flags += `,${f}`;
  }

  /** Where the call is, for error messages: route, cluster, endpoint, attempt. */
  errorContext(): ErrorContext {
    return {
      route: (this.route as Named | undefined)?.name,
      cluster: (this.cluster as Named | undefined)?.name,
      endpoint: (this.host as HostRef | undefined)?.key,
      attempt: this.attempts === 0 ? undefined : this.attempts,
    };
  }
}
