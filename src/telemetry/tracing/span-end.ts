/**
 * How the tracer ends its spans: the tags an Istio sidecar's Envoy writes on a finished server
 * span (an inbound request), client span (an outbound call) and upstream span (one attempt of
 * it), and the error status. Only recorded (sampled) spans get here.
 *
 * @module
 */
import { type Attributes, type Span, SpanStatusCode } from '@opentelemetry/api';
import type { Headers } from '../../core/handler.ts';
import { formatHostPort } from '../../core/host-port.ts';
import type { AttemptEndMessage, CallEndMessage, InboundEndMessage } from '../../core/observe.ts';
import { clientRecord, serverRecord } from '../record.ts';
import { type CompiledTags, customTags, hostPortOfCluster, httpProtocol, httpUrl, isError } from './tags.ts';

/**
 * Ends the server span of an inbound request. `common`: the tags of every span of the mesh;
 * `istio`: the Istio tags, when the Telemetry enables them; `tags`: the custom tags.
 */
export function endServerSpan(span: Span, m: InboundEndMessage, requestId: string, common: Attributes, istio: Attributes | undefined, tags: CompiledTags): void {
  const a: Attributes = {
    ...common,
    'guid:x-request-id': requestId,
    'http.url': httpUrl(m.scheme, m.authority, m.path),
    'http.method': m.method,
    'http.protocol': httpProtocol(m.protocol),
    downstream_cluster: one(m.headers, 'x-envoy-downstream-service-cluster') ?? '-',
    user_agent: one(m.headers, 'user-agent') ?? '-',
    request_size: String(m.requestBytes),
    response_size: String(m.responseBytes),
    'http.status_code': String(m.status),
    response_flags: m.flags === '' ? '-' : m.flags,
    'peer.address': m.remoteAddress,
  };
  const xc = one(m.headers, 'x-client-trace-id');
  if (xc !== undefined) a['guid:x-client-trace-id'] = xc;
  // The inbound route names its cluster for every request (Envoy's connection manager attaches
  // it when the route resolves, before a filter denies: setCommonTags writes it whenever the
  // stream has one); the app's address only once the request was handed to it.
  const cluster = `inbound|${m.localPort}||`;
  a.upstream_cluster = cluster;
  a['upstream_cluster.name'] = cluster;
  if (m.deniedBy === undefined && m.status !== 0) a.upstream_address = formatHostPort(m.localAddress ?? '127.0.0.1', m.localPort);
  if (istio !== undefined) Object.assign(a, istio);
  customTags(tags, m.headers, () => serverRecord(m), a);
  if (m.protocol === 'grpc') grpcRequestTags(a, m.path, m.authority, m.headers);
  if (m.grpcStatus !== -1) a['grpc.status_code'] = String(m.grpcStatus);
  if (isError(m.status, m.grpcStatus)) {
    a.error = 'true';
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.setAttributes(a);
  span.end();
}

/** Ends the span of one attempt of an outbound call (Envoy's upstream span, `router <cluster> egress`). */
export function endAttemptSpan(span: Span, m: AttemptEndMessage): void {
  const a: Attributes = {
    component: 'proxy',
    'meshlet.attempt': m.attempt,
    upstream_cluster: m.cluster,
    'upstream_cluster.name': m.cluster,
    'http.status_code': String(m.status),
    response_flags: '-',
  };
  if (m.endpoint !== undefined) {
    a.upstream_address = m.endpoint;
    a['peer.address'] = m.endpoint;
  }
  if (m.failure !== undefined) a['error.reason'] = m.failure;
  if (m.grpcStatus !== -1) a['grpc.status_code'] = String(m.grpcStatus);
  if (m.failure !== undefined || isError(m.status, m.grpcStatus)) {
    a.error = 'true';
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.setAttributes(a);
  span.end();
}

/**
 * Ends the client span of an outbound call; `h`: the headers the call sent, `sourceIp`: this
 * workload's IP (`peer.address`). `common`, `istio` and `tags` as for {@link endServerSpan}.
 */
export function endClientSpan(span: Span, m: CallEndMessage, h: Headers, requestId: string | undefined, sourceIp: string, common: Attributes, istio: Attributes | undefined, tags: CompiledTags): void {
  // Istio's route decorator: host:port/* of the destination (route.GetRouteOperation), else the
  // authority. No route (NR) or Istio's catch-all route (allow_any, block_all: no decorator):
  // Envoy's own name for an egress span, `egress <host>` (Tracing::TracerImpl::startSpan).
  span.updateName(m.catchAll !== undefined || (m.route === undefined && m.cluster === undefined) ? `egress ${m.authority}` : `${hostPortOfCluster(m.cluster) ?? m.authority}/*`);
  const a: Attributes = {
    ...common,
    'guid:x-request-id': requestId ?? '-',
    'http.url': httpUrl('http', m.authority, m.path),
    'http.method': m.method,
    'http.protocol': httpProtocol(m.protocol),
    downstream_cluster: '-',
    user_agent: one(h, 'user-agent') ?? '-',
    request_size: String(m.requestBytes),
    response_size: String(m.responseBytes),
    'http.status_code': String(m.status),
    response_flags: m.flags === '' ? '-' : m.flags,
    'peer.address': sourceIp,
  };
  if (m.cluster !== undefined) {
    a.upstream_cluster = m.cluster;
    a['upstream_cluster.name'] = m.cluster;
  }
  if (m.endpoint !== undefined) a.upstream_address = m.endpoint;
  if (istio !== undefined) Object.assign(a, istio);
  customTags(tags, h, () => clientRecord(m, { requestHeaders: h }), a);
  if (m.protocol === 'grpc') grpcRequestTags(a, m.path, m.authority, h);
  if (m.grpcStatus !== -1) a['grpc.status_code'] = String(m.grpcStatus);
  if (isError(m.status, m.grpcStatus) || m.error !== undefined) {
    a.error = 'true';
    span.setStatus({ code: SpanStatusCode.ERROR, message: m.error?.message });
  }
  span.setAttributes(a);
  span.end();
}

/**
 * The tags Envoy's tracer adds to the span of a gRPC request (HttpTracerUtility::addGrpcRequestTags):
 * `grpc.path`, `grpc.authority`, `grpc.content_type`, and `grpc.timeout` when the caller set one.
 */
function grpcRequestTags(a: Attributes, path: string, authority: string, h: Headers): void {
  a['grpc.path'] = path;
  a['grpc.authority'] = authority;
  const type = one(h, 'content-type');
  if (type !== undefined) a['grpc.content_type'] = type;
  const timeout = one(h, 'grpc-timeout');
  if (timeout !== undefined) a['grpc.timeout'] = timeout;
}

function one(h: Headers, name: string): string | undefined {
  const v = h[name];
  return typeof v === 'string' ? v : v?.[0];
}
