/**
 * Watching config files and directories for changes, robust to how config is really written:
 * editors and `kubectl`/ConfigMap updates replace files by renaming a new one over the old.
 *
 * Node's `fs.watch(dir, { recursive: true })` on Linux watches each file's inode, so after the
 * first rename-over-replace of a file it no longer reports that file (seen on Node 24). Here every
 * directory is watched on its own, non-recursively (inotify on the directory sees every create,
 * rename and write in it), new subdirectories are picked up as they appear, and a watched file is
 * watched through its parent directory so replacing it is seen every time.
 *
 * @module
 */
import { type FSWatcher, readdirSync, statSync, watch } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';

/** A set of watchers; `close()` stops all of them. */
export interface ConfigWatcher {
  close(): void;
}

/**
 * Calls `onEvent(path)` for every change below `paths` (files or directories); `path` is
 * relative to the watched root it belongs to. Dot-directories and `node_modules` are not
 * entered (the loader skips them too). Watchers do not keep the process alive.
 */
export function watchConfigPaths(paths: readonly string[], onEvent: (path: string) => void, onError?: (error: Error) => void): ConfigWatcher {
  const watchers = new Map<string, FSWatcher>();
  let closed = false;

  const add = (dir: string, accept: (name: string) => boolean, root: string, key = dir): void => {
    if (closed || watchers.has(key)) return;
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: false }, (event, name) => {
        const file = name === null ? '' : name.toString();
        if (file !== '' && !accept(file)) return;
        const full = join(dir, file);
        if (event === 'rename' && file !== '' && isEnterable(file)) addTree(full, root);
        onEvent(relative(root, full));
      });
    } catch (err) {
      onError?.(err as Error);
      return;
    }
    w.on('error', (err) => {
      // The directory went away (or the watch limit was hit): forget it; a parent's rename event re-adds it.
      watchers.delete(key);
      w.close();
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onError?.(err);
    });
    watchers.set(key, w);
  };

  const addTree = (dir: string, root: string): void => {
    let entries: { name: string; isDirectory(): boolean }[];
    try {
      if (!statSync(dir).isDirectory()) return;
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    add(dir, () => true, root);
    for (const e of entries) if (e.isDirectory() && isEnterable(e.name)) addTree(join(dir, e.name), root);
  };

  for (const p of paths) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      onError?.(err as Error);
      continue;
    }
    if (isDir) addTree(p, p);
    else {
      const name = basename(p);
      add(dirname(p), (file) => file === name, dirname(p), `${p}\0file`);
    }
  }

  return {
    close() {
      closed = true;
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}

function isEnterable(name: string): boolean {
  return !name.startsWith('.') && name !== 'node_modules';
}

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
 * `PILOT_DEBOUNCE_MAX`). Editors write a file in several steps; this waits for the last one.
 * The timer does not keep the process alive.
 */
export function debounceBursts(fn: () => void, quietMs: number, maxWaitMs = Number.POSITIVE_INFINITY): BurstDebouncer {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let burstStart = 0;
  return {
    trigger() {
      const now = performance.now();
      if (timer === undefined) burstStart = now;
      else clearTimeout(timer);
      timer = setTimeout(
        () => {
          timer = undefined;
          fn();
        },
        Math.max(0, Math.min(quietMs, burstStart + maxWaitMs - now)),
      );
      timer.unref();
    },
    cancel() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
