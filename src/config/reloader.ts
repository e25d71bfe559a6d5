/**
 * From file events to config reloads that never apply a file while it is still being written.
 *
 * A writer that replaces a file atomically (a temporary file renamed over it: editors, `kubectl`,
 * a ConfigMap's `..data` swap, `meshlet apply`) is done when the rename happens, so a rename is
 * reloaded after the short debounce. A file written in place (`cat > x.yaml`, `cp`, a template
 * tool streaming its output) can be read half-written, and a half-written file is often valid
 * YAML that silently drops the resources after the cut (a route table without its routes answers
 * 404). No reader can tell a paused writer from a finished one (inotify's close-after-write event
 * would, but Node's `fs.watch` does not report it), so such a file is read only once it has
 * settled:
 *
 * 1. no event for it during `settleMs` (1 s by default: a writer that stalls longer mid-file is
 *    not protected; write atomically to be safe regardless of timing);
 * 2. its size, mtime and inode unchanged from just before the reload read it until the result is
 *    ready to apply, and no event anywhere in the watched tree meanwhile; otherwise the result is
 *    dropped (not applied, not reported) and the reload runs again once things settle.
 *
 * A root directory that was re-created or swapped counts as written in place: it is reloaded
 * once nothing in it changed for `settleMs`, not while it is still being filled.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { type Clock, systemClock, type Timer } from '../core/clock.ts';
import type { WatchEvent } from './watch.ts';

/** A debounced action: {@link debounceBursts}. */
export interface BurstDebouncer {
  /** Another event of the burst. */
  trigger(): void;
  /** Drops a pending run. */
  cancel(): void;
}

/**
 * Runs `fn` once per burst of `trigger()` calls: after `quietMs` without another, or `maxWaitMs`
 * after the burst's first call while they keep coming (Istio's `PILOT_DEBOUNCE_AFTER` and
 * `PILOT_DEBOUNCE_MAX`). The timer does not keep the process alive.
 */
export function debounceBursts(fn: () => void, quietMs: number, maxWaitMs = Number.POSITIVE_INFINITY, clock: Clock = systemClock): BurstDebouncer {
  let timer: Timer | undefined;
  let burstStart = 0;
  return {
    trigger() {
      const now = clock.now();
      if (timer === undefined) burstStart = now;
      else timer.clear();
      timer = clock.setTimer(
        () => {
          timer = undefined;
          fn();
        },
        Math.max(0, Math.min(quietMs, burstStart + maxWaitMs - now)),
      );
    },
    cancel() {
      timer?.clear();
      timer = undefined;
    },
  };
}

/** Options of {@link Reloader}. */
export interface ReloaderOptions {
  /** Quiet time after the last event before reloading. */
  readonly debounceMs: number;
  /** Longest wait while events keep coming (files written in place still have to settle). */
  readonly maxDebounceMs: number;
  /** How long a file written in place must be quiet before it is read. @defaultValue 1000 */
  readonly settleMs?: number;
  /** How long files may keep changing before `onUnsettled` says so. @defaultValue 10000 */
  readonly unsettledWarningMs?: number;
  /** Runs one reload; apply its result only if `attempt.current()` resolves true after reading. */
  readonly reload: (attempt: ReloadAttempt) => Promise<void>;
  /** Files have been written in place for `forMs` without settling (once per burst). */
  readonly onUnsettled?: (files: readonly string[], forMs: number) => void;
  /** A reload threw. */
  readonly onError?: (error: unknown) => void;
  /** Time and timers. @defaultValue the system clock */
  readonly clock?: Clock;
}

/** One reload run by a {@link Reloader}. */
export interface ReloadAttempt {
  /** The paths (absolute) that changed since the last reload, sorted. */
  readonly files: readonly string[];
  /**
   * Whether the files read are still what is on disk: no event since the attempt started, and
   * every file written in place has the size, mtime and inode it had then. Call it after reading,
   * right before applying; apply only when it resolves true.
   */
  current(): Promise<boolean>;
}

interface Pending {
  /** `change` once any event for the path was an in-place write. */
  type: WatchEvent['type'];
  /** When its last event was seen (clock time). */
  at: number;
}

type FileState = string;

async function fileState(path: string): Promise<FileState> {
  try {
    const st = await stat(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? ''}`;
  }
}

/** Schedules reloads for file events: debounced, settled, never two at once. */
export class Reloader {
  readonly #o: ReloaderOptions;
  readonly #settleMs: number;
  readonly #debounce: BurstDebouncer;
  readonly #pending = new Map<string, Pending>();
  /** Bumped by every event: an attempt whose generation is not the latest is out of date. */
  #generation = 0;
  #running: Promise<void> | undefined;
  #settleTimer: Timer | undefined;
  readonly #clock: Clock;
  /** When files written in place first kept the reload waiting (clock time), for `onUnsettled`. */
  #waitingSince: number | undefined;
  #warned = false;
  #closed = false;

  constructor(options: ReloaderOptions) {
    this.#o = options;
    this.#settleMs = options.settleMs ?? 1000;
    this.#clock = options.clock ?? systemClock;
    this.#debounce = debounceBursts(() => this.#fire(), options.debounceMs, options.maxDebounceMs, this.#clock);
  }

  /** A file event: schedules a reload. */
  event(e: Pick<WatchEvent, 'path' | 'type'>): void {
    if (this.#closed) return;
    this.#generation++;
    const prior = this.#pending.get(e.path);
    this.#pending.set(e.path, { type: prior?.type === 'change' ? 'change' : e.type, at: this.#clock.now() });
    this.#debounce.trigger();
  }

  /** Stops: no further reloads start; resolves when the running one (if any) ended. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#debounce.cancel();
    this.#settleTimer?.clear();
    await this.#running;
  }

  #fire(): void {
    if (this.#closed || this.#running !== undefined) return; // a running reload fires again when it ends
    this.#settleTimer?.clear();
    this.#settleTimer = undefined;
    if (this.#pending.size === 0) return;
    const now = this.#clock.now();
    let lastWrite = Number.NEGATIVE_INFINITY;
    for (const p of this.#pending.values()) if (p.type === 'change' && p.at > lastWrite) lastWrite = p.at;
    const wait = lastWrite + this.#settleMs - now;
    if (wait > 0) {
      this.#waitingSince ??= now;
      if (!this.#warned && now - this.#waitingSince >= (this.#o.unsettledWarningMs ?? 10_000)) {
        this.#warned = true;
        const files = [...this.#pending].filter(([, p]) => p.type === 'change').map(([f]) => f).sort();
        this.#o.onUnsettled?.(files, now - this.#waitingSince);
      }
      this.#settleTimer = this.#clock.setTimer(() => this.#fire(), wait);
      return;
    }
    this.#waitingSince = undefined;
    this.#warned = false;
    this.#running = this.#attempt().finally(() => {
      this.#running = undefined;
      if (this.#pending.size > 0 && !this.#closed) this.#debounce.trigger();
    });
  }

  async #attempt(): Promise<void> {
    const generation = this.#generation;
    const taken = new Map(this.#pending);
    this.#pending.clear();
    const files = [...taken.keys()].sort();
    const written = files.filter((f) => taken.get(f)?.type === 'change');
    const before = await Promise.all(written.map(fileState));
    let stale = false;
    const attempt: ReloadAttempt = {
      files,
      current: async () => {
        if (this.#generation !== generation || this.#closed) {
          stale = true;
          return false;
        }
        const after = await Promise.all(written.map(fileState));
        stale = this.#generation !== generation || this.#closed || after.some((s, i) => s !== before[i]);
        return !stale;
      },
    };
    try {
      await this.#o.reload(attempt);
    } catch (err) {
      this.#o.onError?.(err);
    }
    if (stale) {
      // Not applied: read again after these files settle (events since then are pending already).
      const now = this.#clock.now();
      for (const [f, p] of taken) if (!this.#pending.has(f)) this.#pending.set(f, { type: p.type, at: p.type === 'change' ? now : p.at });
    }
  }
}
