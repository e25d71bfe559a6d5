/**
 * What tracing costs `mesh.dispatcher` per request, off / sampled at 0 % / at 1 %, in ONE process
 * with ONE mesh: the mode is switched between slices by installing a snapshot whose Telemetry
 * says so (`disableSpanReporting`, `randomSamplingPercentage` 0 or 1), so the modes share the
 * heap, the JIT's code and the connections, and the per-process bias of one-process-per-variant
 * runs (bench/outbound/telemetry-ab.ts, bench:outbound's split variants) does not enter. Istio's
 * metrics are on in every mode. Client CPU per request (`process.cpuUsage`) over slices of N
 * requests at concurrency C, after 200 unmeasured requests in the new mode; modes in reverse
 * order every other round; each pair is the median over rounds of the paired difference, with the
 * 10th and 90th percentiles. The upstream is bench/outbound/upstream.ts in its own process.
 *
 *   node bench/outbound/telemetry-toggle.ts [tree] (env ROUNDS=30 N=3000 C=64)
 *
 * `tree`: the meshlet tree whose src/ (and bench/lib/otel.ts) is measured, this one by default —
 * run it for two trees, one after the other, for a before/after of each mode's cost.
 *
 * @module
 */
import { fork } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';

const here = resolve(import.meta.dirname, '../..');
const root = resolve(process.argv[2] ?? here);
const at = (p: string) => pathToFileURL(resolve(root, p)).href;
const ROUNDS = Number(process.env.ROUNDS ?? 30);
const N = Number(process.env.N ?? 3000);
const C = Number(process.env.C ?? 64);

const { startBenchTelemetry } = (await import(at('bench/lib/otel.ts'))) as typeof import('../lib/otel.ts');
const telemetry = await startBenchTelemetry(at('src/telemetry/sdk/index.ts'));
const { createMesh, compileSnapshot } = (await import(at('src/index.ts'))) as typeof import('../../src/index.ts');
const { HOST, meshResources } = (await import(at('bench/outbound/mesh-config.ts'))) as typeof import('./mesh-config.ts');
const up = fork(resolve(here, 'bench/outbound/upstream.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const port = await new Promise<number>((r) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));

const workload = { service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' } };
const telemetryResource = (tracing: object) => ({
  apiVersion: 'telemetry.istio.io/v1',
  kind: 'Telemetry',
  metadata: { name: 'mesh-default', namespace: 'istio-system', creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: { tracing: [tracing] },
});
const modes: Record<string, object> = { off: { disableSpanReporting: true }, '0%': { randomSamplingPercentage: 0 }, '1%': { randomSamplingPercentage: 1 } };
const names = Object.keys(modes);
const resources = (m: string) => [...meshResources(port), telemetryResource(modes[m] as object)] as Parameters<typeof compileSnapshot>[0];
const mesh = await createMesh({ ...workload, config: resources('0%') as object[] });
const snapshots = Object.fromEntries(names.map((m) => [m, compileSnapshot(resources(m), workload)]));
const url = `http://${HOST}:${port}/x`;
const dispatcher = mesh.dispatcher;
const run = async (n: number) => {
  let i = 0;
  await Promise.all(Array.from({ length: C }, async () => { while (i++ < n) await (await request(url, { dispatcher })).body.text(); }));
};

for (const m of names) {
  mesh.install(snapshots[m] as never);
  await run(15_000);
}
const cpu: Record<string, number[]> = Object.fromEntries(names.map((m) => [m, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const m of r % 2 === 1 ? [...names].reverse() : names) {
    mesh.install(snapshots[m] as never);
    await run(200);
    const c0 = process.cpuUsage();
    await run(N);
    const c = process.cpuUsage(c0);
    cpu[m]?.push((c.user + c.system) / N);
  }
}
up.kill();
await mesh.close();
await telemetry.shutdown();

const sorted = (x: readonly number[]) => [...x].sort((a, b) => a - b);
const median = (x: readonly number[]) => {
  const s = sorted(x);
  return ((s[(s.length - 1) >> 1] as number) + (s[s.length >> 1] as number)) / 2;
};
const pct = (x: readonly number[], p: number) => sorted(x)[Math.floor(p * (x.length - 1))] as number;
console.log(`${root}: client CPU µs/request, median of ${ROUNDS} rounds of ${N} requests at c=${C}, one mesh, tracing mode switched per slice`);
for (const m of names) console.log(`${m.padEnd(4)} ${median(cpu[m] as number[]).toFixed(2).padStart(7)}`);
console.log('pair (paired per round)   median   [p10 .. p90]');
for (const [a, b] of [['0%', 'off'], ['1%', '0%'], ['1%', 'off']] as const) {
  const d = (cpu[a] as number[]).map((v, i) => v - (cpu[b] as number[])[i]!);
  console.log(`${`${a} - ${b}`.padEnd(24)} ${median(d).toFixed(2).padStart(6)}   [${pct(d, 0.1).toFixed(2)} .. ${pct(d, 0.9).toFixed(2)}]`);
}
process.exit(0);
