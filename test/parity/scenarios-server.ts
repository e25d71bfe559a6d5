/**
 * The server-side rows of the parity table (./scenarios.ts, where the table and how to add a row
 * are described): the workloads run under meshes of their own with the row's `server` config —
 * AuthorizationPolicy by path `/meshlet.test.Echo/<method>`, method POST and header = metadata,
 * RequestAuthentication with tokens signed at test time (./tokens.ts), Istio's local rate limit
 * EnvoyFilter on the workloads' ManualClock, istio_requests_total{reporter="destination"}, and
 * PeerAuthentication STRICT with workload identities from a dev CA made at test time —
 * each run over HTTP (`mesh.createServer`) and gRPC (`mesh.grpc.serverInterceptors()`).
 */
import { ISSUER } from './harness.ts';
import type { Scenario } from './scenarios.ts';

const ECHO = '/meshlet.test.Echo';
/** An AuthorizationPolicy of namespace default (no selector: every workload there); `spec` is YAML lines under `spec:`. */
const authz = (name: string, spec: string) => `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: default}
spec:
${spec}`;
const allowUnary = authz('allow-unary', `  action: ALLOW
  rules:
  - to: [{operation: {paths: [${ECHO}/Unary], methods: [POST]}}]`);
const denyBeta = authz('deny-beta', `  action: DENY
  rules:
  - when: [{key: "request.headers[x-group]", values: [beta]}]`);
/** RequestAuthentication of Istio's JWT task for the workloads, with the test's JWKS. */
const requestAuthn = `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  jwtRules:
  - issuer: ${ISSUER}
    jwks: $JWKS
`;
const requireJwt = `${requestAuthn}---${authz('require-jwt', `  action: ALLOW
  rules:
  - from: [{source: {requestPrincipals: ["${ISSUER}/*"]}}]`)}`;
/** The local rate limit EnvoyFilter of Istio's rate-limit task (docs/rate-limiting.md), 2 tokens per 60 s. */
const rateLimit = `
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: filter-local-ratelimit-svc, namespace: default}
spec:
  workloadSelector: {labels: {app: echo}}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value:
            stat_prefix: http_local_rate_limiter
            token_bucket: {max_tokens: 2, tokens_per_fill: 2, fill_interval: 60s}
            filter_enabled: {runtime_key: local_rate_limit_enabled, default_value: {numerator: 100, denominator: HUNDRED}}
            filter_enforced: {runtime_key: local_rate_limit_enforced, default_value: {numerator: 100, denominator: HUNDRED}}
            response_headers_to_add: [{append: false, header: {key: x-local-rate-limit, value: "true"}}]
`;
/** PeerAuthentication STRICT for the workloads, and a policy that lets in only the identity of service account `sa` (the caller's is `caller`). */
const strict = (sa: string) => `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---${authz('only-caller', `  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/${sa}]}}]`)}`;
/** The caller's DestinationRule turning mTLS off (plaintext to the workloads). */
const plaintext = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy: {tls: {mode: DISABLE}}
`;

/** The caller's config: one rule to echo, with Istio's default retry policy, or without retries. */
const plain = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - route: [{destination: {host: echo}}]
`;
const noRetries = `${plain}    retries: {attempts: 0}\n`;

/** The server-side rows. */
export const serverScenarios: readonly Scenario[] = [
  // ── authorization (the workloads' AuthorizationPolicy; gRPC methods are POSTs to their path) ─
  {
    name: 'server: AuthorizationPolicy ALLOW paths /meshlet.test.Echo/Unary, methods POST: Unary served',
    yaml: plain,
    server: allowUnary,
    http: { status: 200, upstream: 'v1', hits: { v1: 1 }, inbound: { 'http 200 "" -': 1 } },
    grpc: { code: 'OK', upstream: 'v1', hits: { v1: 1 }, inbound: { 'grpc 200 0 -': 1 } },
  },
  {
    // Once an ALLOW policy selects the workload, what no ALLOW rule matches is denied.
    name: 'server: an ALLOW policy selects the workload: a method it does not allow is denied, 403 / PERMISSION_DENIED',
    yaml: plain,
    server: allowUnary,
    call: { method: 'ServerStream' },
    http: { status: 403, details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'PERMISSION_DENIED', details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'server: ALLOW methods GET only: a gRPC call (always POST) is denied, as the HTTP POST is',
    yaml: plain,
    server: authz('allow-get', '  action: ALLOW\n  rules:\n  - to: [{operation: {methods: [GET]}}]'),
    http: { status: 403, details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'PERMISSION_DENIED', details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'server: DENY paths /meshlet.test.Echo/Unary: 403 / PERMISSION_DENIED, the app never sees it',
    yaml: plain,
    server: authz('deny-unary', `  action: DENY\n  rules:\n  - to: [{operation: {paths: [${ECHO}/Unary]}}]`),
    http: { status: 403, details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'PERMISSION_DENIED', details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'server: DENY when request.headers[x-group] = beta: a call with that header = metadata is denied',
    yaml: plain,
    server: denyBeta,
    call: { headers: { 'x-group': 'beta' } },
    http: { status: 403, details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'PERMISSION_DENIED', details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'server: DENY when request.headers[x-group] = beta: a call with another value is served',
    yaml: plain,
    server: denyBeta,
    call: { headers: { 'x-group': 'alpha' } },
    http: { status: 200, upstream: 'v1', hits: { v1: 1 } },
    grpc: { code: 'OK', upstream: 'v1', hits: { v1: 1 } },
  },

  // ── RequestAuthentication: a JWT from authorization: Bearer (header / metadata) ─────────────
  {
    name: 'server: a valid JWT, ALLOW requestPrincipals: served, the handler runs with the principal',
    yaml: plain,
    server: requireJwt,
    call: { token: 'valid' },
    http: { status: 200, upstream: 'v1', hits: { v1: 1 }, principal: `${ISSUER}/alice` },
    grpc: { code: 'OK', upstream: 'v1', hits: { v1: 1 }, principal: `${ISSUER}/alice` },
  },
  {
    name: 'server: an expired JWT: 401 / UNAUTHENTICATED, the app never sees it',
    yaml: plain,
    server: requireJwt,
    call: { token: 'expired' },
    http: { status: 401, details: 'Jwt is expired', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'UNAUTHENTICATED', details: 'Jwt is expired', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'server: a JWT signed with a key not in the JWKS: 401 / UNAUTHENTICATED',
    yaml: plain,
    server: requireJwt,
    call: { token: 'forged' },
    http: { status: 401, details: 'Jwt verification fails', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'UNAUTHENTICATED', details: 'Jwt verification fails', upstream: null, hits: { v1: 0 } },
  },
  {
    // RequestAuthentication alone lets a call without a token through; the ALLOW rule does not.
    name: 'server: no JWT, ALLOW requires requestPrincipals: 403 / PERMISSION_DENIED',
    yaml: plain,
    server: requireJwt,
    http: { status: 403, details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'PERMISSION_DENIED', details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'server: no JWT, RequestAuthentication alone: served without a principal',
    yaml: plain,
    server: requestAuthn,
    http: { status: 200, upstream: 'v1', hits: { v1: 1 }, principal: null },
    grpc: { code: 'OK', upstream: 'v1', hits: { v1: 1 }, principal: null },
  },

  // ── local rate limit (EnvoyFilter; the workloads' mesh clock) ───────────────────────────────
  {
    // Envoy's local reply to a gRPC request is :status 200 with grpc-status 14 (429 mapped);
    // the destination reports it with flag RL.
    name: 'server: local rate limit, 2 tokens per 60s: the third call 429 / UNAVAILABLE, RL at the destination',
    yaml: noRetries,
    server: rateLimit,
    drive: { kind: 'calls', count: 3 },
    http: { status: 429, details: 'local_rate_limited', upstream: null, hits: { v1: 2 }, inbound: { 'http 200 "" -': 2, 'http 429 "" RL': 1 } },
    grpc: { code: 'UNAVAILABLE', details: 'local_rate_limited', upstream: null, hits: { v1: 2 }, inbound: { 'grpc 200 0 -': 2, 'grpc 200 14 RL': 1 } },
  },
  {
    name: 'server: local rate limit: the bucket refills after fill_interval on the mesh clock',
    yaml: noRetries,
    server: rateLimit,
    drive: { kind: 'calls', count: 4, tick: { after: 3, advanceMs: 60_000 } },
    http: { status: 200, upstream: 'v1', hits: { v1: 3 }, inbound: { 'http 200 "" -': 3, 'http 429 "" RL': 1 } },
    grpc: { code: 'OK', upstream: 'v1', hits: { v1: 3 }, inbound: { 'grpc 200 0 -': 3, 'grpc 200 14 RL': 1 } },
  },
  {
    // The caller's default retry policy retries `unavailable`: the limited gRPC call is sent three
    // times (each one limited, URX at the caller); HTTP 429 is no retry condition of it.
    name: "server: local rate limit under Istio's default retry policy: gRPC's UNAVAILABLE retried (URX), HTTP 429 not",
    yaml: plain,
    server: rateLimit,
    drive: { kind: 'calls', count: 3 },
    http: { status: 429, details: 'local_rate_limited', upstream: null, hits: { v1: 2 }, inbound: { 'http 200 "" -': 2, 'http 429 "" RL': 1 } },
    grpc: { code: 'UNAVAILABLE', flags: 'URX', details: 'local_rate_limited', upstream: null, hits: { v1: 2 }, inbound: { 'grpc 200 0 -': 2, 'grpc 200 14 RL': 3 } },
  },

  // ── telemetry at the destination ───────────────────────────────────────────────────────────
  {
    name: 'server telemetry: istio_requests_total{reporter="destination"} for an allowed and a denied call',
    yaml: plain,
    server: allowUnary,
    drive: { kind: 'calls', count: 2, calls: [{ method: 'Unary' }, { method: 'ServerStream' }] },
    http: {
      status: 403,
      details: 'RBAC: access denied',
      upstream: null,
      hits: { v1: 1 },
      requests: { 'http 200 "" -': 1, 'http 403 "" -': 1 },
      inbound: { 'http 200 "" -': 1, 'http 403 "" -': 1 },
    },
    grpc: {
      code: 'PERMISSION_DENIED',
      details: 'RBAC: access denied',
      upstream: null,
      hits: { v1: 1 },
      requests: { 'grpc 200 0 -': 1, 'grpc 200 7 -': 1 },
      inbound: { 'grpc 200 0 -': 1, 'grpc 200 7 -': 1 },
    },
  },

  // ── PeerAuthentication (workload identities from one dev CA; mesh.createServer, mesh.grpc.bind) ─
  {
    // The mesh clock stays put while the handshake runs (the caller's certificate renewal is a pending timer).
    name: 'server: PeerAuthentication STRICT, the caller sends mTLS (auto mTLS): served; ALLOW principals matches its identity',
    yaml: noRetries,
    server: strict('caller'),
    mtls: true,
    drive: { kind: 'calls', count: 1, stepMs: 0 },
    http: { status: 200, upstream: 'v1', hits: { v1: 1 }, inbound: { 'http 200 "" -': 1 } },
    grpc: { code: 'OK', upstream: 'v1', hits: { v1: 1 }, inbound: { 'grpc 200 0 -': 1 } },
  },
  {
    name: 'server: PeerAuthentication STRICT, mTLS, ALLOW principals names another service account: 403 / PERMISSION_DENIED',
    yaml: noRetries,
    server: strict('productpage'),
    mtls: true,
    drive: { kind: 'calls', count: 1, stepMs: 0 },
    http: { status: 403, details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'PERMISSION_DENIED', details: 'RBAC: access denied', upstream: null, hits: { v1: 0 } },
  },
  {
    // The workload's listener closes a plaintext connection under STRICT before any request, so
    // nothing reaches its mesh's phases (no destination metric). Envoy's client sidecar answers
    // 503 / UNAVAILABLE "upstream connect error or disconnect/reset before headers. reset reason:
    // connection termination" with flag UC (the connection was made, then closed), and so do
    // meshlet's callers over both protocols (grpc-js sees the close before the server's HTTP/2
    // settings, which meshlet counts as a connection that was made and closed, not one that failed).
    name: 'server: PeerAuthentication STRICT, the caller sends plaintext (DestinationRule tls DISABLE): refused',
    yaml: `${noRetries}---${plaintext}`,
    server: strict('caller'),
    mtls: true,
    drive: { kind: 'calls', count: 1, stepMs: 0 },
    http: { status: 503, flags: 'UC', details: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', upstream: null, hits: { v1: 0 }, inbound: {} },
    grpc: { code: 'UNAVAILABLE', flags: 'UC', details: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', upstream: null, hits: { v1: 0 }, inbound: {} },
  },
];
