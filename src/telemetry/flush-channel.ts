/**
 * How `telemetry.flush()` (`meshlet/telemetry`) reaches what the meshes of the process hold that
 * the OpenTelemetry SDK does not: each `envoyOtelAls` access log's batch. The SDK's providers are
 * flushed through the SDK; the meshes listen on a process-wide diagnostics channel (one by name,
 * whichever copy of this module a bundle loaded), so neither holds the other.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';

/** Published by {@link flushMeshTelemetry}: each mesh adds what it waits for. */
export interface TelemetryFlushMessage {
  readonly waits: Promise<void>[];
}

/** `meshlet:telemetry:flush`: a flush is asked for. */
export const telemetryFlush = channel('meshlet:telemetry:flush');

/**
 * Asks every mesh of the process to send what it batches for export now — each `envoyOtelAls`
 * access log's batch — and waits for those exports (10 s each at most). `telemetry.flush()` of
 * `meshlet/telemetry` calls it; an app that runs its own OpenTelemetry SDK calls it (exported from
 * `meshlet` as `flushAccessLogs`) next to its providers' `forceFlush()` before a serverless
 * handler returns.
 * @example
 * import { flushAccessLogs } from 'meshlet';
 * await Promise.all([flushAccessLogs(), tracerProvider.forceFlush()]);
 */
export async function flushMeshTelemetry(): Promise<void> {
  if (!telemetryFlush.hasSubscribers) return;
  const m: TelemetryFlushMessage = { waits: [] };
  telemetryFlush.publish(m);
  await Promise.all(m.waits);
}
