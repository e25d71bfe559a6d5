/**
 * What each part of meshlet's telemetry costs `mesh.dispatcher` per request, in ONE process with
 * ONE mesh and the OpenTelemetry SDK installed (`startTelemetry()`, bench/lib/otel.ts): the parts
 * are switched between slices — Istio's metrics and tracing by installing a snapshot whose
 * Telemetry says so, and meshlet's telemetry as a whole by taking its subscribers off the call
 * channels (what a mesh without an SDK has: nobody listens to `meshlet:call:*`; the metadata
 * exchange's `attempt:start` subscriber stays, as it does without an SDK). The modes share the
 * heap, the JIT's code and the connections (sibling of telemetry-toggle.ts, which switches
 * tracing only).
 *
 *   node bench/outbound/telemetry-switches.ts [modes] (env ROUNDS=30 N=2000 C=64 LAYOUT=1core)
 *   ONLY=<mode> node --cpu-prof bench/outbound/telemetry-switches.ts   (one mode, ROUNDS×N requests, no report)
 *
 * Modes (metrics = Istio's standard metrics, reporter="source"; tracing as Istio's Telemetry):
 *   off      meshlet's call subscribers detached (the SDK still installed)
 *   plumb    subscribers attached, metrics disabled (`metrics: [{ overrides: [{ disabled: true }] }]`),
 *            tracing `disableSpanReporting` (messages built and published, x-request-id written)
 *   metrics  plumb + metrics on
 *   trace0   plumb + tracing sampled at 0 % (traceparent written)
 *   trace1   plumb + tracing sampled at 1 %
 *   all      metrics on, tracing at 1 % — what `startTelemetry()` users get
 *   trace100 plumb + every call sampled (only when named): one sampled call's cost
 *
 * Three figures per slice, per request (as ladder.ts): `cpu` (process user + system CPU), `main`
 * (the main thread's alone) and `alloc` (bytes allocated on the JS heap, from the GCs' before and
 * after sizes). Slices of N requests at concurrency C after 200 unmeasured ones in the new mode;
 * modes in reverse order every other round; each pair is the median over rounds of the paired
 * difference with a bootstrap 90 % interval. The upstream is bench/outbound/upstream.ts in its own
 * process, pinned as LAYOUT says (`1core`: both on CPU 0, the layout of issue #15's target).
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { channel } from 'node:diagnostics_channel';
import { request } from 'undici';
import { startBenchTelemetry } from '../lib/otel.ts';
import { compileSnapshot, createMesh } from '../../src/index.ts';
import { pinFromStart } from '../lib/pin.ts';
import { METRICS, measureSlice, perVariant } from '../lib/slice-meter.ts';
import { HOST, meshResources } from './mesh-config.ts';

const ALL = ['off', 'plumb', 'metrics', 'trace0', 'trace1', 'all'];
/** Modes run only when named: every call sampled (what one sampled call costs, × 100). */
const OPT_IN = ['trace100'];
const PAIRS = ['trace100-trace0', 'plumb-off', 'metrics-plumb', 'trace0-plumb', 'trace1-trace0', 'trace1-plumb', 'all-off', 'all-metrics', 'all-trace1'];
const ONLY = process.env.ONLY;
const names = ONLY !== undefined ? [ONLY] : (process.argv[2] ?? ALL.join(',')).split(',');
for (const n of names) if (!ALL.includes(n) && !OPT_IN.includes(n)) throw new Error(`unknown mode ${n} (known: ${[...ALL, ...OPT_IN].join(', ')})`);
const ROUNDS = Number(process.env.ROUNDS ?? 30);
const N = Number(process.env.N ?? 2000);
const C = Number(process.env.C ?? 64);
const pin = pinFromStart('SWITCHES_PINNED');

const telemetry = await startBenchTelemetry();
const upstreamScript = [process.execPath, new URL('./upstream.ts', import.meta.url).pathname];
const [upCmd, ...upArgs] = pin.upstream(upstreamScript);
const up = spawn(upCmd as string, upArgs, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const port = await new Promise<number>((r) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));

const workload = { service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' } };
const telemetryResource = (tracing: object, metricsOn: boolean) => ({
  apiVersion: 'telemetry.istio.io/v1',
  kind: 'Telemetry',
  metadata: { name: 'mesh-default', namespace: 'istio-system', creationTimestamp: '2026-01-01T00:00:00Z' },
  spec: { tracing: [tracing], ...(metricsOn ? {} : { metrics: [{ overrides: [{ disabled: true }] }] }) },
});
const NO_SPANS = { disableSpanReporting: true };
const settings: Record<string, [object, boolean]> = {
  off: [{ randomSamplingPercentage: 1 }, true],
  plumb: [NO_SPANS, false],
  metrics: [NO_SPANS, true],
  trace0: [{ randomSamplingPercentage: 0 }, false],
  trace1: [{ randomSamplingPercentage: 1 }, false],
  trace100: [{ randomSamplingPercentage: 100 }, false],
  all: [{ randomSamplingPercentage: 1 }, true],
};
const resources = (m: string) => {
  const [tracing, metricsOn] = settings[m] as [object, boolean];
  return [...meshResources(port), telemetryResource(tracing, metricsOn)] as Parameters<typeof compileSnapshot>[0];
};
const mesh = await createMesh({ ...workload, config: resources('all') as object[] });
const snapshots = Object.fromEntries([...ALL, ...OPT_IN].map((m) => [m, compileSnapshot(resources(m), workload)]));

/** The call channels' subscribers, taken off for `off` and put back after it. */
interface Subscribed {
  _subscribers?: ((m: unknown, name: string | symbol) => void)[];
}
const CALL_CHANNELS = ['meshlet:call:start', 'meshlet:call:end', 'meshlet:attempt:start', 'meshlet:attempt:end'].map((n) => channel(n));
/** What listens to `attempt:start` before any call (the metadata exchange): kept in `off`. */
const keep = new Set((channel('meshlet:attempt:start') as unknown as Subscribed)._subscribers ?? []);
let detached: [ReturnType<typeof channel>, (m: unknown, name: string | symbol) => void][] = [];
function attach(on: boolean): void {
  if (on) {
    for (const [ch, fn] of detached) ch.subscribe(fn);
    detached = [];
    return;
  }
  for (const ch of CALL_CHANNELS) {
    for (const fn of [...((ch as unknown as Subscribed)._subscribers ?? [])]) {
      if (keep.has(fn)) continue;
      ch.unsubscribe(fn);
      detached.push([ch, fn]);
    }
  }
}
function use(m: string): void {
  attach(true);
  mesh.install(snapshots[m] as never);
  if (m === 'off') attach(false);
}

const url = `http://${HOST}:${port}/x`;
const dispatcher = mesh.dispatcher;
async function run(n: number): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: C }, async () => { while (i++ < n) await (await request(url, { dispatcher })).body.text(); }));
}

for (const m of names) {
  use(m);
  await run(15_000);
}
if (ONLY !== undefined) {
  await run(ROUNDS * N);
  up.kill();
  await mesh.close();
  await telemetry.shutdown();
  process.exit(0);
}

const per = perVariant(names);
for (let r = 0; r < ROUNDS; r++) {
  for (const m of r % 2 === 1 ? [...names].reverse() : names) {
    use(m);
    await run(200);
    await measureSlice(per, m, N, () => run(N));
  }
}
attach(true);
up.kill();
await mesh.close();
await telemetry.shutdown();

const median = (x: readonly number[]) => {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 === 1 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
/** A bootstrap 90 % interval of the median. */
const interval = (x: readonly number[]) => {
  const m: number[] = [];
  for (let b = 0; b < 1000; b++) m.push(median(Array.from({ length: x.length }, () => x[Math.floor(Math.random() * x.length)] as number)));
  m.sort((p, q) => p - q);
  return [m[50] as number, m[949] as number] as const;
};
const signed = (v: number, digits = 1) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
console.log(`per request, median of ${ROUNDS} rounds of ${N} requests at c=${C}, layout ${pin.pinned ? pin.layout : 'not pinned'}, one mesh, the SDK installed, telemetry switched per slice`);
console.log('          cpu µs  main µs  alloc B');
for (const n of names) console.log(`${n.padEnd(8)} ${median(per.cpu[n] as number[]).toFixed(1).padStart(7)} ${median(per.main[n] as number[]).toFixed(1).padStart(8)} ${median(per.alloc[n] as number[]).toFixed(0).padStart(8)}`);
console.log('pair (paired per round)   cpu µs (90 % interval)     main µs (90 % interval)    alloc B (90 % interval)');
for (const pair of PAIRS) {
  const [a, b] = pair.split('-') as [string, string];
  if (!names.includes(a) || !names.includes(b)) continue;
  const cols = METRICS.map((k) => {
    const diff = (per[k][a] as number[]).map((v, i) => v - ((per[k][b] as number[])[i] as number));
    const [lo, hi] = interval(diff);
    const f = k === 'alloc' ? 0 : 1;
    return `${signed(median(diff), f).padStart(7)} (${signed(lo, f)} .. ${signed(hi, f)})`.padEnd(27);
  });
  console.log(`${`${a} - ${b}`.padEnd(24)}  ${cols.join(' ')}`);
}
process.exit(0);
