/**
 * One access-log file (a provider's `path`, MeshConfig `accessLogFile`), kept writable through
 * what happens to files on a host that runs for months:
 *
 * - **Rotation.** logrotate's default renames the file and creates a new one (`create`), or
 *   deletes it; Envoy keeps writing to the file it has open until it is told to reopen its logs
 *   (SIGUSR1 or the admin `/reopen_logs`: `server.cc` → `AccessLogManagerImpl::reopen()`), and
 *   meshlet registers no signal handler. So at most once per {@link REOPEN_CHECK_MS}, when a line
 *   is written, the path is compared with the open file (device and inode): a path that names
 *   another file, or none (deleted, its directory too), is opened again (created) for the next
 *   lines. `copytruncate` needs nothing: the file is opened for appending (`O_APPEND`), so the
 *   next line goes to the new end, with no hole before it.
 * - **Failing writes** (disk full, the directory deleted, a read-only remount): the line is
 *   dropped and the file is opened again for a line written {@link RETRY_MS} later, as Envoy
 *   counts a failed write (`write_failed`) and tries the next one (`doWrite`). One warning when
 *   it starts failing, one when lines are written again (with how many were dropped).
 * - **Bounded memory.** At most {@link MAX_BUFFERED_BYTES} wait to be written; beyond that lines
 *   are dropped (a disk that does not keep up, an NFS server that does not answer).
 * - **A FIFO** is opened non-blocking: one that no process reads fails at once (`ENXIO`, and is
 *   retried as a failing write) instead of holding a libuv thread-pool thread — and `mesh.close()`
 *   — until a reader comes. A full pipe drops lines rather than blocking.
 *
 * The event loop never waits for the file: opening, writing and comparing are asynchronous.
 *
 * @module
 */
import { constants, createWriteStream, fstat, stat, type WriteStream } from 'node:fs';
import type { Clock, Timer } from '../../core/clock.ts';

/** How often (at most, when lines are written) the path is compared with the open file. */
export const REOPEN_CHECK_MS = 1000;
/** How long after a failed open or write the file is tried again (lines in between are dropped). */
export const RETRY_MS = 1000;
/** Bytes that may wait to be written; lines beyond are dropped. */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
/** How long `close()` waits for the lines still waiting to be written. */
export const CLOSE_BOUND_MS = 2000;

const FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK;

interface Warner {
  warn(message: string): void;
}

/** An access-log file, written line by line. */
export class FileLog {
  readonly #path: string;
  readonly #clock: Clock;
  readonly #log: Warner;
  #stream: WriteStream | undefined;
  /** `dev:ino` of the open file, once known. */
  #id: string | undefined;
  #checkAt = 0;
  #checking = false;
  #retryAt = 0;
  /** Lines are being dropped (warned); reset when one is written again. */
  #failing = false;
  #dropped = 0;
  #closed = false;

  constructor(path: string, clock: Clock, log: Warner) {
    this.#path = path;
    this.#clock = clock;
    this.#log = log;
  }

  /** Lines dropped since the last warning said so. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Appends `line` (with its newline), or drops it: then says why (`write-failed`: the file failed
   * a moment ago and is not tried again yet; `buffer-full`). A line that fails once handed over
   * (the write that meets a full disk) is counted in {@link dropped} only.
   */
  write(line: string): 'write-failed' | 'buffer-full' | undefined {
    if (this.#closed) return undefined;
    const now = this.#clock.now();
    let s = this.#stream;
    if (s === undefined) {
      if (now < this.#retryAt) {
        this.#dropped++;
        return 'write-failed';
      }
      s = this.#open(now);
    } else if (now >= this.#checkAt) this.#check(now, s);
    if (s.writableLength >= MAX_BUFFERED_BYTES) {
      this.#trouble(`${MAX_BUFFERED_BYTES / 1048576} MiB of lines are waiting to be written`);
      this.#dropped++;
      return 'buffer-full';
    }
    if (this.#failing) s.write(line, (err) => err == null && this.#recovered());
    else s.write(line);
    return undefined;
  }

  #open(now: number): WriteStream {
    // Numeric flags reach fs.open as they are (the options' type says string only).
    const s = createWriteStream(this.#path, { flags: FLAGS as unknown as string });
    this.#stream = s;
    this.#id = undefined;
    this.#checkAt = now + REOPEN_CHECK_MS;
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (this.#stream !== s) return;
      this.#stream = undefined;
      this.#retryAt = this.#clock.now() + RETRY_MS;
      this.#dropped++;
      const hint = err.code === 'ENXIO' ? ' (a FIFO that no process reads)' : err.code === 'EAGAIN' ? ' (a pipe that is full)' : '';
      this.#trouble(`${err.message}${hint}`);
    });
    s.once('open', (fd: number) =>
      fstat(fd, (err, st) => {
        if (err === null && this.#stream === s) this.#id = `${st.dev}:${st.ino}`;
      }),
    );
    return s;
  }

  /** Opens the path again for the next lines when it no longer names the open file. */
  #check(now: number, s: WriteStream): void {
    this.#checkAt = now + REOPEN_CHECK_MS;
    const id = this.#id;
    if (this.#checking || id === undefined) return;
    this.#checking = true;
    stat(this.#path, (err, st) => {
      this.#checking = false;
      if (this.#stream !== s) return;
      if (err === null ? `${st.dev}:${st.ino}` === id : err.code !== 'ENOENT') return;
      // Renamed away (a new file or none at the path) or deleted: what was written stays there.
      this.#stream = undefined;
      this.#retryAt = 0;
      s.end();
    });
  }

  #trouble(why: string): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#log.warn(`meshlet: access log ${this.#path}: ${why}; its lines are dropped until it takes them again (tried again every ${RETRY_MS / 1000} s)`);
  }

  #recovered(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#log.warn(`meshlet: access log ${this.#path}: written again; ${this.#dropped} line${this.#dropped === 1 ? '' : 's'} dropped`);
    this.#dropped = 0;
  }

  /** Resolves when nothing is being compared, opened or waiting to be written (for tests). */
  async idle(): Promise<void> {
    for (;;) {
      const s = this.#stream;
      if (!this.#checking && (s === undefined || (!s.pending && s.writableLength === 0 && (this.#id !== undefined || s.destroyed)))) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /** Stops writing; resolves when what waits is written, or after {@link CLOSE_BOUND_MS}. */
  async close(): Promise<void> {
    this.#closed = true;
    const s = this.#stream;
    this.#stream = undefined;
    if (s === undefined || s.destroyed) return;
    await new Promise<void>((resolve) => {
      let timer: Timer | undefined;
      const done = (): void => {
        timer?.clear();
        resolve();
      };
      timer = this.#clock.setTimer(() => {
        s.destroy();
        resolve();
      }, CLOSE_BOUND_MS);
      s.end(done);
    });
  }
}
