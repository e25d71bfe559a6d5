/**
 * The shapes of an inbound explanation (`mesh.explainInbound`, `meshlet explain --inbound`):
 * the request described, the mesh settings, and what comes back.
 *
 * @module
 */
import type { WorkloadIdentity } from '../core/observe.ts';
import type { AppliedPolicy, AuthzFinding } from '../security/authz/compile.ts';
import type { AuthzResult } from '../security/authz/types.ts';
import type { MtlsMode } from '../security/peer-authentication.ts';
import type { JwtExplanation } from './explain-jwt.ts';
import type { RateLimitExplanation } from './explain-rate-limit.ts';
import type { InboundPoolExplanation } from './explain-connection-pool.ts';
import type { PathNormalization } from '../core/path-normalization.ts';

/**
 * The request to explain.
 * @category Server
 */
export interface InboundExplainRequest {
  /** @defaultValue 'GET' */
  readonly method?: string | undefined;
  /**
   * The request target as the server receives it (`/admin?x=1`), or a URL
   * (`http://httpbin.foo:8000/admin`): its authority is then the Host and its port the service
   * port the caller used; or a gRPC call's URL (`grpc://reviews:9090/pkg.Service/Method`: POST
   * with `content-type: application/grpc`). Not normalized: the explanation shows what
   * normalization makes of it.
   */
  readonly url: string;
  /** Request headers; `Host` overrides the URL's authority. */
  readonly headers?: Readonly<Record<string, string | readonly string[]>> | undefined;
  /**
   * The local port the request arrives on (`ports`, `destination.port`). @defaultValue the target
   * port of the URL's service port (from the Services that select the workload), else the URL's
   * port, else the only port the workload's services reach, else 80 (443 for https)
   */
  readonly port?: number | undefined;
  /** The caller: its mTLS identity and address. @defaultValue a plaintext peer at 127.0.0.1 */
  readonly source?: InboundExplainSource | undefined;
  /** A JWT the request carries as `Authorization: Bearer <token>` (decoded without verification for the explanation). */
  readonly token?: string | undefined;
  /** The request principal (`iss/sub`) given directly, as if a verified token carried it: RequestAuthentication is then not evaluated. */
  readonly requestPrincipal?: string | undefined;
  /** The verified token's claims given directly (with {@link requestPrincipal}, or alone: `iss` and `sub` give the principal). */
  readonly claims?: Readonly<Record<string, unknown>> | undefined;
  /** Unix time in ms at which tokens are judged (`exp`, `nbf`). @defaultValue now */
  readonly atMs?: number | undefined;
}

/**
 * Who sends the request.
 * @category Server
 */
export interface InboundExplainSource {
  /** The mTLS peer's principal, `cluster.local/ns/foo/sa/sleep` (with or without `spiffe://`). */
  readonly principal?: string | undefined;
  /** The peer's namespace: the principal becomes `<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
  readonly namespace?: string | undefined;
  /** With {@link namespace}. @defaultValue 'default' */
  readonly serviceAccount?: string | undefined;
  /** The TCP peer's address (`source.ip`, `ipBlocks`). @defaultValue '127.0.0.1' */
  readonly ip?: string | undefined;
}

/**
 * The mesh settings an explanation needs (a mesh passes its own).
 * @category Server
 */
export interface InboundExplainOptions {
  readonly workload: Pick<WorkloadIdentity, 'service' | 'namespace' | 'labels'> & { readonly ports?: Readonly<Record<string, number>> | undefined };
  /** @defaultValue 'istio-system' */
  readonly rootNamespace?: string;
  /** @defaultValue 'cluster.local' */
  readonly trustDomain?: string;
  readonly trustDomainAliases?: readonly string[];
  readonly numTrustedProxies?: number;
  /** @defaultValue 'BASE' */
  readonly pathNormalization?: PathNormalization;
  /**
   * The names of the configured extension providers (MeshConfig `extensionProviders`). Unset:
   * every provider a CUSTOM policy names is taken as configured (and the explanation says so).
   */
  readonly extensionProviders?: readonly string[];
  /** @defaultValue 16384 */
  readonly maxTokenChars?: number;
  /** The workload's health-probe paths (MeshOptions `probePaths`): such a request is served outside the policies. */
  readonly probePaths?: readonly string[] | undefined;
}

/**
 * The authorization part of an explanation.
 * @category Server
 */
export interface AuthzExplanation {
  /** The AuthorizationPolicies that apply to the workload. */
  readonly policies: readonly AppliedPolicy[];
  /** Dropped rules and ignored policies (the mesh logs the same). */
  readonly findings: readonly AuthzFinding[];
  /** The engine's verdict (when a CUSTOM provider is asked: the verdict if it allows). */
  readonly result: AuthzResult;
  /** The CUSTOM policy and rule that send the request to an external authorizer, which this explanation cannot call. */
  readonly custom: { readonly provider: string; readonly policy: string; readonly rule: number; readonly assumedConfigured: boolean } | undefined;
}

/**
 * How the workload's server side would judge a request.
 * @category Server
 */
export interface InboundExplanation {
  readonly workload: Pick<WorkloadIdentity, 'service' | 'namespace' | 'labels'>;
  readonly request: {
    readonly method: string;
    readonly scheme: string;
    readonly authority: string;
    readonly localPort: number;
    /** How the local port was found. */
    readonly portFrom: string;
    readonly remoteAddress: string;
    /** The mTLS peer's principal (`spiffe://…`), undefined for plaintext. */
    readonly peer: string | undefined;
    readonly headers: Readonly<Record<string, string | readonly string[]>>;
  };
  readonly path: {
    readonly received: string;
    /** undefined: refused (400), as Envoy refuses it. */
    readonly normalized: string | undefined;
    readonly changed: boolean;
    readonly normalization: PathNormalization;
  };
  /** The PeerAuthentication that applies to the local port, and whether it lets this connection in (plaintext or mTLS, as `source` says). */
  readonly peerAuthentication: {
    readonly mode: MtlsMode;
    /** True when the workload policy's `portLevelMtls` sets the port's mode. */
    readonly portLevel: boolean;
    /** `namespace/name` of the mesh, namespace and workload policies composed. */
    readonly policies: { readonly mesh?: string; readonly namespace?: string; readonly workload?: string };
    readonly accepted: boolean;
  };
  /** The HTTP status the caller would get: 200 when the app is reached, else the refusal's; 0 when PeerAuthentication closes the connection (no HTTP answer). */
  readonly status: number;
  /** The step that refuses the request, undefined when the app is reached. */
  readonly refusedBy: 'peer-authentication' | 'path' | 'jwt' | 'authorization' | 'rate-limit' | undefined;
  /** One line on why. */
  readonly reason: string;
  /** What the verdict rests on that an explanation cannot see (keys it does not fetch, an external authorizer, token buckets). */
  readonly assumes: readonly string[];
  /** `given` when the principal and claims were given directly; undefined when no RequestAuthentication applies or the request never got that far. */
  readonly jwt: JwtExplanation | 'given' | undefined;
  readonly requestPrincipal: string | undefined;
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  /** undefined when the request is refused before authorization. */
  readonly authz: AuthzExplanation | undefined;
  /**
   * The local rate limit filters that look at the request, in the order they run — a filter placed
   * before a step that refuses it included (it takes a token all the same); undefined when the
   * request is refused before any filter looks at it.
   */
  readonly rateLimits: readonly RateLimitExplanation[] | undefined;
  /** The inbound cluster's connection pool (circuit breaking) on the request's port; undefined when the request is refused before. */
  readonly connectionPool: InboundPoolExplanation | undefined;
  /** The explanation on a few lines (what `meshlet explain --inbound` prints). */
  toString(): string;
}

