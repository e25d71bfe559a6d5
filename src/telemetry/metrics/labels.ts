/**
 * The labels of Istio's standard metrics, computed as the proxy's stats filter computes them
 * (istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc`
 * `populatePeerInfo` and `log`): one function for the client side (`reporter="source"`, from a
 * `meshlet:call:end`), one for the server side (`reporter="destination"`, from a
 * `meshlet:inbound:end`).
 *
 * Where the proxy writes `unknown` (a peer it knows nothing about) so does this; the local
 * workload's own `app` / `version` are its labels or '' (the proxy reads them from its node
 * metadata the same way), and a missing canonical revision is `latest`.
 *
 * @module
 */
import type { CallEndMessage, InboundEndMessage } from '../../core/observe.ts';
import { canonicalName, canonicalRevision, type PeerMetadata, WORKLOAD_NAME_LABEL } from './peer-metadata.ts';

/** Every label of the standard HTTP metrics, in the proxy's order. */
export const STANDARD_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
  'response_code',
  'grpc_response_status',
] as const;

/** A standard label's name. */
export type StandardLabel = (typeof STANDARD_LABELS)[number];

/** The labels the proxy adds when the request ends (its `log`), after the peers' labels. */
const REQUEST_END_LABELS: ReadonlySet<string> = new Set(['request_protocol', 'response_flags', 'connection_security_policy', 'response_code', 'grpc_response_status']);

/**
 * The labels of the gRPC message counters: a request's without the ones the proxy adds when it
 * ends (the stats filter reports the counts with the reporter's and the peers' labels only,
 * before it adds request_protocol, response_code, grpc_response_status, response_flags and
 * connection_security_policy). Labels a tag override added are kept.
 */
export function messageLabels(labels: MetricLabels): MetricLabels {
  const out = Object.create(null) as MetricLabels;
  for (const k in labels) if (!REQUEST_END_LABELS.has(k)) out[k] = labels[k] as string;
  return out;
}

/** One metric data point's labels (a null-prototype object: keys may come from config). */
export type MetricLabels = Record<string, string>;

/** The local workload, as its own metrics name it. */
export interface LocalWorkload {
  /** The workload name (`WORKLOAD_NAME`). */
  readonly workload: string;
  readonly namespace: string;
  readonly service: string;
  readonly labels: Readonly<Record<string, string>>;
  /** `CLUSTER_ID`. */
  readonly cluster: string;
  /** `<service>.<namespace>.svc.cluster.local`: the service this workload serves. */
  readonly serviceHost: string;
  /**
   * By local port, the host of the oldest Service (or ServiceEntry) that selects this workload
   * there: what istiod puts first in the inbound cluster's `istio.services` metadata, which the
   * server side reports. A port no Service reaches is absent (the `service` option's host is reported).
   */
  readonly inboundHosts?: ReadonlyMap<number, string> | undefined;
  /** This workload's SPIFFE ID while it has a certificate, else ''. */
  principal(): string;
}

const UNKNOWN = 'unknown';

const or = (v: string | undefined, fallback: string): string => (v === undefined || v === '' ? fallback : v);

/** The namespace in a SPIFFE ID (`…/ns/<ns>/sa/…`), or ''. */
export function namespaceOfPrincipal(principal: string): string {
  const i = principal.indexOf('/ns/');
  if (i < 0) return '';
  const rest = principal.slice(i + 4);
  const j = rest.indexOf('/');
  return j < 0 ? rest : rest.slice(0, j);
}

function protocolOf(p: string): string {
  return p === 'grpc' ? 'grpc' : 'http';
}

function grpcStatusOf(protocol: string, grpcStatus: number): string {
  return protocol === 'grpc' && grpcStatus >= 0 ? String(grpcStatus) : '';
}

/** Short service name of a host: the first label of a `*.svc.*` host, else the host. */
function serviceNameOf(host: string): string {
  const i = host.indexOf('.svc.');
  if (i < 0) return host;
  const dot = host.indexOf('.');
  return host.slice(0, dot);
}

/**
 * What the client knows of the destination without metadata exchange: the endpoint's registry
 * entry (Istio's endpoint metadata `workload;namespace;canonical-name;canonical-revision;cluster`,
 * which carries no `app` / `version`).
 */
export function endpointPeer(d: NonNullable<CallEndMessage['destination']>): PeerMetadata {
  const labels = d.labels;
  // The registry's workload name (istiod's: a WorkloadEntry's group, label or name), else the label.
  const workload = d.workload || (Object.hasOwn(labels, WORKLOAD_NAME_LABEL) ? (labels[WORKLOAD_NAME_LABEL] as string) : '');
  return {
    instance: '',
    namespace: d.namespace,
    workload,
    cluster: Object.hasOwn(labels, 'topology.istio.io/cluster') ? (labels['topology.istio.io/cluster'] as string) : '',
    canonicalName: canonicalName(labels, workload),
    canonicalRevision: canonicalRevision(labels),
    app: '',
    version: '',
  };
}

/**
 * The labels of a client-side (`reporter="source"`) data point. `peer` is what is known of the
 * destination workload (metadata exchange, else the endpoint's registry entry), or undefined;
 * `tls` the SPIFFE IDs of both sides when the call went over Istio mTLS.
 */
export function sourceReporterLabels(m: CallEndMessage, local: LocalWorkload, peer: PeerMetadata | undefined, tls?: { readonly local: string; readonly peer: string }): MetricLabels {
  const l: MetricLabels = Object.create(null);
  const peerSan = tls?.peer ?? '';
  // The proxy takes the peer's namespace from its certificate first, then from its metadata.
  const peerNs = (peerSan !== '' ? namespaceOfPrincipal(peerSan) : '') || (peer?.namespace ?? '');
  // destination_service: the cluster's service, else the Host header (the outbound side falls back to it).
  const host = m.destinationService ?? m.authority;
  let hostName: string;
  if (m.destinationService !== undefined) hostName = serviceNameOf(m.destinationService);
  else if (m.cluster === 'PassthroughCluster' || m.cluster?.startsWith('PassthroughCluster') === true) hostName = 'PassthroughCluster';
  // As the proxy's stats filter names the route block_all (REGISTRY_ONLY) or the cluster.
  else if (m.catchAll === 'block_all' || m.cluster === 'BlackHoleCluster') hostName = 'BlackHoleCluster';
  else hostName = m.authority;
  l['reporter'] = 'source';
  l['source_workload'] = local.workload;
  l['source_canonical_service'] = canonicalName(local.labels, local.workload);
  l['source_canonical_revision'] = canonicalRevision(local.labels);
  l['source_workload_namespace'] = local.namespace;
  l['source_principal'] = or(tls?.local, UNKNOWN);
  l['source_app'] = Object.hasOwn(local.labels, 'app') ? (local.labels['app'] as string) : '';
  l['source_version'] = Object.hasOwn(local.labels, 'version') ? (local.labels['version'] as string) : '';
  l['source_cluster'] = local.cluster;
  l['destination_workload'] = or(peer?.workload, UNKNOWN);
  l['destination_workload_namespace'] = or(peerNs, UNKNOWN);
  l['destination_principal'] = or(peerSan, UNKNOWN);
  l['destination_app'] = or(peer?.app, UNKNOWN);
  l['destination_version'] = or(peer?.version, UNKNOWN);
  l['destination_service'] = or(host, UNKNOWN);
  l['destination_canonical_service'] = or(peer?.canonicalName, UNKNOWN);
  l['destination_canonical_revision'] = or(peer?.canonicalRevision, 'latest');
  l['destination_service_name'] = or(hostName, UNKNOWN);
  // The cluster's service namespace (its istio metadata), else the peer's: the proxy reads the
  // cluster's whenever the route named one, endpoint or not (UH, FI, UO, …).
  l['destination_service_namespace'] = or(m.destinationServiceNamespace, or(peerNs, UNKNOWN));
  l['destination_cluster'] = or(peer?.cluster, UNKNOWN);
  l['request_protocol'] = protocolOf(m.protocol);
  l['response_flags'] = m.flags === '' ? '-' : m.flags;
  l['connection_security_policy'] = UNKNOWN;
  l['response_code'] = String(m.status);
  l['grpc_response_status'] = grpcStatusOf(m.protocol, m.grpcStatus);
  return l;
}

/**
 * The labels of a server-side (`reporter="destination"`) data point. `peer` is what the
 * caller's metadata-exchange headers said, or undefined.
 */
export function destinationReporterLabels(m: InboundEndMessage, local: LocalWorkload, peer: PeerMetadata | undefined): MetricLabels {
  const l: MetricLabels = Object.create(null);
  const peerSan = m.peer?.principal ?? '';
  const localSan = m.mtls ? local.principal() : '';
  const peerNs = peerSan !== '' ? or(namespaceOfPrincipal(peerSan), peer?.namespace ?? '') : (peer?.namespace ?? '');
  const canonical = canonicalName(local.labels, local.workload);
  l['reporter'] = 'destination';
  l['source_workload'] = or(peer?.workload, UNKNOWN);
  l['source_canonical_service'] = or(peer?.canonicalName, UNKNOWN);
  l['source_canonical_revision'] = or(peer?.canonicalRevision, 'latest');
  l['source_workload_namespace'] = or(peerNs, UNKNOWN);
  l['source_principal'] = or(peerSan, UNKNOWN);
  l['source_app'] = or(peer?.app, UNKNOWN);
  l['source_version'] = or(peer?.version, UNKNOWN);
  l['source_cluster'] = or(peer?.cluster, UNKNOWN);
  l['destination_workload'] = local.workload;
  l['destination_workload_namespace'] = local.namespace;
  l['destination_principal'] = or(localSan, UNKNOWN);
  l['destination_app'] = Object.hasOwn(local.labels, 'app') ? (local.labels['app'] as string) : '';
  l['destination_version'] = Object.hasOwn(local.labels, 'version') ? (local.labels['version'] as string) : '';
  // The inbound side does not read the Host header (Istio sets disable_host_header_fallback there):
  // the inbound cluster's first service, the oldest one selecting the workload on that port.
  const host = local.inboundHosts?.get(m.localPort);
  l['destination_service'] = host ?? local.serviceHost;
  l['destination_canonical_service'] = canonical;
  l['destination_canonical_revision'] = canonicalRevision(local.labels);
  l['destination_service_name'] = host === undefined ? local.service : serviceNameOf(host);
  l['destination_service_namespace'] = local.namespace;
  l['destination_cluster'] = local.cluster;
  l['request_protocol'] = protocolOf(m.protocol);
  l['response_flags'] = m.flags === '' ? '-' : m.flags;
  l['connection_security_policy'] = peerSan !== '' && localSan !== '' ? 'mutual_tls' : 'none';
  l['response_code'] = String(m.status);
  l['grpc_response_status'] = grpcStatusOf(m.protocol, m.grpcStatus);
  return l;
}
