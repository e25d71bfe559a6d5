/**
 * What telemetry costs `mesh.dispatcher` per request, one switch at a time, and what a change to
 * the code does to each: client CPU per request (`process.cpuUsage`) of variants that each run in
 * a process of their own (the OpenTelemetry SDK is process-global, and one mesh's subscribers
 * would make another mesh's calls build messages), driven in turn by this process — one slice of
 * N requests at concurrency C per variant per round, in reverse order every other round — so the
 * variants alternate on the same machine state. Each step is the median over rounds of the paired
 * difference, with a bootstrap 90 % interval. The upstream is bench/outbound/upstream.ts in its
 * own process; neither its CPU nor this process's is counted.
 *
 *   node bench/outbound/telemetry-ab.ts [variants] (env ROUNDS=30 N=2000 C=64 WARM=20000 BASE=<tree> PROF=<variant> API=fetch)
 *
 * Variants (undici.request + mesh.dispatcher to the service's full name, as bench:outbound's
 * mesh-dispatcher-otel-* split variants):
 *   plain     no SDK (meshlet's telemetry idle)
 *   sdkonly   SDK installed, meshlet's tracing, Istio metrics and own metrics off
 *   notrace   SDK installed, tracing off (`tracing.enabled: false`), Istio metrics on
 *   nospans   SDK installed, spans sampled at 0 % (trace headers still written), metrics on
 *   otel      SDK installed, spans sampled at 1 % (Istio's default), metrics on — what users get
 *   nometrics SDK installed, Istio metrics off, spans at 1 %
 *   alog      no SDK, the access log on in Istio's default text format (MeshConfig `accessLogFile`, to /dev/null)
 * `base:<variant>` runs the same variant with the mesh (src/ and bench/lib/otel.ts) of the tree
 * at BASE (e.g. `git worktree add /tmp/base main` with node_modules linked): an A/B of a change,
 * printed as `<variant> - base:<variant>`. `<variant>#2` is a second process of the same variant:
 * `notrace,notrace#2` shows what two processes of one variant differ by (JIT and heap layout
 * differ from process to process: a bias that more rounds do not remove). PROF=<variant> runs that
 * child with `--cpu-prof` (profile written to the working directory); CHILD_ARGS adds node flags to
 * every child (e.g. `--trace-deopt`).
 *
 * @module
 */
import { fork } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';

const KINDS = ['plain', 'sdkonly', 'notrace', 'nospans', 'otel', 'nometrics', 'alog'];
const HERE = resolve(import.meta.dirname, '../..');

if (process.argv[2] === '--child') await child(process.argv[3] as string, process.argv[4] as string);
else await main();

/** One variant: a mesh (with the SDK when asked), running slices on the parent's word. */
async function child(kind: string, root: string): Promise<void> {
  const port = Number(process.env.UPSTREAM_PORT);
  const C = Number(process.env.C ?? 64);
  const at = (p: string) => pathToFileURL(resolve(root, p)).href;
  const { request } = await import('undici');
  if (kind !== 'plain' && kind !== 'alog') {
    const { startBenchTelemetry } = (await import(at('bench/lib/otel.ts'))) as typeof import('../lib/otel.ts');
    await startBenchTelemetry(at('src/telemetry/sdk/index.ts'));
  }
  const { createMesh } = (await import(at('src/index.ts'))) as { createMesh(o: object): Promise<{ dispatcher: object; fetch(url: string): Promise<Response>; close(): Promise<void> }> };
  const { HOST, meshResources } = (await import(at('bench/outbound/mesh-config.ts'))) as typeof import('./mesh-config.ts');
  const telemetry: Record<string, object | boolean> = {};
  if (kind === 'sdkonly' || kind === 'notrace') telemetry.tracing = { enabled: false };
  if (kind === 'nospans') telemetry.tracing = { samplingPercentage: 0 };
  if (kind === 'sdkonly' || kind === 'nometrics') telemetry.metrics = { enabled: false };
  if (kind === 'sdkonly') telemetry.ownMetrics = false;
  if (kind === 'alog') telemetry.accessLog = { file: '/dev/null' };
  const mesh = await createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port), telemetry });
  const url = `http://${HOST}:${port}/x`;
  const dispatcher = mesh.dispatcher;
  // API=fetch: mesh.fetch (bench:outbound's mesh-fetch-* variants) instead of undici.request + mesh.dispatcher.
  const call = process.env.API === 'fetch' ? async () => void (await (await mesh.fetch(url)).text()) : async () => void (await (await request(url, { dispatcher } as never)).body.text());
  const run = async (n: number) => {
    let i = 0;
    await Promise.all(Array.from({ length: C }, async () => { while (i++ < n) await call(); }));
  };
  process.on('message', async (m: { run?: number; exit?: boolean }) => {
    if (m.exit) {
      await mesh.close();
      process.exit(0);
    }
    // Bytes allocated on the JS heap (its growth plus what the GCs freed): nearly deterministic where CPU is noisy.
    const gc = new v8.GCProfiler();
    const h0 = v8.getHeapStatistics().used_heap_size;
    gc.start();
    const c0 = process.cpuUsage();
    await run(m.run as number);
    const c = process.cpuUsage(c0);
    const h1 = v8.getHeapStatistics().used_heap_size;
    let freed = 0;
    for (const g of gc.stop()?.statistics ?? []) freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
    process.send?.({ us: (c.user + c.system) / (m.run as number), bytes: (h1 - h0 + freed) / (m.run as number) });
  });
  process.send?.({ ready: true });
}

async function main(): Promise<void> {
  const names = (process.argv[2] ?? 'notrace,nospans,otel').split(',');
  const kindOf = (n: string) => n.replace(/^base:/, '').replace(/#\d+$/, '');
  for (const n of names) if (!KINDS.includes(kindOf(n))) throw new Error(`unknown variant ${n} (known: ${KINDS.join(', ')}, base:<variant>, <variant>#2)`);
  const base = process.env.BASE;
  if (names.some((n) => n.startsWith('base:')) && base === undefined) throw new Error('base:<variant> needs BASE=<tree>');
  const ROUNDS = Number(process.env.ROUNDS ?? 30);
  const N = Number(process.env.N ?? 2000);

  const up = fork(resolve(HERE, 'bench/outbound/upstream.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((r) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
  const kids = new Map<string, ReturnType<typeof fork>>();
  for (const n of names) {
    const isBase = n.startsWith('base:');
    const kind = kindOf(n);
    const execArgv = process.env.PROF === n ? ['--cpu-prof', `--cpu-prof-name=telemetry-ab-${n.replace(/[:#]/g, '-')}.cpuprofile`] : [];
    if (process.env.CHILD_ARGS !== undefined) execArgv.push(...process.env.CHILD_ARGS.split(' '));
    const k = fork(import.meta.filename, ['--child', kind, isBase ? (base as string) : HERE], { execArgv, env: { ...process.env, UPSTREAM_PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((r) => k.once('message', () => r()));
    kids.set(n, k);
  }
  const slice = (n: string, size: number) =>
    new Promise<{ us: number; bytes: number }>((r) => {
      const k = kids.get(n) as ReturnType<typeof fork>;
      k.once('message', (m: { us: number; bytes: number }) => r(m));
      k.send({ run: size });
    });
  // WARM: requests each variant makes before the rounds (the code of a path taken by 1 % of calls — the sampled spans' —
  // is optimised by V8 only after thousands of such calls, as in a service that has been up a while).
  const WARM = Number(process.env.WARM ?? 20_000);
  for (const n of names) for (let left = WARM; left > 0; left -= 20_000) await slice(n, Math.min(left, 20_000));
  for (const n of names) await slice(n, 5_000);
  const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const bytes: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of r % 2 === 0 ? names : [...names].reverse()) {
      const got = await slice(n, N);
      cpu[n]?.push(got.us);
      bytes[n]?.push(got.bytes);
    }
  }
  for (const k of kids.values()) k.send({ exit: true });
  await Promise.all([...kids.values()].map((k) => new Promise((r) => k.once('exit', r))));
  up.kill();

  console.log(`client CPU µs/request and bytes allocated per request, median of ${ROUNDS} rounds of ${N} requests at c=${process.env.C ?? 64}, one process per variant`);
  for (const n of names) console.log(`${n.padEnd(15)} ${median(cpu[n] as number[]).toFixed(2).padStart(7)} µs ${median(bytes[n] as number[]).toFixed(0).padStart(7)} B`);
  console.log('step (paired per round)          median   90 % interval       bytes (90 % interval)');
  const steps: [string, string][] = [];
  for (let i = 1; i < names.length; i++) if (!names[i]?.startsWith('base:') && !names[i - 1]?.startsWith('base:')) steps.push([names[i] as string, names[i - 1] as string]);
  for (const n of names) if (n.startsWith('base:') && names.includes(n.slice(5))) steps.push([n.slice(5), n]);
  for (const [a, b] of steps) {
    const diff = (cpu[a] as number[]).map((v, i) => v - (cpu[b] as number[])[i]!);
    const [lo, hi] = interval(diff);
    const dB = (bytes[a] as number[]).map((v, i) => v - (bytes[b] as number[])[i]!);
    const [bLo, bHi] = interval(dB);
    console.log(`${`${a} - ${b}`.padEnd(32)} ${signed(median(diff)).padStart(6)}   ${signed(lo)} .. ${signed(hi)}   ${Math.round(median(dB))} B (${Math.round(bLo)} .. ${Math.round(bHi)})`);
  }
}

function median(x: readonly number[]): number {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 === 1 ? (s[s.length >> 1] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
}

/** A bootstrap 90 % interval of the median. */
function interval(x: readonly number[]): readonly [number, number] {
  const m: number[] = [];
  for (let b = 0; b < 1000; b++) m.push(median(Array.from({ length: x.length }, () => x[Math.floor(Math.random() * x.length)] as number)));
  m.sort((p, q) => p - q);
  return [m[50] as number, m[949] as number];
}

function signed(v: number): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
}
