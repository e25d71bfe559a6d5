/**
 * The server side's kernel: admission, not a dispatcher. Express, Fastify and node:http never
 * hand the response back through handler callbacks, so the inbound side does not reuse the
 * outbound `Layer`; it is a short ordered list of named phases over one request view, run before
 * the app (fastify's hooks-as-data model):
 *
 * ```
 * peer-identity ─► ext-authz ─► jwt ─► authorization ─► rate-limit ─► connection-pool ─► app (inside one MeshContext)
 * ```
 *
 * (`ext-authz` is AuthorizationPolicy CUSTOM, which Istio's sidecar runs before JWT
 * authentication; `authorization` is AUDIT, DENY and ALLOW; `connection-pool` is the inbound
 * cluster's circuit breaker, whose slot the adapter releases when the response ends. Local rate
 * limit filters run where their EnvoyFilter puts them in Istio's chain: a `rate-limit` phase may
 * also run just before `ext-authz`, `jwt` or `authorization` — {@link Phase.before}.)
 *
 * Each phase reads and annotates the {@link InboundRequest} (the peer, the request principal,
 * the authorization decision) and either lets it through or answers it with a {@link Denial}.
 * Phases are synchronous unless they must wait (a JWKS fetch, an external authorizer): the
 * pipeline stays synchronous until a phase returns a promise. A phase that throws fails closed:
 * the request is refused (500), never let through.
 *
 * An adapter builds the request view, calls {@link InboundPipeline.admit}, renders a denial its
 * own way (an HTTP response, a gRPC status) or runs the app inside the admitted context
 * ({@link runAdmitted}); nothing here knows which server it is.
 *
 * @module
 */
import type { Protocol } from '../core/classify.ts';
import { type MeshContext, type PeerIdentity, runInWholeContext, type TraceHeaders } from '../core/context.ts';
import { InvalidArgumentError } from '../core/errors.ts';
import type { Headers } from '../core/handler.ts';
import type { BodyStream } from '../core/request-body.ts';

/** The phases, in the order they run. */
export const PHASES = Object.freeze(['peer-identity', 'ext-authz', 'jwt', 'authorization', 'rate-limit', 'connection-pool'] as const);

/** A phase name. */
export type PhaseName = (typeof PHASES)[number];

/** The request as every phase sees it: the same view the route matchers read, plus who sent it. */
export interface InboundRequest {
  readonly protocol: Protocol;
  readonly method: string;
  readonly scheme: string;
  /** Host header / :authority. */
  readonly authority: string;
  /** Path with query, as the app will see it (after normalization). */
  path: string;
  /** Request headers, lower-cased names; phases may change them (a JWT phase removes the token). */
  readonly headers: Headers;
  /** The TCP peer's address and port. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The local port the request arrived on (PeerAuthentication `portLevelMtls`, `destination.port`). */
  readonly localPort: number;
  /** The local address the request arrived on (`destination.ip`); unset when the adapter does not know it. */
  readonly localAddress?: string;
  /** The TLS SNI the client sent (`connection.sni`); unset for plaintext. */
  readonly sni?: string;
  /** Set by the peer-identity phase: the mTLS peer, undefined for plaintext. */
  peer: PeerIdentity | undefined;
  /** Set by the jwt phase: `iss/sub`, undefined without a (valid) token. */
  requestPrincipal: string | undefined;
  /** Set by the jwt phase: the token's claims (`scope`, `permission` and configured space-delimited claims split into lists). */
  claims: Readonly<Record<string, unknown>> | undefined;
  /** Set by the jwt phase: the token's `aud` as a list (`request.auth.audiences`). */
  audiences?: readonly string[] | undefined;
  /** Set by the jwt phase: the token's `azp` (`request.auth.presenter`). */
  presenter?: string | undefined;
  /** Set by the authorization phase (or by ext-authz when an external authorizer denied): what decided the request. */
  authz: AuthzDecision | undefined;
  /** Set by the ext-authz phase when external authorizers allowed the request: what they answered, for the authorization phase's verdict. */
  customAuthz: object | undefined;
  /** The caller's deadline in `performance.now()` ms (from `x-envoy-expected-rq-timeout-ms` / `grpc-timeout`), Infinity when none. */
  deadline: number;
  /** Trace context the request carried. */
  trace: TraceHeaders | undefined;
  /** Set by a phase that changed `headers` (a consumed token removed, claims copied in): the adapter updates what the app sees. */
  headersChanged: boolean;
  /**
   * The `x-request-id` generated for a request that came without one (Envoy's `generate_request_id`),
   * added to `headers`: the adapter adds it to what the app sees too (the head as received is otherwise unchanged).
   */
  generatedRequestId?: string | undefined;
  /**
   * `x-forwarded-client-cert` as the guard left it in `headers` when it changed it (Envoy's
   * `forward_client_cert_details`): its new value, or null when it was removed. The adapter makes
   * what the app sees agree, without rebuilding the other headers.
   */
  forwardedClientCert?: string | null | undefined;
  /** Set by the connection-pool phase: the request's slot (or its place in the queue), which the adapter releases when the response ends or the caller goes away. */
  slot?: PoolSlot | undefined;
  /**
   * Set by the adapter while the connection-pool phase is in use: whether the caller is still
   * there. A slot that falls to a waiting request whose caller is gone (its connection closed, the
   * close not yet seen) goes on to the next waiter, and the request to nobody.
   */
  alive?: (() => boolean) | undefined;
  /**
   * Aborted when the caller goes away before the request is judged: an external authorizer's
   * check still pending then is cancelled, as Envoy's ext_authz filter cancels it when the
   * downstream resets. Made by {@link callerSignal} (the ext-authz phase) only when needed; the
   * adapters call {@link callerLeft} when the caller of a request still being judged goes away.
   */
  signal?: AbortSignal | undefined;
  /** The request's body stream, where the server has one: read (and put back) only by an external authorizer that sends the body in its check. */
  readonly body?: BodyStream | undefined;
  /** The downstream connection (its socket, or the mesh's record of it), for rate limit buckets per connection; unset when the adapter has none. */
  readonly connection?: object | undefined;
}

/**
 * A request's hold on a connection-pool slot (or its place in the queue): released by the
 * adapter when the response ends or the caller goes away; releasing twice is harmless.
 * @category Server
 */
export interface PoolSlot {
  release(): void;
}

/**
 * Which policy and rule decided a request.
 * @category Server
 */
export interface AuthzDecision {
  readonly decision: 'allow' | 'deny';
  /** `namespace/name` of the AuthorizationPolicy that decided, or undefined (no policy applies / default deny). */
  readonly policy: string | undefined;
  /** Index of the rule that matched, or undefined. */
  readonly rule: number | undefined;
  /** Headers to add to the app's response (an external authorizer's `headersToDownstreamOnAllow`); the adapter adds them. */
  readonly responseHeaders?: Readonly<Record<string, string | readonly string[]>>;
}

/** A refusal: what the adapter answers instead of running the app. */
export interface Denial {
  /** HTTP status (401, 403, 429, 500, …). */
  readonly status: number;
  /** gRPC status for a gRPC caller (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED, …). */
  readonly grpcStatus: number;
  /** The answer's body text (Envoy's: `RBAC: access denied`, `Jwt is expired`, …). */
  readonly body: string;
  /** Headers to send with it (`www-authenticate`, rate-limit headers, …); a list is a header sent once per value (`set-cookie`). */
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  /** Why, for logs and observation. */
  readonly reason: string;
  /** The phase that refused (`path` when the path could not be normalized). */
  readonly phase: PhaseName | 'path';
  /** Answer nothing and close the connection (PeerAuthentication refusing it, as a sidecar resets it). */
  readonly closeConnection?: boolean;
  /** `%RESPONSE_CODE_DETAILS%` of a refusal the phases' names do not say (a malformed request). */
  readonly details?: string;
  /** The phase the refusing one ran just ahead of (its {@link Phase.before}: a `rate-limit` phase placed before `jwt`, …); set by the pipeline. */
  readonly before?: PhaseName | undefined;
}

/** What a phase returns: nothing to let the request on, a denial to answer it. */
export type PhaseResult = Denial | undefined;

/** One admission phase. */
export interface Phase {
  readonly name: PhaseName;
  /**
   * Runs right before this phase instead of at its own name's place: a `rate-limit` phase whose
   * filters Envoy's chain puts before `ext_authz`, `jwt_authn` or `rbac` (an EnvoyFilter patch
   * with `INSERT_FIRST`, `INSERT_BEFORE` without a sub-filter, or next to one of those filters).
   */
  readonly before?: PhaseName | undefined;
  run(req: InboundRequest): PhaseResult | Promise<PhaseResult>;
}

/** The result of admission. */
export type Admission = { readonly admitted: true; readonly context: MeshContext } | { readonly admitted: false; readonly denial: Denial };

/** `d`, saying which phase its phase ran ahead of (a `rate-limit` phase's place: whether the phases after it, `jwt`…, saw the request). */
function placed(d: Denial, p: Phase): Denial {
  return p.before === undefined || d.before === p.before ? d : { ...d, before: p.before };
}

function failedClosed(phase: PhaseName, err: unknown): Denial {
  return {
    status: 500,
    grpcStatus: 13,
    body: 'internal error',
    reason: `${phase} failed: ${err instanceof Error ? err.message : String(err)}`,
    phase,
  };
}

function contextOf(req: InboundRequest): MeshContext {
  return { deadline: req.deadline, trace: req.trace, peer: req.peer, requestPrincipal: req.requestPrincipal, claims: req.claims };
}

/** A copy of a header view that the phases' changes (made in place) leave alone. */
export function copyHeaders(h: Headers): Headers {
  const out: Headers = Object.create(null);
  for (const k in h) {
    const v = h[k];
    out[k] = Array.isArray(v) ? v.slice() : v;
  }
  return out;
}

/** What every adapter knows of a request before any phase ran. */
export type InboundRequestInit = Pick<InboundRequest, 'protocol' | 'method' | 'scheme' | 'authority' | 'path' | 'headers' | 'remoteAddress' | 'remotePort' | 'localPort'> & Partial<InboundRequest>;

/** A request view with nothing decided yet (no principal, claims or verdict; no deadline unless given). */
export function newInboundRequest(init: InboundRequestInit): InboundRequest {
  return {
    peer: undefined,
    requestPrincipal: undefined,
    claims: undefined,
    authz: undefined,
    customAuthz: undefined,
    deadline: Number.POSITIVE_INFINITY,
    trace: undefined,
    headersChanged: false,
    ...init,
  };
}

/** Where a phase runs: its name's place in {@link PHASES}, or just before the phase it names in `before`. */
function placeOf(p: Phase): number {
  const own = (PHASES as readonly string[]).indexOf(p.name);
  if (own === -1) throw new InvalidArgumentError(`inbound pipeline: unknown phase "${p.name}"; phases are ${PHASES.join(', ')}`);
  if (p.before === undefined) return own;
  const at = (PHASES as readonly string[]).indexOf(p.before);
  if (at === -1) throw new InvalidArgumentError(`inbound pipeline: phase "${p.name}" runs before an unknown phase "${p.before}"; phases are ${PHASES.join(', ')}`);
  if (at === 0 || at > own) throw new InvalidArgumentError(`inbound pipeline: phase "${p.name}" cannot run before "${p.before}" (it may move ahead of a phase after ${PHASES[0]} and before its own place: ${PHASES.join(' → ')})`);
  return at - 0.5;
}

function labelOf(p: Phase): string {
  return p.before === undefined ? p.name : `${p.name} (before ${p.before})`;
}

/** The admission phases of one mesh, in their fixed order. */
export class InboundPipeline {
  readonly #phases: readonly Phase[];

  /**
   * Phases must be distinct, known and in {@link PHASES} order — a phase with `before` just ahead
   * of the phase it names (checked here, never per request).
   */
  constructor(phases: readonly Phase[]) {
    let last = -1;
    let lastLabel = '';
    const seen = new Set<number>();
    for (const p of phases) {
      const i = placeOf(p);
      if (seen.has(i)) throw new InvalidArgumentError(`inbound pipeline: phase "${labelOf(p)}" is given twice`);
      if (i < last) throw new InvalidArgumentError(`inbound pipeline: phase "${labelOf(p)}" must run before "${lastLabel}" (order: ${PHASES.join(' → ')})`);
      seen.add(i);
      last = i;
      lastLabel = labelOf(p);
    }
    this.#phases = phases;
    this.names = Object.freeze(phases.map((p) => p.name));
  }

  /** The phase names, in order (`rate-limit` once for each place local rate limit filters run at). */
  readonly names: readonly PhaseName[];

  /**
   * Runs the phases over `req`: synchronously while they are synchronous (the common case costs
   * no promise), as a promise once one waits.
   */
  admit(req: InboundRequest): Admission | Promise<Admission> {
    return this.#from(req, 0);
  }

  #from(req: InboundRequest, start: number): Admission | Promise<Admission> {
    const phases = this.#phases;
    for (let i = start; i < phases.length; i++) {
      const p = phases[i] as Phase;
      let r: PhaseResult | Promise<PhaseResult>;
      try {
        r = p.run(req);
      } catch (err) {
        return { admitted: false, denial: failedClosed(p.name, err) };
      }
      if (r instanceof Promise) return this.#after(r, req, i, p);
      if (r !== undefined) return { admitted: false, denial: placed(r, p) };
    }
    return { admitted: true, context: contextOf(req) };
  }

  /**
   * The phases after phase `i` (named `name`), once its promise settles. A method of its own: a
   * closure in #from, even one never made, would make V8 allocate #from's captured variables
   * (the loop's `i` and `p` each turn) on every request, synchronous ones too.
   */
  #after(r: Promise<PhaseResult>, req: InboundRequest, i: number, p: Phase): Promise<Admission> {
    return r.then(
      (res) => (res === undefined ? this.#from(req, i + 1) : { admitted: false as const, denial: placed(res, p) }),
      (err: unknown) => ({ admitted: false as const, denial: failedClosed(p.name, err) }),
    );
  }
}

/** The controllers behind the requests' {@link InboundRequest.signal}s. */
const LEAVING = new WeakMap<InboundRequest, AbortController>();

/** The request's {@link InboundRequest.signal}, made now if it has none (already aborted when its caller left before). */
export function callerSignal(req: InboundRequest): AbortSignal {
  if (req.signal !== undefined) return req.signal;
  const ac = new AbortController();
  LEAVING.set(req, ac);
  req.signal = ac.signal;
  return ac.signal;
}

/** The caller of `req` went away (or its response ended): aborts the request's signal, or makes it aborted if it has none yet. Idempotent. */
export function callerLeft(req: InboundRequest): void {
  const ac = LEAVING.get(req);
  if (ac !== undefined) ac.abort(new Error('the caller went away'));
  else if (req.signal === undefined) req.signal = AbortSignal.abort(new Error('the caller went away'));
}

function callHandler<T>(handler: () => T): T {
  return handler();
}

/**
 * Runs the app's handler for an admitted request inside its mesh context — entered as the server
 * adapters enter it ({@link runInWholeContext}: as it is outside any context, merged inside one).
 */
export function runAdmitted<T>(admission: { readonly context: MeshContext }, handler: () => T): T {
  return runInWholeContext(admission.context, callHandler<T>, handler, undefined);
}
