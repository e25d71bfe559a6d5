/**
 * The authorization engine's vocabulary: the request it judges (a view the inbound pipeline's
 * `InboundRequest` satisfies), what it answers, and the extension-provider contract for
 * action CUSTOM.
 *
 * @module
 */

import type { BodyStream } from '../../core/request-body.ts';

/** Header values by lower-cased name (a repeated header is an array; Envoy joins them with `,`). */
export type AuthzHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

/** The calling peer's mTLS identity. */
export interface AuthzPeer {
  /** The certificate's URI SAN: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`; '' when none. */
  readonly principal: string;
}

/**
 * The request as authorization sees it. The inbound pipeline's `InboundRequest` is one; paths
 * are already normalized (the adapter's job), and carry their query.
 */
export interface AuthzRequest {
  /** `GET`, `POST`, … (gRPC calls are `POST`). */
  readonly method: string;
  /** `http` or `https` (the `:scheme` header). */
  readonly scheme?: string;
  /** Host header / `:authority`, as sent (with its port, if the client sent one). */
  readonly authority: string;
  /** Normalized path with query (`/api/x?y=1`; gRPC: `/pkg.Service/Method`). */
  readonly path: string;
  readonly headers: AuthzHeaders;
  /** The TCP peer's address (`source.ip`, `ipBlocks`; the fallback for `remote.ip`). */
  readonly remoteAddress: string;
  /** The TCP peer's port (sent to external authorizers). */
  readonly remotePort?: number;
  /** The request's protocol (sent to external authorizers). */
  readonly protocol?: 'http1' | 'http2' | 'grpc';
  /** The local port the request arrived on (`ports`, `destination.port`). */
  readonly localPort: number;
  /** The local address the request arrived on (`destination.ip`); unset: `destination.ip` never matches. */
  readonly localAddress?: string;
  /** The TLS SNI the client sent (`connection.sni`); unset or '' for plaintext. */
  readonly sni?: string;
  /** The mTLS peer; undefined for a plaintext connection. */
  readonly peer: AuthzPeer | undefined;
  /** `iss/sub` of the verified JWT. */
  readonly requestPrincipal: string | undefined;
  /** The verified JWT's payload (space-delimited claims already split into lists, as Envoy's jwt_authn does). */
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  /** The request's body stream, for a provider that sends the body in its check (`includeRequestBodyInCheck`); unset where the server cannot give it (gRPC). */
  readonly body?: BodyStream | undefined;
  /**
   * Aborted when the caller goes away before the request is judged: a provider cancels its check
   * then (as Envoy's ext_authz filter cancels the check when the downstream resets), and nobody
   * reads its answer. Unset where nothing watches the caller.
   */
  readonly signal?: AbortSignal | undefined;
}

/**
 * The policy actions.
 * @category Server
 */
export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

/**
 * A rule that matched: `namespace/name` of its policy and its index in `rules`.
 * @category Server
 */
export interface RuleRef {
  readonly policy: string;
  readonly rule: number;
}

/**
 * What a dry-run (`istio.io/dry-run: "true"`) policy set would have done: Envoy's shadow-rule result.
 * @category Server
 */
export interface DryRunOutcome {
  readonly action: AuthzAction;
  /** The shadow engine's result: for ALLOW, `allow` when a dry-run ALLOW rule matched; for DENY, `deny` when a dry-run DENY rule matched. */
  readonly result: 'allow' | 'deny';
  /** The dry-run rule that matched (Envoy's `shadow_effective_policy_id`), if any. */
  readonly policy: string | undefined;
  readonly rule: number | undefined;
  /** Envoy's shadow policy id, e.g. `ns[foo]-policy[bar]-rule[0]`. */
  readonly id: string | undefined;
}

/**
 * A refusal to send instead of running the app.
 * @category Server
 */
export interface AuthzDenialResponse {
  readonly status: number;
  /** The headers to send; a list is a header sent once per value (`set-cookie`). */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  readonly body: string;
}

/**
 * The engine's verdict. `decision`, `policy` and `rule` are the pipeline's `AuthzDecision`;
 * the rest says why, for logs, `req.meshlet.authz` and observation.
 * @category Server
 */
export interface AuthzResult {
  readonly decision: 'allow' | 'deny';
  /** `namespace/name` of the policy whose rule decided; undefined when no rule did (no policy applies, default deny, a provider error). */
  readonly policy: string | undefined;
  /** Index of that rule in the policy's `rules`. */
  readonly rule: number | undefined;
  /** Which stage decided: CUSTOM, DENY or ALLOW; undefined when no policy decided (allowed: no ALLOW policy applies). */
  readonly action: 'CUSTOM' | 'DENY' | 'ALLOW' | undefined;
  /** One line on why, for people: `denied by DENY policy foo/deny-admin rule 0`. */
  readonly reason: string;
  /** Envoy's response code details: `rbac_access_denied_matched_policy[ns[foo]-policy[x]-rule[0]]`, `ext_authz_denied`, `ext_authz_error`, …; '' when allowed. */
  readonly details: string;
  /** The answer to send when denied (403 `RBAC: access denied`, or the external authorizer's). */
  readonly denial: AuthzDenialResponse | undefined;
  /** The CUSTOM provider that was consulted, when one was. */
  readonly provider: string | undefined;
  /** Dry-run policies' outcomes (never enforced). */
  readonly dryRun: readonly DryRunOutcome[];
  /** The AUDIT rule that matched (Envoy's RBAC LOG action: an access-log hint, never a decision). */
  readonly audit: RuleRef | undefined;
  /** Headers the external authorizer set on the request to the app (`headersToUpstreamOnAllow`). */
  readonly headersToUpstream: Readonly<Record<string, string>> | undefined;
  /** Headers the external authorizer asked to remove from the request (`x-envoy-auth-headers-to-remove`). */
  readonly headersToRemove: readonly string[] | undefined;
  /** Headers the external authorizer adds to the app's response (`headersToDownstreamOnAllow`). */
  readonly headersToDownstream: Readonly<Record<string, string | readonly string[]>> | undefined;
}

/** An external authorizer's answer. */
export type ExtAuthzResponse =
  | {
      readonly allowed: true;
      /** Set (overwrite) on the request before the app sees it. */
      readonly headersToUpstream?: Readonly<Record<string, string>>;
      /** Removed from the request before the app sees it. */
      readonly headersToRemove?: readonly string[];
      /** Added to the app's response. */
      /** A list is a header added once per value (several `set-cookie`). */
      readonly headersToDownstream?: Readonly<Record<string, string | readonly string[]>>;
    }
  | {
      readonly allowed: false;
      readonly status: number;
      /** A list is a header sent once per value (several `set-cookie`). */
      readonly headers: Readonly<Record<string, string | readonly string[]>>;
      readonly body: string;
      readonly error?: boolean;
      /** Refused before the authorizer was asked (a body over `maxRequestBytes`): why, and Envoy's response code details. */
      readonly local?: { readonly reason: string; readonly details: string };
    };

/**
 * An extension provider for action CUSTOM (MeshConfig `extensionProviders[]`): asks an
 * external authorizer about a request. It must not reject; a failure to reach the authorizer is
 * an answer (`allowed: false` with the provider's `statusOnError`, or allowed with `failOpen`).
 * `envoyExtAuthzHttp` (ext-authz-http.ts) is Istio's HTTP provider.
 */
export type ExtAuthzCheck = (request: AuthzRequest) => Promise<ExtAuthzResponse>;
