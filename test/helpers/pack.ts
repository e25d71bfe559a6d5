/**
 * `npm pack` of this repository for the package tests, one at a time across test processes:
 * `npm pack` runs `prepack` (the build), which deletes and rewrites dist/, so two test files
 * packing at once (node --test runs files in parallel) packed each other's half-written dist/
 * into a tarball missing modules. A directory made with mkdir (atomic) is the lock; one left by a
 * process that died is taken over.
 *
 * Under `node --test`, the test files of one run share one tarball: the first packs, the others
 * copy it (kept in node_modules/.cache/meshlet-test, named by the runner's pid, and dropped once
 * that runner is gone). A second build of the same sources gave the same package and took a
 * minute of a loaded CI machine. A file run on its own (no runner) always packs.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = new URL('../../', import.meta.url).pathname;
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const CACHE = join(ROOT, 'node_modules', '.cache', 'meshlet-test');
const LOCK = join(CACHE, 'pack.lock');
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

/**
 * The directory holding this test run's tarball: named by the runner's pid and start time (a
 * reused pid is another run). Undefined outside `node --test` (its children have
 * NODE_TEST_CONTEXT) and where /proc does not give the start time: then every file packs.
 */
function runDir(): string | undefined {
  if (process.env['NODE_TEST_CONTEXT'] === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${process.ppid}/stat`, 'utf8');
    const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return started === undefined ? undefined : join(CACHE, `pack-run-${process.ppid}-${started}`);
  } catch {
    return undefined;
  }
}

/** Removes the tarballs of test runs that have ended. */
function dropEndedRuns(): void {
  for (const name of readdirSync(CACHE)) {
    const pid = /^pack-run-(\d+)-/.exec(name)?.[1];
    if (pid !== undefined && !alive(Number(pid))) rmSync(join(CACHE, name), { recursive: true, force: true });
  }
}

/** Packs the repository into `dir` (building it, with the node running the tests first on PATH); returns the tarball's path. */
export async function packInto(dir: string): Promise<string> {
  await lock();
  try {
    dropEndedRuns();
    const shared = runDir();
    const done = shared === undefined ? [] : existsSync(shared) ? readdirSync(shared).filter((f) => f.endsWith('.tgz')) : [];
    if (shared !== undefined && done.length === 1) {
      const tarball = join(dir, done[0] as string);
      copyFileSync(join(shared, done[0] as string), tarball);
      return tarball;
    }
    const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}` };
    // npm pack prints the tarball's name last.
    const out = execFileSync(NPM, ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', env }).trim().split('\n');
    const tarball = join(dir, out.at(-1) as string);
    if (shared !== undefined) {
      // Complete or absent: copied under a temporary name, then renamed.
      mkdirSync(shared, { recursive: true });
      copyFileSync(tarball, join(shared, 'partial'));
      renameSync(join(shared, 'partial'), join(shared, basename(tarball)));
    }
    return tarball;
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
