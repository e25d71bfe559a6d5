/**
 * Outbound data-path benchmark: what meshlet adds to a client call, next to what a sidecar adds.
 *
 *   node_modules/.bin/node --expose-gc bench/outbound/run.ts [--rounds N] [--duration S] [--warmup S] [--slice MS]
 *       [--quick] [--layout 2core|1core] [--patience S] [--variants a,b] [--mesh-module FILE] [--no-write | --write]
 *       [--node-flags="FLAGS"]   (extra V8/Node flags for every client process, baselines too)
 *
 * Variants, each in its own client process (fresh every round):
 *   undici-request   undici.request, raw undici Agent → upstream                 (baseline for request)
 *   mesh-dispatcher  undici.request with dispatcher: mesh.dispatcher → upstream  (vs undici-request)
 *   undici-fetch     undici.fetch, raw undici Agent → upstream                   (baseline for fetch)
 *   mesh-fetch       mesh.fetch → upstream                                       (vs undici-fetch)
 *   mesh-dispatcher-otel, mesh-fetch-otel   the same with telemetry on: startTelemetry() (OTel SDK,
 *                    Prometheus endpoint, OTLP span export to a local sink), Istio metrics and
 *                    meshlet's own on every call, spans sampled at 1 %       (vs their baselines)
 *   mesh-dispatcher-otel-nospans   mesh-dispatcher-otel with spans sampled at 0 % (trace headers
 *                    still written): the difference is what the 1 % of sampled calls cost
 *   mesh-dispatcher-otel-notrace, -nometrics, -sdkonly   mesh-dispatcher-otel with tracing off, with
 *                    Istio's metrics off, with meshlet's telemetry all off (the SDK still installed)
 *                    (these four split the telemetry-on cost one switch at a time; only when named
 *                    in --variants)
 *   undici-request-loaded, undici-fetch-loaded   the raw clients in a process that also made a mesh
 *                    it never calls: what the mesh's presence in a process costs calls it has no part
 *                    in (heap, loaded code, timers) (vs their baselines; only when named in --variants)
 *   nginx-1hop       undici.request → nginx → upstream                           (vs undici-request)
 *   nginx-2hop       undici.request → nginx → nginx → upstream                   (vs undici-request)
 * In a round, every variant's process is started and warmed up in turn (--warmup S, half at c=1,
 * half at c=64); then c=1 (p50 latency, client CPU µs/request) and c=64 (requests/s, client CPU
 * µs/request) are measured for --duration S each, in slices of --slice MS (250) that the variants
 * take in turns (A B C … C B A …), so that every variant meets the same state of this noisy VM
 * (perf-anchors B1: its speed drifts by tens of percent over seconds). A slice's client CPU runs
 * until the same process's next slice, so V8's background work after it (GC, JIT) counts.
 * Ratios are medians of the per-round paired ratios/differences against the same round's
 * baseline of the same client API. Defaults: 5 rounds, 4 s warm-up, 2.5 s per phase (≈ 6 min); --quick:
 * 3 rounds, 1.5 s, 0.75 s (≈ 1.5 min).
 *
 * The upstream (bare node:http, 100-byte body, keep-alive) is its own process. --layout 2core
 * (default): clients pinned to CPU 0, upstream to CPU 1, nginx floats; --layout 1core: all on
 * CPU 0 (much steadier on a 2-vCPU VM, see perf-anchors B1). nginx and upstream CPU are read
 * from /proc/<pid>/stat around each slice. Other processes' CPU use is measured the same way:
 * the bench waits for it to pass and re-runs disturbed rounds within --patience S (60; quick
 * 10), and leaves still-disturbed runs out of the medians when enough clean ones remain.
 *
 * --variants runs a subset; --mesh-module takes createMesh from `src` (the sources) or a FILE
 * instead of the built package (dist/, rebuilt first when src/ is newer: what users import). Results go to bench/RESULTS.md, section "outbound" (2core)
 * or "outbound-1core", unless --no-write (or NO_WRITE=1); a --quick run writes only with --write.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CLK_TCK, machineCpuUs, procCpuUs, waitForQuiet as waitForQuietOn } from '../lib/machine.ts';
import { meshletBuild } from '../lib/meshlet-build.ts';
import { writeSection } from '../lib/results.ts';
import type { ClientOptions, ClientResult, SliceRequest, SliceResult, VariantId } from './client.ts';
import { meshResources } from './mesh-config.ts';
import { f0, f1, f2, type PhaseCpu, type PhaseResult, type Run, type RunResult, report, type Variant } from './report.ts';
import { type NginxInstance, nginxVersion, startNginx } from './nginx.ts';

// ---------------------------------------------------------------- options

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    slice: { type: 'string' },
    quick: { type: 'boolean', default: false },
    variants: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    'mesh-module': { type: 'string' },
    layout: { type: 'string', default: '2core' },
    patience: { type: 'string' },
    'node-flags': { type: 'string' },
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
// Warm-up: on one vCPU, V8 needs about 2 s of c=64 traffic before mesh.fetch's per-request CPU
// settles (undici.fetch about 1.25 s; measured in 250 ms windows after the warm-up).
const WARMUP = positive(args.warmup, quick ? 1.5 : 4, 'warmup');
/** Length of one measured slice (a variant's turn), ms. */
const SLICE_MS = positive(args.slice, 250, 'slice');
const HIGH = 64;
/** Seconds the whole run may spend waiting for other processes' load to pass and re-running disturbed runs. */
const PATIENCE = positive(args.patience, quick ? 10 : 60, 'patience');
const LAYOUT = args.layout;
if (LAYOUT !== '2core' && LAYOUT !== '1core') throw new Error(`--layout must be 2core or 1core, got ${LAYOUT}`);
/** --quick is a smoke run: it leaves bench/RESULTS.md alone unless --write is given. */
const WRITE = args.write === true || (!quick && args['no-write'] !== true && process.env.NO_WRITE === undefined);
/** Extra V8/Node flags for every client process, baselines and meshlet alike (e.g. `--no-allocation-site-pretenuring`). */
const CLIENT_FLAGS = (args['node-flags'] ?? '').split(/\s+/).filter((f) => f !== '');
/** Where createMesh comes from: the built package (dist/, rebuilt when src/ is newer), `--mesh-module src`, or a file (bench/lib/meshlet-build.ts). */
const MESHLET = meshletBuild(args['mesh-module']);
const MESH_MODULE = MESHLET.index;
const MESH_MODULE_NAME = MESHLET.name;
const COMMAND = ['node_modules/.bin/node --expose-gc bench/outbound/run.ts', ...process.argv.slice(2)].join(' ');

function positive(v: string | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${v}`);
  return n;
}

const ALL: Variant[] = [
  { id: 'undici-request', label: 'undici.request, raw Agent → upstream' },
  { id: 'mesh-dispatcher', label: 'undici.request + mesh.dispatcher → upstream', baseline: 'undici-request', meshlet: true },
  { id: 'undici-fetch', label: 'undici.fetch, raw Agent → upstream' },
  { id: 'undici-request-loaded', label: 'undici.request, raw Agent → upstream, in a process with an unused mesh', baseline: 'undici-request', split: true },
  { id: 'undici-fetch-loaded', label: 'undici.fetch, raw Agent → upstream, in a process with an unused mesh', baseline: 'undici-fetch', split: true },
  { id: 'mesh-fetch', label: 'mesh.fetch → upstream', baseline: 'undici-fetch', meshlet: true },
  { id: 'mesh-dispatcher-otel', label: 'undici.request + mesh.dispatcher, telemetry on → upstream', baseline: 'undici-request', meshlet: true },
  { id: 'mesh-fetch-otel', label: 'mesh.fetch, telemetry on → upstream', baseline: 'undici-fetch', meshlet: true },
  { id: 'mesh-dispatcher-otel-nospans', label: 'undici.request + mesh.dispatcher, telemetry on, spans sampled at 0 % → upstream', baseline: 'undici-request', meshlet: true, split: true },
  { id: 'mesh-dispatcher-otel-notrace', label: 'undici.request + mesh.dispatcher, telemetry on, tracing off → upstream', baseline: 'undici-request', meshlet: true, split: true },
  { id: 'mesh-dispatcher-otel-nometrics', label: "undici.request + mesh.dispatcher, telemetry on, Istio's metrics off → upstream", baseline: 'undici-request', meshlet: true, split: true },
  { id: 'mesh-dispatcher-otel-sdkonly', label: "undici.request + mesh.dispatcher, SDK installed, meshlet's telemetry off → upstream", baseline: 'undici-request', meshlet: true, split: true },
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

/** CPU µs used so far by the long-lived processes of this run (orchestrator, upstream, nginx). */
function ownCpuUs(): number {
  const own = process.cpuUsage();
  return own.user + own.system + procCpuUs(upstream?.pid) + nginx.reduce((s, n) => s + procCpuUs(n.process.pid), 0);
}

/** Waits (at most `budgetMs`) until other processes use ≤ FOREIGN_LIMIT vCPU; returns the time spent beyond the first look. */
function waitForQuiet(budgetMs: number): Promise<number> {
  return waitForQuietOn(budgetMs, ownCpuUs, FOREIGN_LIMIT);
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

// ---------------------------------------------------------------- one round: all clients, in slices

type PhaseName = 'c1' | 'cHigh';
/** Sums over a variant's slices of one phase in one round. */
class PhaseSums {
  requests = 0;
  failures = 0;
  seconds = 0;
  clientCpuUs = 0;
  proxiesUs = 0;
  upstreamUs = 0;
  foreignUs = 0;
  stealUs = 0;
  wallUs = 0;
  readonly latencies: number[] = [];
  result(): PhaseResult {
    const out: PhaseResult = { requests: this.requests, failures: this.failures, seconds: this.seconds, cpuUsPerReq: this.clientCpuUs / this.requests, rps: this.requests / this.seconds };
    if (this.latencies.length > 0) {
      const s = Float64Array.from(this.latencies).sort();
      out.p50Us = s[Math.floor(s.length * 0.5)];
      out.p99Us = s[Math.floor(s.length * 0.99)];
    }
    return out;
  }
  cpu(): PhaseCpu {
    return { proxies: this.proxiesUs / this.requests, upstream: this.upstreamUs / this.requests, foreign: this.foreignUs / this.wallUs, steal: this.stealUs / this.wallUs };
  }
}

/** A client process of one variant, alive for one round. */
class Client {
  readonly variant: Variant;
  readonly child: ChildProcess;
  readonly sums: Record<PhaseName, PhaseSums> = { c1: new PhaseSums(), cHigh: new PhaseSums() };
  upstreamRequests = 0;
  v2Requests = 0;
  connections = 0;
  /** The slice whose CPU is not charged yet: it runs until this process's next slice starts. */
  open: { phase: PhaseName; cpuStartUs: number } | undefined;
  #waiter: { type: string; resolve: (m: never) => void; reject: (e: Error) => void } | undefined;
  #error: string | undefined;

  constructor(variant: Variant) {
    this.variant = variant;
    const opts: ClientOptions = { variant: variant.id, upstreamPort, warmup: WARMUP, highConcurrency: HIGH, meshModule: MESH_MODULE, telemetryModule: MESHLET.telemetry };
    if (variant.nginx !== undefined) opts.nginxPort = nginxPorts[variant.nginx];
    this.child = spawnNode('./client.ts', [JSON.stringify(opts)], CLIENT_CPU, ['--expose-gc', ...CLIENT_FLAGS]);
    this.child.on('message', (m: { type: string; message?: string }) => {
      if (m.type === 'error') this.#error = m.message;
      const w = this.#waiter;
      if (w !== undefined && (m.type === w.type || m.type === 'error')) {
        this.#waiter = undefined;
        if (m.type === 'error') w.reject(new Error(m.message));
        else w.resolve(m as never);
      }
    });
    this.child.once('exit', (code, signal) => {
      const w = this.#waiter;
      this.#waiter = undefined;
      w?.reject(new Error(this.#error ?? `client ${variant.id} exited (${code ?? signal})`));
    });
  }

  /** Sends `msg` (if any) and waits for the next message of `type` (at most `limitMs`). */
  next<T>(type: string, msg: object | undefined, limitMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!alive(this.child)) return reject(new Error(this.#error ?? `client ${this.variant.id} is gone`));
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        this.child.kill('SIGKILL');
        reject(new Error(`client ${this.variant.id}: no ${type} in ${limitMs / 1000} s`));
      }, limitMs);
      this.#waiter = {
        type,
        resolve: (m: never) => {
          clearTimeout(timer);
          resolve(m as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      if (msg !== undefined) this.child.send(msg);
    });
  }

  /** Charges the open slice with the CPU used up to `cpuNowUs`. */
  charge(cpuNowUs: number): void {
    if (this.open !== undefined) this.sums[this.open.phase].clientCpuUs += cpuNowUs - this.open.cpuStartUs;
    this.open = undefined;
  }
}

/** Samples for one slice: proxies, upstream, all clients, the orchestrator, the machine. */
function sample(clients: readonly Client[]) {
  const proxies = nginx.reduce((s, n) => s + procCpuUs(n.process.pid), 0);
  const up = procCpuUs(upstream.pid);
  const own = process.cpuUsage();
  const machine = machineCpuUs();
  const cl = clients.reduce((s, c) => s + procCpuUs(c.child.pid), 0);
  return { t: performance.now(), proxies, upstream: up, ours: proxies + up + cl + own.user + own.system, ...machine };
}

async function slice(c: Client, clients: readonly Client[], phase: PhaseName, ms: number): Promise<void> {
  const before = await upstreamCounts();
  const a = sample(clients);
  const r = await c.next<SliceResult>('slice', { type: 'slice', concurrency: phase === 'c1' ? 1 : HIGH, ms, record: phase === 'c1' } satisfies SliceRequest, ms + 30_000);
  const b = sample(clients);
  const after = await upstreamCounts();
  c.charge(r.cpuStartUs);
  c.open = { phase, cpuStartUs: r.cpuStartUs };
  const s = c.sums[phase];
  s.requests += r.requests;
  s.failures += r.failures;
  s.seconds += r.seconds;
  for (const x of r.latenciesUs) s.latencies.push(x);
  s.proxiesUs += b.proxies - a.proxies;
  s.upstreamUs += b.upstream - a.upstream;
  s.foreignUs += Math.max(0, b.busy - a.busy - (b.ours - a.ours));
  s.stealUs += b.steal - a.steal;
  s.wallUs += (b.t - a.t) * 1000;
  c.upstreamRequests += after.v1 + after.v2 - before.v1 - before.v2;
  c.v2Requests += after.v2 - before.v2;
}

/**
 * One round: every variant's client process is started and warmed up in turn (the others idle),
 * then c=1 and c=64 are measured in slices of about --slice ms, the variants taking turns
 * (A B C, then C B A, …), so that all of them see the same state of this noisy VM. A client's
 * CPU for a slice runs until its next slice starts: what its V8 does in the background after
 * a slice (GC, compilation) is charged to it.
 */
async function runRound(round: number, variants: readonly Variant[], failed: Map<VariantId, string>): Promise<Run[]> {
  const clients: Client[] = [];
  try {
    for (const v of variants) {
      const before = await upstreamCounts();
      const c = new Client(v);
      try {
        await c.next('ready', undefined, (WARMUP + 60) * 1000);
      } catch (err) {
        if (stopping) throw new Stopped();
        failed.set(v.id, (err as Error).message);
        console.log(`round ${round}/${ROUNDS} ${v.id.padEnd(16)} FAILED (skipped from now on): ${(err as Error).message}`);
        c.child.kill('SIGKILL');
        continue;
      }
      const after = await upstreamCounts();
      c.connections = after.connections - before.connections;
      c.upstreamRequests = after.v1 + after.v2 - before.v1 - before.v2;
      c.v2Requests = after.v2 - before.v2;
      clients.push(c);
    }
    const n = Math.max(1, Math.round((DURATION * 1000) / SLICE_MS));
    const ms = (DURATION * 1000) / n;
    const dead = new Set<Client>();
    for (let k = 0; k < n; k++) {
      const order = k % 2 === 0 ? clients : [...clients].reverse();
      for (const phase of ['c1', 'cHigh'] as const) {
        for (const c of order) {
          if (dead.has(c)) continue;
          try {
            await slice(c, clients, phase, ms);
          } catch (err) {
            if (stopping) throw new Stopped();
            dead.add(c);
            failed.set(c.variant.id, (err as Error).message);
            console.log(`round ${round}/${ROUNDS} ${c.variant.id.padEnd(16)} FAILED (skipped from now on): ${(err as Error).message}`);
            c.child.kill('SIGKILL');
          }
        }
      }
    }
    await new Promise((r) => setTimeout(r, 300)); // background work after the last slices
    const runs: Run[] = [];
    for (const c of clients) {
      if (dead.has(c)) continue;
      const { cpuStartUs } = await c.next<{ cpuStartUs: number }>('cpu', { type: 'cpu' }, 10_000);
      c.charge(cpuStartUs);
      const end = await c.next<ClientResult>('result', { type: 'stop' }, 30_000);
      const result: RunResult = { c1: c.sums.c1.result(), cHigh: c.sums.cHigh.result(), totalRequests: end.totalRequests };
      if (end.firstFailure !== undefined) result.firstFailure = end.firstFailure;
      const server = { c1: c.sums.c1.cpu(), cHigh: c.sums.cHigh.cpu() };
      runs.push({
        round,
        variant: c.variant.id,
        result,
        upstreamRequests: c.upstreamRequests,
        v2Requests: c.v2Requests,
        upstreamConnections: c.connections,
        server,
        disturbed: Math.max(server.c1.foreign, server.cHigh.foreign) > FOREIGN_LIMIT,
      });
    }
    return runs;
  } catch (err) {
    if (stopping) throw new Stopped();
    throw err;
  } finally {
    for (const c of clients) if (alive(c.child)) c.child.kill('SIGTERM');
  }
}

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
  // The split variants only when asked for (they split the telemetry-on cost; a default run measures what users get).
  let variants = ALL.filter((v) => (wanted === undefined ? v.split !== true : wanted.includes(v.id)));
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
  const perRound = variants.length * (0.6 + WARMUP + 2 * DURATION);
  console.log(
    `outbound bench: ${variants.length} variants × ${ROUNDS} rounds, warm-up ${WARMUP} s per client, then c=1 ${DURATION} s + c=${HIGH} ${DURATION} s each in ${SLICE_MS} ms slices taken in turns (about ${Math.round(ROUNDS * perRound)} s)`,
  );
  console.log(`upstream 127.0.0.1/127.0.0.2:${upstreamPort}${nginx.map((n) => `, nginx ${n.name} :${n.port}`).join('')}; ${pinning}`);

  const runs: Run[] = [];
  const failed = new Map<VariantId, string>();
  let patienceMs = PATIENCE * 1000;
  let reruns = 0;
  let waitedMs = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    for (let attempt = 0; ; attempt++) {
      const waited = await waitForQuiet(patienceMs);
      patienceMs -= waited;
      waitedMs += waited;
      const started = performance.now();
      const live = variants.filter((v) => !failed.has(v.id));
      if (live.length === 0) break;
      const got = await runRound(round, live, failed);
      for (const run of got) {
        const { c1, cHigh } = run.result;
        console.log(
          `round ${round}/${ROUNDS} ${run.variant.padEnd(16)} c=1 p50 ${f0(c1.p50Us ?? Number.NaN).padStart(5)} µs (p99 ${f0(c1.p99Us ?? Number.NaN)}), ${f1(c1.cpuUsPerReq).padStart(6)} µs CPU/req | c=${HIGH} ${f0(cHigh.rps).padStart(7)} rps, ${f1(cHigh.cpuUsPerReq).padStart(6)} µs CPU/req` +
            ` | upstream saw ${f2(run.upstreamRequests / run.result.totalRequests)}× the client's requests, ${((100 * run.v2Requests) / Math.max(1, run.upstreamRequests)).toFixed(1)} % on v2, ${run.upstreamConnections} connections` +
            ` | other load ${f2(run.server.c1.foreign)}/${f2(run.server.cHigh.foreign)} vCPU, steal ${f2(run.server.c1.steal)}/${f2(run.server.cHigh.steal)}` +
            (c1.failures + cHigh.failures > 0 ? ` | ${c1.failures + cHigh.failures} failures, first: ${run.result.firstFailure}` : ''),
        );
      }
      const worst = Math.max(0, ...got.map((r) => Math.max(r.server.c1.foreign, r.server.cHigh.foreign)));
      if (got.some((r) => r.disturbed) && attempt < 2 && patienceMs > perRound * 1000) {
        patienceMs -= performance.now() - started;
        reruns++;
        console.log(`  … other processes used ${f2(worst)} vCPU during that round (limit ${FOREIGN_LIMIT}): running it again`);
        continue;
      }
      runs.push(...got);
      break;
    }
  }

  const body = report(variants, runs, failed, { undiciVersion, nginxVer, pinning, meshModule: MESH_MODULE_NAME, meshSkip, configNote, reruns, waitedMs }, {
    rounds: ROUNDS,
    warmup: WARMUP,
    duration: DURATION,
    sliceMs: SLICE_MS,
    high: HIGH,
    clkTck: CLK_TCK,
    foreignLimit: FOREIGN_LIMIT,
    oneCore: ONE_CORE,
    patience: PATIENCE,
  });
  console.log(`\n${body}`);
  if (WRITE) {
    // one section per layout, so a 1core run does not replace the default (2core) one; runs with the telemetry-on variants have their own
    const telemetry = wanted?.some((v) => v.includes('-otel')) === true;
    const id = `${ONE_CORE ? 'outbound-1core' : 'outbound'}${telemetry ? '-telemetry' : ''}`;
    writeSection(id, `Outbound: meshlet vs raw undici${telemetry ? ', telemetry on and off' : ' and nginx sidecar stand-ins'} (${LAYOUT} layout)`, COMMAND, body);
    console.log(`written to bench/RESULTS.md (section "${id}")`);
  }
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

