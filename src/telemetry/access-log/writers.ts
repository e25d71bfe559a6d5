/**
 * Where access-log lines go: `/dev/stdout` is the mesh's logger (pino-shaped: a text line is the
 * message, a JSON entry is the object), `/dev/stderr` the process's stderr, any other path a
 * file opened for appending (one {@link FileLog} per path, closed with the mesh, or when a
 * reload stops using it).
 *
 * @module
 */
import type { Clock, Timer } from '../../core/clock.ts';
import { FileLog, type OnFileDropped } from './file-log.ts';

/** The logger shape access logs use (the mesh's `MeshLogger`; `info` may take an object, as pino's does). */
export interface AccessLogLogger {
  info?(message: string): void;
  warn(message: string): void;
}

/** Writes entries of one log. */
export interface EntryWriter {
  write(entry: string | Record<string, unknown>): void;
}

/** How long a file no config writes stays open after a straggler's line to it (mesh clock). */
export const LATE_CLOSE_MS = 1000;

const asLine = (entry: string | Record<string, unknown>): string => (typeof entry === 'string' ? entry : `${JSON.stringify(entry)}\n`);

/** Writers by path, shared by the logs of one mesh; `close()` ends the files. */
export class Writers {
  readonly #logger: AccessLogLogger;
  readonly #clock: Clock;
  readonly #files = new Map<string, FileLog>();
  /** The paths the config in use writes (undefined: any, until {@link use} says). */
  #inUse: ReadonlySet<string> | undefined;
  /** Files no config writes that stragglers' lines went to: closed {@link LATE_CLOSE_MS} after the last one. */
  readonly #late = new Map<string, { readonly file: FileLog; timer: Timer | undefined }>();
  /** Files being closed (no longer in use), for {@link close} to wait for. */
  readonly #closing = new Set<Promise<void>>();
  #closed = false;

  constructor(logger: AccessLogLogger, clock: Clock) {
    this.#logger = logger;
    this.#clock = clock;
  }

  /** The writer for `path`; `onDropped` hears of the lines a file dropped. */
  for(path: string, onDropped?: OnFileDropped): EntryWriter {
    if (path === '/dev/stdout') {
      const info = this.#logger.info;
      if (typeof info === 'function') {
        const logger = this.#logger;
        // A text line is the message (without Istio's trailing newline); a JSON entry is the object.
        return { write: (e) => (info as (m: unknown) => void).call(logger, typeof e === 'string' ? (e.endsWith('\n') ? e.slice(0, -1) : e) : e) };
      }
      return { write: (e) => process.stdout.write(asLine(e)) };
    }
    if (path === '/dev/stderr') return { write: (e) => process.stderr.write(asLine(e)) };
    return {
      write: (e) => {
        if (this.#closed) return;
        let f = this.#files.get(path);
        if (f === undefined) {
          if (this.#inUse !== undefined && !this.#inUse.has(path)) {
            this.#writeLate(path, asLine(e), onDropped);
            return;
          }
          f = new FileLog(path, this.#clock, this.#logger);
          this.#files.set(path, f);
        }
        f.write(asLine(e), onDropped);
      },
    };
  }

  /** The open files (for tests). */
  file(path: string): FileLog | undefined {
    return this.#files.get(path);
  }

  /**
   * Says which paths the config in use writes: files at other paths (a reload stopped using them)
   * are closed, after what waits is written.
   */
  use(paths: Iterable<string>): void {
    const inUse = new Set(paths);
    this.#inUse = inUse;
    for (const [path, late] of this.#late) {
      if (!inUse.has(path)) continue;
      // Written again by the config now in use: the file stays open for it.
      late.timer?.clear();
      this.#late.delete(path);
      this.#files.set(path, late.file);
    }
    for (const [path, f] of this.#files) {
      if (inUse.has(path)) continue;
      this.#files.delete(path);
      // Not at once: requests that began before the reload still end with a line for it, which
      // goes to this file, after what it holds (in order), before it closes.
      this.#leaving(path, f);
    }
  }

  /**
   * A line of a request that ended after a reload stopped using its log: it still goes to the
   * file, through one FileLog for all such lines (in order, one open), which is not kept open for
   * lines no config writes any more — closed a moment after the last of them.
   */
  #writeLate(path: string, line: string, onDropped: OnFileDropped | undefined): void {
    const late = this.#late.get(path) ?? this.#leaving(path, new FileLog(path, this.#clock, this.#logger));
    late.file.write(line, onDropped);
    this.#closeLater(path, late);
  }

  /** A file no config writes any more: kept for stragglers' lines, closed {@link LATE_CLOSE_MS} after the last. */
  #leaving(path: string, file: FileLog): { readonly file: FileLog; timer: Timer | undefined } {
    const late = { file, timer: undefined };
    this.#late.set(path, late);
    this.#closeLater(path, late);
    return late;
  }

  #closeLater(path: string, late: { readonly file: FileLog; timer: Timer | undefined }): void {
    late.timer?.clear();
    late.timer = this.#clock.setTimer(() => {
      this.#late.delete(path);
      this.#end(late.file);
    }, LATE_CLOSE_MS);
  }

  #end(f: FileLog): void {
    const p = f.close().finally(() => this.#closing.delete(p));
    this.#closing.add(p);
  }

  /** Ends the open files (after what was written is flushed, for at most `FileLog`'s close bound). */
  async close(): Promise<void> {
    this.#closed = true;
    const files = [...this.#files.values()];
    this.#files.clear();
    for (const late of this.#late.values()) {
      late.timer?.clear();
      files.push(late.file);
    }
    this.#late.clear();
    await Promise.all([...files.map((f) => f.close()), ...this.#closing]);
  }
}
