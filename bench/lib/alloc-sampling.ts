/**
 * Bytes allocated per operation, by function: V8's sampling heap profiler with the objects that
 * minor and major GCs collected counted too (so short-lived garbage shows), around `work`.
 * Used by bench/outbound/alloc.ts and bench/grpc/alloc.ts.
 *
 * @module
 */
import { Session } from 'node:inspector/promises';

interface SampleNode {
  selfSize: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children: SampleNode[];
}

/** Per operation (`perOps` operations ran in `work`): the total and each function's bytes, largest first. */
export interface AllocationProfile {
  readonly total: number;
  readonly byFunction: readonly [name: string, bytes: number][];
}

/** Samples every `intervalBytes` while `work` runs. */
export async function sampleAllocations(work: () => Promise<void>, perOps: number, intervalBytes: number): Promise<AllocationProfile> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: intervalBytes, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
  await work();
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: SampleNode } };
  session.disconnect();
  const by = new Map<string, number>();
  let total = 0;
  const walk = (n: SampleNode): void => {
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
    total += n.selfSize;
    by.set(key, (by.get(key) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c);
  };
  walk(profile.head);
  return { total: total / perOps, byFunction: [...by].map(([k, v]) => [k, v / perOps] as [string, number]).sort((a, b) => b[1] - a[1]) };
}

/** Prints a profile: the total, then the `top` largest functions. */
export function printAllocations(label: string, p: AllocationProfile, top: number): void {
  console.log(`${label}: ${Math.round(p.total)} B allocated per operation`);
  for (const [k, v] of p.byFunction.slice(0, top)) console.log(`${String(Math.round(v)).padStart(7)} B  ${k}`);
}
