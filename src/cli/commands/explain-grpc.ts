/**
 * `meshlet explain … grpc://reviews:9090/pkg.Service/Method`: a gRPC call explained as the mesh
 * routes it — a POST to `/pkg.Service/Method` with `content-type: application/grpc`, metadata as
 * headers (`-H`) — with what the policies mean for a gRPC caller: the statuses a retry policy
 * retries, the route timeout next to the caller's deadline (grpc-timeout), faults and mesh-made
 * failures as the gRPC statuses Envoy gives. With `--inbound`, the same request judged on the
 * workload's server side, its verdict as a gRPC status.
 *
 * @module
 */
import { GRPC_STATUS_NAMES, grpcStatusName, grpcToHttp, httpToGrpc } from '../../core/grpc-status.ts';
import type { FaultPolicy, RetryPolicy } from '../../routing/route-policy.ts';
import type { CompiledRoute } from '../../routing/route-table.ts';
import { UsageError } from '../args.ts';

/** A gRPC call named on the command line. */
export interface GrpcTarget {
  /** `http://host:port/pkg.Service/Method`: the request the mesh routes. */
  readonly url: URL;
  /** `pkg.Service`. */
  readonly service: string;
  readonly method: string;
}

/** True when the argument names a gRPC call (`grpc://…`). */
export function isGrpcTarget(text: string): boolean {
  return /^grpc:\/\//i.test(text);
}

/** Parses `grpc://host:port/pkg.Service/Method`; a usage error says what is wrong with it. */
export function parseGrpcTarget(text: string): GrpcTarget {
  const usage = (why: string) => new UsageError(`meshlet explain: ${why} in "${text}" (expected grpc://host:port/package.Service/Method)`);
  let u: URL;
  try {
    u = new URL(`http://${text.slice('grpc://'.length)}`);
  } catch {
    throw usage('not a valid address');
  }
  // Parsed as http://, port 80 reads as none: look at what was written.
  if (u.port === '' && !/^grpc:\/\/(\[[^\]]*\]|[^/:]*):0*80(\/|$)/i.test(text)) throw usage('the port is missing (routes match on it; gRPC has no default port)');
  if (u.search !== '' || u.hash !== '') throw usage('a gRPC method has no query or fragment');
  const m = /^\/([^/]+)\/([^/]+)$/.exec(u.pathname);
  if (m === null) throw usage('the path must be /package.Service/Method');
  return { url: u, service: decodeURIComponent(m[1] as string), method: decodeURIComponent(m[2] as string) };
}

/** The request headers of a gRPC call: the metadata given, and what gRPC itself sends. */
export function grpcHeaders(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const h: Record<string, string | string[]> = Object.assign(Object.create(null), headers);
  for (const reserved of ['content-type', 'te']) {
    if (reserved in h) throw new UsageError(`--header ${reserved}: gRPC sets it itself; give metadata only`);
  }
  h['content-type'] = 'application/grpc';
  h.te = 'trailers';
  return h;
}

/** The method of a gRPC call (always POST): an `-X` other than POST is a mistake. */
export function grpcMethod(request: string | undefined): string {
  if (request !== undefined && request.toUpperCase() !== 'POST') throw new UsageError(`--request ${request}: a gRPC call is always POST`);
  return 'POST';
}

/** Envoy's retry conditions that look at a gRPC status in the response headers, and the status each retries. */
const GRPC_RETRY_ON: Readonly<Record<string, string>> = Object.freeze({
  cancelled: 'CANCELLED',
  'deadline-exceeded': 'DEADLINE_EXCEEDED',
  internal: 'INTERNAL',
  'resource-exhausted': 'RESOURCE_EXHAUSTED',
  unavailable: 'UNAVAILABLE',
});
/** Conditions on the connection or the stream: they apply to gRPC calls as to any other. */
const CONNECTION_RETRY_ON = new Set(['connect-failure', 'refused-stream', 'reset', 'reset-before-request', 'http3-post-connect-failure']);

/** What a route's retry policy does for a gRPC call. */
export function grpcRetryView(p: RetryPolicy) {
  const statuses: string[] = [];
  const connection: string[] = [];
  const notGrpc: string[] = [];
  for (const t of p.retryOn) {
    const s = GRPC_RETRY_ON[t];
    if (s !== undefined) statuses.push(s);
    else if (CONNECTION_RETRY_ON.has(t)) connection.push(t);
    else if (t === 'retriable-status-codes' && p.retriableStatusCodes.size === 0) continue;
    else notGrpc.push(t === 'retriable-status-codes' ? [...p.retriableStatusCodes].join(',') : t);
  }
  return { attempts: p.attempts, retriedStatuses: statuses, connectionFailures: connection, httpOnly: notGrpc };
}

function retryText(p: RetryPolicy): string {
  if (p.attempts === 0) return p.isDefault && p.meshDefault === true ? "retries off (the mesh's defaultHttpRetryPolicy)" : 'retries off';
  const v = grpcRetryView(p);
  const on = [...v.retriedStatuses, ...v.connectionFailures];
  const parts = [`${p.attempts}× on ${on.length === 0 ? 'no gRPC status or connection failure' : on.join(', ')}`];
  if (p.perTryTimeoutMs !== undefined) parts.push(`perTry ${p.perTryTimeoutMs}ms`);
  if (p.isDefault) parts.push(p.meshDefault === true ? "the mesh's defaultHttpRetryPolicy" : "Istio's default policy");
  let text = parts.join(', ');
  if (v.httpOnly.length > 0) text += `; ${v.httpOnly.join(',')} ${v.httpOnly.length === 1 ? 'looks' : 'look'} at the HTTP status, which is 200 for every gRPC answer: never a gRPC status`;
  if (v.retriedStatuses.length > 0) text += '; a status retries only when it comes trailers-only (in the response headers), and a streaming call only before its response starts (its response metadata)';
  return text;
}

/** The gRPC status a fault abort answers with. */
export function grpcAbortStatus(f: FaultPolicy): string | undefined {
  if (f.abortGrpcStatus !== undefined) return f.abortGrpcStatus;
  if (f.abortHttpStatus !== undefined) return `${grpcStatusName(httpToGrpc(f.abortHttpStatus))} (httpStatus ${f.abortHttpStatus} as gRPC maps it)`;
  return undefined;
}

function faultText(f: FaultPolicy | undefined): string {
  if (f === undefined) return 'none';
  const parts: string[] = [];
  if (f.delayMs !== undefined && f.delayFraction > 0) parts.push(`delay ${f.delayMs}ms on ${f.delayFraction * 100}% of calls (flag DI)`);
  const abort = grpcAbortStatus(f);
  if (abort !== undefined) parts.push(`abort ${f.abortFraction * 100}% of calls with ${abort}, flag FI, nothing sent`);
  return parts.length === 0 ? 'none (0%)' : parts.join('; ');
}

/** The lines `meshlet explain` prints for a gRPC call's matched rule (instead of the HTTP ones). */
export function grpcRouteLines(route: CompiledRoute): [label: string, text: string][] {
  const lines: [string, string][] = [];
  if (route.directResponse !== undefined) {
    const s = route.directResponse.status;
    lines.push(['Response', `${s}: not a gRPC answer; the caller gets ${s === 200 ? 'UNKNOWN' : grpcStatusName(httpToGrpc(s))}`]);
  }
  if (route.redirect !== undefined) lines.push(['Response', `a redirect: not a gRPC answer; the caller gets ${grpcStatusName(httpToGrpc(route.redirect.redirectCode))}`]);
  if (route.action === 'forward') {
    lines.push([
      'Timeout',
      route.timeoutMs === undefined
        ? "none (Istio default): the caller's deadline applies (sent on as grpc-timeout); when it passes, DEADLINE_EXCEEDED (UT)"
        : `${route.timeoutMs}ms, or the caller's deadline if sooner (grpc-timeout carries what remains); when it passes, DEADLINE_EXCEEDED (UT)`,
    ]);
    lines.push(['Retries', retryText(route.retry)]);
  }
  lines.push(['Fault', faultText(route.fault)]);
  return lines;
}

/** The JSON/YAML view of a gRPC call's rule (next to the route view). */
export function grpcRouteView(route: CompiledRoute | undefined, target: GrpcTarget) {
  return {
    service: target.service,
    method: target.method,
    retries: route === undefined || route.action !== 'forward' ? null : grpcRetryView(route.retry),
    faultAbortStatus: route?.fault === undefined ? null : (grpcAbortStatus(route.fault) ?? null),
  };
}

/** What a gRPC caller gets for each outcome that is not a routed call. */
export const GRPC_OUTCOMES = {
  routed: 'routed',
  'no-route': 'no rule matches: the caller gets UNIMPLEMENTED (404, NR)',
  passthrough: 'the host is not in the mesh (or the Sidecar leaves it out): the call passes through to its own address (outboundTrafficPolicy ALLOW_ANY)',
  'registry-only': 'the host is not in the mesh (or the Sidecar leaves it out) and outboundTrafficPolicy is REGISTRY_ONLY: the caller gets UNAVAILABLE (502)',
  redirect: 'redirected (not a gRPC answer)',
  'direct-response': 'answered by the mesh (direct response, not a gRPC answer)',
  'invalid-path': 'the path cannot be normalized (MeshConfig pathNormalization): the caller gets INTERNAL (400)',
} as const;

/** The gRPC statuses outlier detection counts as 5xx (Envoy charges a status as its HTTP mapping). */
export const GRPC_5XX: readonly string[] = GRPC_STATUS_NAMES.filter((_, code) => grpcToHttp(code) >= 500);

/** What a missing cluster or an empty endpoint set means to a gRPC caller. */
export const GRPC_NO_CLUSTER = 'UNAVAILABLE, NC';
export const GRPC_NO_ENDPOINTS = 'UNAVAILABLE, UH';

/** The gRPC status a server-side verdict (its HTTP status) reaches a gRPC caller as. */
export function inboundGrpcVerdict(status: number): string {
  if (status === 200) return 'the app runs the method (its status is the call\'s)';
  if (status === 0) return 'UNAVAILABLE (the connection is closed)';
  return `${grpcStatusName(httpToGrpc(status))} (${status} as gRPC maps it)`;
}
