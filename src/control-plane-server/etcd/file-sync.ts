/**
 * `meshlet control-plane --etcd … --config <dir>`: the directory is read and watched exactly as
 * without etcd (a {@link FileConfigStore}: debounced, settled, a half-written file never read,
 * an invalid change refused as a whole), and each state it accepts is applied into etcd
 * ({@link EtcdConfigStore.syncFiles}): its resources are marked as the files', so every replica
 * refuses to replace or delete them through the API (409 naming the file), and the ones the
 * directory no longer defines are deleted. A restart applies the files again, which only touches
 * what they define: nothing changed through the API is reverted.
 *
 * @module
 */
import { hostname } from 'node:os';
import { relative, resolve } from 'node:path';
import type { AnalysisMode } from '../../config/load-config.ts';
import { type Rejection, toWire } from '../../control-plane/protocol.ts';
import { ConfigError } from '../../core/errors.ts';
import { FileConfigStore, type FileConfigStoreOptions } from '../file-store.ts';
import type { ConfigState, ConfigStore, SourceHealth } from '../store.ts';
import type { EtcdConfigStore, EtcdLogger } from './config-store.ts';

/** Options of {@link EtcdWithFiles}. */
export interface EtcdWithFilesOptions {
  /** The `--config` directory. */
  readonly dir: string;
  readonly analysis?: AnalysisMode;
  readonly defaultNamespace?: string;
  readonly logger?: EtcdLogger;
  /** Names this replica's host in the owner records (shown in the API's 409). @defaultValue `os.hostname()` */
  readonly host?: string;
  /** First delay before applying the files again after etcd failed, doubled up to 30 s. @defaultValue 500 */
  readonly retryMs?: number;
  /** @internal Passed to the directory's {@link FileConfigStore} (tests shorten its timings). */
  readonly files?: Partial<FileConfigStoreOptions>;
}

const MAX_REJECTIONS = 20;

/** The etcd config store with a watched `--config` directory applied into it. */
export class EtcdWithFiles implements ConfigStore {
  readonly #etcd: EtcdConfigStore;
  readonly #files: FileConfigStore;
  readonly #dir: string;
  readonly #host: string;
  readonly #logger: EtcdLogger | undefined;
  readonly #retryMs: number;
  readonly #rejections: Rejection[] = [];
  #queue: Promise<void> = Promise.resolve();
  /** Why the files' last accepted state is not in etcd (cleared once it is). */
  #error: string | undefined;
  #retry: { timer: NodeJS.Timeout; delayMs: number } | undefined;
  #closed = false;
  /** The first apply of the files: resources and how many changed. */
  first: { resources: number; changed: number } | undefined;

  constructor(etcd: EtcdConfigStore, options: EtcdWithFilesOptions) {
    this.#etcd = etcd;
    this.#dir = resolve(options.dir);
    this.#host = options.host ?? hostname();
    this.#logger = options.logger;
    this.#retryMs = options.retryMs ?? 500;
    this.#files = new FileConfigStore({ ...options.files, dir: this.#dir, analysis: options.analysis, defaultNamespace: options.defaultNamespace, logger: options.logger });
    this.#files.onChange((state) => {
      this.#enqueue(state);
    });
  }

  /** etcd's health; unhealthy too while the directory is (a refused file change, a lost watch) or its last state is not in etcd. */
  get health(): SourceHealth {
    const e = this.#etcd.health;
    const f = this.#files.health;
    const errors = [e.error, f.healthy ? undefined : `--config ${this.#dir}: ${f.error ?? 'unhealthy'}`, this.#error].filter((x) => x !== undefined);
    const { error: _, ...rest } = e;
    return { ...rest, healthy: e.healthy && f.healthy && this.#error === undefined, ...(errors.length === 0 ? {} : { error: errors.join('; ') }) };
  }

  /** Starts etcd's store, reads the directory and applies it (rejects when either is invalid), then watches it. */
  async start(): Promise<void> {
    await this.#etcd.start();
    await this.#files.start();
    const state = this.#files.current();
    const answer = await this.#apply(state, `meshlet control-plane --config ${this.#dir}`);
    this.first = { resources: state.resources.length, changed: answer.changed };
  }

  current(): ConfigState {
    return this.#etcd.current();
  }

  onChange(listener: (state: ConfigState) => void): void {
    this.#etcd.onChange(listener);
  }

  /** etcd's refusals, the directory's and the file changes etcd refused, newest first. */
  rejections(): readonly Rejection[] {
    return [...this.#etcd.rejections(), ...this.#files.rejections(), ...this.#rejections].sort((a, b) => b.at.localeCompare(a.at)).slice(0, MAX_REJECTIONS);
  }

  apply(...args: Parameters<ConfigStore['apply']>): ReturnType<ConfigStore['apply']> {
    return this.#etcd.apply(...args);
  }

  delete(...args: Parameters<ConfigStore['delete']>): ReturnType<ConfigStore['delete']> {
    return this.#etcd.delete(...args);
  }

  /** Stops watching the directory (and the etcd store's watch). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry !== undefined) clearTimeout(this.#retry.timer);
    await this.#files.close();
    await this.#queue;
    await this.#etcd.close();
  }

  #enqueue(state: ConfigState): void {
    this.#queue = this.#queue.then(() => this.#sync(state));
  }

  async #apply(state: ConfigState, origin: string): Promise<{ changed: number }> {
    const resources = state.resources.map((r) => ({ wire: toWire(r), file: relative(this.#dir, r.source.file) }));
    const answer = await this.#etcd.syncFiles(this.#dir, this.#host, resources, origin);
    const changed = answer.applied.filter((a) => a.action !== 'unchanged');
    for (const t of answer.tookOver) this.#logger?.warn(`--config ${this.#dir}: ${t} is now defined by the files (they win; it can no longer be changed through the API)`);
    const done = [...changed.map((a) => `${a.ref} ${a.action}`), ...answer.deleted.map((d) => `${d} deleted`)];
    if (done.length > 0) this.#logger?.info?.(`--config ${this.#dir}: applied into etcd: ${done.join(', ')}`);
    this.#error = undefined;
    return { changed: changed.length + answer.deleted.length };
  }

  /** Applies a state the directory accepted; a refusal is recorded, an etcd failure retried. */
  async #sync(state: ConfigState): Promise<void> {
    if (this.#closed || state !== this.#files.current()) return; // a newer state is queued
    if (this.#retry !== undefined) clearTimeout(this.#retry.timer);
    const delayMs = this.#retry?.delayMs ?? this.#retryMs;
    this.#retry = undefined;
    const origin = `file change in ${this.#dir}`;
    try {
      await this.#apply(state, origin);
    } catch (err) {
      const reasons = err instanceof ConfigError ? err.issues.filter((i) => i.level === 'error').map(String) : [err instanceof Error ? err.message : String(err)];
      this.#error = `the files' last change is not applied into etcd: ${reasons.join('; ')}`;
      this.#rejections.unshift({ at: new Date().toISOString(), origin, reasons });
      this.#rejections.length = Math.min(this.#rejections.length, MAX_REJECTIONS);
      this.#logger?.warn(`refused ${origin} (not applied into etcd; still serving version ${this.#etcd.current().version}):\n  ${reasons.join('\n  ')}`);
      // A refused set waits for the next file change; etcd trouble (or a conflict) is retried.
      if (err instanceof ConfigError || this.#closed) return;
      const timer = setTimeout(() => this.#enqueue(this.#files.current()), delayMs);
      timer.unref();
      this.#retry = { timer, delayMs: Math.min(delayMs * 2, 30_000) };
    }
  }
}
