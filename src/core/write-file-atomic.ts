/**
 * Writing a file so that readers see the old content or the new, never a part: the text goes
 * to a temporary dotfile in the same directory (watchers and the config loader skip dotfiles),
 * which is then renamed over the target. Used for the config cache, the token key and files
 * written by the config API.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Writes `text` to `file` atomically; the temporary file is removed if anything fails. */
export async function writeFileAtomic(file: string, text: string, options: { mode?: number } = {}): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { mode: options.mode });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
