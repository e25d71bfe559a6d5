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
 *   it starts failing, one when lines are written again (with how many were dropped). The lines
 *   of one tick are one write (one string, one callback); when it fails, each of its lines is
 *   counted dropped (`write-failed`), as are lines still waiting for the file to open.
 * - **Bounded memory.** At most {@link MAX_BUFFERED_BYTES} wait to be written; beyond that lines
 *   are dropped (a disk that does not keep up, an NFS server that does not answer).
 * - **A FIFO** is opened non-blocking: one that no process reads fails at once (`ENXIO`, and is
 *   retried as a failing write) instead of holding a libuv thread-pool thread — and `mesh.close()`
 *   — until a reader comes. An open FIFO is written through a non-blocking socket, as Node writes
 *   `process.stdout` to a pipe: what a slow reader has not taken yet waits there (bounded as
 *   above) instead of failing the write with `EAGAIN`, which would close the pipe on its reader.
 *
 * The event loop never waits for the file: opening, writing and comparing are asynchronous.
 *
 * @module
 */
import { constants, createWriteStream, close as closeFd, fstat, open, stat } from 'node:fs';
import { Socket } from 'node:net';
import { setTimeout } from 'node:timers';
import type { Writable } from 'node:stream';
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

/** Why a line was dropped: the file failed (a moment ago, or when its line was written), or 1 MiB waits. */
export type FileDropReason = 'write-failed' | 'buffer-full';
/** Hears of lines a file dropped: `n` lines, for `reason`. */
export type OnFileDropped = (reason: FileDropReason, n: number) => void;

/** Lines joined into one write, with whom to tell (and how many lines) when it fails. */
interface Chunk {
  readonly text: string;
  readonly lines: number;
  readonly owners: [OnFileDropped | undefined, number][];
  /** It holds a line taken while lines were being dropped. */
  readonly recovers: boolean;
}

/** An access-log file, written line by line. */
export class FileLog {
  readonly #path: string;
  readonly #clock: Clock;
  readonly #log: Warner;
  /** What writes to the open file: a WriteStream, or for a FIFO a non-blocking socket. */
  #sink: Writable | undefined;
  /** The open in progress (lines wait in {@link #waiting} meanwhile). */
  #opening: Promise<void> | undefined;
  #waiting: Chunk[] = [];
  #waitingBytes = 0;
  /** The lines of this tick, written as one chunk when it ends. */
  #parts: string[] = [];
  #partsBytes = 0;
  #owners: [OnFileDropped | undefined, number][] = [];
  #recovers = false;
  /** `dev:ino` of the open file. */
  #id: string | undefined;
  #checkAt = 0;
  #checking = false;
  #retryAt = 0;
  /** Lines are being dropped (warned); reset when one is written again. */
  #failing = false;
  #dropped = 0;
  #closed = false;
  /** close() stopped waiting: a file that opens later is closed at once. */
  #abandoned = false;

  constructor(path: string, clock: Clock, log: Warner) {
    this.#path = path;
    this.#clock = clock;
    this.#log = log;
  }

  /** Lines dropped since the last warning said so. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Bytes handed to the open file and not written yet (for tests). */
  get pending(): number {
    return this.#sink?.writableLength ?? 0;
  }

  /**
   * Appends `line` (with its newline), or drops it; `onDropped` hears of each line dropped, now
   * (`write-failed`: the file failed a moment ago and is not tried again yet; `buffer-full`) or
   * when the write it was handed to fails (`write-failed`).
   */
  write(line: string, onDropped?: OnFileDropped): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    if (this.#sink === undefined && this.#opening === undefined) {
      if (now < this.#retryAt) {
        this.#drop('write-failed', 1, onDropped);
        return;
      }
      this.#open(now);
    } else if (this.#sink !== undefined && now >= this.#checkAt) this.#check(now, this.#sink);
    if ((this.#sink?.writableLength ?? 0) + this.#waitingBytes + this.#partsBytes >= MAX_BUFFERED_BYTES) {
      this.#trouble(`${MAX_BUFFERED_BYTES / 1048576} MiB of lines are waiting to be written`, 'taken again once there is room');
      this.#drop('buffer-full', 1, onDropped);
      return;
    }
    // Once written, a line taken while lines were being dropped says the file takes them again.
    if (this.#failing) this.#recovers = true;
    if (this.#parts.length === 0) queueMicrotask(this.#flush);
    this.#parts.push(line);
    this.#partsBytes += line.length;
    const last = this.#owners.at(-1);
    if (last !== undefined && last[0] === onDropped) last[1]++;
    else this.#owners.push([onDropped, 1]);
  }

  #drop(reason: FileDropReason, n: number, onDropped: OnFileDropped | undefined): void {
    this.#dropped += n;
    onDropped?.(reason, n);
  }

  #dropChunk(c: Chunk): void {
    for (const [fn, n] of c.owners) this.#drop('write-failed', n, fn);
  }

  /** Writes this tick's lines as one chunk (one allocation and one callback for them all). */
  readonly #flush = (): void => {
    if (this.#parts.length === 0) return;
    const c: Chunk = { text: this.#parts.join(''), lines: this.#parts.length, owners: this.#owners, recovers: this.#recovers };
    this.#recovers = false;
    this.#parts = [];
    this.#partsBytes = 0;
    this.#owners = [];
    this.#send(c);
  };

  #send(c: Chunk): void {
    const s = this.#sink;
    if (s !== undefined) {
      s.write(c.text, (err) => {
        if (err == null) c.recovers && this.#recovered();
        else this.#dropChunk(c);
      });
    } else if (this.#opening !== undefined) {
      this.#waiting.push(c);
      this.#waitingBytes += c.text.length;
    } else this.#dropChunk(c); // the file failed since its lines were taken
  }

  #open(now: number): void {
    this.#id = undefined;
    this.#checkAt = now + REOPEN_CHECK_MS;
    this.#opening = new Promise<void>((resolve) => {
      open(this.#path, FLAGS, 0o666, (err, fd) => {
        if (err !== null) {
          this.#opened(undefined, err);
          return resolve();
        }
        fstat(fd, (err2, st) => {
          if (err2 !== null) {
            closeFd(fd, () => undefined);
            this.#opened(undefined, err2);
            return resolve();
          }
          this.#id = `${st.dev}:${st.ino}`;
          // A FIFO is written as process.stdout writes a pipe: non-blocking, what the pipe does not
          // take yet waiting in the socket (bounded below), instead of failing the write (EAGAIN).
          this.#opened(st.isFIFO() ? new Socket({ fd, readable: false }) : createWriteStream(this.#path, { fd }), undefined);
          resolve();
        });
      });
    });
  }

  #opened(s: Writable | undefined, err: NodeJS.ErrnoException | undefined): void {
    this.#opening = undefined;
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#waitingBytes = 0;
    if (s === undefined) {
      this.#failed(err as NodeJS.ErrnoException);
    } else if (this.#abandoned) {
      s.destroy();
      for (const c of waiting) this.#dropChunk(c);
      return;
    } else {
      this.#sink = s;
      s.on('error', (e: NodeJS.ErrnoException) => {
        if (this.#sink === s) this.#failed(e);
      });
    }
    for (const c of waiting) this.#send(c);
  }

  #failed(err: NodeJS.ErrnoException): void {
    this.#sink = undefined;
    this.#retryAt = this.#clock.now() + RETRY_MS;
    this.#trouble(describe(err));
  }

  /** Opens the path again for the next lines when it no longer names the open file. */
  #check(now: number, s: Writable): void {
    this.#checkAt = now + REOPEN_CHECK_MS;
    const id = this.#id;
    if (this.#checking || id === undefined) return;
    this.#checking = true;
    stat(this.#path, (err, st) => {
      this.#checking = false;
      if (this.#sink !== s) return;
      if (err === null ? `${st.dev}:${st.ino}` === id : err.code !== 'ENOENT') return;
      // Renamed away (a new file or none at the path) or deleted: what was written stays there.
      this.#sink = undefined;
      this.#retryAt = 0;
      s.end();
    });
  }

  #trouble(why: string, again = `tried again every ${RETRY_MS / 1000} s`): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#log.warn(`meshlet: access log ${this.#path}: ${why}; its lines are dropped until it takes them again (${again})`);
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
      const s = this.#sink;
      if (!this.#checking && this.#opening === undefined && this.#parts.length === 0 && (s === undefined || s.writableLength === 0 || s.destroyed)) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /** Stops writing; resolves when what waits is written, or after {@link CLOSE_BOUND_MS}. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#flush();
    let timer: Timer | undefined;
    let ending: Writable | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = this.#clock.setTimer(() => {
        // What waits is dropped (a FIFO whose reader stopped reading, a hung file system).
        this.#abandoned = true;
        (ending ?? this.#sink)?.destroy();
        this.#sink = undefined;
        resolve();
      }, CLOSE_BOUND_MS);
    });
    const end = (async () => {
      await this.#opening;
      const s = this.#sink;
      ending = s;
      this.#sink = undefined;
      if (s !== undefined && !s.destroyed) await new Promise<void>((resolve) => s.end(() => resolve()));
    })();
    await Promise.race([end, bound]);
    timer?.clear();
  }
}

/** A failure's message, readable (Node's `ERR_SYSTEM_ERROR` for a failed writev says only "undefined"). */
function describe(err: NodeJS.ErrnoException): string {
  if (err.code === 'ENXIO') return `${err.message} (a FIFO that no process reads)`;
  if (err.code === 'EPIPE') return `${err.message} (the FIFO's reader went away)`;
  if (err.code === 'EAGAIN' || err.code === 'ERR_SYSTEM_ERROR') return `a write failed (${err.code}: the pipe or device is full)`;
  return err.message;
}
