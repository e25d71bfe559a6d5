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

/** Asks every mesh of the process to send what it batches for export now, and waits for those exports. */
export async function flushMeshTelemetry(): Promise<void> {
  if (!telemetryFlush.hasSubscribers) return;
  const m: TelemetryFlushMessage = { waits: [] };
  telemetryFlush.publish(m);
  await Promise.all(m.waits);
}
