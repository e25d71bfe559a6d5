/**
 * `meshlet:outlier:overflow`: outlier detection decided to eject an endpoint and did not, because
 * `maxEjectionPercent` of the cluster's endpoints were ejected already (Envoy's
 * `outlier_detection.ejections_overflow`). Published by the outbound pipeline when someone
 * subscribes, as the channels of `observe.ts`.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import type { OutlierDetectorKind, WorkloadIdentity } from './observe.ts';

/** `meshlet:outlier:overflow`. */
export interface OutlierOverflowMessage {
  readonly workload: WorkloadIdentity | undefined;
  /** `outbound|port|subset|host`. */
  readonly cluster: string;
  /** The endpoint that was not ejected (`address:port`). */
  readonly endpoint: string;
  /** The detector that fired. */
  readonly detector: OutlierDetectorKind;
}

/** The channel. */
export const outlierOverflowChannel = channel('meshlet:outlier:overflow');
