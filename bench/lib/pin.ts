/**
 * Pinning a one-process bench to CPUs from its start (every thread: GC helpers, the compiler,
 * libuv), as `LAYOUT` says: `1core` (the bench and its upstream on CPU 0), `2core` (the bench on
 * CPU 0, the upstream on CPU 1) or `none`. The process runs itself again under `taskset -c 0`
 * (marked by `flag` in its environment) and exits with that run's status.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';

const TASKSET = '/usr/bin/taskset';

/** Where the bench runs: its layout, whether it is pinned, and how to start its upstream. */
export interface Pinning {
  readonly layout: '1core' | '2core' | 'none';
  readonly pinned: boolean;
  /** `[command, ...args]` that starts `script` (a `node …` command line) on the upstream's CPU. */
  upstream(script: readonly string[]): string[];
}

/** Reads `LAYOUT` and, unless already pinned (`flag` set), runs this process again pinned to CPU 0. */
export function pinFromStart(flag: string): Pinning {
  const layout = process.env.LAYOUT ?? '1core';
  if (layout !== '1core' && layout !== '2core' && layout !== 'none') throw new Error(`LAYOUT must be 1core, 2core or none, got ${layout}`);
  const pinned = layout !== 'none' && cpus().length >= 2 && existsSync(TASKSET);
  if (pinned && process.env[flag] === undefined) {
    const argv = [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
    const r = spawnSync(TASKSET, ['-c', '0', ...argv], { stdio: 'inherit', env: { ...process.env, [flag]: '1' } });
    process.exit(r.status ?? 1);
  }
  return { layout, pinned, upstream: (script) => (pinned ? [TASKSET, '-c', layout === '1core' ? '0' : '1', ...script] : [...script]) };
}
