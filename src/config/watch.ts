/**
 * Watching config files and directories for changes, robust to how config is really written:
 * editors and `kubectl` replace files by renaming a new one over the old; a Kubernetes ConfigMap
 * volume swaps its `..data` symlink to a new timestamped directory; people delete and re-create
 * a directory, or swap one in with `mv`.
 *
 * - Node's `fs.watch(dir, { recursive: true })` on Linux watches each file's inode, so after the
 *   first rename-over-replace of a file it no longer reports that file (seen on Node 24). Here
 *   every directory is watched on its own, non-recursively (inotify on the directory sees every
 *   create, rename and write in it), and a watched file is watched through its directory.
 * - An inotify watch follows the directory's inode, not its path: after `mv conf conf.old` it
 *   reports `conf.old`, and a new `conf` is never seen. So each watched root is also watched
 *   through its parent and its identity (device and inode) is checked every `checkIntervalMs`;
 *   a replaced root is watched again (`onRestored`), a missing one is reported (`onLost`) until it
 *   comes back. Subdirectories are re-synchronised (added, dropped, re-watched when replaced) after
 *   renames in the tree.
 * - Dotfiles (editors' swap files, temporary files of atomic writers) make no events, except names
 *   starting with `..`: those are a ConfigMap's (`..data`, `..data_tmp`, `..2026_…`), and the
 *   rename of `..data` is the one event a ConfigMap update makes.
 *
 * @module
 */
import { type Dirent, type FSWatcher, readdirSync, type Stats, statSync, watch } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, relative, sep } from 'node:path';
import { setImmediate } from 'node:timers';
import { type Clock, systemClock, type Timer } from '../core/clock.ts';
import { CONFIG_EXTENSIONS } from './read-files.ts';

/** One change seen by {@link watchConfigPaths}. */
export interface WatchEvent {
  /** The watched path (as given) the change belongs to. */
  readonly root: string;
  /** The changed path, absolute (the root itself when a root was re-watched). */
  readonly path: string;
  /** The path relative to the root's directory (`''` for the directory itself). */
  readonly relative: string;
  /**
   * `change`: content written in place (the file may still be being written); `rename`: a name
   * appeared, went away or was renamed over (atomic replacement).
   */
  readonly type: 'rename' | 'change';
}

/** Options of {@link watchConfigPaths}. */
export interface ConfigWatchOptions {
  readonly onEvent: (event: WatchEvent) => void;
  /** A watch could not be set up (e.g. the system's inotify limit); reported once per path and message. */
  readonly onError?: (error: Error) => void;
  /** A watched root (a directory, or a watched file's directory) no longer exists, or cannot be watched. */
  readonly onLost?: (root: string, reason: string) => void;
  /** A root is watched again: it came back after being lost, or another directory took its path. */
  readonly onRestored?: (root: string, how: string) => void;
  /** How often each root's identity is checked. @defaultValue 1000 */
  readonly checkIntervalMs?: number;
  /** The clock of the identity checks (the one of the reloads that follow the events). @defaultValue the system clock */
  readonly clock?: Clock;
}

/** A set of watchers; `close()` stops all of them. */
export interface ConfigWatcher {
  /** The roots whose watch is lost right now (missing or not watchable). */
  readonly lost: readonly string[];
  close(): void;
}

/** True for a path (relative, `sep`-separated) whose changes matter: no segment is a dotfile, except `..`-names (ConfigMaps). */
export function isConfigEventPath(rel: string): boolean {
  if (rel === '') return true;
  return rel.split(sep).every((seg) => !seg.startsWith('.') || seg.startsWith('..'));
}

const idOf = (st: Stats): string => `${st.dev}:${st.ino}`;

/** One watched root: a directory tree, or the directory of one watched file. */
class Root {
  readonly #given: string;
  readonly #dir: string;
  /** For a watched file: its name (only it, and ConfigMap `..` names, make events). */
  readonly #file: string | undefined;
  readonly #o: ConfigWatchOptions;
  /** Watched directories by path, with the identity they had when the watch was set up. */
  readonly #dirs = new Map<string, { w: FSWatcher; id: string }>();
  #parent: { w: FSWatcher; id: string } | undefined;
  #id: string | undefined;
  #lost: string | undefined;
  #lostReported = false;
  #closed = false;
  #syncing: Promise<void> | undefined;
  #syncAgain = false;
  readonly #reported = new Set<string>();

  constructor(given: string, o: ConfigWatchOptions) {
    this.#given = given;
    this.#o = o;
    let isDir = false;
    try {
      isDir = statSync(given).isDirectory();
    } catch {
      isDir = true; // a missing root: watched for when it comes (as a directory)
    }
    this.#dir = isDir ? given : dirname(given);
    this.#file = isDir ? undefined : basename(given);
  }

  get lost(): string | undefined {
    return this.#lost;
  }

  /** Sets up the watches synchronously (so that nothing written after `watchConfigPaths` returns is missed). */
  start(): void {
    let st: Stats;
    try {
      st = statSync(this.#dir);
    } catch (err) {
      this.#markLost(`${this.#dir} cannot be read: ${(err as Error).message}`);
      this.#watchParent();
      return;
    }
    this.#id = idOf(st);
    this.#watchParent();
    this.#addTreeSync(this.#dir, this.#id, new Set([this.#id]));
  }

  /** Checks the root's identity (it may have been replaced without any event reaching its watchers). */
  check(): void {
    if (this.#closed) return;
    this.#watchParent();
    let id: string | undefined;
    try {
      const st = statSync(this.#dir);
      id = st.isDirectory() ? idOf(st) : undefined;
    } catch {
      id = undefined;
    }
    if (id === undefined) {
      if (this.#id !== undefined || this.#lost === undefined) {
        this.#closeDirs();
        this.#id = undefined;
        this.#markLost(`${this.#dir} no longer exists (deleted or moved away); still watching for it`);
      }
      return;
    }
    if (id === this.#id && this.#lost === undefined) return;
    const how = this.#lostReported ? 'it exists again' : 'another directory took its place';
    this.#closeDirs();
    this.#id = id;
    this.#lost = undefined;
    this.#addTreeSync(this.#dir, id, new Set([id]));
    if (this.#lost !== undefined) return; // still not watchable; reported once
    this.#lostReported = false;
    this.#o.onRestored?.(this.#given, `${this.#dir}: ${how}; watching it again`);
    // What changed while nothing watched it is unknown, and a re-created directory may still be
    // filling: the whole root counts as written in place (a reload waits until it is quiet).
    this.#emit(this.#dir, 'change');
  }

  close(): void {
    this.#closed = true;
    this.#closeDirs();
    this.#parent?.w.close();
    this.#parent = undefined;
  }

  /** The root is not watched; said once until it is watched again. */
  #markLost(reason: string): void {
    this.#lost = reason;
    if (this.#lostReported) return;
    this.#lostReported = true;
    this.#o.onLost?.(this.#given, reason);
  }

  #emit(path: string, type: WatchEvent['type']): void {
    const rel = relative(this.#dir, path);
    if (!isConfigEventPath(rel)) return;
    this.#o.onEvent({ root: this.#given, path, relative: rel, type });
  }

  #error(path: string, err: Error): void {
    const key = `${path}\0${err.message}`;
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.#o.onError?.(new Error(`cannot watch ${path}: ${err.message}`, { cause: err }));
  }

  /** Watches the root's parent for the root's own name: a deleted, re-created or swapped root is seen at once. */
  #watchParent(): void {
    const parent = dirname(this.#dir);
    if (parent === this.#dir) return;
    let id: string;
    try {
      id = idOf(statSync(parent));
    } catch {
      this.#parent?.w.close();
      this.#parent = undefined;
      return;
    }
    if (this.#parent?.id === id) return;
    this.#parent?.w.close();
    const name = basename(this.#dir);
    try {
      const w = watch(parent, { persistent: false }, (_event, file) => {
        if (file !== null && file.toString() === name) this.check();
      });
      w.on('error', () => {
        w.close();
        if (this.#parent?.w === w) this.#parent = undefined;
      });
      this.#parent = { w, id };
    } catch {
      this.#parent = undefined; // the interval check still sees the root change
    }
  }

  #watchDir(dir: string, id: string): void {
    if (this.#closed || this.#dirs.has(dir)) return;
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: false }, (event, name) => this.#onDirEvent(dir, event, name === null ? '' : name.toString()));
    } catch (err) {
      if (dir === this.#dir) this.#markLost(`${dir} cannot be watched: ${(err as Error).message}`);
      else this.#error(dir, err as Error);
      return;
    }
    w.on('error', (err) => {
      // The directory went away (or the system's limit was hit): forget it; the next sync sees what is there.
      w.close();
      if (this.#dirs.get(dir)?.w === w) this.#dirs.delete(dir);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#error(dir, err);
      this.#scheduleSync();
    });
    this.#dirs.set(dir, { w, id });
  }

  #onDirEvent(dir: string, event: string, name: string): void {
    if (this.#file !== undefined && name !== this.#file && !name.startsWith('..')) return;
    // A write in place to a file no reload reads (a log, `notes.txt`, an atomic writer's
    // `x.yaml.1234` before its rename) is no config being written: as a `change` it would hold
    // every reload back until that file is quiet for a second (forever, for a log). Renames are
    // still reported: a name may be a directory, or leave or take a config file's place.
    if (this.#file === undefined && event === 'change' && name !== '' && !name.startsWith('..') && !CONFIG_EXTENSIONS.has(extname(name).toLowerCase())) return;
    const full = name === '' ? dir : join(dir, name);
    if (event === 'rename') {
      // inotify reports a watched directory's own deletion or move as a rename of its name.
      if (dir === this.#dir && name === basename(dir)) this.check();
      if (this.#file === undefined) this.#scheduleSync();
    }
    this.#emit(full, event === 'change' ? 'change' : 'rename');
  }

  #closeDirs(): void {
    for (const d of this.#dirs.values()) d.w.close();
    this.#dirs.clear();
  }

  /** Watches `dir` and every directory below it (directory symlinks followed, loops not). */
  #addTreeSync(dir: string, id: string, ancestors: ReadonlySet<string>): void {
    this.#watchDir(dir, id);
    if (this.#file !== undefined) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (name.startsWith('.') || name === 'node_modules') continue;
      const child = join(dir, name);
      let st: Stats;
      try {
        st = statSync(child);
      } catch {
        continue;
      }
      if (!st.isDirectory() || ancestors.has(idOf(st))) continue;
      this.#addTreeSync(child, idOf(st), new Set(ancestors).add(idOf(st)));
    }
  }

  /** Re-synchronises the watched subdirectories with what is on disk, once per burst of renames. */
  #scheduleSync(): void {
    if (this.#closed) return;
    if (this.#syncing !== undefined) {
      this.#syncAgain = true;
      return;
    }
    this.#syncing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.#sync())
      .catch((err: unknown) => this.#error(this.#dir, err as Error))
      .finally(() => {
        this.#syncing = undefined;
        if (this.#syncAgain) {
          this.#syncAgain = false;
          this.#scheduleSync();
        }
      });
  }

  async #sync(): Promise<void> {
    if (this.#closed || this.#lost !== undefined || this.#id === undefined) return;
    const found = new Map<string, string>();
    const walk = async (dir: string, ancestors: ReadonlySet<string>): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        if (e.name.startsWith('.') || e.name === 'node_modules') continue;
        if (!e.isDirectory() && !e.isSymbolicLink()) continue;
        const child = join(dir, e.name);
        let st: Stats;
        try {
          st = await stat(child);
        } catch {
          continue;
        }
        const id = idOf(st);
        if (!st.isDirectory() || ancestors.has(id)) continue;
        found.set(child, id);
        await walk(child, new Set(ancestors).add(id));
      }
    };
    await walk(this.#dir, new Set([this.#id]));
    if (this.#closed || this.#lost !== undefined) return;
    for (const [dir, d] of this.#dirs) {
      if (dir === this.#dir) continue;
      if (found.get(dir) !== d.id) {
        d.w.close();
        this.#dirs.delete(dir);
      }
    }
    for (const [dir, id] of found) {
      if (this.#dirs.has(dir)) continue;
      this.#watchDir(dir, id);
      // Files may have been written into it before its watch was set up.
      this.#emit(dir, 'rename');
    }
  }
}

/**
 * Watches files and directories (recursively) and calls `onEvent` for every change below them.
 * Watchers and timers do not keep the process alive.
 */
export function watchConfigPaths(paths: readonly string[], options: ConfigWatchOptions): ConfigWatcher {
  const roots = paths.map((p) => new Root(p, options));
  for (const r of roots) r.start();
  const clock = options.clock ?? systemClock;
  const every = options.checkIntervalMs ?? 1000;
  let closed = false;
  let timer: Timer | undefined;
  const tick = (): void => {
    for (const r of roots) r.check();
    if (!closed) timer = clock.setTimer(tick, every);
  };
  timer = clock.setTimer(tick, every);
  return {
    get lost() {
      return roots.map((r) => r.lost).filter((l): l is string => l !== undefined);
    },
    close() {
      closed = true;
      timer?.clear();
      for (const r of roots) r.close();
    },
  };
}
