/**
 * Sends one `envoyOtelAls` provider's log records to its collector in batches, as Envoy's
 * OpenTelemetry access logger does (`access_loggers/common/grpc_access_logger.h` `log`,
 * `canLogMore`, `flush`; `open_telemetry/grpc_access_log_impl.cc` with its unary client):
 *
 * - a record joins the batch while the batch is under `buffer_size_bytes` (16 KiB, Envoy's
 *   default); a batch that reaches it is sent at once; otherwise the batch goes out on the
 *   `buffer_flush_interval` timer (1 s, Envoy's default). A record that finds the batch full is
 *   sent after a flush, else dropped (`logs_dropped`).
 * - each batch is one `LogsService/Export` call; a failed call drops its records (`logs_dropped`).
 *
 * Where meshlet differs, to keep memory bounded and never slow a request: at most
 * {@link MAX_EXPORTS_IN_FLIGHT} calls are in flight (Envoy does not bound them); while they
 * are, the batch is not sent, fills up, and further records are dropped and counted; a call that
 * has no answer after {@link EXPORT_TIMEOUT_MS} fails (Envoy's call has no timeout). Records are
 * handed over already encoded: the request path does no I/O and never waits.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import type { Clock, Timer } from '../../core/clock.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';
import { callUnary, type UnaryRequester } from '../../core/unary-call.ts';
import { decodeExportLogsResponse, encodeExportLogsRequest, OTLP_LOGS_EXPORT } from './otlp-wire.ts';

/** Envoy's default `buffer_flush_interval`. */
export const DEFAULT_FLUSH_INTERVAL_MS = 1000;
/** Envoy's default `buffer_size_bytes`. */
export const DEFAULT_BUFFER_BYTES = 16384;
/** Export calls in flight per provider (meshlet's bound). */
export const MAX_EXPORTS_IN_FLIGHT = 4;
/** How long one export call may take (meshlet's bound). */
export const EXPORT_TIMEOUT_MS = 10_000;

/** Why records were dropped: the batch was full while exports were in flight, or their export failed. */
export type AccessLogDropReason = 'buffer-full' | 'export-failed';

/** `meshlet:access-log:dropped`: records an `envoyOtelAls` access log dropped (meshlet's own metrics count them). */
export interface AccessLogDroppedMessage {
  readonly workload: WorkloadIdentity;
  readonly provider: string;
  readonly count: number;
  readonly reason: AccessLogDropReason;
}

/** The channel {@link AccessLogDroppedMessage}s are published on. */
export const accessLogDropped = channel('meshlet:access-log:dropped');

/**
 * What one `envoyOtelAls` access log counted (Envoy's `access_logs.open_telemetry_access_log.logs_written` / `logs_dropped`).
 * @category Telemetry
 */
export interface OtelExportStats {
  /** Records taken into a batch. */
  readonly written: number;
  /** Records dropped: the batch full while exports were in flight, or their export failed. */
  readonly dropped: number;
  /** Records the collector accepted (an answer without rejections). */
  readonly exported: number;
}

export interface OtelLogExporterOptions {
  /** The provider's name (warnings). */
  readonly provider: string;
  /** `host:port` of the collector, as the mesh routes it. */
  readonly target: string;
  readonly clock: Clock;
  /** The grpc-js client calls go through (made at the first export; its errors fail the export). */
  readonly client: () => UnaryRequester;
  readonly warn: (message: string) => void;
  /** Records dropped, with why (meshlet's own metrics count them). */
  readonly onDropped?: ((count: number, reason: AccessLogDropReason) => void) | undefined;
  readonly flushIntervalMs?: number | undefined;
  readonly bufferBytes?: number | undefined;
}

/** Batches and exports one provider's records. */
export class OtelLogExporter {
  readonly #o: OtelLogExporterOptions;
  readonly #flushMs: number;
  readonly #maxBytes: number;
  #batch: Buffer[] = [];
  #bytes = 0;
  #timer: Timer | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #closed = false;
  #failing = false;
  #written = 0;
  #dropped = 0;
  #exported = 0;

  constructor(o: OtelLogExporterOptions) {
    this.#o = o;
    this.#flushMs = o.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.#maxBytes = o.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  }

  get stats(): OtelExportStats {
    return { written: this.#written, dropped: this.#dropped, exported: this.#exported };
  }

  /** Exports in flight now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Takes one encoded `LogRecord` (never throws, never waits). */
  log(record: Buffer): void {
    if (this.#closed) {
      this.#drop(1, 'buffer-full');
      return;
    }
    // canLogMore: a full batch is flushed first; still full (exports in flight), the record is dropped.
    if (this.#bytes >= this.#maxBytes) {
      this.flush();
      if (this.#bytes >= this.#maxBytes) {
        this.#drop(1, 'buffer-full');
        return;
      }
    }
    this.#written++;
    this.#bytes += record.length;
    this.#batch.push(record);
    if (this.#bytes >= this.#maxBytes) this.flush();
    else this.#timer ??= this.#o.clock.setTimer(() => this.#onTimer(), this.#flushMs);
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.flush();
    if (this.#batch.length > 0 && !this.#closed) this.#timer = this.#o.clock.setTimer(() => this.#onTimer(), this.#flushMs);
  }

  /** Sends the batch now, unless {@link MAX_EXPORTS_IN_FLIGHT} exports are in flight. */
  flush(): void {
    if (this.#batch.length === 0 || this.#inFlight.size >= MAX_EXPORTS_IN_FLIGHT) return;
    const records = this.#batch;
    this.#batch = [];
    this.#bytes = 0;
    this.#timer?.clear();
    this.#timer = undefined;
    const p = this.#export(records).finally(() => {
      this.#inFlight.delete(p);
      // A batch the bound held back goes out as soon as a call ends, not at the next interval.
      if (!this.#closed && this.#bytes >= this.#maxBytes) this.flush();
    });
    this.#inFlight.add(p);
  }

  async #export(records: readonly Buffer[]): Promise<void> {
    const o = this.#o;
    const request = encodeExportLogsRequest(records);
    const outcome = await callUnary(o.client, OTLP_LOGS_EXPORT, request, { clock: o.clock, timeoutMs: EXPORT_TIMEOUT_MS, signal: this.#abort.signal });
    let failure: string | undefined;
    if (outcome.kind === 'timeout') failure = `no answer after ${EXPORT_TIMEOUT_MS}ms`;
    else if (outcome.kind === 'cancelled') failure = 'the mesh closed before the collector answered';
    else if (outcome.kind === 'failed') failure = outcome.reason;
    if (failure !== undefined) {
      this.#drop(records.length, 'export-failed');
      if (!this.#failing) o.warn(`meshlet: access log "${o.provider}": export to ${o.target} failed: ${failure}; its ${records.length} record(s) are dropped (requests are not affected)`);
      this.#failing = true;
      return;
    }
    if (this.#failing) o.warn(`meshlet: access log "${o.provider}": exports to ${o.target} succeed again (${this.#dropped} record(s) dropped so far)`);
    this.#failing = false;
    let rejected = 0;
    try {
      rejected = decodeExportLogsResponse((outcome as { value: Buffer }).value).rejected;
    } catch {
      // Envoy ignores the answer's content.
    }
    this.#exported += Math.max(0, records.length - rejected);
  }

  #drop(n: number, reason: AccessLogDropReason): void {
    this.#dropped += n;
    this.#o.onDropped?.(n, reason);
  }

  /**
   * Sends what is batched and waits for the exports in flight, for at most `graceMs`; then
   * cancels what is left (its records are dropped). Later records are dropped.
   */
  async close(graceMs: number): Promise<void> {
    if (!this.#closed) {
      // Batches the in-flight bound held back go out too: at close, nothing else will send them.
      while (this.#batch.length > 0 && this.#inFlight.size < MAX_EXPORTS_IN_FLIGHT) this.flush();
      this.#closed = true;
      this.#timer?.clear();
      this.#timer = undefined;
      if (this.#batch.length > 0) this.#drop(this.#batch.length, 'buffer-full');
      this.#batch = [];
      this.#bytes = 0;
    }
    if (this.#inFlight.size === 0) return;
    if (graceMs <= 0) {
      this.#abort.abort();
      await Promise.allSettled([...this.#inFlight]);
      return;
    }
    let timer: Timer | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = this.#o.clock.setTimer(resolve, graceMs, true);
    });
    await Promise.race([Promise.allSettled([...this.#inFlight]), expired]);
    timer?.clear();
    this.#abort.abort();
    await Promise.allSettled([...this.#inFlight]);
  }
}
