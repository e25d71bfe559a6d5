/**
 * The key material in a replica's data dir (`ca.json`, `signing-key.jwk`). With etcd the shared
 * copy wins and is written to the data dir; local material that differs from it (a former
 * single control plane joining, another cluster's data dir, a key rotated while the replica was
 * down) is never overwritten: it is kept beside, as `<file>.replaced-<UTC time>` (a hard link to
 * the old file, so its mode, 0600, is kept and the file is never missing), and the caller warns
 * naming both. istiod never deletes a CA key either.
 *
 * @module
 */
import { link, readFile } from 'node:fs/promises';

/** The file's text; undefined when it does not exist. Other read errors are thrown. */
export async function readLocalFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** `20261205T005436Z`: a UTC time for a file name. */
function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(/[-:]/g, '');
}

/**
 * Keeps `file` as `<file>.replaced-<UTC time>` (`-2`, `-3`, … when that name is taken) before it
 * is overwritten; resolves to the backup's path.
 */
export async function keepReplaced(file: string, now: number = Date.now()): Promise<string> {
  const base = `${file}.replaced-${stamp(now)}`;
  for (let n = 1; ; n++) {
    const backup = n === 1 ? base : `${base}-${n}`;
    try {
      await link(file, backup);
      return backup;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 100) throw err;
    }
  }
}
