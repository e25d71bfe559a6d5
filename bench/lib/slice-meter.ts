/**
 * Per-slice figures of a one-process bench: process CPU (every thread), main-thread CPU and
 * bytes allocated on the JS heap (the heap's growth plus what each GC in between freed), per
 * unit of work, kept per variant for medians of paired rounds.
 *
 * @module
 */
import { GCProfiler, getHeapStatistics } from 'node:v8';

export const METRICS = ['cpu', 'main', 'alloc'] as const;
export type Metric = (typeof METRICS)[number];

/** Each metric's per-round figures, by variant. */
export type PerVariant = Record<Metric, Record<string, number[]>>;

export function perVariant(names: readonly string[]): PerVariant {
  const per: PerVariant = { cpu: {}, main: {}, alloc: {} };
  for (const m of METRICS) for (const n of names) per[m][n] = [];
  return per;
}

/** Measures `work()` (which does `units` of work) and adds its per-unit figures to `per` under `variant`. */
export async function measureSlice(per: PerVariant, variant: string, units: number, work: () => Promise<void>): Promise<void> {
  const gcs = new GCProfiler();
  const used0 = getHeapStatistics().used_heap_size;
  gcs.start();
  const c0 = process.cpuUsage();
  const t0 = process.threadCpuUsage();
  await work();
  const t = process.threadCpuUsage(t0);
  const c = process.cpuUsage(c0);
  const { statistics } = gcs.stop() ?? { statistics: [] };
  let freed = 0;
  for (const s of statistics) freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
  per.alloc[variant]?.push((getHeapStatistics().used_heap_size - used0 + freed) / units);
  per.cpu[variant]?.push((c.user + c.system) / units);
  per.main[variant]?.push((t.user + t.system) / units);
}
