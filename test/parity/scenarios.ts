/**
 * The parity table: one Istio config per row, run over HTTP (`mesh.fetch`, a POST to the path a
 * gRPC call has, `/meshlet.test.Echo/<method>`) and over gRPC (`mesh.grpc.client`), each against
 * real servers (./harness.ts), with what the caller gets on each as Envoy/Istio gives it.
 *
 * HOW TO ADD A ROW
 * - `yaml`: the Istio resources (VirtualService, DestinationRule, …) for host `echo`
 *   (echo.default.svc.cluster.local). The harness adds its ServiceEntry: port 8080 `http`
 *   (HTTP) and port 9090 `grpc` (GRPC), one endpoint per workload, so one VirtualService without
 *   a port match applies to both protocols — the point of the table.
 * - `workloads`: the endpoints (default: one, `v1`, labels version=v1) and how each answers its
 *   n-th call: 'ok', 'hold' (never, until the test ends), or a failure given as both protocols
 *   say it (`{ http: 503, grpc: grpc.status.UNAVAILABLE }`).
 * - `call`: method (Unary | ServerStream), headers (= metadata), the caller's deadline.
 * - `drive`: several calls, a call parked while the mesh clock moves, or held calls then one more.
 * - `http` / `grpc`: what the (last) call gets — HTTP status or gRPC code name, the Envoy response
 *   flags (x-meshlet-response-flags; '-' = none, the default), the workload that answered, the
 *   calls each workload received (attempts), how calls spread (`served`, a range per workload),
 *   and the istio_requests_total{reporter="source"} points (`requests`). Without `requests` the
 *   test still checks the point Istio gives the last call (response_code, grpc_response_status,
 *   response_flags, request_protocol). Both expectations must be what Envoy gives: for gRPC a
 *   mesh-made failure is HTTP 200 + grpc-status, mapped as Envoy maps it (503 UH/UO/NC →
 *   UNAVAILABLE, 504 UT → DEADLINE_EXCEEDED, 404 NR → UNIMPLEMENTED, 403 → PERMISSION_DENIED).
 * - Server-side rows (AuthorizationPolicy, RequestAuthentication/JWT, local rate limit, the
 *   destination's telemetry): `server` is the workloads' own Istio config. Each workload then runs
 *   under a mesh of its own (service `echo`, namespace `default`, labels app=echo + its own) —
 *   the node:http server is `mesh.createServer`, the grpc-js server has
 *   `mesh.grpc.serverInterceptors()` and is bound with `mesh.grpc.bind` —, on a ManualClock of
 *   its own that `drive.tick` moves (a rate limit's refill). `$JWKS` in `server` stands for the
 *   JWKS of ./tokens.ts, and `call.token` sends a token signed with it (valid, expired, forged).
 *   The caller's mesh is still in front, as a client sidecar is. Expectations stay the same shape
 *   (`http: { status: 403 }, grpc: { code: 'PERMISSION_DENIED' }`, 401 / UNAUTHENTICATED, 429 /
 *   UNAVAILABLE); `hits` count the calls that reached the app (a denial never does), `principal`
 *   is the request principal the handler ran with, `details` the body / status details (Envoy's
 *   text: `RBAC: access denied`, `Jwt is expired`, `local_rate_limited`), and `inbound` the
 *   istio_requests_total{reporter="destination"} points, keyed as `requests`.
 */
import { grpc } from '../helpers/grpc.ts';
import type { Answer, Call, Drive, Workload } from './harness.ts';
import { serverScenarios } from './scenarios-server.ts';

/** What one protocol's caller gets. */
interface Expectation {
  /** x-meshlet-response-flags of the last call; '-' (none) by default; null: not compared (a known gap, said where it is used). */
  readonly flags?: string | null;
  /** The HTTP response body / the gRPC status details of the last call (checked when given). */
  readonly details?: string;
  /** The workload that answered the last call (null: none did). */
  readonly upstream?: string | null;
  /** Calls each workload received (every attempt). */
  readonly hits?: Readonly<Record<string, number>>;
  /** Calls each workload answered successfully: [min, max]. */
  readonly served?: Readonly<Record<string, readonly [number, number]>>;
  /** Every istio_requests_total{reporter="source"} point: `protocol response_code grpc_status flags` → count. */
  readonly requests?: Readonly<Record<string, number>>;
  /** Every istio_requests_total{reporter="destination"} point of the workloads' meshes, keyed as `requests`. */
  readonly inbound?: Readonly<Record<string, number>>;
  /** The request principal (`currentContext().requestPrincipal`) the handler of the last call that reached a workload ran with; null: none. */
  readonly principal?: string | null;
}
export interface HttpExpectation extends Expectation {
  readonly status: number;
}
export interface GrpcExpectation extends Expectation {
  readonly code: keyof typeof grpc.status;
}

export interface Scenario {
  readonly name: string;
  readonly yaml: string;
  /** The workloads' own Istio config (server-side rows); `$JWKS` stands for the JWKS of ./tokens.ts. */
  readonly server?: string;
  /** With `server`: the caller and the workloads have workload identities from one dev CA (service accounts `caller`, `echo`) and the endpoints are labelled for mTLS. */
  readonly mtls?: boolean;
  readonly workloads?: readonly Workload[];
  readonly call?: Call;
  readonly drive?: Drive;
  readonly http: HttpExpectation;
  readonly grpc: GrpcExpectation;
}

const UNAVAILABLE: Answer = { http: 503, grpc: grpc.status.UNAVAILABLE };
const fail = (): Answer => UNAVAILABLE;
const v1v2: Workload[] = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' } },
];
const subsets = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;
/** A VirtualService for echo with `http` rules (YAML lines under `http:`). */
const vs = (http: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
${http}`;
/** One rule to echo with `extra` (YAML lines at rule level). */
const rule = (extra: string) => vs(`  - route: [{destination: {host: echo}}]\n${extra}`);

const routing = `${subsets}---${vs(`  - name: beta
    match: [{headers: {x-group: {exact: beta}}}]
    route: [{destination: {host: echo, subset: v2}}]
  - name: unary
    match: [{uri: {exact: /meshlet.test.Echo/Unary}, method: {exact: POST}}]
    route: [{destination: {host: echo, subset: v2}}]
  - name: rest
    route: [{destination: {host: echo, subset: v1}}]`)}`;

export const scenarios: readonly Scenario[] = [
  // ── routing ────────────────────────────────────────────────────────────────────────────────
  {
    name: 'route by path and method: /meshlet.test.Echo/Unary, POST',
    yaml: routing,
    workloads: v1v2,
    http: { status: 200, upstream: 'v2', hits: { v1: 0, v2: 1 } },
    grpc: { code: 'OK', upstream: 'v2', hits: { v1: 0, v2: 1 } },
  },
  {
    name: 'route by path: another method falls through to the default rule',
    yaml: routing,
    workloads: v1v2,
    call: { method: 'ServerStream' },
    http: { status: 200, upstream: 'v1', hits: { v1: 1, v2: 0 } },
    grpc: { code: 'OK', upstream: 'v1', hits: { v1: 1, v2: 0 } },
  },
  {
    name: 'route by header = metadata (x-group: beta)',
    yaml: routing,
    workloads: v1v2,
    call: { method: 'ServerStream', headers: { 'x-group': 'beta' } },
    http: { status: 200, upstream: 'v2' },
    grpc: { code: 'OK', upstream: 'v2' },
  },
  {
    name: 'no rule matches (method GET only; a gRPC call is always POST): 404 NR / UNIMPLEMENTED',
    yaml: vs('  - match: [{method: {exact: GET}}]\n    route: [{destination: {host: echo}}]'),
    http: { status: 404, flags: 'NR', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'UNIMPLEMENTED', flags: 'NR', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'a destination with no cluster (host not in the registry): 503 NC / UNAVAILABLE',
    yaml: vs('  - route: [{destination: {host: nowhere.example.internal}}]'),
    http: { status: 503, flags: 'NC', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'UNAVAILABLE', flags: 'NC', upstream: null, hits: { v1: 0 } },
  },
  {
    // The mesh's Random is seeded: the spread is the same every run (the range is the honest
    // tolerance of 200 draws at 80/20, ±8 points, not a retry-until-pass).
    name: 'weighted subsets 80/20 over 200 calls',
    yaml: `${subsets}---${vs(`  - route:
    - {destination: {host: echo, subset: v1}, weight: 80}
    - {destination: {host: echo, subset: v2}, weight: 20}`)}`,
    workloads: v1v2,
    drive: { kind: 'calls', count: 200 },
    http: { status: 200, served: { v1: [144, 176], v2: [24, 56] } },
    grpc: { code: 'OK', served: { v1: [144, 176], v2: [24, 56] } },
  },

  // ── retries (attempts counted at the workload) ─────────────────────────────────────────────
  {
    name: 'retryOn 5xx,unavailable: two failures then success, 3 attempts on both',
    yaml: rule('    retries: {attempts: 2, retryOn: "5xx,unavailable"}'),
    workloads: [{ name: 'v1', answer: (hit) => (hit <= 2 ? UNAVAILABLE : 'ok') }],
    http: { status: 200, upstream: 'v1', hits: { v1: 3 } },
    grpc: { code: 'OK', upstream: 'v1', hits: { v1: 3 } },
  },
  {
    // Envoy's 5xx looks at :status; a gRPC status comes with :status 200.
    name: 'retryOn 5xx: HTTP 503 is retried (URX when exhausted), gRPC UNAVAILABLE is not',
    yaml: rule('    retries: {attempts: 2, retryOn: 5xx}'),
    workloads: [{ name: 'v1', answer: fail }],
    http: { status: 503, flags: 'URX', upstream: 'v1', hits: { v1: 3 } },
    grpc: { code: 'UNAVAILABLE', hits: { v1: 1 } },
  },
  {
    name: 'retryOn unavailable: gRPC UNAVAILABLE is retried, HTTP 503 is not',
    yaml: rule('    retries: {attempts: 2, retryOn: unavailable}'),
    workloads: [{ name: 'v1', answer: fail }],
    http: { status: 503, upstream: 'v1', hits: { v1: 1 } },
    grpc: { code: 'UNAVAILABLE', flags: 'URX', hits: { v1: 3 } },
  },
  {
    name: 'retryOn "503" (a status code): HTTP 503 retried, gRPC UNAVAILABLE (:status 200) not',
    yaml: rule('    retries: {attempts: 2, retryOn: "503"}'),
    workloads: [{ name: 'v1', answer: fail }],
    http: { status: 503, flags: 'URX', upstream: 'v1', hits: { v1: 3 } },
    grpc: { code: 'UNAVAILABLE', hits: { v1: 1 } },
  },
  {
    // connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes (no codes) × 2.
    name: "Istio's default retry policy: gRPC UNAVAILABLE retried twice, HTTP 503 not",
    yaml: rule(''),
    workloads: [{ name: 'v1', answer: fail }],
    http: { status: 503, upstream: 'v1', hits: { v1: 1 } },
    grpc: { code: 'UNAVAILABLE', flags: 'URX', hits: { v1: 3 } },
  },

  // ── timeouts (on the mesh's ManualClock) ───────────────────────────────────────────────────
  {
    // Envoy ≥ 1.37 answers a gRPC timeout DEADLINE_EXCEEDED (envoyproxy/envoy#44479; before, 504 → UNAVAILABLE).
    name: 'route timeout 2s, the workload never answers: 504 UT / DEADLINE_EXCEEDED',
    yaml: rule('    timeout: 2s\n    retries: {attempts: 0}'),
    workloads: [{ name: 'v1', answer: () => 'hold' }],
    call: { deadlineMs: 60_000 },
    drive: { kind: 'clock', advanceMs: 2000, parked: 'upstream' },
    http: { status: 504, flags: 'UT', upstream: null, hits: { v1: 1 } },
    grpc: { code: 'DEADLINE_EXCEEDED', flags: 'UT', upstream: null, hits: { v1: 1 } },
  },
  {
    // gRPC: the caller's deadline (grpc-timeout) is capped by the route timeout, the smaller wins.
    // HTTP has no caller deadline on the wire; the caller's MeshContext deadline plays that part.
    name: "caller deadline 20s sooner than the route timeout 60s: the caller's wins",
    yaml: rule('    timeout: 60s\n    retries: {attempts: 0}'),
    workloads: [{ name: 'v1', answer: () => 'hold' }],
    call: { deadlineMs: 20_000 },
    drive: { kind: 'clock', advanceMs: 20_000, parked: 'upstream' },
    http: { status: 504, flags: 'UT', upstream: null, hits: { v1: 1 } },
    grpc: { code: 'DEADLINE_EXCEEDED', flags: 'UT', upstream: null, hits: { v1: 1 } },
  },

  // ── faults ──────────────────────────────────────────────────────────────────────────────────
  {
    name: 'fault abort httpStatus 503: 503 FI / UNAVAILABLE FI, nothing sent',
    yaml: rule('    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}'),
    http: { status: 503, flags: 'FI', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'UNAVAILABLE', flags: 'FI', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'fault abort httpStatus 404: 404 FI / UNIMPLEMENTED FI',
    yaml: rule('    fault: {abort: {httpStatus: 404, percentage: {value: 100}}}'),
    http: { status: 404, flags: 'FI', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'UNIMPLEMENTED', flags: 'FI', upstream: null, hits: { v1: 0 } },
  },
  {
    // Envoy's fault filter answers a grpcStatus abort with :status 200 and that grpc-status;
    // a plain HTTP caller sees the 200.
    name: 'fault abort grpcStatus RESOURCE_EXHAUSTED: 200 FI / RESOURCE_EXHAUSTED FI',
    yaml: rule('    fault: {abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 100}}}'),
    http: { status: 200, flags: 'FI', upstream: null, hits: { v1: 0 } },
    grpc: { code: 'RESOURCE_EXHAUSTED', flags: 'FI', upstream: null, hits: { v1: 0 } },
  },
  {
    name: 'fault delay 5s: the call waits on the mesh clock, then is served, flag DI',
    yaml: rule('    fault: {delay: {fixedDelay: 5s, percentage: {value: 100}}}'),
    drive: { kind: 'clock', advanceMs: 5000, parked: 'timer' },
    http: { status: 200, flags: 'DI', upstream: 'v1', hits: { v1: 1 } },
    grpc: { code: 'OK', flags: 'DI', upstream: 'v1', hits: { v1: 1 } },
  },

  // ── outlier detection and pool limits ──────────────────────────────────────────────────────
  {
    // Envoy charges a gRPC status to outlier detection as its HTTP mapping: UNAVAILABLE = 503.
    name: 'outlier detection: consecutive 5xx / UNAVAILABLE ejects the endpoint after 2',
    yaml: `${vs('  - route: [{destination: {host: echo}}]\n    retries: {attempts: 0}')}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}
`,
    workloads: [
      { name: 'bad', answer: fail },
      { name: 'good', answer: () => 'ok' },
    ],
    // No retries here: the mesh clock stays put (an ejection lasts 30s of it).
    drive: { kind: 'calls', count: 10, stepMs: 0 },
    http: { status: 200, upstream: 'good', hits: { bad: 2, good: 8 }, served: { good: [8, 8] } },
    grpc: { code: 'OK', upstream: 'good', hits: { bad: 2, good: 8 }, served: { good: [8, 8] } },
  },
  {
    name: 'pool overflow (http2MaxRequests 1; nothing waits for it, whatever http1MaxPendingRequests): 503 UO / UNAVAILABLE UO, not sent',
    yaml: `${vs('  - route: [{destination: {host: echo}}]\n    retries: {attempts: 0}')}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 1, http1MaxPendingRequests: 1}}
`,
    workloads: [{ name: 'v1', answer: () => 'hold' }],
    drive: { kind: 'overflow', held: 2, arrived: 1 },
    http: { status: 503, flags: 'UO', upstream: null, hits: { v1: 1 } },
    grpc: { code: 'UNAVAILABLE', flags: 'UO', upstream: null, hits: { v1: 1 } },
  },

  // ── telemetry ──────────────────────────────────────────────────────────────────────────────
  {
    // A gRPC answer is :status 200 whatever its grpc-status; the label grpc_response_status
    // carries the status (empty for HTTP), request_protocol says which.
    name: 'telemetry: istio_requests_total labels for a failure and a success',
    yaml: rule('    retries: {attempts: 0}'),
    workloads: [{ name: 'v1', answer: (hit) => (hit === 1 ? UNAVAILABLE : 'ok') }],
    drive: { kind: 'calls', count: 2 },
    http: { status: 200, upstream: 'v1', requests: { 'http 503 "" -': 1, 'http 200 "" -': 1 } },
    grpc: { code: 'OK', upstream: 'v1', requests: { 'grpc 200 14 -': 1, 'grpc 200 0 -': 1 } },
  },
  {
    name: 'telemetry: a mesh-made failure (fault abort 503) is counted with its flag',
    yaml: rule('    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}'),
    drive: { kind: 'calls', count: 3 },
    http: { status: 503, flags: 'FI', upstream: null, requests: { 'http 503 "" FI': 3 } },
    grpc: { code: 'UNAVAILABLE', flags: 'FI', upstream: null, requests: { 'grpc 200 14 FI': 3 } },
  },
  // ── the server side: ./scenarios-server.ts ──────────────────────────────────────────────────
  ...serverScenarios,
];
