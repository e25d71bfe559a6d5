/**
 * Why a raw undici client slows down in a process that has loaded meshlet (bench/RESULTS.md,
 * "an unused mesh makes a raw client slower"): V8's allocation-site pretenuring. Each mode runs a
 * raw `undici.request` loop at c=64 against bench/outbound/upstream.ts in a fresh process pinned
 * to CPU 0 (the upstream on CPU 1), and reports the young generation's size when the loop starts
 * and what the scavenges cost while it runs. Scavenge time is the column to read: it moves by
 * 5-20x between regimes, far beyond this machine's noise; CPU per request is reported too.
 *
 *   node_modules/.bin/node bench/outbound/gc-regime.ts [--rounds 3] [--requests 40000] [--modes a,b] [--api request|fetch] [--mesh-module <file>]
 *
 * Modes:
 *   bare             undici only.
 *   bare-nopt        the same under --no-allocation-site-pretenuring.
 *   loaded           meshlet imported (no mesh made), raw calls.
 *   loaded-nopt      the same under --no-allocation-site-pretenuring.
 *   loaded-pt-late   the same, pretenuring switched off through the warm-up and on after it.
 *   grown            undici only, the young generation first grown to its maximum by short-lived
 *                    objects that survive a few scavenges (no meshlet at all).
 *   mesh             the calls go through mesh.dispatcher (the judged path).
 *   mesh-nopt        the same under --no-allocation-site-pretenuring.
 *
 * `--api fetch`: the loop calls undici's `fetch` (and `mesh.fetch` in the mesh modes) instead of
 * `undici.request`, reading each body as text. `GC_REGIME_CPU_PROF=<file>` writes a CPU profile of
 * the measured loop alone (each child overwrites it: give one mode with `--modes`).
 *
 * A CPU profile's time per function is wall-clock time: its samples land on whatever the main
 * thread was running when the kernel took the CPU away, so on a shared CPU (this process's own GC
 * helper threads are pinned to the same CPU) every function looks slower in proportion to how long
 * the main thread waited. The `main run` / `main wait` columns (Linux `schedstat`, µs per request)
 * say how much of it was CPU and how much waiting, and `helpers` the CPU of the process's other
 * threads (V8's GC workers, compilers). `GC_REGIME_PERF=<file>` records the main thread's own CPU
 * samples over the measured loop (`perf record -e cpu-clock -t <pid>`, which advances only while
 * the thread runs; the child runs with `--perf-basic-prof-only-functions` so that perf can name
 * JavaScript functions; bench/outbound/perf-split.ts splits the file by where the code comes from).
 *
 * @module
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as inspector from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import { HOST, meshResources } from './mesh-config.ts';

const SELF = fileURLToPath(import.meta.url);
const MODES = ['bare', 'loaded', 'loaded-nopt', 'loaded-pt-late', 'grown', 'mesh', 'mesh-nopt', 'bare-nopt'] as const;
type Mode = (typeof MODES)[number];

interface Sample {
  mode: Mode;
  youngMbAtStart: number;
  scavenges: number;
  msPerScavenge: number;
  gcMsPer1000: number;
  cpuUsPerReq: number;
  /** The main thread's CPU and run-queue wait, and the other threads' CPU, µs per request (0 where /proc has no schedstat). */
  mainRunUs: number;
  mainWaitUs: number;
  helpersUs: number;
  failures: number;
}

/** Each thread's CPU and run-queue wait so far, ns (Linux `/proc/self/task/<tid>/schedstat`; empty elsewhere). */
function schedStats(): Map<string, { run: number; wait: number }> {
  const m = new Map<string, { run: number; wait: number }>();
  let tids: string[] = [];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return m;
  }
  for (const t of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ').map(Number);
      m.set(t, { run: run ?? 0, wait: wait ?? 0 });
    } catch {
      // A thread that ended between the listing and the read.
    }
  }
  return m;
}

function youngMb(): number {
  const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  return s === undefined ? 0 : s.space_size / 1e6;
}

async function child(mode: Mode, port: number, requests: number, meshModule: string, api: string): Promise<Sample> {
  const undici = await import('undici');
  if (mode === 'loaded-pt-late') v8.setFlagsFromString('--no-allocation-site-pretenuring');
  let mesh: { dispatcher: import('undici').Dispatcher; fetch: typeof undici.fetch; close(): Promise<void> } | undefined;
  if (mode !== 'bare' && mode !== 'bare-nopt' && mode !== 'grown') {
    const m = (await import(pathToFileURL(meshModule).href)) as { createMesh(o: object): Promise<NonNullable<typeof mesh>> };
    if (mode === 'mesh' || mode === 'mesh-nopt') mesh = await m.createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) });
  }
  if (mode === 'grown') {
    // Objects that live through a few scavenges, as a module graph's do while it loads.
    let keep: object[] = [];
    for (let i = 0; i < 600_000; i++) {
      keep.push({ a: i, b: i & 7 });
      if (keep.length > 300_000) keep = keep.slice(150_000);
    }
    keep = [];
  }
  const young = youngMb();
  const agent = new undici.Agent({ connections: 64 });
  const dispatcher = mesh?.dispatcher ?? agent;
  const url = mesh === undefined ? `http://127.0.0.1:${port}/x` : `http://${HOST}:${port}/x`;
  let failures = 0;
  const one =
    api === 'fetch'
      ? async (): Promise<void> => {
          const r = mesh === undefined ? await undici.fetch(url, { dispatcher }) : await mesh.fetch(url);
          if (r.status !== 200) failures++;
          await r.text();
        }
      : async (): Promise<void> => {
          const r = await undici.request(url, { dispatcher });
          if (r.statusCode !== 200) failures++;
          await r.body.dump();
        };
  const run = async (n: number): Promise<void> => {
    let i = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (i++ < n) await one();
      }),
    );
  };
  let scavenges = 0;
  let scavengeMs = 0;
  let gcMs = 0;
  let on = false;
  const obs = new PerformanceObserver((list) => {
    if (!on) return;
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      // perf_hooks' NODE_PERFORMANCE_GC_MINOR: a scavenge.
      if (((e as { detail?: { kind?: number } }).detail)?.kind === 1) {
        scavenges++;
        scavengeMs += e.duration;
      }
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  await run(Math.round(requests / 2));
  if (mode === 'loaded-pt-late') v8.setFlagsFromString('--allocation-site-pretenuring');
  on = true;
  // GC_REGIME_CPU_PROF=<file>: a CPU profile of the measured loop alone (not the start or the warm-up).
  const profFile = process.env.GC_REGIME_CPU_PROF;
  const session = profFile === undefined ? undefined : new inspector.Session();
  if (session !== undefined) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  // GC_REGIME_PERF=<file>: the main thread's CPU samples over the measured loop (perf's cpu-clock advances only while it runs).
  const perfFile = process.env.GC_REGIME_PERF;
  const perf = perfFile === undefined ? undefined : spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '5000', '-t', String(process.pid), '-o', perfFile], { stdio: 'ignore' });
  // perf attaches after it starts; not waiting would lose the loop's first samples, not change them.
  if (perf !== undefined) await sleep(700);
  const s0 = schedStats();
  const c0 = process.cpuUsage();
  await run(requests);
  const c = process.cpuUsage(c0);
  const s1 = schedStats();
  if (perf !== undefined) {
    const exited = new Promise((resolve) => perf.once('exit', resolve));
    perf.kill('SIGINT');
    await exited;
  }
  let mainRun = 0;
  let mainWait = 0;
  let helpers = 0;
  for (const [tid, b] of s1) {
    const a = s0.get(tid) ?? { run: 0, wait: 0 };
    if (tid === String(process.pid)) {
      mainRun = b.run - a.run;
      mainWait = b.wait - a.wait;
    } else helpers += b.run - a.run;
  }
  on = false;
  if (session !== undefined && profFile !== undefined) {
    const { profile } = (await session.post('Profiler.stop')) as { profile: object };
    writeFileSync(profFile, JSON.stringify(profile));
    session.disconnect();
  }
  obs.disconnect();
  await agent.close();
  await mesh?.close();
  return {
    mode,
    youngMbAtStart: +young.toFixed(1),
    scavenges,
    msPerScavenge: scavenges === 0 ? 0 : +(scavengeMs / scavenges).toFixed(1),
    gcMsPer1000: +((gcMs / requests) * 1000).toFixed(2),
    cpuUsPerReq: +((c.user + c.system) / requests).toFixed(1),
    mainRunUs: +(mainRun / 1e3 / requests).toFixed(1),
    mainWaitUs: +(mainWait / 1e3 / requests).toFixed(1),
    helpersUs: +(helpers / 1e3 / requests).toFixed(1),
    failures,
  };
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '3'));
  const requests = Number(arg('--requests', '40000'));
  const modes = arg('--modes', MODES.join(',')).split(',') as Mode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: unknown mode ${m} (one of ${MODES.join(', ')})`);
  const api = arg('--api', 'request');
  if (api !== 'request' && api !== 'fetch') throw new Error(`--api: ${api} (request or fetch)`);
  const meshModule = arg('--mesh-module', fileURLToPath(new URL('../../src/index.ts', import.meta.url)));
  const pin = spawnSync('taskset', ['-V']).status === 0;
  const up: ChildProcess = fork(fileURLToPath(new URL('./upstream.ts', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  if (pin && up.pid !== undefined) spawnSync('taskset', ['-pc', '1', String(up.pid)]);
  const port = await new Promise<number>((resolve) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && resolve(m.port as number)));
  const all = new Map<Mode, Sample[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
      const flags = mode.endsWith('-nopt') ? ['--no-allocation-site-pretenuring'] : [];
      // perf names JIT code from /tmp/perf-<pid>.map.
      if (process.env.GC_REGIME_PERF !== undefined) flags.push('--perf-basic-prof-only-functions');
      const cmd = [...flags, SELF, '--child', mode, String(port), String(requests), meshModule, api];
      const res = pin ? spawnSync('taskset', ['-c', '0', process.execPath, ...cmd], { encoding: 'utf8' }) : spawnSync(process.execPath, cmd, { encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`${mode}: ${res.stderr}`);
      all.get(mode)?.push(JSON.parse(res.stdout.trim().split('\n').pop() as string) as Sample);
    }
  }
  up.kill();
  console.log(`${rounds} rounds, ${requests} requests measured per run (after ${Math.round(requests / 2)} to warm up), c=64, ${api === 'fetch' ? 'fetch' : 'undici.request'}, Node ${process.version}${pin ? ', client on CPU 0, upstream on CPU 1' : ''}; medians:\n`);
  console.log('| mode | young generation at start, MB | scavenges | ms per scavenge | GC ms per 1000 requests | client CPU µs/req | main run µs/req | main wait µs/req | helpers µs/req | failures |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const [mode, xs] of all) {
    const m = (f: (s: Sample) => number) => median(xs.map(f));
    console.log(`| ${mode} | ${m((s) => s.youngMbAtStart)} | ${m((s) => s.scavenges)} | ${m((s) => s.msPerScavenge).toFixed(1)} | ${m((s) => s.gcMsPer1000).toFixed(2)} | ${m((s) => s.cpuUsPerReq).toFixed(1)} | ${m((s) => s.mainRunUs).toFixed(1)} | ${m((s) => s.mainWaitUs).toFixed(1)} | ${m((s) => s.helpersUs).toFixed(1)} | ${xs.reduce((a, s) => a + s.failures, 0)} |`);
  }
}

if (process.argv[2] === '--child') {
  const [mode, port, requests, meshModule, api] = process.argv.slice(3);
  const s = await child(mode as Mode, Number(port), Number(requests), meshModule as string, api ?? 'request');
  console.log(JSON.stringify(s));
  process.exit(0);
} else {
  await main();
}
