/**
 * Sends one `envoyOtelAls` provider's log records to its collector in batches, as Envoy's
 * OpenTelemetry access logger does (`access_loggers/common/grpc_access_logger.h` `log`,
 * `canLogMore`, `flush`; `open_telemetry/grpc_access_log_impl.cc` with its unary client):
 *
 * - a record joins the batch while the batch is under `buffer_size_bytes` (16 KiB, Envoy's
 *   default); a batch that reaches it is sent at once; otherwise the batch goes out on the
 *   `buffer_flush_interval` timer (1 s, Envoy's default). A record that finds the batch full is
 *   dropped (`logs_dropped`).
 * - each batch is one `LogsService/Export` call; a failed call drops its records, and records
 *   the collector rejects (`partial_success.rejected_log_records`) are dropped too; the others
 *   are written (`logs_written`, as `OTelLogRequestCallbacks::onSuccess` counts them).
 * - the timer and the calls run on Envoy's worker loop, in no request: here they run in the
 *   exporter's own async context — no request's deadline, trace context or `x-request-id`, no
 *   app OpenTelemetry span — whichever request's record made the batch due.
 *
 * Where meshlet differs, to keep memory bounded and never slow a request: at most
 * {@link MAX_EXPORTS_IN_FLIGHT} calls are in flight (Envoy does not bound them); while they
 * are, the batch is not sent, fills up, and further records are dropped and counted; a call that has no answer after {@link EXPORT_TIMEOUT_MS} fails (Envoy's
 * call has no timeout). Records are handed over already encoded, and a full batch is sent on the
 * next turn of the event loop (`node:timers` `setImmediate`, which test runners' fake timers do not hold), not inside the request's `log()`. A failing
 * collector is warned about at most once per {@link WARN_INTERVAL_MS} (Envoy logs nothing per
 * failure; it counts `logs_dropped`).
 *
 * @module
 */
import { AsyncResource } from 'node:async_hooks';
import { channel } from 'node:diagnostics_channel';
import { setImmediate } from 'node:timers';
import { context as otelContext, ROOT_CONTEXT } from '@opentelemetry/api';
import type { Clock, Timer } from '../../core/clock.ts';
import { outsideContext } from '../../core/context.ts';
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
/** At most one warning about a failing collector in this long (meshlet's; Envoy logs none). */
export const WARN_INTERVAL_MS = 30_000;

/**
 * Why records were dropped: the batch was full while exports were in flight; their export failed;
 * the collector rejected them (`partial_success`); or the mesh had closed (logged after, or not
 * sent within its grace time). For a file's lines: `buffer-full` (1 MiB waiting to be written) or
 * `write-failed` (the file failed to open or be written a moment ago: `file-log.ts`).
 */
export type AccessLogDropReason = 'buffer-full' | 'export-failed' | 'rejected' | 'closed' | 'write-failed';

/** `meshlet:access-log:dropped`: records an `envoyOtelAls` access log dropped, or lines a file log dropped (meshlet's own metrics count them). */
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
  /** Records the collector took: those of answered Export calls, less the ones it rejected (Envoy's `logs_written`). */
  readonly written: number;
  /** Records dropped: the batch full while exports were in flight, their export failed, the collector rejected them, or the mesh closed (Envoy's `logs_dropped`). */
  readonly dropped: number;
}

export interface OtelLogExporterOptions {
  /** The provider's name (warnings). */
  readonly provider: string;
  /** `host:port` of the collector, as the mesh routes it. */
  readonly target: string;
  readonly clock: Clock;
  /** The grpc-js client calls go through (its errors fail the export). */
  readonly client: () => UnaryRequester;
  readonly warn: (message: string) => void;
  /** Records dropped, with why (meshlet's own metrics count them). */
  readonly onDropped?: ((count: number, reason: AccessLogDropReason) => void) | undefined;
  readonly flushIntervalMs?: number | undefined;
  readonly bufferBytes?: number | undefined;
}

/**
 * An async resource that says it keeps nothing open (`hasRef()` false, as an unref'd timer does):
 * a scope made once and kept for the process's life is never destroyed, and Jest's
 * `--detectOpenHandles` (and tools like it) report any resource left undestroyed without a
 * `hasRef()` that says false — on every test file that imports meshlet.
 */
class Scope extends AsyncResource {
  hasRef(): boolean {
    return false;
  }
}

/**
 * An async context with no request in it: no mesh context, the OpenTelemetry root context — and,
 * made once as meshlet's modules load rather than where an exporter is built (a config applied
 * inside some request), none of the app's own AsyncLocalStorage values either.
 */
export const DETACHED_SCOPE: AsyncResource = outsideContext(() => otelContext.with(ROOT_CONTEXT, () => new Scope('meshlet.access-log-export')));

/** Batches and exports one provider's records. */
export class OtelLogExporter {
  readonly #o: OtelLogExporterOptions;
  readonly #flushMs: number;
  readonly #maxBytes: number;
  /** Where timers are armed and calls made: the context the exporter was built in, with no request's. */
  readonly #scope = DETACHED_SCOPE;
  #batch: Buffer[] = [];
  #bytes = 0;
  /** Full batches waiting for the next turn of the loop (no more than calls may start). */
  #ready: Buffer[][] = [];
  #timer: Timer | undefined;
  #soon = false;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #closed = false;
  /** Close gave up: nothing more is sent. */
  #done = false;
  #failing = false;
  #lastWarn = Number.NEGATIVE_INFINITY;
  /** Calls and records failed since the last warning. */
  #failedCalls = 0;
  #failedRecords = 0;
  #written = 0;
  #dropped = 0;
  /** Export calls started so far. */
  #started = 0;
  /** A flush waits until this many have started ({@link flushed}). */
  #flushBefore = 0;

  constructor(o: OtelLogExporterOptions) {
    this.#o = o;
    this.#flushMs = o.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.#maxBytes = o.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  }

  get stats(): OtelExportStats {
    return { written: this.#written, dropped: this.#dropped };
  }

  /** Exports in flight now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** Takes one encoded `LogRecord` (never throws, never waits, sends nothing itself). */
  log(record: Buffer): void {
    if (this.#closed) {
      this.#drop(1, 'closed');
      return;
    }
    // canLogMore: the batch full (and the one before it not sent yet), the record is dropped.
    if (this.#bytes >= this.#maxBytes) {
      this.#drop(1, 'buffer-full');
      return;
    }
    this.#bytes += record.length;
    this.#batch.push(record);
    if (this.#bytes >= this.#maxBytes) {
      // Full: sent on the next turn of the loop if a call may start then; else it waits for one to end.
      if (this.#inFlight.size + this.#ready.length < MAX_EXPORTS_IN_FLIGHT) this.#take();
      this.#sendSoon();
    } else if (this.#timer === undefined) {
      this.#timer = this.#scope.runInAsyncScope(this.#arm, this);
    }
  }

  #take(): void {
    this.#ready.push(this.#batch);
    this.#batch = [];
    this.#bytes = 0;
  }

  #arm(): Timer {
    return this.#o.clock.setTimer(() => this.#onTimer(), this.#flushMs);
  }

  #sendSoon(): void {
    if (this.#soon) return;
    this.#soon = true;
    this.#scope.runInAsyncScope(setImmediate, undefined, () => {
      this.#soon = false;
      this.#send(false);
    });
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.flush();
    if ((this.#batch.length > 0 || this.#ready.length > 0) && !this.#closed) this.#timer = this.#arm();
  }

  /** Sends what is batched now (in the exporter's context), as far as {@link MAX_EXPORTS_IN_FLIGHT} allows. */
  flush(): void {
    this.#scope.runInAsyncScope(this.#send, this, true);
  }

  /**
   * Sends what is batched now and resolves once those exports are answered or failed (each within
   * {@link EXPORT_TIMEOUT_MS}); a batch the in-flight bound holds back goes out as a call ends.
   * Records logged meanwhile may go too, but are not waited for beyond the exports in flight.
   */
  async flushed(): Promise<void> {
    // Batches go out in order: the last one there is now has started once this many exports have.
    const target = this.#started + this.#ready.length + (this.#batch.length > 0 ? 1 : 0);
    for (;;) {
      this.#flushBefore = Math.max(this.#flushBefore, target);
      this.flush();
      if (this.#started >= target || this.#done || this.#inFlight.size === 0) break;
      await Promise.race(this.#inFlight);
    }
    await Promise.allSettled([...this.#inFlight]);
  }

  /** Sends the full batches, then the current one when `all` or full, while calls may start. */
  #send(all: boolean): void {
    while (!this.#done && this.#inFlight.size < MAX_EXPORTS_IN_FLIGHT) {
      if (this.#ready.length === 0) {
        if (this.#batch.length === 0 || (!all && this.#bytes < this.#maxBytes)) return;
        this.#take();
      }
      const records = this.#ready.shift() as Buffer[];
      this.#started++;
      const p = this.#export(records).finally(() => {
        this.#inFlight.delete(p);
        // A batch the bound held back goes out as soon as a call ends, not at the next interval (nor a partial one a flush waits for).
        this.#send(this.#closed || this.#started < this.#flushBefore);
      });
      this.#inFlight.add(p);
    }
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
      this.#failed(failure, records.length);
      return;
    }
    if (this.#failing) o.warn(`meshlet: access log "${o.provider}": exports to ${o.target} succeed again (${this.#dropped} record(s) dropped so far)`);
    this.#failing = false;
    let rejected = 0;
    try {
      // int64 on the wire: a value read as negative (or past 2^31) from a faulty collector rejects nothing more than was sent.
      rejected = Math.min(records.length, Math.max(0, decodeExportLogsResponse((outcome as { value: Buffer }).value).rejected));
    } catch {
      // Envoy reads only partial_success; an answer that does not decode rejects nothing.
    }
    // OTelLogRequestCallbacks::onSuccess: written = sent - rejected; the rejected are dropped.
    this.#written += records.length - rejected;
    if (rejected > 0) this.#drop(rejected, 'rejected');
  }

  /** A failed call: warned when the collector starts failing, then at most once per {@link WARN_INTERVAL_MS}. */
  #failed(failure: string, records: number): void {
    const o = this.#o;
    this.#failedCalls++;
    this.#failedRecords += records;
    const now = o.clock.now();
    if (now - this.#lastWarn < WARN_INTERVAL_MS) return;
    const since = this.#failedCalls > 1 ? ` (${this.#failedCalls} export(s), ${this.#failedRecords} record(s) failed since the last warning)` : '';
    o.warn(`meshlet: access log "${o.provider}": export to ${o.target} failed: ${failure}; its ${records} record(s) are dropped (requests are not affected)${since}`);
    this.#lastWarn = now;
    this.#failedCalls = 0;
    this.#failedRecords = 0;
    this.#failing = true;
  }

  #drop(n: number, reason: AccessLogDropReason): void {
    this.#dropped += n;
    this.#o.onDropped?.(n, reason);
  }

  /**
   * Sends what is batched — a batch the in-flight bound holds back as soon as a call ends — and
   * waits for the exports, for at most `graceMs`; then cancels what is left (its records are
   * dropped, as are those never sent). Later records are dropped (`closed`).
   */
  async close(graceMs: number): Promise<void> {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = undefined;
    if (graceMs > 0) {
      let timer: Timer | undefined;
      const expired = new Promise<void>((resolve) => {
        timer = this.#o.clock.setTimer(resolve, graceMs, true);
      });
      await Promise.race([this.#drain(), expired]);
      timer?.clear();
    }
    this.#done = true;
    this.#abort.abort();
    await Promise.allSettled([...this.#inFlight]);
    const left = this.#ready.reduce((n, b) => n + b.length, this.#batch.length);
    this.#ready = [];
    this.#batch = [];
    this.#bytes = 0;
    if (left > 0) this.#drop(left, 'closed');
  }

  /** Resolves when everything batched has been sent and answered. */
  async #drain(): Promise<void> {
    for (;;) {
      this.flush();
      if (this.#inFlight.size === 0 || this.#done) return;
      await Promise.race(this.#inFlight);
    }
  }
}
