/**
 * Finding and reading config files safely. Only regular files are read: symbolic links are
 * followed (a Kubernetes ConfigMap volume is made of them: `x.yaml -> ..data/x.yaml`,
 * `..data -> ..2026_12_02_…`), and what they lead to must be a regular file. A FIFO, socket or
 * device named `*.yaml` is refused with an issue naming it, without being opened (opening a FIFO
 * blocks until a writer comes, which used to hang every reload), and a file is read through one
 * descriptor up to the size limit and no further (a stat size is not enough: `/dev/zero` has
 * size 0 and never ends).
 *
 * @module
 */
import { constants, type Stats } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { IssueList } from './issues.ts';

/** The extensions read from directories. */
export const CONFIG_EXTENSIONS: ReadonlySet<string> = new Set(['.yaml', '.yml', '.json']);

/** True for names the loader and the watcher skip: dotfiles (editors' swap files, temporary files, a ConfigMap's `..data`) and `node_modules`. */
export function isSkippedName(name: string): boolean {
  return name.startsWith('.') || name === 'node_modules';
}

/** What a non-regular file is, for messages. */
function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/** `16.0 MiB`, or `2048 bytes` below a MiB. */
const size = (n: number): string => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${n} bytes`);

/** Why `st` may not be read as config, or undefined when it may (a regular file within the limit). */
function refusal(st: Stats, maxBytes: number): string | undefined {
  if (!st.isFile()) return `is ${fileKind(st)}, not a regular file; only regular files are read as config`;
  if (st.size > maxBytes) return `is ${size(st.size)}; the limit is ${size(maxBytes)}`;
  return undefined;
}

/**
 * A config "path" that is YAML or JSON text (a test's inline config, passed where a path goes):
 * a JSON object or list, or a YAML document (`---`, or a `key:` line) — a missing path that only
 * ends with a line break, or starts with `[`, is still a path. Told so, named by its first line.
 */
function notAPath(path: string, issues: IssueList): boolean {
  const text = path.trim();
  const json = ((text.startsWith("{") && text.endsWith("}")) || (text.startsWith("[") && text.endsWith("]"))) && (text.includes('\n') || text.includes('"') || text.includes(':'));
  const yaml = /^(?:---|apiVersion:|kind:)/.test(text) || (text.includes('\n') && /^\s*[\w.-]+:(?:\s|$)/m.test(text));
  if (!json && !yaml) return false;
  const first = text.split('\n', 1)[0] as string;
  issues.file(
    first.length > 60 ? `${first.slice(0, 60)}…` : first,
    undefined,
    'error',
    'is YAML or JSON text, not a path: `config` takes file or directory paths, or resource objects — parse the text first (`parseAllDocuments(text).map((d) => d.toJS())` of the yaml package, or JSON.parse), or write it to a file',
  );
  return true;
}

async function collect(path: string, issues: IssueList, out: string[], ancestors: ReadonlySet<string>, top: boolean): Promise<void> {
  let st: Stats;
  try {
    st = await stat(path); // follows symbolic links
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (top && code === 'ENOENT' && notAPath(path, issues)) return;
    if (top) issues.file(path, undefined, 'error', code === 'ENOENT' ? `no such file or directory${/\s$/.test(path) ? ' (the path ends with white space or a line break)' : ''}` : `cannot read: ${(err as Error).message}`);
    // Inside a directory, a link to nothing: Kubernetes makes a ConfigMap's new key's link
    // before switching `..data` to the files it points to. Nothing is there to read yet.
    else if (code === 'ENOENT') issues.file(path, undefined, 'warning', 'is a symbolic link to nothing (a missing file); skipped');
    else issues.file(path, undefined, 'error', `cannot read: ${(err as Error).message}`);
    return;
  }
  if (!st.isDirectory()) {
    out.push(path);
    return;
  }
  const id = `${st.dev}:${st.ino}`;
  if (ancestors.has(id)) {
    issues.file(path, undefined, 'warning', 'is a symbolic link to a directory that contains it (a loop); not entered');
    return;
  }
  const inside = new Set(ancestors).add(id);
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch (err) {
    issues.file(path, undefined, 'error', `cannot read the directory: ${(err as Error).message}`);
    return;
  }
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (isSkippedName(e.name)) continue;
    const child = join(path, e.name);
    if (e.isDirectory()) await collect(child, issues, out, inside, false);
    else if (e.isSymbolicLink()) {
      // A link is read for what it leads to: a directory is entered, a file is read if its name is a config file's.
      let target: Stats | undefined;
      try {
        target = await stat(child);
      } catch {
        target = undefined;
      }
      if (target?.isDirectory() === true) await collect(child, issues, out, inside, false);
      else if (CONFIG_EXTENSIONS.has(extname(e.name).toLowerCase())) await collect(child, issues, out, inside, false);
    } else if (CONFIG_EXTENSIONS.has(extname(e.name).toLowerCase())) {
      // FIFOs, sockets and devices named like config are listed so that reading refuses them by name.
      out.push(child);
    }
  }
}

/**
 * Lists the config files below the given files and directories: recursively, sorted, dotfiles
 * and `node_modules` skipped, symbolic links followed (loops are not entered).
 */
export async function listConfigFiles(paths: readonly string[], issues: IssueList): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) await collect(p, issues, files, new Set(), true);
  return files;
}

/**
 * The text of a config file's bytes, as `kubectl` decodes them (`unicode.BOMOverride`): UTF-16
 * when the file starts with a UTF-16 byte order mark — what Windows PowerShell 5's `>` writes,
 * e.g. `kubectl get vs -o yaml > vs.yaml` — else UTF-8 (a UTF-8 mark is left for the parsers,
 * which skip it).
 */
export function decodeConfigText(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0xfe) return b.toString('utf16le', 2);
  if (b.length >= 2 && b[0] === 0xfe && b[1] === 0xff) {
    const le = Buffer.from(b.subarray(2, b.length - (b.length % 2)));
    le.swap16(); // big-endian to little-endian
    return le.toString('utf16le');
  }
  return b.toString('utf8');
}

/** {@link readConfigFile}'s answer: the text, or why the file was not read. */
export type ReadResult = { readonly text: string; readonly error?: undefined } | { readonly text?: undefined; readonly error: string };

/**
 * Reads one config file: only a regular file (after following symbolic links), at most
 * `maxBytes`. Never blocks on a FIFO or device: their type is checked before opening, and the
 * file is opened non-blocking and checked again through the descriptor (it may have been
 * replaced in between); the read stops after `maxBytes` even if the file grows.
 */
export async function readConfigFile(file: string, maxBytes: number): Promise<ReadResult> {
  try {
    const before = refusal(await stat(file), maxBytes);
    if (before !== undefined) return { error: before };
    const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      const why = refusal(st, maxBytes);
      if (why !== undefined) return { error: why };
      // One byte more than the limit tells a file that grew past it from one that ends there.
      let buf = Buffer.allocUnsafe(Math.min(maxBytes, st.size) + 1);
      let length = 0;
      for (;;) {
        if (length === buf.length) {
          if (length > maxBytes) return { error: `grew past the limit of ${size(maxBytes)} while it was read` };
          const bigger = Buffer.allocUnsafe(Math.min(maxBytes + 1, length * 2));
          buf.copy(bigger, 0, 0, length);
          buf = bigger;
        }
        const { bytesRead } = await fh.read(buf, length, buf.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      return { text: decodeConfigText(buf.subarray(0, length)) };
    } finally {
      await fh.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? 'no such file or directory' : `cannot read: ${(err as Error).message}` };
  }
}
