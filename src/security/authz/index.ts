/**
 * Istio AuthorizationPolicy, judged in-process as an Istio sidecar's Envoy judges it: policy
 * selection and compilation ({@link compileAuthz}), evaluation (CUSTOM → DENY → ALLOW, AUDIT,
 * dry-run), and the `envoyExtAuthzHttp` extension provider for action CUSTOM.
 *
 * @module
 */
export type { AppliedPolicy, AuthzFinding, AuthzOptions, AuthzWorkload } from './compile.ts';
export { AuthzEngine, compileAuthz, RBAC_DENIAL } from './engine.ts';
export { checkEnvoyExtAuthzHttp, type EnvoyExtAuthzHttpConfig, type EnvoyExtAuthzHttpOptions, envoyExtAuthzHttp } from './ext-authz-http.ts';
export { checkEnvoyExtAuthzGrpc, type EnvoyExtAuthzGrpcConfig, type EnvoyExtAuthzGrpcOptions, envoyExtAuthzGrpc, type UnaryCaller } from './ext-authz-grpc.ts';
export type {
  AuthzAction,
  AuthzDenialResponse,
  AuthzHeaders,
  AuthzPeer,
  AuthzRequest,
  AuthzResult,
  DryRunOutcome,
  ExtAuthzCheck,
  ExtAuthzResponse,
  RuleRef,
} from './types.ts';
