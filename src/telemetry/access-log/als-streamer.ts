/**
 * Streams one `envoyHttpAls` provider's entries to its access log service, as Envoy's gRPC access
 * logger does (`access_loggers/common/grpc_access_logger.h` `log`, `canLogMore`, `flush`, with its
 * streaming client `GrpcAccessLogClient::StreamingClient`):
 *
 * - one `AccessLogService/StreamAccessLogs` client stream, opened at the first flush; its first
 *   message carries the `identifier` (the node and the log's name), every message a batch of
 *   `http_logs.log_entry`. The service answers nothing while the stream is open;
 * - an entry joins the batch while the batch is under `buffer_size_bytes` (16 KiB); a batch that
 *   reaches it is sent at once, otherwise on the `buffer_flush_interval` timer (1 s). An entry
 *   that finds the batch full is dropped, as is Envoy's (`logs_dropped`);
 * - a stream above its write buffer's high watermark (a slow service: grpc-js's `write` returned
 *   false) takes nothing until it drains; the batch waits, fills up, and entries are dropped;
 * - a stream that ends is opened again at the next flush, with the identifier again.
 *
 * Where meshlet differs: a stream that fails is opened again only after a backoff (1 s, doubling to
 * 30 s; Envoy opens it at the next flush), entries are counted `written` once grpc-js has handed
 * their message to HTTP/2 (Envoy counts them as they join the batch), and a failing service is
 * warned about at most once per 30 s. A full batch is sent on the next turn of the event loop,
 * never inside the request's `log()`; the timer and the stream run in no request's async context.
 *
 * @module
 */
import { setImmediate } from 'node:timers';
import type { Clock, Timer } from '../../core/clock.ts';
import { ALS_STREAM_METHOD, encodeStreamMessage } from './als-wire.ts';
import { type AccessLogDropReason, DEFAULT_BUFFER_BYTES, DEFAULT_FLUSH_INTERVAL_MS, DETACHED_SCOPE, EXPORT_TIMEOUT_MS, type OtelExportStats, WARN_INTERVAL_MS } from './otel-exporter.ts';

/** The first wait before a failed stream is opened again. */
export const INITIAL_BACKOFF_MS = 1000;
/** The longest wait before a failed stream is opened again. */
export const MAX_BACKOFF_MS = 30_000;

/** What the streamer needs of a grpc-js client call (`ClientWritableStream`). */
export interface AlsCall {
  write(message: Buffer, callback: (error?: Error | null) => void): boolean;
  end(): void;
  cancel(): void;
  on(event: 'drain', listener: () => void): unknown;
  on(event: 'error', listener: (e: Error) => void): unknown;
}

/** What the streamer needs of a grpc-js client (its `makeClientStreamRequest`, with raw `Buffer` messages). */
export interface ClientStreamRequester {
  makeClientStreamRequest(method: string, serialize: (value: Buffer) => Buffer, deserialize: (value: Buffer) => Buffer, callback: (error: Error | null, value?: Buffer) => void): AlsCall;
}

export interface AlsStreamerOptions {
  readonly provider: string;
  /** `host:port` of the service, as the mesh routes it. */
  readonly target: string;
  readonly clock: Clock;
  readonly client: () => ClientStreamRequester;
  /** The encoded `Identifier` (node, log name) of each stream's first message. */
  readonly identifier: Buffer;
  readonly warn: (message: string) => void;
  readonly onDropped?: ((count: number, reason: AccessLogDropReason) => void) | undefined;
  readonly flushIntervalMs?: number | undefined;
  readonly bufferBytes?: number | undefined;
}

/** One message handed to the stream: its entries, and who waits for grpc-js to hand it on. */
interface Pending {
  readonly n: number;
  settled: boolean;
  readonly waiters: (() => void)[];
}

interface Stream {
  call: AlsCall | undefined;
  readonly openedAt: number;
  identified: boolean;
  blocked: boolean;
  ended: boolean;
  readonly pending: Set<Pending>;
  /** Resolves when the stream has ended (its status came, or it was cancelled). */
  readonly closed: Promise<void>;
  readonly close: () => void;
}

const identity = (b: Buffer): Buffer => b;

/** Batches one provider's entries and streams them. */
export class AlsStreamer {
  readonly #o: AlsStreamerOptions;
  readonly #flushMs: number;
  readonly #maxBytes: number;
  readonly #scope = DETACHED_SCOPE;
  #batch: Buffer[] = [];
  #bytes = 0;
  #timer: Timer | undefined;
  #soon = false;
  #stream: Stream | undefined;
  /** Set while a failed stream's backoff runs: no stream is opened until it fires. */
  #retry: Timer | undefined;
  #failures = 0;
  #closed = false;
  #done = false;
  #failing = false;
  #lastWarn = Number.NEGATIVE_INFINITY;
  #failedSinceWarn = 0;
  #written = 0;
  #dropped = 0;
  /** Streams opened so far (for tests and diagnostics). */
  #opened = 0;

  constructor(o: AlsStreamerOptions) {
    this.#o = o;
    this.#flushMs = o.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.#maxBytes = o.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  }

  get stats(): OtelExportStats {
    return { written: this.#written, dropped: this.#dropped };
  }

  /** Streams opened so far. */
  get opened(): number {
    return this.#opened;
  }

  /** Takes one encoded `HTTPAccessLogEntry` (never throws, never waits, sends nothing itself). */
  log(entry: Buffer): void {
    if (this.#closed) {
      this.#drop(1, 'closed');
      return;
    }
    if (this.#bytes >= this.#maxBytes) {
      this.#drop(1, 'buffer-full');
      return;
    }
    this.#bytes += entry.length;
    this.#batch.push(entry);
    if (this.#bytes >= this.#maxBytes) this.#sendSoon();
    else if (this.#timer === undefined) this.#timer = this.#scope.runInAsyncScope(this.#arm, this);
  }

  #arm(): Timer {
    return this.#o.clock.setTimer(() => this.#onTimer(), this.#flushMs);
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.flush();
    if (this.#batch.length > 0 && !this.#closed) this.#timer = this.#arm();
  }

  #sendSoon(): void {
    if (this.#soon) return;
    this.#soon = true;
    this.#scope.runInAsyncScope(setImmediate, undefined, () => {
      this.#soon = false;
      this.#send();
    });
  }

  /** Sends what is batched now, when the stream may take it. */
  flush(): void {
    this.#scope.runInAsyncScope(this.#send, this);
  }

  /**
   * Sends what is batched now and resolves once grpc-js has handed it (and what was sent before) to
   * HTTP/2, the stream has failed, or {@link EXPORT_TIMEOUT_MS} has passed (a service that stopped
   * reading holds the stream's buffer full).
   */
  async flushed(): Promise<void> {
    this.flush();
    const s = this.#stream;
    if (s === undefined || s.pending.size === 0) return;
    let timer: Timer | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = this.#o.clock.setTimer(resolve, EXPORT_TIMEOUT_MS, false);
    });
    await Promise.race([s.closed, expired, Promise.all([...s.pending].map((p) => new Promise<void>((resolve) => p.waiters.push(resolve))))]);
    timer?.clear();
  }

  #send(): void {
    if (this.#done || this.#batch.length === 0 || this.#retry !== undefined) return;
    const s = this.#stream ?? this.#open();
    if (s === undefined || s.blocked || s.call === undefined) return;
    const message = encodeStreamMessage(s.identified ? undefined : this.#o.identifier, this.#batch);
    s.identified = true;
    const n = this.#batch.length;
    this.#batch = [];
    this.#bytes = 0;
    const p: Pending = { n, settled: false, waiters: [] };
    s.pending.add(p);
    let ok: boolean;
    try {
      ok = s.call.write(message, (err) => this.#settle(s, p, err === undefined || err === null));
    } catch {
      this.#settle(s, p, false);
      return;
    }
    if (!ok) s.blocked = true;
  }

  #settle(s: Stream, p: Pending, ok: boolean): void {
    if (p.settled) return;
    p.settled = true;
    s.pending.delete(p);
    if (ok) {
      this.#written += p.n;
      if (this.#failing) this.#o.warn(`meshlet: access log "${this.#o.provider}": streaming to ${this.#o.target} works again (${this.#dropped} entries dropped so far)`);
      this.#failing = false;
    } else this.#drop(p.n, this.#closed ? 'closed' : 'export-failed');
    for (const w of p.waiters.splice(0)) w();
  }

  #open(): Stream | undefined {
    let close!: () => void;
    const closed = new Promise<void>((resolve) => {
      close = resolve;
    });
    const s: Stream = { call: undefined, openedAt: this.#o.clock.now(), identified: false, blocked: false, ended: false, pending: new Set(), closed, close };
    this.#stream = s;
    this.#opened++;
    try {
      const call = this.#o.client().makeClientStreamRequest(ALS_STREAM_METHOD, identity, identity, (err) => this.#ended(s, err));
      s.call = call;
      call.on('error', () => undefined);
      call.on('drain', () => {
        s.blocked = false;
        if (this.#stream === s && this.#batch.length > 0) this.#sendSoon();
      });
    } catch (e) {
      this.#ended(s, e as Error);
      return undefined;
    }
    return s;
  }

  /** The stream ended: answered (the service closed it: opened again at the next flush) or failed (opened again after the backoff). */
  #ended(s: Stream, err: Error | null): void {
    if (s.ended) return;
    s.ended = true;
    if (this.#stream === s) this.#stream = undefined;
    // What was handed over is written if the service answered; lost if the stream failed (as in Envoy, which cannot tell either).
    for (const p of [...s.pending]) this.#settle(s, p, err === null);
    s.close();
    if (err === null || this.#done) {
      this.#failures = 0;
      return;
    }
    const now = this.#o.clock.now();
    // A stream that stayed up a while was healthy: the backoff starts over (a service that restarted).
    if (now - s.openedAt >= MAX_BACKOFF_MS) this.#failures = 0;
    this.#failures++;
    const delay = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** (this.#failures - 1));
    this.#failed(err.message, delay);
    if (this.#closed) return;
    this.#retry?.clear();
    this.#retry = this.#scope.runInAsyncScope(() =>
      this.#o.clock.setTimer(() => {
        this.#retry = undefined;
        this.flush();
      }, delay),
    );
  }

  #failed(reason: string, delay: number): void {
    this.#failedSinceWarn++;
    const now = this.#o.clock.now();
    if (now - this.#lastWarn < WARN_INTERVAL_MS) return;
    const since = this.#failedSinceWarn > 1 ? ` (${this.#failedSinceWarn} stream(s) failed since the last warning)` : '';
    this.#o.warn(`meshlet: access log "${this.#o.provider}": the stream to ${this.#o.target} failed: ${reason}; opened again in ${delay}ms, entries beyond ${this.#maxBytes} bytes meanwhile are dropped (requests are not affected)${since}`);
    this.#lastWarn = now;
    this.#failedSinceWarn = 0;
    this.#failing = true;
  }

  #drop(n: number, reason: AccessLogDropReason): void {
    this.#dropped += n;
    this.#o.onDropped?.(n, reason);
  }

  /**
   * Sends what is batched, half-closes the stream and waits, for at most `graceMs`, for the
   * service to answer (it has read everything then); then cancels it. Entries not sent, and later
   * ones, are dropped (`closed`).
   */
  async close(graceMs: number): Promise<void> {
    this.#closed = true;
    this.#timer?.clear();
    this.#timer = undefined;
    if (graceMs > 0) {
      // One last try, backoff or not.
      this.#retry?.clear();
      this.#retry = undefined;
      this.#send();
      const s = this.#stream;
      if (s !== undefined) {
        let timer: Timer | undefined;
        const expired = new Promise<void>((resolve) => {
          timer = this.#o.clock.setTimer(resolve, graceMs, true);
        });
        try {
          s.call?.end();
        } catch {
          // Ended already.
        }
        await Promise.race([s.closed, expired]);
        timer?.clear();
      }
    }
    this.#done = true;
    this.#retry?.clear();
    this.#retry = undefined;
    const s = this.#stream;
    if (s !== undefined) {
      try {
        s.call?.cancel();
      } catch {
        // Ended already.
      }
      for (const p of [...s.pending]) this.#settle(s, p, false);
      s.ended = true;
      s.close();
      this.#stream = undefined;
    }
    const left = this.#batch.length;
    this.#batch = [];
    this.#bytes = 0;
    if (left > 0) this.#drop(left, 'closed');
  }
}
