/**
 * The names of the per-cluster counters `/stats` lists for every cluster of the config, 0 until
 * written, as Envoy lists a cluster's stats whether or not anything was counted
 * (`mesh-stats.ts` counts them).
 *
 * @module
 */

/** Counters every outbound cluster shows, 0 until written (as Envoy lists them). */
export const CLUSTER_COUNTERS = [
  'upstream_cx_connect_fail',
  'upstream_cx_connect_timeout',
  'upstream_cx_destroy',
  'upstream_cx_destroy_local',
  'upstream_cx_destroy_remote',
  'upstream_cx_overflow',
  'upstream_cx_rx_bytes_total',
  'upstream_cx_total',
  'upstream_cx_tx_bytes_total',
  'upstream_rq_cancelled',
  'upstream_rq_completed',
  'upstream_rq_pending_overflow',
  'upstream_rq_pending_total',
  'upstream_rq_per_try_timeout',
  'upstream_rq_retry',
  'upstream_rq_retry_limit_exceeded',
  'upstream_rq_retry_overflow',
  'upstream_rq_retry_success',
  'upstream_rq_rx_reset',
  'upstream_rq_timeout',
  'upstream_rq_total',
] as const;

/** Outlier-detection counters of a cluster that has outlier detection. */
export const OUTLIER_COUNTERS = [
  'outlier_detection.ejections_detected_consecutive_5xx',
  'outlier_detection.ejections_detected_consecutive_gateway_failure',
  'outlier_detection.ejections_detected_consecutive_local_origin_failure',
  'outlier_detection.ejections_enforced_consecutive_5xx',
  'outlier_detection.ejections_enforced_consecutive_gateway_failure',
  'outlier_detection.ejections_enforced_consecutive_local_origin_failure',
  'outlier_detection.ejections_enforced_total',
  'outlier_detection.ejections_overflow',
  'outlier_detection.ejections_total',
] as const;
