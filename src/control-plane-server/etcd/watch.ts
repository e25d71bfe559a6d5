/**
 * List-then-watch of one etcd key prefix over the gateway's streaming `POST /v3/watch`
 * (newline-delimited `{"result": WatchResponse}` objects). The watch resumes from the revision
 * after the last event it delivered when the stream breaks or an endpoint dies; when that
 * revision was compacted away (`canceled` with `compact_revision`), it lists the prefix again
 * and hands over a fresh snapshot.
 *
 * @module
 */
import { systemRandom } from '../../core/clock.ts';
import { jitterMs } from '../../core/jitter.ts';
import { EtcdError, type EtcdClient, type KeyValue } from './client.ts';
import { decodeKv, prefixRangeEnd } from './codec.ts';

/** One change seen by a watch. */
export interface WatchEvent {
  readonly type: 'PUT' | 'DELETE';
  /** For a DELETE, only `key` and `modRevision` are set. */
  readonly kv: KeyValue;
}

/** What a {@link PrefixWatch} reports. */
export interface WatchHandlers {
  /**
   * The whole prefix at `revision`: first from `start()`, again after a compaction. A promise
   * returned holds the revision back from {@link PrefixWatch.waitFor} (and `start()`) until it
   * settles: the handler's own work on it (a check) is part of delivering it.
   */
  onSnapshot(kvs: readonly KeyValue[], revision: number): void;
  /**
   * Events of one watch response (all events of a txn arrive together), in revision order. A
   * promise returned holds the revision back from {@link PrefixWatch.waitFor} until it settles
   * (the stream is read on meanwhile).
   */
  onEvents(events: readonly WatchEvent[], revision: number): void;
  /** The stream broke (it is being re-established). */
  onError?(error: Error): void;
  /** A (re-)established stream is live again. */
  onConnected?(): void;
}

/** Options of {@link PrefixWatch}. */
export interface PrefixWatchOptions {
  /** First reconnect delay, doubled per failure. @defaultValue 100 */
  readonly retryMinMs?: number;
  /** Longest reconnect delay. @defaultValue 2000 */
  readonly retryMaxMs?: number;
}

type Json = Record<string, unknown>;

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });

class Compacted extends Error {}

/** Watches every key under a prefix, delivering a snapshot then changes, resuming across failures. */
export class PrefixWatch {
  readonly #client: EtcdClient;
  readonly #prefix: string;
  readonly #handlers: WatchHandlers;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #abort = new AbortController();
  #next = 0;
  #revision = 0;
  #loop: Promise<void> | undefined;
  readonly #waiters = new Set<{ revision: number; resolve: (ok: boolean) => void }>();

  /** Watches `prefix` through `client`; nothing happens until {@link start}. */
  constructor(client: EtcdClient, prefix: string, handlers: WatchHandlers, options: PrefixWatchOptions = {}) {
    this.#client = client;
    this.#prefix = prefix;
    this.#handlers = handlers;
    this.#retryMinMs = options.retryMinMs ?? 100;
    this.#retryMaxMs = options.retryMaxMs ?? 2000;
  }

  /** The newest revision delivered to the handlers. */
  get revision(): number {
    return this.#revision;
  }

  /**
   * Lists the prefix (delivering the snapshot) and starts watching from the next revision;
   * rejects when the list fails. With `fromRevision`, skips the list and watches from there.
   */
  async start(fromRevision?: number): Promise<void> {
    if (this.#loop !== undefined) return;
    if (fromRevision === undefined) await this.#relist();
    else this.#next = fromRevision;
    this.#loop = this.#run();
  }

  /** Resolves true once a revision ≥ `revision` was delivered, false after `timeoutMs`. */
  waitFor(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.#revision >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        revision,
        resolve: (ok: boolean) => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** Stops the watch. */
  async close(): Promise<void> {
    this.#abort.abort();
    for (const w of [...this.#waiters]) w.resolve(false);
    await this.#loop;
  }

  #delivered(revision: number): void {
    if (revision > this.#revision) this.#revision = revision;
    for (const w of [...this.#waiters]) if (this.#revision >= w.revision) w.resolve(true);
  }

  async #relist(): Promise<void> {
    const { kvs, revision } = await this.#client.list(this.#prefix);
    this.#next = revision + 1;
    // A handler's promise (typed void: any handler may return one) is waited for.
    const handled: unknown = this.#handlers.onSnapshot(kvs, revision);
    if (handled instanceof Promise) await handled;
    this.#delivered(revision);
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      let endpoint: string | undefined;
      try {
        const opened = await this.#client.stream(
          'watch',
          '/v3/watch',
          { create_request: { key: Buffer.from(this.#prefix).toString('base64'), range_end: prefixRangeEnd(this.#prefix), start_revision: String(this.#next) } },
          signal,
        );
        endpoint = opened.endpoint;
        await this.#consume(opened.endpoint, opened.body, () => {
          failures = 0;
        });
        if (!signal.aborted) throw new EtcdError('watch', `etcd ${endpoint} watch: stream ended`);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof Compacted) {
          try {
            await this.#relist();
            continue;
          } catch (listErr) {
            this.#fail(listErr);
          }
        } else {
          this.#fail(err, endpoint);
        }
        failures++;
        const delay = Math.min(this.#retryMaxMs, this.#retryMinMs * 2 ** Math.min(failures - 1, 10));
        await sleep(jitterMs(systemRandom, delay * 1.25, delay * 0.75), signal);
      }
    }
  }

  #fail(err: unknown, endpoint?: string): void {
    const error = err instanceof Error ? err : new Error(String(err));
    const message = err instanceof EtcdError ? error.message : `etcd ${endpoint ?? '?'} watch: ${error.message}`;
    if (endpoint !== undefined) this.#client.avoid(endpoint);
    this.#client.reportHealth(message);
    this.#handlers.onError?.(err instanceof EtcdError ? err : new EtcdError('watch', message, { cause: err }));
  }

  async #consume(endpoint: string, body: AsyncIterable<Buffer>, onCreated: () => void): Promise<void> {
    let buffered = '';
    for await (const chunk of body) {
      buffered += chunk.toString('utf8');
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        if (line !== '') this.#line(endpoint, line, onCreated);
      }
    }
  }

  #line(endpoint: string, line: string, onCreated: () => void): void {
    const msg = JSON.parse(line) as Json;
    if (msg['error'] !== undefined) {
      const e = msg['error'] as Json;
      throw new EtcdError('watch', `etcd ${endpoint} watch: ${String(e['message'] ?? JSON.stringify(e))}`, { grpcCode: Number(e['grpc_code'] ?? e['code']) });
    }
    const res = (msg['result'] as Json | undefined) ?? {};
    if (res['canceled'] === true) {
      const compacted = Number(res['compact_revision'] ?? 0);
      if (compacted > 0) throw new Compacted(`compacted at ${compacted}`);
      throw new EtcdError('watch', `etcd ${endpoint} watch: canceled by the server${res['cancel_reason'] ? `: ${String(res['cancel_reason'])}` : ''}`);
    }
    if (res['created'] === true) {
      onCreated();
      this.#client.reportHealth();
      this.#handlers.onConnected?.();
    }
    const raw = (res['events'] as Json[] | undefined) ?? [];
    if (raw.length === 0) return;
    const events = raw.map((e): WatchEvent => ({ type: e['type'] === 'DELETE' ? 'DELETE' : 'PUT', kv: decodeKv((e['kv'] as Json | undefined) ?? {}) }));
    const last = events.reduce((m, e) => Math.max(m, e.kv.modRevision), 0);
    if (last + 1 > this.#next) this.#next = last + 1;
    const handled: unknown = this.#handlers.onEvents(events, last);
    if (!(handled instanceof Promise)) this.#delivered(last);
    else
      handled.then(
        () => this.#delivered(last),
        () => this.#delivered(last),
      );
  }
}
