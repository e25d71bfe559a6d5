/**
 * What Istio's standard metrics are given: the `telemetry.metrics` options of `createMesh`, and
 * what the mesh tells its `IstioMetrics` (`istio-metrics.ts`) (identity, clock, this workload's principal, how
 * to tell an in-mesh call).
 *
 * @module
 */
import type { MeterProvider } from '@opentelemetry/api';
import type { WorkloadIdentity } from '../../core/observe.ts';
import { optionNames } from '../../core/option-names.ts';

/**
 * The `telemetry.metrics` options of `createMesh`.
 * @category Telemetry
 */
export interface MetricsOptions {
  /**
   * Record Istio's standard metrics (and exchange peer metadata) at all.
   * @defaultValue true
   */
  readonly enabled?: boolean | undefined;
  /**
   * The MeterProvider to record through.
   * @defaultValue the global one (`metrics.getMeterProvider()`, looked up again when it changes)
   */
  readonly meterProvider?: MeterProvider | undefined;
  /**
   * At most this many label sets per metric; data points beyond it are recorded under
   * `otel.metric.overflow="true"`, and a warning is logged once per metric. (Below the SDK's
   * default cardinality limit of 2000, so the SDK never folds meshlet's series itself.)
   * @defaultValue 1000
   */
  readonly maxSeries?: number | undefined;
  /**
   * A label set unseen this long no longer counts against `maxSeries`; `startTelemetry()`'s
   * Prometheus endpoint drops such series from its output after the same time.
   * @defaultValue 600000 (10 minutes)
   */
  readonly idleSeriesMs?: number | undefined;
  /**
   * The cluster name in `source_cluster` / `destination_cluster` (Istio's `CLUSTER_ID`).
   * @defaultValue 'Kubernetes'
   */
  readonly clusterId?: string | undefined;
}

/** The names of {@link MetricsOptions} (createMesh refuses others), checked against the type. @internal */
export const METRICS_OPTION_NAMES = optionNames<MetricsOptions>()(['enabled', 'meterProvider', 'maxSeries', 'idleSeriesMs', 'clusterId']);

/** What a mesh gives its metrics. */
export interface IstioMetricsContext {
  readonly identity: WorkloadIdentity;
  /** Istio's workload name (`WORKLOAD_NAME`). */
  readonly workloadName: string;
  readonly now: () => number;
  readonly warn: (message: string) => void;
  /** This workload's SPIFFE ID while it has a certificate, else ''. */
  readonly principal: () => string;
  /** True when an outbound call (an Exchange, at its attempt's start) goes to an in-mesh destination: it then carries the peer-metadata headers. */
  readonly inMesh: (call: object) => boolean;
  /** The IP named in the node ID. */
  readonly ip: string;
  /**
   * When an outbound call (an Exchange, at its end) went to its endpoint over Istio mTLS: this
   * workload's SPIFFE ID and the endpoint's (`source_principal` / `destination_principal` on
   * the client side); undefined otherwise.
   */
  readonly upstreamPrincipals?: (call: object) => { readonly local: string; readonly peer: string } | undefined;
}
