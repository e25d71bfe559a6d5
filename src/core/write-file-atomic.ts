/**
 * Writing a file so that readers see the old content or the new, never a part, and so that
 * the new content survives a power loss once the write has resolved: the text goes to a
 * temporary dotfile in the same directory (watchers and the config loader skip dotfiles), which
 * is flushed to disk (`fsync`), renamed over the target, and then the directory is flushed so
 * the rename itself is on disk. Used for the control-plane client's last-known-good cache, the
 * control plane's token signing key and files written by the config API.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import * as fsPromises from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The part of a `node:fs/promises` `FileHandle` that {@link writeFileAtomic} uses. */
export interface AtomicFileHandle {
  writeFile(data: string): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The `node:fs/promises` functions {@link writeFileAtomic} calls (tests pass a recording copy). */
export interface AtomicWriteFs {
  open(path: string, flags: string, mode?: number): Promise<AtomicFileHandle>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: boolean }): Promise<void>;
}

/** Options of {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** Permission bits of a new file (before the umask). @defaultValue 0o666 */
  readonly mode?: number;
  /** The file-system calls to make. @defaultValue `node:fs/promises` */
  readonly fs?: AtomicWriteFs;
}

/**
 * Codes with which opening or flushing a directory fails where directories cannot be flushed
 * (Windows cannot open one; some file systems do not support it; a directory the process may
 * write but not read): the rename is then as durable as the platform makes it.
 */
const DIR_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Writes `text` to `file` atomically and durably: write a temporary file, fsync it, rename it
 * over `file`, fsync the directory. The temporary file is removed if anything before the rename
 * fails; a failure to flush the directory (other than where that is unsupported) rejects too,
 * since the rename may then not survive a crash.
 */
export async function writeFileAtomic(file: string, text: string, options: WriteFileAtomicOptions = {}): Promise<void> {
  const fs = options.fs ?? fsPromises;
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await fs.open(tmp, 'wx', options.mode ?? 0o666);
    try {
      await handle.writeFile(text);
      // The data must be on disk before the rename makes it the file's content.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDirectory(fs, dir);
}

/** Flushes a directory's entries (a rename in it) to disk, where the platform can. */
async function syncDirectory(fs: AtomicWriteFs, dir: string): Promise<void> {
  let handle: AtomicFileHandle;
  try {
    handle = await fs.open(dir, 'r');
  } catch (err) {
    if (DIR_SYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) return;
    throw err;
  }
  try {
    await handle.sync();
  } catch (err) {
    if (!DIR_SYNC_UNSUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await handle.close();
  }
}
