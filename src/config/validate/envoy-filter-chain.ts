/**
 * The HTTP filters istiod puts in a sidecar's HTTP connection managers, per direction, in their
 * order (`buildHTTPConnectionManager`, pilot/pkg/networking/core/listener_builder.go):
 *
 * - **outbound**: `istio.metadata_exchange`, `envoy.filters.http.grpc_web` (GRPC-Web ports only),
 *   `envoy.filters.http.grpc_stats`, `istio.alpn`, `envoy.filters.http.fault`,
 *   `envoy.filters.http.cors`, `istio.stats`, `envoy.filters.http.router` (the authn and authz
 *   plugins build nothing for outbound; the stateful session filter only with
 *   `PILOT_ENABLE_PERSISTENT_SESSION_FILTER`, off by default).
 * - **inbound**: `istio.metadata_exchange`; for CUSTOM AuthorizationPolicies an
 *   `envoy.filters.http.rbac` then `envoy.filters.http.ext_authz`; `envoy.filters.http.jwt_authn`
 *   when a RequestAuthentication with JWT rules applies; an `envoy.filters.http.rbac` for each of
 *   AUDIT, DENY and ALLOW that has AuthorizationPolicies for the workload (pilot/pkg/security/authz/builder/builder.go `build`); `envoy.filters.http.grpc_web` (GRPC-Web ports),
 *   `envoy.filters.http.grpc_stats`, `envoy.filters.http.fault`, `envoy.filters.http.cors`,
 *   `istio.stats`, the router (no ALPN filter inbound).
 *
 * `istio_authn` is a network filter, not an HTTP filter.
 *
 * @module
 */

export const ROUTER = 'envoy.filters.http.router';
const MX = 'istio.metadata_exchange';
const RBAC = 'envoy.filters.http.rbac';
const EXT_AUTHZ = 'envoy.filters.http.ext_authz';
const JWT = 'envoy.filters.http.jwt_authn';
const GRPC_WEB = 'envoy.filters.http.grpc_web';
const GRPC_STATS = 'envoy.filters.http.grpc_stats';
const ALPN = 'istio.alpn';
const FAULT = 'envoy.filters.http.fault';
const CORS = 'envoy.filters.http.cors';
const STATS = 'istio.stats';

/** Which of istiod's conditional HTTP filters a connection manager has. */
export interface HttpChainOptions {
  /** A GRPC-Web port. */
  readonly grpcWeb?: boolean;
  /** Inbound: CUSTOM AuthorizationPolicies apply to the workload. */
  readonly custom?: boolean;
  /** Inbound: a RequestAuthentication with JWT rules applies to the workload. */
  readonly jwt?: boolean;
  /** Inbound: ALLOW, DENY or AUDIT AuthorizationPolicies apply to the workload. */
  readonly rbac?: boolean;
  /** Inbound, with `rbac`: how many of AUDIT, DENY and ALLOW have policies (istiod builds an RBAC filter for each). @defaultValue 1 */
  readonly rbacFilters?: number;
}

/** Istio's HTTP filter chain of one direction's connection managers, in order. */
export function istioHttpFilterChain(direction: 'inbound' | 'outbound', o: HttpChainOptions = {}): string[] {
  const chain = [MX];
  if (direction === 'inbound') {
    if (o.custom === true) chain.push(RBAC, EXT_AUTHZ);
    if (o.jwt === true) chain.push(JWT);
    if (o.rbac === true) for (let i = 0; i < Math.max(1, o.rbacFilters ?? 1); i++) chain.push(RBAC);
  }
  if (o.grpcWeb === true) chain.push(GRPC_WEB);
  chain.push(GRPC_STATS);
  if (direction === 'outbound') chain.push(ALPN);
  chain.push(FAULT, CORS, STATS, ROUTER);
  return chain;
}

/** Every filter the chain of a direction can have. */
export const OUTBOUND_HTTP_FILTERS: ReadonlySet<string> = new Set(istioHttpFilterChain('outbound', { grpcWeb: true }));
export const INBOUND_HTTP_FILTERS: ReadonlySet<string> = new Set(istioHttpFilterChain('inbound', { grpcWeb: true, custom: true, jwt: true, rbac: true }));

const WHY_NOT: Readonly<Record<string, string>> = {
  [RBAC]: 'the outbound chain has no RBAC filter (authorization runs on the inbound side)',
  [EXT_AUTHZ]: 'the outbound chain has no ext_authz filter (CUSTOM authorization runs on the inbound side)',
  [JWT]: 'the outbound chain has no JWT filter (RequestAuthentication runs on the inbound side)',
  [ALPN]: 'the inbound chain has no istio.alpn filter (istiod adds it to outbound chains only)',
};

/**
 * Why a sub-filter name finds nothing to insert next to, for a patch of `context`; undefined
 * when Istio's chain of that context can have it.
 */
export function subFilterAbsence(name: string, context: string): string | undefined {
  const inbound = INBOUND_HTTP_FILTERS.has(name);
  const outbound = OUTBOUND_HTTP_FILTERS.has(name);
  if (!inbound && !outbound) {
    const network = name === 'istio_authn' ? ' (istio_authn is a network filter, not an HTTP filter)' : '';
    return `"${name}" is not a filter Istio puts in a sidecar's HTTP chain${network}`;
  }
  if (context === 'SIDECAR_OUTBOUND' && !outbound) return WHY_NOT[name] ?? `the outbound chain has no "${name}" filter`;
  if (context === 'SIDECAR_INBOUND' && !inbound) return WHY_NOT[name] ?? `the inbound chain has no "${name}" filter`;
  return undefined;
}
