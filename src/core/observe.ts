/**
 * Observation at no cost: what the data plane did, published once through
 * `node:diagnostics_channel`. Nothing is built or published unless someone subscribes
 * (`channel.hasSubscribers`, as undici and fastify gate their own channels), so a mesh without
 * telemetry pays one property read per publication point.
 *
 * | channel | when | message |
 * |---|---|---|
 * | `meshlet:call:start` | a call enters the mesh | {@link CallStartMessage} |
 * | `meshlet:call:end` | the caller got its last callback (not published for a mirrored copy, which has no `call:start` either) | {@link CallEndMessage} |
 * | `meshlet:attempt:start` | an attempt is handed to the transport | {@link AttemptStartMessage} |
 * | `meshlet:attempt:end` | that attempt ended (answer, failure, cancelled) | {@link AttemptEndMessage} |
 * | `meshlet:config:applied` | a mesh put a config in use | {@link ConfigAppliedMessage} |
 * | `meshlet:config:rejected` | a mesh refused a config | {@link ConfigRejectedMessage} |
 * | `meshlet:inbound:request` | a request reached a server of the mesh (before it is judged) | {@link InboundRequestMessage} |
 * | `meshlet:inbound:refused` | a server of the mesh refused a connection (PeerAuthentication, a bad peer certificate) | {@link InboundRefusedMessage} |
 * | `meshlet:inbound:start` | a request reached the mesh's server side (before admission); a subscriber may wrap the rest of it | {@link InboundStartMessage} |
 * | `meshlet:inbound:end` | that request was answered (by the app or by a denial) or its caller went away | {@link InboundEndMessage} |
 * | `meshlet:authz:decision` | the authorization phase judged a request (allow or deny, dry-run outcomes) | {@link ObservedAuthzDecision} |
 * | `meshlet:outlier:ejected` | outlier detection ejected an endpoint | {@link OutlierEjectedMessage} |
 * | `meshlet:outlier:returned` | an ejected endpoint's time was up and it is back in the balancing set | {@link OutlierReturnedMessage} |
 * | `meshlet:retry:budget-exhausted` | a retry the policy allowed was not made: the destination's retry budget (or `maxRetries`) was used up (flag UO) | {@link RetryBudgetExhaustedMessage} |
 * | `meshlet:pool:overflow` | an attempt was refused by the destination's connection-pool limits (503, flag UO) | {@link PoolOverflowMessage} |
 * | `meshlet:mirror:dropped` | a mirrored copy was not sent (too many in flight, a request body larger than the retry buffer, or no cluster to send it to) | {@link MirrorDroppedMessage} |
 * | `meshlet:call:response`, `meshlet:inbound:response` | a response head reached the caller, or was written (`observe-response.ts`; connections: `observe-connections.ts`) | — |
 * Every message names the mesh it comes from (`workload`), so one subscriber serves every mesh
 * of the process; calls carry their `Exchange` as `call`, the same object in every message of
 * one call (for correlation, e.g. a span per call and a child per attempt).
 * @example
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe('meshlet:call:end', (m) => console.log(m.route, m.status, m.flags, m.durationMs));
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import type { Protocol } from './classify.ts';
import type { PeerIdentity } from './context.ts';
import type { Headers } from './handler.ts';

/**
 * Who a mesh is: Istio's source or destination workload labels are computed from this.
 * @category Mesh
 */
export interface WorkloadIdentity {
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The service account (workload identity); `default` unless configured. */
  readonly serviceAccount: string;
  /** Istio's workload name (`source_workload` / `destination_workload`); the service when not configured. */
  readonly workloadName?: string;
}

/** `meshlet:call:start`. */
export interface CallStartMessage {
  readonly workload: WorkloadIdentity | undefined;
  /** The call (an Exchange); the same object in every message of this call. */
  readonly call: object;
  readonly protocol: Protocol;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  /** The request headers (lower-cased names), as the call entered the mesh. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** `meshlet:call:end`: how a call ended, with where it went. */
export interface CallEndMessage {
  readonly workload: WorkloadIdentity | undefined;
  readonly call: object;
  readonly protocol: Protocol;
  readonly method: string;
  /** The authority routing used (after rewrites). */
  readonly authority: string;
  readonly path: string;
  /** `vs-name.rule` of the route taken, or undefined (no route, passthrough). */
  readonly route: string | undefined;
  /** `outbound|port|subset|host`, `PassthroughCluster` (a host outside the mesh, `ALLOW_ANY`), or undefined. */
  readonly cluster: string | undefined;
  /** The destination service host, or undefined. */
  readonly destinationService: string | undefined;
  /** The namespace of the resource that declared that service (Istio's cluster metadata `istio.services[0].namespace`). */
  readonly destinationServiceNamespace?: string | undefined;
  /**
   * For a host outside the registry, Istio's catch-all route the call took: `allow_any` (sent as
   * it was, cluster `PassthroughCluster`) or `block_all` (refused under REGISTRY_ONLY).
   */
  readonly catchAll?: 'allow_any' | 'block_all' | undefined;
  /** The endpoint of the last attempt (`address:port`), or undefined. */
  readonly endpoint: string | undefined;
  /** The destination workload's identity as registered (service account, labels, namespace, and Istio's workload name: a WorkloadEntry's, see docs/telemetry.md), when known. */
  readonly destination: { readonly serviceAccount: string; readonly labels: Readonly<Record<string, string>>; readonly namespace: string; readonly workload?: string } | undefined;
  /** Response status (HTTP; 200 for gRPC), or 0 when the call got no response. */
  readonly status: number;
  /** gRPC status (from the head or the trailers), or -1. */
  readonly grpcStatus: number;
  /** Envoy response flags, comma-separated ('' when none). */
  readonly flags: string;
  readonly attempts: number;
  /** Request body bytes sent (the last attempt's), when known. */
  readonly requestBytes: number;
  /** Response body bytes received by the caller. */
  readonly responseBytes: number;
  /** gRPC messages the caller sent, and received (each once, whatever the retries), when its adapter frames them (the grpc-js client). */
  readonly requestMessages?: number | undefined;
  readonly responseMessages?: number | undefined;
  /** The response head's headers as the caller got them, when one came (read them, never change them). */
  readonly responseHeaders?: Readonly<Record<string, string | string[] | undefined>> | undefined;
  readonly durationMs: number;
  /** The error the caller got, when the call failed. */
  readonly error: Error | undefined;
  /**
   * The mesh-made failure (a `MeshletError`: route timeout, connect failure, reset, …) the
   * caller got as the answer a sidecar makes of it (`errors: 'respond'`: `status` is that
   * answer's), undefined when the answer came from the upstream or a route.
   */
  readonly rendered?: Error | undefined;
}

/** `meshlet:attempt:start`. */
export interface AttemptStartMessage {
  readonly workload: WorkloadIdentity | undefined;
  readonly call: object;
  /** 1 for the first attempt, 2 for the first retry, … */
  readonly attempt: number;
  readonly cluster: string;
  readonly endpoint: string | undefined;
}

/**
 * A look at a call's response head before the caller gets it (as Envoy's filters see it): an
 * `attempt:start` subscriber may set it on the call as `responseTap`; it may remove headers
 * (returning true then) and keep what it learned in `tapState`, which `call:end` subscribers read.
 */
export interface ResponseTap {
  onResponseHead(call: TappedCall, headers: Record<string, string | string[] | undefined>): boolean;
}

/**
 * One call's attempts, for a subscriber that needs them for some calls only: set on the call as
 * `attemptObserver`, it gets that call's attempt messages even when the attempt channels have no
 * subscribers — the tracer's attempt spans, without every other call building and publishing them.
 */
export interface AttemptObserver {
  attemptStart(m: AttemptStartMessage): void;
  attemptEnd(m: AttemptEndMessage): void;
}

/** The slots of a call (an Exchange) for a {@link ResponseTap}. */
export interface TappedCall {
  responseTap: ResponseTap | undefined;
  tapState: unknown;
}

/** `meshlet:attempt:end`. */
export interface AttemptEndMessage extends AttemptStartMessage {
  /** The answer's status, or 0 when it had none. */
  readonly status: number;
  readonly grpcStatus: number;
  /** Why it got no (usable) answer: `connect-failure`, `reset`, `per-try-timeout`, `cancelled`, `local`, … */
  readonly failure: string | undefined;
  readonly durationMs: number;
  /** Whether it went out on a connection (Envoy counts such a request, however it ends). */
  readonly started?: boolean;
}

/** `meshlet:config:applied`. */
export interface ConfigAppliedMessage {
  readonly workload: WorkloadIdentity;
  readonly version: string;
  readonly source: string;
  /** Analysis findings of the config, by code. */
  readonly findings: readonly { readonly level: string; readonly code: string; readonly text: string }[];
}

/** `meshlet:config:rejected`. */
export interface ConfigRejectedMessage {
  readonly workload: WorkloadIdentity;
  readonly reasons: readonly string[];
}

/** `meshlet:inbound:request`: a request arrived, in plaintext or over mTLS (PERMISSIVE → STRICT readiness). */
export interface InboundRequestMessage {
  readonly workload: WorkloadIdentity;
  /** True when it came over a verified mTLS connection. */
  readonly mtls: boolean;
  /** The peer's SPIFFE ID (`spiffe://…`), or undefined for plaintext. */
  readonly peer: string | undefined;
  readonly method: string;
  readonly localPort: number;
  readonly remoteAddress: string;
}

/** `meshlet:inbound:refused`: a connection was closed before any HTTP was read from it. */
export interface InboundRefusedMessage {
  readonly workload: WorkloadIdentity;
  /** The PeerAuthentication mode of the port. */
  readonly mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  readonly localPort: number;
  readonly remoteAddress: string;
  /** `plaintext`, `tls`, or `unknown` (nothing was read). */
  readonly transport: 'plaintext' | 'tls' | 'unknown';
  /** Why, in words (`plaintext under STRICT`, `certificate has expired`, `unknown CA`, …). */
  readonly reason: string;
}

/**
 * `meshlet:inbound:start`: a request reached a server adapter of the mesh (mesh.express(),
 * mesh.fastify(), mesh.createServer(), mesh.handler(), the gRPC server interceptors), before the
 * admission phases judge it. Published only when `inbound:start` or `inbound:end` has subscribers.
 */
export interface InboundStartMessage {
  readonly workload: WorkloadIdentity;
  /** The request (correlation): the same object in its {@link InboundEndMessage}. */
  readonly request: object;
  readonly protocol: Protocol;
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** Host header / :authority. */
  readonly authority: string;
  /** Path with query, as received. */
  readonly path: string;
  /** Request headers, lower-cased names — the object the phases judge and the app then sees: a subscriber may add to it (an `x-request-id` it generated), never remove. */
  readonly headers: Headers;
  /** Headers whose values a subscriber set (a tracer's `traceparent` for the app): the adapter hands them on; added ones need no listing. */
  changedHeaders?: readonly string[] | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string | undefined;
  readonly localPort: number;
  /** The connection (its socket, HTTP/2 session, or the gRPC listener's record of it), when known: one object per connection. */
  readonly connection?: object | undefined;
  /**
   * Set by a subscriber to run the rest of the request (admission and the app's handler) inside
   * its own async context — how a tracer makes its server span the active one. Subscribers
   * compose: keep the one already set and call it around yours.
   */
  wrap: (<T>(fn: () => T) => T) | undefined;
}

/** `meshlet:inbound:end`: how a request the server side saw ended. */
export interface InboundEndMessage {
  readonly workload: WorkloadIdentity;
  readonly request: object;
  readonly protocol: Protocol;
  readonly method: string;
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  readonly path: string;
  /** The request headers as judged (phases' changes applied). */
  readonly headers: Headers;
  /** The caller's metadata-exchange headers, taken off the request before the app saw it (undefined when it sent none). */
  readonly peerMetadata?: { readonly id: string; readonly value: string } | undefined;
  /** The status sent (HTTP; 200 for gRPC), 0 when none was (the caller went away first). */
  readonly status: number;
  /** The gRPC status sent (trailers or trailers-only), -1 for non-gRPC or none. */
  readonly grpcStatus: number;
  /** Envoy response flags, comma-separated ('' when none): `RL`, `UAEX`, `DC`, … */
  readonly flags: string;
  /**
   * Envoy's `%RESPONSE_CODE_DETAILS%`: `via_upstream` when the app answered,
   * `rbac_access_denied_matched_policy[…]`, `jwt_authn_access_denied{…}`, `local_rate_limited`,
   * `ext_authz_denied`, `downstream_remote_disconnect`, …
   */
  readonly details: string;
  /** Which admission phase refused it (undefined: admitted); `deniedBefore`: the phase that one was placed ahead of (a `rate-limit` phase before `ext-authz`, `jwt` or `authorization`). */
  readonly deniedBy: string | undefined;
  readonly deniedBefore?: string | undefined;
  /** Bytes received from, and sent to, the caller (headers and body, as far as the adapter can count). */
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** gRPC messages received from the caller, and sent to it, when its adapter frames them (the grpc-js server). */
  readonly requestMessages?: number | undefined;
  readonly responseMessages?: number | undefined;
  readonly durationMs: number;
  /**
   * When it ended, on the mesh's clock (`clock.now()`, the one `durationMs` is measured on), when
   * the adapter read it: subscribers that need the time use it instead of reading the clock again.
   */
  readonly endedAt?: number;
  /** True when the request came over a verified mTLS connection. */
  readonly mtls: boolean;
  /** The mTLS peer, or undefined (plaintext). */
  readonly peer: PeerIdentity | undefined;
  /** `iss/sub` of the verified JWT, or undefined. */
  readonly requestPrincipal: string | undefined;
  /** The AuthorizationPolicy rule that decided, as Envoy names it (`ns[foo]-policy[allow]-rule[1]`), or undefined. */
  readonly authzPolicy: string | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string | undefined;
  readonly localPort: number;
  /** The TLS SNI, or undefined. */
  readonly sni: string | undefined;
  /** The connection it came on, as in its {@link InboundStartMessage}. */
  readonly connection?: object | undefined;
  /** Response headers sent, lower-cased names, when the adapter knows them. */
  readonly responseHeaders: Readonly<Record<string, string | string[] | number | undefined>> | undefined;
  readonly error: Error | undefined;
}

/**
 * `meshlet:authz:decision`: the parts of an authorization verdict every subscriber may rely on
 * (the authorization phase publishes its full `AuthzDecisionMessage`, which extends this).
 */
export interface ObservedAuthzDecision {
  /** The mesh whose server judged the request (undefined for a phase built outside a mesh). */
  readonly workload: WorkloadIdentity | undefined;
  /** The request judged (the inbound pipeline's view of it). */
  readonly request: object;
  readonly result: {
    readonly decision: 'allow' | 'deny';
    /** `namespace/name` of the policy whose rule decided; undefined when none did (no policy applies, default deny). */
    readonly policy: string | undefined;
    /** Which action decided (CUSTOM, DENY, ALLOW); undefined when no policy decided. */
    readonly action: 'CUSTOM' | 'DENY' | 'ALLOW' | undefined;
    /** Dry-run policies' outcomes (never enforced). */
    readonly dryRun: readonly { readonly action: string; readonly result: 'allow' | 'deny'; readonly policy: string | undefined }[];
  };
}

/** Which outlier detector fired, in Envoy's stat names (`outlier_detection.ejections_enforced_<detector>`). */
export type OutlierDetectorKind = 'consecutive_5xx' | 'consecutive_gateway_failure' | 'consecutive_local_origin_failure';

/** `meshlet:outlier:ejected`. */
export interface OutlierEjectedMessage {
  readonly workload: WorkloadIdentity | undefined;
  /** `outbound|port|subset|host`. */
  readonly cluster: string;
  /** The endpoint ejected (`address:port`). */
  readonly endpoint: string;
  readonly detector: OutlierDetectorKind;
  /** Why, in words: `5 consecutive 5xx (consecutive5xxErrors=5)`. */
  readonly reason: string;
  /** When it may return, on the mesh clock. */
  readonly untilMs: number;
}

/** `meshlet:outlier:returned`. */
export interface OutlierReturnedMessage {
  readonly workload: WorkloadIdentity | undefined;
  readonly cluster: string;
  readonly endpoint: string;
  readonly reason: string;
}

/** `meshlet:retry:budget-exhausted` (Envoy's `upstream_rq_retry_overflow`). */
export interface RetryBudgetExhaustedMessage {
  readonly workload: WorkloadIdentity | undefined;
  readonly call: object;
  readonly cluster: string;
  /** The attempt whose retry was refused (1 for the first). */
  readonly attempt: number;
  /** True when a DestinationRule `retryBudget` is in force, false for the `maxRetries` threshold. */
  readonly budgeted: boolean;
}

/** `meshlet:pool:overflow` (Envoy's `upstream_rq_pending_overflow`). */
export interface PoolOverflowMessage {
  readonly workload: WorkloadIdentity | undefined;
  readonly call: object;
  readonly cluster: string;
  /** Requests in flight to the cluster, and waiting for a slot, when it overflowed. */
  readonly active: number;
  readonly pending: number;
}

/** `meshlet:mirror:dropped`. */
export interface MirrorDroppedMessage {
  readonly workload: WorkloadIdentity | undefined;
  /** The primary call. */
  readonly call: object;
  /** The mirror destination's cluster (`outbound|port|subset|host`: the name the route gives it, also when no such cluster exists). */
  readonly cluster: string | undefined;
  /** `max-in-flight` (`maxMirrorsInFlight` copies running), `body-too-large` (a body the retry buffer could not hold) or `no-cluster` (no such service or subset, a reload removed it, the mesh closing). */
  readonly reason: 'max-in-flight' | 'body-too-large' | 'no-cluster';
}

/** The channels (created once; publishing is gated by `hasSubscribers` at each site). */
export const channels = Object.freeze({
  callStart: channel('meshlet:call:start'),
  callEnd: channel('meshlet:call:end'),
  attemptStart: channel('meshlet:attempt:start'),
  attemptEnd: channel('meshlet:attempt:end'),
  configApplied: channel('meshlet:config:applied'),
  configRejected: channel('meshlet:config:rejected'),
  inboundRequest: channel('meshlet:inbound:request'),
  inboundRefused: channel('meshlet:inbound:refused'),
  inboundStart: channel('meshlet:inbound:start'),
  inboundEnd: channel('meshlet:inbound:end'),
  authzDecision: channel('meshlet:authz:decision'),
  outlierEjected: channel('meshlet:outlier:ejected'),
  outlierReturned: channel('meshlet:outlier:returned'),
  retryBudgetExhausted: channel('meshlet:retry:budget-exhausted'),
  poolOverflow: channel('meshlet:pool:overflow'),
  mirrorDropped: channel('meshlet:mirror:dropped'),
});
