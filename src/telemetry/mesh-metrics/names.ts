/**
 * The table of meshlet's own data-plane metrics: name (as Prometheus shows it), kind, unit, help
 * and labels besides `mesh_service` and `mesh_namespace`. docs/telemetry.md lists the same; a
 * test checks every one is produced.
 *
 * @module
 */

/** One metric of the table. */
export interface MeshMetricSpec {
  readonly kind: 'counter' | 'gauge';
  /**
   * UCUM unit given to OpenTelemetry (`s`, `{request}`, …), '' for none. Never `1`: pushed over
   * OTLP, a gauge of unit `1` is stored by Prometheus as `<name>_ratio` (the OpenTelemetry→Prometheus
   * translation), and these names must stay as documented.
   */
  readonly unit: string;
  readonly help: string;
  readonly labels: readonly string[];
  /** The Envoy statistic it stands for, when there is one. */
  readonly envoy?: string;
}

/** Every own metric, by name. */
export const MESH_METRICS = {
  meshlet_config_version: {
    kind: 'gauge',
    unit: '',
    help: 'The config version in use as a number: a meshlet content version (12 hex digits) read as hex, any other version text the first 48 bits of its SHA-256; 0 for none.',
    labels: [],
    envoy: 'cluster_manager.cds.version',
  },
  meshlet_config_source: {
    kind: 'gauge',
    unit: '',
    help: 'Where the config in use came from: 1 for the source in use (file, control-plane, cache, none), 0 for the others.',
    labels: ['source'],
  },
  meshlet_config_last_applied_timestamp_seconds: {
    kind: 'gauge',
    unit: 's',
    help: 'When the mesh last put a config in use, in seconds since the epoch.',
    labels: [],
    envoy: 'server.config_reload_time_ms',
  },
  meshlet_config_applied_total: {
    kind: 'counter',
    unit: '{config}',
    help: 'Configs the mesh put in use, by source.',
    labels: ['source'],
    envoy: 'cluster_manager.cds.update_success',
  },
  meshlet_config_rejected_total: {
    kind: 'counter',
    unit: '{config}',
    help: 'Configs the mesh refused (the last good one kept serving).',
    labels: [],
    envoy: 'cluster_manager.cds.update_rejected',
  },
  meshlet_retries_total: {
    kind: 'counter',
    unit: '{retry}',
    help: 'Attempts beyond the first of outbound calls, by destination cluster.',
    labels: ['cluster'],
    envoy: 'cluster.<name>.upstream_rq_retry',
  },
  meshlet_retry_budget_exhausted_total: {
    kind: 'counter',
    unit: '{retry}',
    help: 'Retries not made because the destination retry budget or maxRetries was used up (response flag UO).',
    labels: ['cluster', 'limit'],
    envoy: 'cluster.<name>.upstream_rq_retry_overflow',
  },
  meshlet_outlier_ejections_total: {
    kind: 'counter',
    unit: '{ejection}',
    help: 'Endpoints ejected by outlier detection, by cluster and detector (and endpoint, with endpointLabels).',
    labels: ['cluster', 'detector'],
    envoy: 'cluster.<name>.outlier_detection.ejections_enforced_<detector>',
  },
  meshlet_outlier_ejected_endpoints: {
    kind: 'gauge',
    unit: '{endpoint}',
    help: 'Endpoints ejected now, by cluster (clusters with outlier detection that calls have used).',
    labels: ['cluster'],
    envoy: 'cluster.<name>.outlier_detection.ejections_active',
  },
  meshlet_pool_overflows_total: {
    kind: 'counter',
    unit: '{request}',
    help: 'Requests refused by connection-pool limits (503, response flag UO), by cluster: outbound attempts (outbound|port|subset|host) and inbound requests (inbound|port||).',
    labels: ['cluster'],
    envoy: 'cluster.<name>.upstream_rq_pending_overflow',
  },
  meshlet_mirror_dropped_total: {
    kind: 'counter',
    unit: '{request}',
    help: 'Mirrored copies not sent, by mirror cluster and reason (max-in-flight, body-too-large, no-cluster).',
    labels: ['cluster', 'reason'],
  },
  meshlet_access_log_dropped_total: {
    kind: 'counter',
    unit: '{record}',
    help: 'Access-log records an envoyOtelAls or envoyHttpAls provider did not deliver, by provider and reason (buffer-full: the batch was full while exports were in flight, or the log service stream could not take it; export-failed: the Export call failed, or the stream failed before taking the entries; rejected: the collector rejected them (partial_success); closed: logged after mesh.close(), or not sent within closeTimeoutMs); and lines a file log dropped (write-failed: the file could not be opened or written a moment ago; buffer-full: 1 MiB waiting to be written).',
    labels: ['provider', 'reason'],
    envoy: 'access_logs.open_telemetry_access_log.logs_dropped',
  },
  meshlet_authz_decisions_total: {
    kind: 'counter',
    unit: '{request}',
    help: 'Authorization decisions on inbound requests, by the policy and action that decided (empty when none did) and the decision.',
    labels: ['policy', 'action', 'decision'],
    envoy: 'http.<prefix>.rbac.allowed / rbac.denied',
  },
  meshlet_authz_dry_run_decisions_total: {
    kind: 'counter',
    unit: '{request}',
    help: 'What dry-run AuthorizationPolicies would have decided, by policy, action and result.',
    labels: ['policy', 'action', 'result'],
    envoy: 'http.<prefix>.rbac.shadow_allowed / rbac.shadow_denied',
  },
  meshlet_inbound_tls_requests_total: {
    kind: 'counter',
    unit: '{request}',
    help: 'Inbound requests by how they arrived: connection_security_policy mutual_tls or none (plaintext). Ready for STRICT when none stops growing.',
    labels: ['connection_security_policy'],
  },
  meshlet_inbound_connections_refused_total: {
    kind: 'counter',
    unit: '{connection}',
    help: 'Inbound connections closed before any HTTP (PeerAuthentication STRICT plaintext, a bad peer certificate), by port mode and transport.',
    labels: ['mode', 'transport'],
  },
  istio_build: {
    kind: 'gauge',
    unit: '',
    help: "Istio component build info: 1, with the component (proxy: the mesh stands where a sidecar's proxy would) and its version (tag: meshlet's version).",
    labels: ['component', 'tag'],
    envoy: "istio_build (the proxy's, component=\"proxy\")",
  },
} as const satisfies Record<string, MeshMetricSpec>;
