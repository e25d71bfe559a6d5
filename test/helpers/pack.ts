/**
 * `npm pack` of this repository for the package tests, one at a time across test processes:
 * `npm pack` runs `prepack` (the build), which deletes and rewrites dist/, so two test files
 * packing at once (node --test runs files in parallel) packed each other's half-written dist/
 * into a tarball missing modules. A directory made with mkdir (atomic) is the lock; one left by a
 * process that died is taken over.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = new URL('../../', import.meta.url).pathname;
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const LOCK = join(ROOT, 'node_modules', '.cache', 'meshlet-test', 'pack.lock');
/** A lock older than this is stale whatever its owner (a pack takes well under a minute). */
const STALE_MS = 10 * 60_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function stale(): boolean {
  try {
    if (Date.now() - statSync(LOCK).mtimeMs > STALE_MS) return true;
    const pid = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
    return Number.isInteger(pid) && pid > 0 && !alive(pid);
  } catch {
    return false; // just made (no pid yet) or just released: wait and look again
  }
}

async function lock(): Promise<void> {
  mkdirSync(dirname(LOCK), { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (stale()) rmSync(LOCK, { recursive: true, force: true });
    else await sleep(200);
  }
}

/** Packs the repository into `dir` (building it, with the node running the tests first on PATH); returns the tarball's path. */
export async function packInto(dir: string): Promise<string> {
  await lock();
  try {
    const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}` };
    // npm pack prints the tarball's name last.
    const out = execFileSync(NPM, ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', env }).trim().split('\n');
    return join(dir, out.at(-1) as string);
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
