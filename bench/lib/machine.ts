/**
 * What the benchmarks read about the machine they share with other work: a process's CPU time
 * and the machine's from /proc, and a wait for other processes' load to pass before measuring
 * (bench/outbound/run.ts, bench/grpc/run.ts).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Clock ticks per second of /proc's CPU times. */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time of a process so far, in µs (10 ms resolution with CLK_TCK 100); NaN when it is gone. */
export function procCpuUs(pid: number | undefined): number {
  try {
    const stat = readProc(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK; // utime, stime
  } catch {
    return Number.NaN;
  }
}

/** Machine-wide CPU time from /proc/stat in µs: busy (user+nice+system+irq+softirq) and steal. */
export function machineCpuUs(): { busy: number; steal: number } {
  try {
    const f = readProc('/proc/stat').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return { busy: ((user + nice + system + irq + softirq) * 1e6) / CLK_TCK, steal: (steal * 1e6) / CLK_TCK };
  } catch {
    return { busy: Number.NaN, steal: Number.NaN };
  }
}

function readProc(path: string): string {
  return readFileSync(path, 'utf8');
}

/**
 * Waits (at most `budgetMs`) until processes other than this benchmark's (whose CPU µs so far
 * `ownCpuUs` returns) use at most `limit` vCPUs; returns the time spent beyond the first look.
 */
export async function waitForQuiet(budgetMs: number, ownCpuUs: () => number, limit: number): Promise<number> {
  const t0 = performance.now();
  let said = false;
  for (;;) {
    const a = machineCpuUs();
    const o = ownCpuUs();
    const w = performance.now();
    await new Promise((r) => setTimeout(r, 300));
    const b = machineCpuUs();
    const load = (b.busy - a.busy - (ownCpuUs() - o)) / ((performance.now() - w) * 1000);
    const spent = performance.now() - t0 - 300;
    if (!(load > limit)) return Math.max(0, spent);
    if (spent + 1000 > budgetMs) {
      if (said) console.log(`  … still ${load.toFixed(2)} vCPU of other load, patience used up: measuring anyway`);
      return Math.max(0, spent);
    }
    if (!said) console.log(`  … other processes are using ${load.toFixed(2)} vCPU: waiting for them (patience left ${Math.round(budgetMs / 1000)} s)`);
    said = true;
    await new Promise((r) => setTimeout(r, 700));
  }
}
