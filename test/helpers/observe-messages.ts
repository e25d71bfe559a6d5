/**
 * Observation messages as the kernel and the server adapters publish them (`meshlet:call:end`,
 * `meshlet:inbound:end`), with everyday defaults, for tests of their subscribers.
 */
import type { CallEndMessage, InboundEndMessage, WorkloadIdentity } from '../../src/core/observe.ts';

/** A call from `workload` to ratings (v1) that got 200. */
export function callEndMessage(workload: WorkloadIdentity, over: Partial<CallEndMessage> = {}): CallEndMessage {
  return {
    workload,
    call: {},
    protocol: 'http1',
    method: 'GET',
    authority: 'ratings:9080',
    path: '/r',
    route: 'ratings.default',
    cluster: 'outbound|9080||ratings.shop.svc.cluster.local',
    destinationService: 'ratings.shop.svc.cluster.local',
    endpoint: '10.0.0.7:9080',
    destination: { serviceAccount: 'ratings', namespace: 'shop', labels: { app: 'ratings', version: 'v1', 'service.istio.io/workload-name': 'ratings-v1', 'topology.istio.io/cluster': 'Kubernetes' } },
    status: 200,
    grpcStatus: -1,
    flags: '',
    attempts: 1,
    requestBytes: 10,
    responseBytes: 200,
    durationMs: 7,
    error: undefined,
    ...over,
  };
}

/** A plaintext request to `workload` (reviews:9080) its app answered with 200. */
export function inboundEndMessage(workload: WorkloadIdentity, over: Partial<InboundEndMessage> = {}): InboundEndMessage {
  return {
    workload,
    request: {},
    protocol: 'http1',
    method: 'GET',
    scheme: 'http',
    authority: 'reviews:9080',
    path: '/reviews/1',
    headers: {},
    status: 200,
    grpcStatus: -1,
    flags: '',
    details: 'via_upstream',
    deniedBy: undefined,
    requestBytes: 120,
    responseBytes: 900,
    durationMs: 12,
    mtls: false,
    peer: undefined,
    requestPrincipal: undefined,
    authzPolicy: undefined,
    remoteAddress: '127.0.0.1',
    remotePort: 5000,
    localAddress: '127.0.0.1',
    localPort: 9080,
    sni: undefined,
    responseHeaders: undefined,
    error: undefined,
    ...over,
  };
}
