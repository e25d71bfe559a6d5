/**
 * telemetry.istio.io Telemetry resource.
 *
 * @module
 */
import type { LabelSelector, PolicyTargetReference } from './common.ts';

/** Which side of a call a telemetry rule applies to. */
export type WorkloadMode = 'CLIENT_AND_SERVER' | 'CLIENT' | 'SERVER';

/** A provider reference. */
export interface ProviderRef {
  name: string;
}

/** `Telemetry.spec`. */
export interface TelemetrySpec {
  selector?: LabelSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  tracing?: TelemetryTracing[];
  metrics?: TelemetryMetrics[];
  accessLogging?: TelemetryAccessLogging[];
}

/** Tracing settings. */
export interface TelemetryTracing {
  match?: { mode?: WorkloadMode };
  providers?: ProviderRef[];
  randomSamplingPercentage?: number;
  disableSpanReporting?: boolean;
  customTags?: Record<string, TracingCustomTag>;
  enableIstioTags?: boolean;
  disableContextPropagation?: boolean;
  useRequestIdForTraceSampling?: boolean;
}

/** A custom span tag. */
export interface TracingCustomTag {
  literal?: { value: string };
  environment?: { name: string; defaultValue?: string };
  header?: { name: string; defaultValue?: string };
  formatter?: { value: string };
}

/** Metrics settings. */
export interface TelemetryMetrics {
  providers?: ProviderRef[];
  overrides?: MetricsOverride[];
  reportingInterval?: string;
}

/** A metric override. */
export interface MetricsOverride {
  match?: { metric?: IstioMetric; customMetric?: string; mode?: WorkloadMode };
  disabled?: boolean;
  tagOverrides?: Record<string, { operation?: 'UPSERT' | 'REMOVE'; value?: string }>;
}

/** Istio standard metric names. */
export type IstioMetric =
  | 'ALL_METRICS'
  | 'REQUEST_COUNT'
  | 'REQUEST_DURATION'
  | 'REQUEST_SIZE'
  | 'RESPONSE_SIZE'
  | 'TCP_OPENED_CONNECTIONS'
  | 'TCP_CLOSED_CONNECTIONS'
  | 'TCP_SENT_BYTES'
  | 'TCP_RECEIVED_BYTES'
  | 'GRPC_REQUEST_MESSAGES'
  | 'GRPC_RESPONSE_MESSAGES';

/** Access-log settings. */
export interface TelemetryAccessLogging {
  match?: { mode?: WorkloadMode };
  providers?: ProviderRef[];
  disabled?: boolean;
  filter?: { expression: string };
}
