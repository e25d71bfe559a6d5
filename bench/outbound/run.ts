/**
 * Outbound data-path benchmark: what meshlet adds to a client call, next to what a sidecar adds.
 *
 *   node_modules/.bin/node --expose-gc bench/outbound/run.ts [--rounds N] [--duration S] [--warmup S] [--quick]
 *       [--layout 2core|1core] [--patience S] [--variants a,b] [--mesh-module FILE] [--no-write | --write]
 *
 * Variants, run interleaved round-robin (A B C … A B C …), each run in a fresh client process:
 *   undici-request   undici.request, raw undici Agent → upstream                 (baseline for request)
 *   mesh-dispatcher  undici.request with dispatcher: mesh.dispatcher → upstream  (vs undici-request)
 *   undici-fetch     undici.fetch, raw undici Agent → upstream                   (baseline for fetch)
 *   mesh-fetch       mesh.fetch → upstream                                       (vs undici-fetch)
 *   nginx-1hop       undici.request → nginx → upstream                           (vs undici-request)
 *   nginx-2hop       undici.request → nginx → nginx → upstream                   (vs undici-request)
 * Each client process warms up (--warmup S, half at c=1, half at c=64), then measures c=1 (p50
 * latency, client CPU µs/request) and c=64 (requests/s, client CPU µs/request) for --duration S
 * each. Ratios are medians of the per-round paired ratios/differences against the same round's
 * baseline of the same client API. Defaults: 5 rounds × 2.5 s (≈ 4 min); --quick: 3 × 0.75 s (≈ 1 min).
 *
 * The upstream (bare node:http, 100-byte body, keep-alive) is its own process. --layout 2core
 * (default): clients pinned to CPU 0, upstream to CPU 1, nginx floats; --layout 1core: all on
 * CPU 0 (much steadier on a 2-vCPU VM, see perf-anchors B1). nginx and upstream CPU are read
 * from /proc/<pid>/stat around each measured phase. Other processes' CPU use is measured the
 * same way: the bench waits for it to pass and re-runs disturbed runs within --patience S (60;
 * quick 10), and leaves still-disturbed runs out of the medians when enough clean ones remain.
 *
 * --variants runs a subset; --mesh-module FILE takes createMesh from FILE instead of
 * src/index.ts (e.g. a dist/ build). Results go to bench/RESULTS.md, section "outbound" (2core)
 * or "outbound-1core", unless --no-write (or NO_WRITE=1); a --quick run writes only with --write.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { median, writeSection } from '../lib/results.ts';
import type { ClientOptions, ClientResult, VariantId } from './client.ts';
import { meshResources } from './mesh-config.ts';
import { type NginxInstance, nginxVersion, startNginx } from './nginx.ts';

// ---------------------------------------------------------------- options

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    quick: { type: 'boolean', default: false },
    variants: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    'mesh-module': { type: 'string' },
    layout: { type: 'string', default: '2core' },
    patience: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help === true) {
  const src = readFileSync(new URL(import.meta.url), 'utf8');
  console.log(src.slice(src.indexOf('/**') + 4, src.indexOf('*/')).replace(/^ \* ?/gm, ''));
  process.exit(0);
}
const quick = args.quick === true;
const ROUNDS = positive(args.rounds, quick ? 3 : 5, 'rounds');
const DURATION = positive(args.duration, quick ? 0.75 : 2.5, 'duration');
const WARMUP = positive(args.warmup, quick ? 0.5 : 1.5, 'warmup');
const HIGH = 64;
/** Seconds the whole run may spend waiting for other processes' load to pass and re-running disturbed runs. */
const PATIENCE = positive(args.patience, quick ? 10 : 60, 'patience');
const LAYOUT = args.layout;
if (LAYOUT !== '2core' && LAYOUT !== '1core') throw new Error(`--layout must be 2core or 1core, got ${LAYOUT}`);
/** --quick is a smoke run: it leaves bench/RESULTS.md alone unless --write is given. */
const WRITE = args.write === true || (!quick && args['no-write'] !== true && process.env.NO_WRITE === undefined);
/** Where createMesh comes from: src/index.ts, or e.g. `--mesh-module dist/index.js` to measure a build. */
const MESH_MODULE = args['mesh-module'] === undefined ? new URL('../../src/index.ts', import.meta.url).href : pathToFileURL(resolve(args['mesh-module'])).href;
const MESH_MODULE_NAME = args['mesh-module'] ?? 'src/index.ts';
const COMMAND = ['node_modules/.bin/node --expose-gc bench/outbound/run.ts', ...process.argv.slice(2)].join(' ');

function positive(v: string | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${v}`);
  return n;
}

interface Variant {
  id: VariantId;
  label: string;
  baseline?: VariantId;
  meshlet?: boolean;
  nginx?: 1 | 2;
}
const ALL: Variant[] = [
  { id: 'undici-request', label: 'undici.request, raw Agent → upstream' },
  { id: 'mesh-dispatcher', label: 'undici.request + mesh.dispatcher → upstream', baseline: 'undici-request', meshlet: true },
  { id: 'undici-fetch', label: 'undici.fetch, raw Agent → upstream' },
  { id: 'mesh-fetch', label: 'mesh.fetch → upstream', baseline: 'undici-fetch', meshlet: true },
  { id: 'nginx-1hop', label: 'undici.request → nginx → upstream', baseline: 'undici-request', nginx: 1 },
  { id: 'nginx-2hop', label: 'undici.request → nginx → nginx → upstream', baseline: 'undici-request', nginx: 2 },
];
const wanted = args.variants?.split(',').map((s) => s.trim());
for (const w of wanted ?? []) if (!ALL.some((v) => v.id === w)) throw new Error(`unknown variant ${w}; known: ${ALL.map((v) => v.id).join(', ')}`);

// ---------------------------------------------------------------- child processes and cleanup

const children = new Set<ChildProcess>();
const tmp = mkdtempSync(join(tmpdir(), 'meshlet-bench-outbound-'));
let cleaned = false;
/** Set on SIGINT/SIGTERM/SIGHUP: the run loop stops at the next step, nothing more is recorded. */
let stopping = false;

class Stopped extends Error {}

function track(p: ChildProcess): void {
  children.add(p);
  p.once('exit', () => children.delete(p));
  p.on('error', (err) => {
    if (!stopping) console.error(`child process ${p.pid ?? '?'}: ${err.message}`);
  });
}

function alive(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) if (alive(c)) c.kill('SIGTERM');
  const deadline = Date.now() + 3000;
  while ([...children].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  for (const c of children) if (alive(c)) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
}

process.on('exit', () => {
  for (const c of children) if (alive(c)) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${sig}: stopping child processes and nginx`);
    void cleanup().finally(() => process.exit(code));
  });
}

// ---------------------------------------------------------------- pinning, /proc sampling

const TASKSET = '/usr/bin/taskset';
const canPin = cpus().length >= 2 && existsSync(TASKSET) && spawnSync(TASKSET, ['-c', '1', 'true']).status === 0;
/** 2core (default): client CPU 0, upstream CPU 1, nginx floats. 1core: everything on CPU 0 (perf-anchors B1: far less noisy here). */
const ONE_CORE = LAYOUT === '1core';
const CLIENT_CPU = canPin ? 0 : undefined;
const UPSTREAM_CPU = canPin ? (ONE_CORE ? 0 : 1) : undefined;
const NGINX_CPU = canPin && ONE_CORE ? 0 : undefined;
/**
 * Other processes (e.g. a test suite running on the same VM) distort every figure here. Before each
 * run the bench waits until they use at most this many vCPUs, and a run during which they used more
 * is run again (twice at most), both within --patience seconds in total; what is still disturbed
 * is marked and left out of the medians when enough clean runs remain.
 */
const FOREIGN_LIMIT = 0.15;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function spawnNode(script: string, argv: string[], cpu: number | undefined, flags: string[] = []): ChildProcess {
  const node = [process.execPath, ...flags, new URL(script, import.meta.url).pathname, ...argv];
  const [cmd, ...rest] = cpu === undefined ? node : [TASKSET, '-c', String(cpu), ...node];
  const child = spawn(cmd as string, rest, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  track(child);
  return child;
}

function affinity(pid: number | undefined): string {
  try {
    return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';
  } catch {
    return '?';
  }
}

/** CPU time of a process so far, in µs (10 ms resolution with CLK_TCK 100). */
function procCpuUs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK; // utime, stime
  } catch {
    return Number.NaN;
  }
}

/** Machine-wide CPU time from /proc/stat in µs: busy (user+nice+system+irq+softirq) and steal. */
function machineCpuUs(): { busy: number; steal: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return { busy: ((user + nice + system + irq + softirq) * 1e6) / CLK_TCK, steal: (steal * 1e6) / CLK_TCK };
  } catch {
    return { busy: Number.NaN, steal: Number.NaN };
  }
}

/** CPU µs used so far by the long-lived processes of this run (orchestrator, upstream, nginx). */
function ownCpuUs(): number {
  const own = process.cpuUsage();
  return own.user + own.system + procCpuUs(upstream?.pid) + nginx.reduce((s, n) => s + procCpuUs(n.process.pid), 0);
}

/** Waits (at most `budgetMs`) until other processes use ≤ FOREIGN_LIMIT vCPU; returns the time spent beyond the first look. */
async function waitForQuiet(budgetMs: number): Promise<number> {
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
    if (!(load > FOREIGN_LIMIT)) return Math.max(0, spent);
    if (spent + 1000 > budgetMs) {
      if (said) console.log(`  … still ${f2(load)} vCPU of other load, patience used up: measuring anyway`);
      return Math.max(0, spent);
    }
    if (!said) console.log(`  … other processes are using ${f2(load)} vCPU: waiting for them (patience left ${Math.round(budgetMs / 1000)} s)`);
    said = true;
    await new Promise((r) => setTimeout(r, 700));
  }
}

// ---------------------------------------------------------------- upstream and nginx

interface Counts {
  v1: number;
  v2: number;
  /** TCP connections accepted (both addresses). */
  connections: number;
}
let upstream: ChildProcess;
let upstreamPort = 0;
const nginx: NginxInstance[] = [];
const nginxPorts: Partial<Record<1 | 2, number>> = {};

function upstreamCounts(): Promise<Counts> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { type?: string } & Counts) => {
      if (m.type !== 'counts') return;
      upstream.off('message', onMsg);
      resolve({ v1: m.v1, v2: m.v2, connections: m.connections });
    };
    upstream.on('message', onMsg);
    if (!upstream.connected) return reject(stopping ? new Stopped() : new Error('upstream is gone'));
    upstream.send({ type: 'counts' }, (err) => {
      if (err !== null) reject(stopping ? new Stopped() : new Error(`upstream is gone: ${err.message}`));
    });
  });
}

async function startUpstream(): Promise<void> {
  upstream = spawnNode('./upstream.ts', [], UPSTREAM_CPU);
  upstreamPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('upstream did not start in 10 s')), 10_000);
    upstream.once('exit', (code) => reject(new Error(`upstream exited (${code})`)));
    upstream.on('message', (m: { type?: string; port?: number }) => {
      if (m.type === 'ready' && m.port !== undefined) {
        clearTimeout(timer);
        resolve(m.port);
      }
    });
  });
}

// ---------------------------------------------------------------- one client run

interface PhaseCpu {
  /** nginx (all instances) CPU µs per client request. */
  proxies: number;
  /** Upstream CPU µs per client request. */
  upstream: number;
  /** CPU used on the machine by anything but this benchmark's processes, in vCPUs (0–2), over the phase. */
  foreign: number;
  /** Steal time over the phase, in vCPUs. */
  steal: number;
}
interface ServerCpu {
  c1: PhaseCpu;
  cHigh: PhaseCpu;
}
interface Run {
  round: number;
  variant: VariantId;
  result: ClientResult;
  upstreamRequests: number;
  v2Requests: number;
  /** Connections the upstream accepted during the run (direct variants: the client's; nginx: nginx's). */
  upstreamConnections: number;
  /** Proxy and upstream CPU µs per client request, per measured phase. */
  server: ServerCpu;
  /** Other processes used more than FOREIGN_LIMIT vCPU during a measured phase (kept after the reruns ran out). */
  disturbed: boolean;
}

function runClient(variant: Variant): Promise<{ result: ClientResult; server: ServerCpu }> {
  const opts: ClientOptions = { variant: variant.id, upstreamPort, warmup: WARMUP, duration: DURATION, highConcurrency: HIGH, meshModule: MESH_MODULE };
  if (variant.nginx !== undefined) opts.nginxPort = nginxPorts[variant.nginx];
  const child = spawnNode('./client.ts', [JSON.stringify(opts)], CLIENT_CPU, ['--expose-gc']);
  const sample = () => {
    const proxies = nginx.reduce((s, n) => s + procCpuUs(n.process.pid), 0);
    const up = procCpuUs(upstream.pid);
    const own = process.cpuUsage();
    const machine = machineCpuUs();
    return { t: performance.now(), proxies, upstream: up, ours: proxies + up + procCpuUs(child.pid) + own.user + own.system, ...machine };
  };
  const marks: Record<string, ReturnType<typeof sample>> = {};
  return new Promise((resolve, reject) => {
    let result: ClientResult | undefined;
    let error: string | undefined;
    const limit = (WARMUP + 2 * DURATION + 60) * 1000;
    const timer = setTimeout(() => {
      error = `client ${variant.id} did not finish in ${limit / 1000} s`;
      child.kill('SIGKILL');
    }, limit);
    child.on('message', (m: { type?: string; name?: string; message?: string }) => {
      if (m.type === 'mark' && m.name !== undefined) marks[m.name] = sample();
      else if (m.type === 'result') result = m as ClientResult;
      else if (m.type === 'error') error = m.message;
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (result === undefined) return reject(new Error(error ?? `client ${variant.id} exited (${code ?? signal}) without a result`));
      const per = (phase: 'c1' | 'cHigh', requests: number): PhaseCpu => {
        const a = marks[`${phase}:start`];
        const b = marks[`${phase}:end`];
        if (a === undefined || b === undefined) return { proxies: Number.NaN, upstream: Number.NaN, foreign: Number.NaN, steal: Number.NaN };
        const wallUs = (b.t - a.t) * 1000;
        return {
          proxies: (b.proxies - a.proxies) / requests,
          upstream: (b.upstream - a.upstream) / requests,
          foreign: Math.max(0, b.busy - a.busy - (b.ours - a.ours)) / wallUs,
          steal: (b.steal - a.steal) / wallUs,
        };
      };
      resolve({ result, server: { c1: per('c1', result.c1.requests), cHigh: per('cHigh', result.cHigh.requests) } });
    });
  });
}

// ---------------------------------------------------------------- formatting

const f0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '–');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const signed = (x: number, f = f1) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${f(x)}` : '–');
const range = (xs: number[], f = f0) => (xs.length > 1 ? ` (${f(Math.min(...xs))}–${f(Math.max(...xs))})` : '');
const med = (xs: number[]) => (xs.length === 0 ? Number.NaN : median(xs));

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const undiciVersion = (JSON.parse(readFileSync(new URL('../../node_modules/undici/package.json', import.meta.url), 'utf8')) as { version: string }).version;
  const nginxVer = nginxVersion();

  // meshlet availability and config check (src/ is being edited concurrently: any failure skips the meshlet variants)
  let meshSkip: string | undefined;
  let configNote = '';
  try {
    const mod = (await import(MESH_MODULE)) as Record<string, unknown>;
    if (typeof mod.createMesh !== 'function') meshSkip = 'createMesh not available yet';
    if (typeof mod.checkDocuments === 'function' && typeof mod.fromObjects === 'function') {
      const checkDocuments = mod.checkDocuments as (docs: unknown) => { ok: boolean; issues: { all: unknown[] } };
      const fromObjects = mod.fromObjects as (objs: object[]) => unknown;
      const loaded = checkDocuments(fromObjects(meshResources(8080)));
      const issues = loaded.issues.all.map(String);
      if (!loaded.ok) throw new Error(`bench mesh config rejected by checkDocuments:\n  ${issues.join('\n  ')}`);
      if (issues.length > 0) configNote = `checkDocuments notes on the bench config: ${issues.join('; ')}`;
    }
  } catch (err) {
    if ((err as Error).message.startsWith('bench mesh config')) throw err;
    meshSkip = `importing ${MESH_MODULE_NAME} failed: ${(err as Error).message.split('\n')[0]}`;
  }
  let variants = ALL.filter((v) => wanted === undefined || wanted.includes(v.id));
  if (meshSkip !== undefined && variants.some((v) => v.meshlet)) {
    console.log(`meshlet variants skipped: ${meshSkip}`);
    variants = variants.filter((v) => !v.meshlet);
  }
  if (configNote) console.log(configNote);

  await startUpstream();
  const upstreamAffinity = affinity(upstream.pid);
  if (variants.some((v) => v.nginx !== undefined)) {
    const inner = await startNginx(join(tmp, 'nginx'), 'inner', upstreamPort, track, NGINX_CPU === undefined ? [] : [TASKSET, '-c', String(NGINX_CPU)]); // server-side sidecar
    nginx.push(inner);
    nginxPorts[1] = inner.port;
    if (variants.some((v) => v.nginx === 2)) {
      const outer = await startNginx(join(tmp, 'nginx'), 'outer', inner.port, track, NGINX_CPU === undefined ? [] : [TASKSET, '-c', String(NGINX_CPU)]); // client-side sidecar
      nginx.push(outer);
      nginxPorts[2] = outer.port;
    }
  }
  const pinning = !canPin
    ? 'not pinned (taskset unavailable or fewer than 2 CPUs)'
    : ONE_CORE
      ? `1core: clients, upstream and nginx all pinned to CPU 0 (taskset; affinity seen: upstream ${upstreamAffinity}${nginx.map((n) => `, nginx ${n.name} ${affinity(n.process.pid)}`).join('')}), the orchestrator unpinned`
      : `2core: clients pinned to CPU ${CLIENT_CPU} (taskset), upstream pinned to CPU ${UPSTREAM_CPU} (affinity seen: ${upstreamAffinity}), nginx and the orchestrator unpinned`;
  const perProcess = 0.6 + WARMUP + 2 * DURATION;
  console.log(
    `outbound bench: ${variants.length} variants × ${ROUNDS} rounds, warm-up ${WARMUP} s + c=1 ${DURATION} s + c=${HIGH} ${DURATION} s per client process (about ${Math.round(variants.length * ROUNDS * perProcess)} s)`,
  );
  console.log(`upstream 127.0.0.1/127.0.0.2:${upstreamPort}${nginx.map((n) => `, nginx ${n.name} :${n.port}`).join('')}; ${pinning}`);

  const runs: Run[] = [];
  const failed = new Map<VariantId, string>();
  let patienceMs = PATIENCE * 1000;
  let reruns = 0;
  let waitedMs = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    for (const v of variants) {
      for (let attempt = 0; !failed.has(v.id); attempt++) {
        const waited = await waitForQuiet(patienceMs);
        patienceMs -= waited;
        waitedMs += waited;
        const started = performance.now();
        const before = await upstreamCounts();
        let got: { result: ClientResult; server: ServerCpu };
        try {
          got = await runClient(v);
        } catch (err) {
          if (stopping) throw new Stopped();
          const msg = (err as Error).message;
          failed.set(v.id, msg);
          console.log(`round ${round}/${ROUNDS} ${v.id.padEnd(16)} FAILED (skipped from now on): ${msg}`);
          break;
        }
        const after = await upstreamCounts();
        const foreign = Math.max(got.server.c1.foreign, got.server.cHigh.foreign);
        const run: Run = {
          round,
          variant: v.id,
          result: got.result,
          upstreamRequests: after.v1 + after.v2 - before.v1 - before.v2,
          v2Requests: after.v2 - before.v2,
          upstreamConnections: after.connections - before.connections,
          server: got.server,
          disturbed: foreign > FOREIGN_LIMIT,
        };
        const { c1, cHigh } = got.result;
        console.log(
          `round ${round}/${ROUNDS} ${v.id.padEnd(16)} c=1 p50 ${f0(c1.p50Us ?? Number.NaN).padStart(5)} µs (p99 ${f0(c1.p99Us ?? Number.NaN)}), ${f1(c1.cpuUsPerReq).padStart(6)} µs CPU/req | c=${HIGH} ${f0(cHigh.rps).padStart(7)} rps, ${f1(cHigh.cpuUsPerReq).padStart(6)} µs CPU/req` +
            ` | upstream saw ${f2(run.upstreamRequests / got.result.totalRequests)}× the client's requests, ${((100 * run.v2Requests) / Math.max(1, run.upstreamRequests)).toFixed(1)} % on v2, ${run.upstreamConnections} connections` +
            ` | other load ${f2(got.server.c1.foreign)}/${f2(got.server.cHigh.foreign)} vCPU, steal ${f2(got.server.c1.steal)}/${f2(got.server.cHigh.steal)}` +
            (c1.failures + cHigh.failures > 0 ? ` | ${c1.failures + cHigh.failures} failures, first: ${got.result.firstFailure}` : ''),
        );
        if (run.disturbed && attempt < 2 && patienceMs > perProcess * 1000) {
          patienceMs -= performance.now() - started;
          reruns++;
          console.log(`  … other processes used ${f2(foreign)} vCPU during that run (limit ${FOREIGN_LIMIT}): running it again`);
          continue;
        }
        runs.push(run);
        break;
      }
    }
  }

  const body = report(variants, runs, failed, { undiciVersion, nginxVer, pinning, meshSkip, configNote, reruns, waitedMs });
  console.log(`\n${body}`);
  if (WRITE) {
    // one section per layout, so a 1core run does not replace the default (2core) one
    const id = ONE_CORE ? 'outbound-1core' : 'outbound';
    writeSection(id, `Outbound: meshlet vs raw undici and nginx sidecar stand-ins (${LAYOUT} layout)`, COMMAND, body);
    console.log(`written to bench/RESULTS.md (section "${id}")`);
  }
}

interface Notes {
  undiciVersion: string;
  nginxVer: string | undefined;
  pinning: string;
  meshSkip: string | undefined;
  configNote: string;
  reruns: number;
  waitedMs: number;
}

function report(variants: Variant[], runs: Run[], failed: Map<VariantId, string>, notes: Notes): string {
  const all = (id: VariantId) => runs.filter((r) => r.variant === id);
  /** Enough clean runs to stand on their own: at least 2 and at least half. */
  const enough = (clean: number, total: number) => clean >= Math.max(2, Math.ceil(total / 2));
  /** The runs the medians use: the undisturbed ones if there are enough, else all. */
  const of = (id: VariantId) => {
    const rs = all(id);
    const clean = rs.filter((r) => !r.disturbed);
    return enough(clean.length, rs.length) ? clean : rs;
  };
  const byRound = (id: VariantId, round: number) => runs.find((r) => r.variant === id && r.round === round);
  const get = (rs: Run[], f: (r: Run) => number | undefined) => rs.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
  const p50 = (r: Run) => r.result.c1.p50Us;
  const cpu1 = (r: Run) => r.result.c1.cpuUsPerReq;
  const rps = (r: Run) => r.result.cHigh.rps;
  const cpuH = (r: Run) => r.result.cHigh.cpuUsPerReq;

  interface Paired {
    rounds: number;
    /** Pairs with a disturbed run on either side that were left out. */
    dropped: number;
    rpsRatio: number[];
    addP50: number[];
    addCpu1: number[];
    addCpuH: number[];
  }
  const paired = (v: Variant): Paired | undefined => {
    if (v.baseline === undefined) return undefined;
    const out: Paired = { rounds: 0, dropped: 0, rpsRatio: [], addP50: [], addCpu1: [], addCpuH: [] };
    const pairs: [Run, Run][] = [];
    for (const r of all(v.id)) {
      const b = byRound(v.baseline, r.round);
      if (b !== undefined) pairs.push([r, b]);
    }
    const clean = pairs.filter(([r, b]) => !r.disturbed && !b.disturbed);
    const use = enough(clean.length, pairs.length) ? clean : pairs;
    out.dropped = pairs.length - use.length;
    for (const [r, b] of use) {
      out.rounds++;
      out.rpsRatio.push(rps(r) / rps(b));
      out.addP50.push((p50(r) ?? Number.NaN) - (p50(b) ?? Number.NaN));
      out.addCpu1.push(cpu1(r) - cpu1(b));
      out.addCpuH.push(cpuH(r) - cpuH(b));
    }
    return out.rounds > 0 ? out : undefined;
  };

  const lines: string[] = [];
  lines.push(
    `Machine: ${cpus().length}× ${cpus()[0]?.model ?? '?'}, Linux ${release()}; Node ${process.version}, undici ${notes.undiciVersion}, nginx ${notes.nginxVer ?? 'not found'}.  `,
    `Layout: ${notes.pinning}.  `,
    `Method: ${ROUNDS} rounds, variants interleaved round-robin, a fresh client process per variant per round; each warms up (${WARMUP / 2} s at c=1 + ${WARMUP / 2} s at c=${HIGH}), then measures c=1 for ${DURATION} s and c=${HIGH} for ${DURATION} s. ` +
      `Upstream: one bare node:http process (GET → 200, 100-byte body, keep-alive) on 127.0.0.1 and 127.0.0.2 (= mesh endpoints v1 and v2). ` +
      `nginx: single-process instances, \`upstream { keepalive 64; }\`, \`proxy_http_version 1.1\`, \`Connection ""\`, no access log; 2 hops = client-side nginx → server-side nginx → upstream. ` +
      `Client CPU = process.cpuUsage() of the client process over the phase / requests; proxy and upstream CPU from /proc/<pid>/stat (${1000 / CLK_TCK} ms ticks). ` +
      `Absolute figures: median over rounds (c=${HIGH} rps with min–max). Ratios and "added": median over rounds of the paired ratio/difference against the same round's baseline of the same client API. ` +
      `Runs disturbed by other processes (> ${FOREIGN_LIMIT} vCPU of other load) are left out of both when enough clean ones remain (≥ 2 and ≥ half); the "runs" column says how many were used.`,
    '',
    'meshlet config (bench/outbound/mesh-config.ts): ServiceEntry `upstream.default.svc.cluster.local` (MESH_INTERNAL, STATIC, endpoints v1 127.0.0.1 / v2 127.0.0.2), DestinationRule (LEAST_REQUEST, outlierDetection 5×5xx / 10 s / 30 s, subsets v1 v2), VirtualService (header-match route that the bench requests miss, then 90/10 v1/v2, retries 2 on 5xx,connect-failure, timeout 5 s). mesh.dispatcher is called with `http://upstream.default.svc.cluster.local:PORT/x`, mesh.fetch with `http://upstream:PORT/x`.',
    '',
  );
  if (notes.meshSkip !== undefined) lines.push(`**meshlet variants skipped: ${notes.meshSkip}.**`, '');
  if (notes.configNote) lines.push(notes.configNote, '');
  for (const [id, msg] of failed) lines.push(`**${id} failed and was dropped:** \`${msg.split('\n')[0]}\``, '');

  lines.push(
    `| variant | baseline | runs (pairs) | c=1 p50 µs | c=1 client CPU µs/req | c=${HIGH} rps (min–max) | c=${HIGH} client CPU µs/req | rps vs baseline | added p50 µs | added client CPU µs/req c=1 | added client CPU µs/req c=${HIGH} |`,
    '|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const v of variants) {
    const rs = of(v.id);
    if (rs.length === 0) continue;
    const pr = paired(v);
    lines.push(
      `| ${v.label} | ${v.baseline ?? '–'} | ${rs.length}/${all(v.id).length}${pr === undefined ? '' : ` (${pr.rounds}/${pr.rounds + pr.dropped})`} | ${f0(med(get(rs, p50)))} | ${f1(med(get(rs, cpu1)))} | ${f0(med(get(rs, rps)))}${range(get(rs, rps))} | ${f1(med(get(rs, cpuH)))} | ` +
        (pr === undefined ? '– | – | – | – |' : `×${f2(med(pr.rpsRatio))} | ${signed(med(pr.addP50), f0)} | ${signed(med(pr.addCpu1))} | ${signed(med(pr.addCpuH))} |`),
    );
  }

  // targets next to the figures
  const target = (label: string, check: (p: Paired) => [string, boolean]) => {
    const cells = variants
      .filter((v) => v.baseline !== undefined)
      .map((v) => {
        const pr = paired(v);
        if (pr === undefined) return '–';
        const [text, ok] = check(pr);
        return v.meshlet ? `${text} ${ok ? '✅' : '❌'}` : text;
      });
    return `| ${label} | ${cells.join(' | ')} |`;
  };
  const cols = variants.filter((v) => v.baseline !== undefined);
  if (cols.length > 0) {
    lines.push(
      '',
      'Targets (issue): meshlet rows are judged; the nginx rows are the sidecar cost measured in the same run, for comparison (their proxy CPU is not client CPU — see the next table).',
      '',
      `| target | ${cols.map((v) => `${v.id} vs ${v.baseline}`).join(' | ')} |`,
      `|---|${cols.map(() => '---|').join('')}`,
      target(`c=${HIGH} rps ≥ 85 % of the raw baseline`, (p) => [`×${f2(med(p.rpsRatio))}`, med(p.rpsRatio) >= 0.85]),
      target('added p50 at c=1 ≤ 25 µs', (p) => [`${signed(med(p.addP50), f0)} µs`, med(p.addP50) <= 25]),
      target('added client CPU/request ≤ 15 µs (c=1)', (p) => [`${signed(med(p.addCpu1))} µs`, med(p.addCpu1) <= 15]),
      target(`added client CPU/request ≤ 15 µs (c=${HIGH})`, (p) => [`${signed(med(p.addCpuH))} µs`, med(p.addCpuH) <= 15]),
    );
    // How the rps target and the CPU target relate on this machine: at c=64 throughput is bound by
    // the client's CPU (2core) or by everyone's CPU on the one vCPU (1core).
    const base = of('undici-request');
    const client = med(get(base, cpuH));
    const whole = client + med(get(base, (r) => r.server.cHigh.upstream));
    if (Number.isFinite(client)) {
      const bound = ONE_CORE ? whole : client;
      lines.push(
        '',
        `Reading the targets together: raw undici.request costs ${f1(client)} µs of client CPU per request at c=${HIGH} here (${f1(whole)} µs with the upstream's). ` +
          `With c=${HIGH} throughput bound by ${ONE_CORE ? 'the sum of all processes on the one vCPU' : "the client's CPU"}, an added +15 µs/request alone gives ×${f2(bound / (bound + 15))} rps, ` +
          `and ×0.85 allows at most +${f1(bound / 0.85 - bound)} µs — on this machine the ${bound / 0.85 - bound < 15 ? 'rps' : 'CPU'} target is the stricter one.`,
      );
    }
  }

  // whole-path CPU, and sanity
  lines.push(
    '',
    `CPU per request on the whole path (median over rounds, µs): client / proxies (all nginx processes) / upstream = total. Sanity: requests the upstream saw per client request (1.00 = no retries or extra requests), share sent to v2 (127.0.0.2; the mesh config splits 90/10), TCP connections the upstream accepted per run (a client at c=${HIGH} needs about ${HIGH}), failed requests.`,
    '',
    `| variant | c=1: client / proxies / upstream = total | c=${HIGH}: client / proxies / upstream = total | upstream req per client req | v2 share | upstream connections per run | failures |`,
    '|---|---|---|---|---|---|---|',
  );
  for (const v of variants) {
    const rs = of(v.id);
    if (rs.length === 0) continue;
    const cpuRow = (phase: 'c1' | 'cHigh') => {
      const c = med(get(rs, (r) => r.result[phase].cpuUsPerReq));
      const p = v.nginx === undefined ? 0 : med(get(rs, (r) => r.server[phase].proxies));
      const u = med(get(rs, (r) => r.server[phase].upstream));
      return `${f1(c)} / ${v.nginx === undefined ? '–' : f1(p)} / ${f1(u)} = ${f1(c + p + u)}`;
    };
    const fails = all(v.id).reduce((s, r) => s + r.result.c1.failures + r.result.cHigh.failures, 0);
    const first = all(v.id).find((r) => r.result.firstFailure !== undefined)?.result.firstFailure;
    lines.push(
      `| ${v.id} | ${cpuRow('c1')} | ${cpuRow('cHigh')} | ${f2(med(rs.map((r) => r.upstreamRequests / r.result.totalRequests)))} | ${f1(med(rs.map((r) => (100 * r.v2Requests) / Math.max(1, r.upstreamRequests))))} % | ${f0(med(rs.map((r) => r.upstreamConnections)))} | ${fails}${first === undefined ? '' : ` (first: ${first})`} |`,
    );
  }
  const disturbed = runs.filter((r) => r.disturbed).length;
  lines.push(
    '',
    `Per round (c=1 p50 µs / c=${HIGH} rps; other processes' CPU in vCPUs during c=1 / c=${HIGH}). ` +
      `Before each run the bench waited for other load to drop to ≤ ${FOREIGN_LIMIT} vCPU (${f0(notes.waitedMs / 1000)} s in all), and ran disturbed runs again (${notes.reruns} reruns), within --patience ${PATIENCE} s; ` +
      (disturbed > 0 ? `**${disturbed} disturbed run(s) remain, marked ⚠**.` : 'no disturbed run remains.'),
    '', `| variant | ${Array.from({ length: ROUNDS }, (_, i) => `r${i + 1}`).join(' | ')} |`, `|---|${'---|'.repeat(ROUNDS)}`);
  for (const v of variants) {
    if (of(v.id).length === 0) continue;
    const cells = Array.from({ length: ROUNDS }, (_, i) => {
      const r = byRound(v.id, i + 1);
      return r === undefined
        ? '–'
        : `${f0(r.result.c1.p50Us ?? Number.NaN)} / ${f0(r.result.cHigh.rps)} (${f2(r.server.c1.foreign)} / ${f2(r.server.cHigh.foreign)})${r.disturbed ? ' ⚠' : ''}`;
    });
    lines.push(`| ${v.id} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

try {
  await main();
  await cleanup();
} catch (err) {
  if (!(err instanceof Stopped) && !stopping) {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    await cleanup();
    process.exitCode = 1;
  }
  // when stopping, the signal handler cleans up and exits
}

