/**
 * Envoy's global rate limit filter config (`envoy.extensions.filters.http.ratelimit.v3.RateLimit`)
 * and the `CLUSTER` `ADD` patch that defines its rate limit service's cluster, read out of an
 * EnvoyFilter as Istio's task "Enabling Rate Limits using Envoy" writes them, and checked as
 * Envoy checks them (`rate_limit.proto`'s validation rules: `domain` required, `stage` at most
 * 10, `request_type` internal / external / both, `rate_limit_service` required with
 * `transport_api_version: V3`, at most 10 `response_headers_to_add`).
 *
 * The service's cluster is found as Envoy's cluster manager would: a cluster a `CLUSTER` `ADD`
 * patch of the same EnvoyFilter adds (its first endpoint's socket address: a DNS name for
 * `STRICT_DNS` / `LOGICAL_DNS`, an IP for `STATIC`), or one of istiod's outbound clusters,
 * `outbound|<port>||<host>`. Any other name is not implemented (the EnvoyFilter is skipped with a
 * warning naming the field).
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { GlobalRateLimitSettings } from '../types/local-rate-limit.ts';
import type { FractionSettings, HeaderToAdd, LocalRateLimitSettings, RateLimitPolicySettings } from '../types/local-rate-limit.ts';
import { readFraction, readHeaderToAdd, statusCode } from './local-rate-limit.ts';
import { anyValue, boolean, duration, enumOf, message, nonEmptyText, peekAny, text, uint32 } from './proto-json.ts';
import { filterRateLimit, notImplemented } from './rate-limit-actions.ts';
import { fail, list, warn, type Ctx } from './schema.ts';
import { formatHostPort } from '../../core/host-port.ts';

/** The type URL of the global rate limit filter's config. */
export const GLOBAL_RATE_LIMIT_URL = 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit';

/** Whether a `typed_config` is a global RateLimit (direct, or in a TypedStruct). */
export function isGlobalRateLimit(v: unknown): boolean {
  return peekAny(v)?.typeUrl === GLOBAL_RATE_LIMIT_URL;
}

/** The name of the cluster a global RateLimit `typed_config` calls, if it names one. */
export function rateLimitClusterName(v: unknown): string | undefined {
  const f = peekAny(v)?.fields as Record<string, unknown> | undefined;
  const svc = (f?.rate_limit_service ?? f?.rateLimitService) as Record<string, unknown> | undefined;
  const grpc = (svc?.grpc_service ?? svc?.grpcService) as Record<string, unknown> | undefined;
  const envoy = (grpc?.envoy_grpc ?? grpc?.envoyGrpc) as Record<string, unknown> | undefined;
  const name = envoy?.cluster_name ?? envoy?.clusterName;
  return typeof name === 'string' ? name : undefined;
}

const CLUSTER_TYPES = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'] as const;

/** Cluster fields that only tune connections Envoy makes (meshlet's channel makes its own). */
const TUNING_FIELDS = new Set([
  'connect_timeout', 'connectTimeout', 'lb_policy', 'lbPolicy', 'http2_protocol_options', 'http2ProtocolOptions', 'typed_extension_protocol_options',
  'typedExtensionProtocolOptions', 'dns_refresh_rate', 'dnsRefreshRate', 'dns_lookup_family', 'dnsLookupFamily', 'respect_dns_ttl', 'respectDnsTtl',
  'circuit_breakers', 'circuitBreakers', 'common_lb_config', 'commonLbConfig', 'upstream_connection_options', 'upstreamConnectionOptions',
]);

const socketAddress = message<{ address: string; port_value: number; protocol?: string }>({
  address: { validate: nonEmptyText, required: true },
  port_value: { validate: uint32({ min: 1, max: 65535 }), required: true },
  protocol: enumOf(['TCP'] as const),
});

/**
 * Reads a `CLUSTER` `ADD` patch's value: the cluster's name and the `host:port` of its first
 * endpoint; undefined (with an error or a not-implemented note) when meshlet cannot call it.
 */
export function readRateLimitCluster(value: Record<string, unknown>, path: FieldPath, ctx: Ctx): { name: string; target: string } | undefined {
  const name = nonEmptyText(value.name, [...path, 'name'], ctx);
  if (value.name === undefined) fail(ctx, [...path, 'name'], 'is required (Envoy: a cluster must have a name)');
  const type = value.type === undefined ? 'STATIC' : enumOf(CLUSTER_TYPES)(value.type, [...path, 'type'], ctx);
  if (type === 'EDS' || type === 'ORIGINAL_DST') notImplemented(ctx, [...path, 'type'], `a ${type} cluster for the rate limit service (meshlet calls a STRICT_DNS, LOGICAL_DNS or STATIC cluster's socket address)`);
  for (const k of ['transport_socket', 'transportSocket', 'transport_socket_matches', 'transportSocketMatches']) {
    if (value[k] !== undefined) notImplemented(ctx, [...path, k], 'a transport socket (TLS) on the rate limit service cluster: meshlet calls it through the mesh, which decides TLS as Istio does for that host');
  }
  for (const k of Object.keys(value)) {
    if (['name', 'type', 'load_assignment', 'loadAssignment', 'transport_socket', 'transportSocket', 'transport_socket_matches', 'transportSocketMatches'].includes(k)) continue;
    if (!TUNING_FIELDS.has(k)) warn(ctx, [...path, k], `meshlet does not read this cluster field (it calls the rate limit service through the mesh's gRPC channel)`);
  }
  const la = (value.load_assignment ?? value.loadAssignment) as Record<string, unknown> | undefined;
  const lp = [...path, 'load_assignment'];
  if (la === undefined || typeof la !== 'object') return fail(ctx, lp, 'is required: meshlet calls the rate limit service at the socket address of the cluster\'s endpoint');
  const endpoints = la.endpoints;
  if (!Array.isArray(endpoints) || endpoints.length === 0) return fail(ctx, [...lp, 'endpoints'], 'must list the rate limit service\'s endpoint');
  const lb = (endpoints[0] as Record<string, unknown> | null)?.lb_endpoints ?? (endpoints[0] as Record<string, unknown> | null)?.lbEndpoints;
  const ep = [...lp, 'endpoints', 0, 'lb_endpoints'];
  if (!Array.isArray(lb) || lb.length === 0) return fail(ctx, ep, 'must list the rate limit service\'s endpoint');
  if (endpoints.length > 1 || lb.length > 1) warn(ctx, ep, 'meshlet calls the first endpoint only (balancing happens behind that name: a Kubernetes Service)');
  const addr = ((lb[0] as Record<string, unknown> | null)?.endpoint as Record<string, unknown> | undefined)?.address as Record<string, unknown> | undefined;
  const sp = [...ep, 0, 'endpoint', 'address', 'socket_address'];
  const sa = socketAddress(addr?.socket_address ?? addr?.socketAddress, sp, ctx);
  if (addr === undefined || (addr.socket_address ?? addr.socketAddress) === undefined) return fail(ctx, sp, 'is required (the rate limit service\'s address and port_value)');
  if (name === undefined || sa?.address === undefined || sa.port_value === undefined) return undefined;
  return { name, target: formatHostPort(sa.address, sa.port_value) };
}

/** `outbound|<port>||<host>` → `host:port` (istiod's outbound cluster names). */
function istioCluster(name: string, path: FieldPath, ctx: Ctx): string | undefined {
  const m = /^outbound\|(\d{1,5})\|([^|]*)\|([^|]+)$/.exec(name);
  if (m === null) return undefined;
  if (m[2] !== '') {
    notImplemented(ctx, path, `a subset cluster (${name}) for the rate limit service: meshlet calls ${m[3]}:${m[1]} through the mesh, which picks the subset by its VirtualService`);
    return undefined;
  }
  return `${m[3]}:${Number(m[1])}`;
}

interface RawService {
  grpc_service: { envoy_grpc?: { cluster_name: string; authority?: string }; google_grpc?: object; timeout?: number; initial_metadata?: object };
  transport_api_version?: string;
}

const rateLimitService = message<RawService>({
  grpc_service: {
    validate: message({
      envoy_grpc: message({ cluster_name: { validate: nonEmptyText, required: true }, authority: text, retry_policy: (v) => v as object, max_receive_message_length: uint32(), skip_envoy_headers: boolean }),
      google_grpc: (v, p, c) => {
        notImplemented(c, p, 'google_grpc (meshlet calls the rate limit service as envoy_grpc, through the mesh)');
        return v as object;
      },
      timeout: duration(),
      initial_metadata: (v, p, c) => {
        notImplemented(c, p, 'initial_metadata on the rate limit service call');
        return v as object;
      },
      retry_policy: (v) => v as object,
    }),
    required: true,
  },
  transport_api_version: (v, p, c) => {
    const s = enumOf(['AUTO', 'V2', 'V3'] as const)(v, p, c);
    if (s !== undefined && s !== 'V3') fail(c, p, `must be V3: Envoy removed the ${s === 'V2' ? 'v2' : 'AUTO (v2)'} rate limit service API ("V2 (and AUTO) xDS transport protocol versions are deprecated")`);
    return s;
  },
});

interface RawRateLimit {
  domain: string;
  stage?: number;
  request_type?: string;
  timeout?: number;
  failure_mode_deny?: boolean;
  rate_limited_as_resource_exhausted?: boolean;
  rate_limit_service: RawService;
  enable_x_ratelimit_headers?: 'OFF' | 'DRAFT_VERSION_03';
  disable_x_envoy_ratelimited_header?: boolean;
  rate_limited_status?: { code: number };
  response_headers_to_add?: HeaderToAdd[];
  status_on_error?: { code: number };
  stat_prefix?: string;
  rate_limits?: RateLimitPolicySettings[];
  filter_enabled?: FractionSettings;
  filter_enforced?: FractionSettings;
  failure_mode_deny_percent?: FractionSettings;
}

const rawRateLimit = message<RawRateLimit>({
  domain: { validate: nonEmptyText, required: true },
  stage: uint32({ max: 10 }),
  request_type: (v, p, c) => {
    const s = text(v, p, c);
    if (s !== undefined && !['internal', 'external', 'both', ''].includes(s)) return fail(c, p, `must be internal, external or both, got "${s}"`);
    return s;
  },
  timeout: duration(),
  failure_mode_deny: boolean,
  rate_limited_as_resource_exhausted: boolean,
  rate_limit_service: { validate: rateLimitService, required: true },
  enable_x_ratelimit_headers: enumOf(['OFF', 'DRAFT_VERSION_03'] as const),
  disable_x_envoy_ratelimited_header: boolean,
  rate_limited_status: message<{ code: number }>({ code: { validate: statusCode, required: true } }),
  response_headers_to_add: list(readHeaderToAdd, { max: 10 }),
  status_on_error: message<{ code: number }>({ code: { validate: statusCode, required: true } }),
  stat_prefix: text,
  rate_limits: list(filterRateLimit),
  // RuntimeFractionalPercent: its default_value (meshlet has no runtime; Envoy reads the runtime_key first).
  filter_enabled: readFraction,
  filter_enforced: readFraction,
  failure_mode_deny_percent: readFraction,
});

/**
 * Reads a `typed_config` that must be a global RateLimit. `clusters`: the clusters the
 * EnvoyFilter's `CLUSTER` `ADD` patches add, by name → `host:port`.
 */
export function readGlobalRateLimitAny(v: unknown, path: FieldPath, ctx: Ctx, clusters: ReadonlyMap<string, string>): GlobalRateLimitSettings | undefined {
  const any = anyValue(v, path, ctx);
  if (any === undefined) return undefined;
  if (any.typeUrl !== GLOBAL_RATE_LIMIT_URL) return fail(ctx, path, `must be a ${GLOBAL_RATE_LIMIT_URL}, got ${any.typeUrl}`);
  const r = rawRateLimit(any.fields, any.path, ctx);
  if (r?.domain === undefined || r.rate_limit_service === undefined) return undefined;
  const sp = [...any.path, 'rate_limit_service', 'grpc_service', 'envoy_grpc', 'cluster_name'];
  const clusterName = r.rate_limit_service.grpc_service?.envoy_grpc?.cluster_name;
  if (r.rate_limit_service.grpc_service?.envoy_grpc === undefined && r.rate_limit_service.grpc_service?.google_grpc === undefined) {
    return fail(ctx, [...any.path, 'rate_limit_service', 'grpc_service'], 'must set envoy_grpc.cluster_name (the cluster of the rate limit service)');
  }
  if (clusterName === undefined) return undefined;
  const target = clusters.get(clusterName) ?? istioCluster(clusterName, sp, ctx);
  if (target === undefined) {
    if (!/^outbound\|/.test(clusterName)) {
      notImplemented(ctx, sp, `a rate limit service cluster "${clusterName}" that meshlet cannot find (add it with a CLUSTER ADD patch in this EnvoyFilter, with a socket_address, or name an Istio cluster outbound|<port>||<host>)`);
    }
    return undefined;
  }
  return {
    domain: r.domain,
    stage: r.stage ?? 0,
    requestType: r.request_type === 'internal' || r.request_type === 'external' ? r.request_type : 'both',
    timeoutMs: r.timeout ?? 20,
    failureModeDeny: r.failure_mode_deny ?? false,
    rateLimitedAsResourceExhausted: r.rate_limited_as_resource_exhausted ?? false,
    clusterName,
    target,
    xRateLimitHeaders: r.enable_x_ratelimit_headers === 'DRAFT_VERSION_03',
    disableXEnvoyRateLimitedHeader: r.disable_x_envoy_ratelimited_header ?? false,
    rateLimitedStatus: r.rate_limited_status?.code === undefined || r.rate_limited_status.code < 400 ? 429 : r.rate_limited_status.code,
    responseHeadersToAdd: r.response_headers_to_add ?? [],
    statusOnError: r.status_on_error?.code === undefined || r.status_on_error.code < 400 ? 500 : r.status_on_error.code,
    rateLimits: r.rate_limits ?? [],
    filterEnabled: r.filter_enabled,
    filterEnforced: r.filter_enforced,
    failureModeDenyPercent: r.failure_mode_deny_percent,
  };
}

/**
 * The local rate limit settings a global filter patch carries for the shared engine: enabled and
 * enforced for every request, no buckets, its stage and own `rate_limits` (the engine builds the
 * descriptors from them as for a local filter; the global settings decide the rest).
 */
export function globalCarrier(g: GlobalRateLimitSettings): LocalRateLimitSettings {
  const all = { numerator: 100, denominator: 100 };
  return {
    statPrefix: 'ratelimit',
    status: g.rateLimitedStatus,
    tokenBucket: undefined,
    filterEnabled: all,
    filterEnforced: all,
    requestHeadersToAddWhenNotEnforced: [],
    responseHeadersToAdd: g.responseHeadersToAdd,
    descriptors: [],
    stage: g.stage,
    enableXRateLimitHeaders: g.xRateLimitHeaders,
    vhRateLimits: 'OVERRIDE',
    alwaysConsumeDefaultTokenBucket: false,
    rateLimitedAsResourceExhausted: g.rateLimitedAsResourceExhausted,
    rateLimits: g.rateLimits,
    maxDynamicDescriptors: 20,
    perDownstreamConnection: false,
  };
}

/**
 * The clusters the `CLUSTER` `ADD` patches of an EnvoyFilter add, by name → `host:port`, each
 * read (and checked) at its patch's path (only in an EnvoyFilter with a global rate limit filter:
 * elsewhere a CLUSTER patch makes the EnvoyFilter one meshlet skips).
 */
export function readRateLimitClusters(patches: readonly unknown[], path: FieldPath, ctx: Ctx): Map<string, string> {
  const out = new Map<string, string>();
  patches.forEach((raw, i) => {
    const cp = raw as { applyTo?: string; match?: { context?: string }; patch?: { operation?: string; value?: unknown } } | null;
    if (cp?.applyTo !== 'CLUSTER') return;
    const pp = [...path, i];
    if (cp.patch?.operation !== 'ADD') {
      notImplemented(ctx, [...pp, 'patch', 'operation'], `operation ${cp.patch?.operation} on a cluster (meshlet reads a CLUSTER ADD as the rate limit service's cluster)`);
      return;
    }
    const context = cp.match?.context;
    if (context === 'GATEWAY' || context === 'WAYPOINT') {
      warn(ctx, [...pp, 'match', 'context'], `a ${context} cluster is not added to a sidecar's clusters: the rate limit filter cannot call it`);
      return;
    }
    const value = cp.patch.value;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
    const c = readRateLimitCluster(value as Record<string, unknown>, [...pp, 'patch', 'value'], ctx);
    if (c !== undefined) out.set(c.name, c.target);
  });
  return out;
}
