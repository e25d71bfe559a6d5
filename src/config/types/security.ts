/**
 * security.istio.io resources: PeerAuthentication, RequestAuthentication, AuthorizationPolicy.
 *
 * @module
 */
import type { LabelSelector, PolicyTargetReference } from './common.ts';

/** mTLS mode. */
export type MutualTLSMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

/** `PeerAuthentication.spec`. */
export interface PeerAuthenticationSpec {
  selector?: LabelSelector;
  mtls?: { mode?: MutualTLSMode };
  /** Workload (container) port → mode; only with a selector. */
  portLevelMtls?: Record<string, { mode?: MutualTLSMode }>;
}

/** `RequestAuthentication.spec`. */
export interface RequestAuthenticationSpec {
  selector?: LabelSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  jwtRules?: JWTRule[];
}

/** One accepted JWT issuer. */
export interface JWTRule {
  /** The token issuer; may be left out when `jwksUri` is set (Istio). */
  issuer?: string;
  audiences?: string[];
  jwksUri?: string;
  /** Inline JWKS (a JSON string). */
  jwks?: string;
  fromHeaders?: { name: string; prefix?: string }[];
  fromParams?: string[];
  fromCookies?: string[];
  outputPayloadToHeader?: string;
  /** @defaultValue false */
  forwardOriginalToken?: boolean;
  outputClaimToHeaders?: { header: string; claim: string }[];
  /** JWKS fetch timeout. @defaultValue "5s" */
  timeout?: string;
  spaceDelimitedClaims?: string[];
  /** Whether a token must be present: `OPTIONAL` (Istio's behaviour without the field) or `REQUIRED`. */
  presence?: 'OPTIONAL' | 'REQUIRED';
}

/** `AuthorizationPolicy.spec`. */
export interface AuthorizationPolicySpec {
  selector?: LabelSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  rules?: AuthorizationRule[];
  /** @defaultValue ALLOW */
  action?: 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';
  provider?: { name: string };
}

/** A rule matches when a `from`, a `to` and every `when` match. */
export interface AuthorizationRule {
  from?: { source: AuthorizationSource }[];
  to?: { operation: AuthorizationOperation }[];
  when?: AuthorizationCondition[];
}

/** Who is calling. */
export interface AuthorizationSource {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  trustDomains?: string[];
  notTrustDomains?: string[];
}

/** What is being called. */
export interface AuthorizationOperation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** An attribute condition. */
export interface AuthorizationCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}
