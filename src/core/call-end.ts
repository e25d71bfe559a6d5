/**
 * The `meshlet:call:end` message of a finished {@link Exchange} (see observe.ts): what the call
 * asked for, where the layers sent it (route, cluster, endpoint, the destination's identity as
 * registered), how it ended and how long it took. Built only when the channel has subscribers.
 *
 * @module
 */
import { ReplayableBody } from './body.ts';
import { OversizedBody } from './replay.ts';
import type { ClusterRef, ExchangeState, HostRef, Named } from './exchange-state.ts';
import type { CallEndMessage } from './observe.ts';

/** Istio's cluster for calls to hosts outside the mesh under `ALLOW_ANY`. */
const PASSTHROUGH_CLUSTER = 'PassthroughCluster';

/** An endpoint without labels (one object: telemetry caches by the labels' identity). */
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/** The end message of `ex`, which ended with `error` (undefined: an answer). */
export function callEndMessage(ex: ExchangeState, error: Error | undefined): CallEndMessage {
  const cluster = ex.cluster as ClusterRef | undefined;
  const host = ex.host as HostRef | undefined;
  const ep = host?.endpoint;
  const body = ex.body;
  // Counted by bodies that frame messages (a gRPC call's): undefined for other bodies. The
  // exchange of such a call counts the messages it delivered (a field of the adapter's own
  // Exchange, not of every HTTP call's).
  const requestMessages = body instanceof ReplayableBody ? body.messages : undefined;
  return {
    workload: ex.workload,
    call: ex,
    protocol: ex.protocol,
    method: ex.method,
    authority: ex.authority,
    path: ex.path,
    route: (ex.route as Named | undefined)?.name,
    // Envoy names the cluster of a passthrough call PassthroughCluster (%UPSTREAM_CLUSTER%, the span's upstream_cluster, destination_service_name).
    cluster: cluster?.name ?? (ex.catchAll === 'allow_any' ? PASSTHROUGH_CLUSTER : undefined),
    catchAll: ex.catchAll,
    destinationService: cluster?.cluster?.host,
    destinationServiceNamespace: cluster?.cluster?.service?.namespace,
    endpoint: host?.key,
    destination: ep === undefined ? undefined : { serviceAccount: ep.serviceAccount ?? 'default', labels: ep.labels ?? NO_LABELS, namespace: ep.namespace ?? '', workload: ep.workloadName ?? '' },
    status: ex.status,
    grpcStatus: ex.grpcStatus,
    flags: ex.flags,
    attempts: ex.attempts,
    requestBytes: (body instanceof ReplayableBody ? body.bytes : body instanceof OversizedBody ? body.byteLength : typeof body === 'string' ? Buffer.byteLength(body) : ArrayBuffer.isView(body) ? body.byteLength : 0) + ex.upgradedBytesSent,
    responseBytes: ex.responseBytes,
    requestMessages,
    responseMessages: requestMessages === undefined ? undefined : (ex as { readonly responseMessages?: number }).responseMessages,
    responseHeaders: ex.responseHeaders,
    durationMs: ex.clock === undefined ? 0 : ex.clock.now() - ex.startedAt,
    error,
    rendered: ex.rendered,
  };
}
