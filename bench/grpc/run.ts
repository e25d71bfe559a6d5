/**
 * gRPC benchmark: what meshlet adds to a grpc-js unary call — a raw grpc-js client next to
 * `mesh.grpc.client`, against one raw grpc-js server process, side by side in one run.
 *
 *   node_modules/.bin/node bench/grpc/run.ts [--rounds N] [--duration S] [--warmup S] [--slice MS]
 *       [--quick] [--patience S] [--mesh-module src|FILE] [--istio-wire] [--node-flags="FLAGS"] [--no-write | --write]
 *
 * Variants, each in its own client process (fresh every round, both alive together):
 *   grpc-raw    new EchoClient('127.0.0.1:PORT', insecure) → server                (baseline)
 *   grpc-mesh   mesh.grpc.client(EchoClient, 'echo:9090') → server (bench/grpc/proto.ts config)
 * and with --istio-wire a third, to tell what meshlet adds from what Istio puts on the wire:
 *   grpc-raw-istio  the raw client sending on every call what the mesh sends (Istio's
 *                   x-envoy-peer-metadata and -id headers, grpc-timeout of the route's 5 s)
 * The method is bench/outbound's: in a round each client warms up in turn (--warmup S, half at
 * c=1, half at c=64), then c=1 (p50 latency, client CPU µs/call) and c=64 (calls/s, client CPU
 * µs/call) are measured for --duration S each in slices of --slice MS (250) that the variants take
 * in turns (A B, B A, …); a slice's client CPU (process.cpuUsage) runs until the same process's
 * next slice. Ratios and "added" figures are medians over rounds of each round's paired
 * ratio/difference. Clients are pinned to CPU 0, the server to CPU 1 (taskset). Other processes'
 * CPU is read from /proc around every slice: the bench waits for it to pass before a round, runs a
 * disturbed round again (twice at most, within --patience S) and leaves still-disturbed rounds out
 * of the medians when enough clean ones remain. Defaults: 5 rounds, 4 s warm-up, 2.5 s per phase
 * (≈ 1.5 min); --quick: 3 rounds, 1.5 s, 0.75 s. Results go to bench/RESULTS.md, section "grpc",
 * unless --no-write; a --quick run writes only with --write.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CLK_TCK, machineCpuUs, procCpuUs, waitForQuiet } from '../lib/machine.ts';
import { meshletBuild } from '../lib/meshlet-build.ts';
import { writeSection } from '../lib/results.ts';
import type { ClientResult, SliceRequest, SliceResult } from '../outbound/client.ts';
import { f0, f1, f2, med, range, signed } from '../outbound/report.ts';
import type { GrpcClientOptions, GrpcVariantId } from './client.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    slice: { type: 'string' },
    quick: { type: 'boolean', default: false },
    patience: { type: 'string' },
    'mesh-module': { type: 'string' },
    'istio-wire': { type: 'boolean', default: false },
    'node-flags': { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help === true) {
  const src = readFileSync(new URL(import.meta.url), 'utf8');
  console.log(src.slice(src.indexOf('/**') + 4, src.indexOf('*/')).replace(/^ \* ?/gm, ''));
  process.exit(0);
}
function positive(v: string | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${v}`);
  return n;
}
const quick = args.quick === true;
const ROUNDS = positive(args.rounds, quick ? 3 : 5, 'rounds');
const DURATION = positive(args.duration, quick ? 0.75 : 2.5, 'duration');
const WARMUP = positive(args.warmup, quick ? 1.5 : 4, 'warmup');
const SLICE_MS = positive(args.slice, 250, 'slice');
const PATIENCE = positive(args.patience, quick ? 10 : 60, 'patience');
const HIGH = 64;
const FOREIGN_LIMIT = 0.15;
const WRITE = args.write === true || (!quick && args['no-write'] !== true && process.env.NO_WRITE === undefined);
/** The built package (dist/, rebuilt when src/ is newer), `--mesh-module src`, or a file (bench/lib/meshlet-build.ts). */
const MESHLET = meshletBuild(args['mesh-module']);
const MESH_MODULE = MESHLET.index;
const COMMAND = ['node_modules/.bin/node bench/grpc/run.ts', ...process.argv.slice(2)].join(' ');
const VARIANTS: { id: GrpcVariantId; label: string }[] = [
  { id: 'grpc-raw', label: 'grpc-js client → server' },
  { id: 'grpc-mesh', label: 'mesh.grpc.client → server' },
];
if (args['istio-wire'] === true) VARIANTS.splice(1, 0, { id: 'grpc-raw-istio', label: "grpc-js client sending Istio's headers and grpc-timeout → server" });

// ---------------------------------------------------------------- processes

const TASKSET = '/usr/bin/taskset';
const canPin = cpus().length >= 2 && existsSync(TASKSET) && spawnSync(TASKSET, ['-c', '1', 'true']).status === 0;
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => process.exit(130));

/** Extra V8/Node flags for every client process, raw and mesh alike (e.g. `--trace-gc`). */
const CLIENT_FLAGS = (args['node-flags'] ?? '').split(/\s+/).filter((f) => f !== '');

function spawnNode(script: string, argv: string[], cpu: number | undefined, flags: readonly string[] = []): ChildProcess {
  const node = [process.execPath, ...flags, new URL(script, import.meta.url).pathname, ...argv];
  const [cmd, ...rest] = cpu === undefined || !canPin ? node : [TASKSET, '-c', String(cpu), ...node];
  const child = spawn(cmd as string, rest, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Sends `msg` (if any) to `child` and waits for its next message of `type`. */
function next<T>(child: ChildProcess, type: string, msg: object | undefined, limitMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no ${type} in ${limitMs / 1000} s`)), limitMs);
    const onMsg = (m: { type: string; message?: string }) => {
      if (m.type === type) done(undefined, m as T);
      else if (m.type === 'error') done(new Error(m.message));
    };
    const onExit = (code: number | null) => done(new Error(`child exited (${code})`));
    const done = (err: Error | undefined, v?: T) => {
      clearTimeout(timer);
      child.off('message', onMsg);
      child.off('exit', onExit);
      if (err !== undefined) reject(err);
      else resolve(v as T);
    };
    child.on('message', onMsg);
    child.once('exit', onExit);
    if (msg !== undefined) child.send(msg);
  });
}

const server = spawnNode('./server.ts', [], 1);
const { port } = await next<{ port: number }>(server, 'ready', undefined, 15_000);
const serverCalls = async () => (await next<{ calls: number }>(server, 'counts', { type: 'counts' }, 10_000)).calls;

// ---------------------------------------------------------------- rounds

type Phase = 'c1' | 'cHigh';
interface Sums {
  calls: number;
  failures: number;
  seconds: number;
  cpuUs: number;
  foreignUs: number;
  wallUs: number;
  latencies: number[];
}
interface RunOf {
  round: number;
  variant: GrpcVariantId;
  c1: { p50Us: number; p99Us: number; cpuUsPerCall: number };
  cHigh: { rps: number; cpuUsPerCall: number };
  serverCallsPerCall: number;
  failures: number;
  firstFailure: string | undefined;
  foreign: number;
  disturbed: boolean;
}

async function runRound(round: number): Promise<RunOf[]> {
  const clients: { id: GrpcVariantId; child: ChildProcess; sums: Record<Phase, Sums>; open?: { phase: Phase; cpuStartUs: number }; serverCalls: number }[] = [];
  const ours = () => clients.reduce((s, c) => s + procCpuUs(c.child.pid), 0) + procCpuUs(server.pid) + process.cpuUsage().user + process.cpuUsage().system;
  try {
    for (const v of VARIANTS) {
      const opts: GrpcClientOptions = { variant: v.id, serverPort: port, warmup: WARMUP, highConcurrency: HIGH, meshModule: MESH_MODULE };
      const child = spawnNode('./client.ts', [JSON.stringify(opts)], 0, CLIENT_FLAGS);
      await next(child, 'ready', undefined, (WARMUP + 60) * 1000);
      const fresh = (): Sums => ({ calls: 0, failures: 0, seconds: 0, cpuUs: 0, foreignUs: 0, wallUs: 0, latencies: [] });
      clients.push({ id: v.id, child, sums: { c1: fresh(), cHigh: fresh() }, serverCalls: 0 });
    }
    const n = Math.max(1, Math.round((DURATION * 1000) / SLICE_MS));
    for (let k = 0; k < n; k++) {
      const order = k % 2 === 0 ? clients : [...clients].reverse();
      for (const phase of ['c1', 'cHigh'] as const) {
        for (const c of order) {
          const calls0 = await serverCalls();
          const m0 = machineCpuUs().busy;
          const o0 = ours();
          const t0 = performance.now();
          const req: SliceRequest = { type: 'slice', concurrency: phase === 'c1' ? 1 : HIGH, ms: (DURATION * 1000) / n, record: phase === 'c1' };
          const r = await next<SliceResult>(c.child, 'slice', req, 60_000);
          const wallUs = (performance.now() - t0) * 1000;
          const foreign = Math.max(0, machineCpuUs().busy - m0 - (ours() - o0));
          c.serverCalls += (await serverCalls()) - calls0;
          if (c.open !== undefined) c.sums[c.open.phase].cpuUs += r.cpuStartUs - c.open.cpuStartUs;
          c.open = { phase, cpuStartUs: r.cpuStartUs };
          const s = c.sums[phase];
          s.calls += r.requests;
          s.failures += r.failures;
          s.seconds += r.seconds;
          s.foreignUs += foreign;
          s.wallUs += wallUs;
          for (const x of r.latenciesUs) s.latencies.push(x);
        }
      }
    }
    await new Promise((r) => setTimeout(r, 300)); // background work after the last slices
    const out: RunOf[] = [];
    for (const c of clients) {
      const { cpuStartUs } = await next<{ cpuStartUs: number }>(c.child, 'cpu', { type: 'cpu' }, 10_000);
      if (c.open !== undefined) c.sums[c.open.phase].cpuUs += cpuStartUs - c.open.cpuStartUs;
      const end = await next<ClientResult>(c.child, 'result', { type: 'stop' }, 30_000);
      const lat = Float64Array.from(c.sums.c1.latencies).sort();
      const foreign = Math.max(c.sums.c1.foreignUs / c.sums.c1.wallUs, c.sums.cHigh.foreignUs / c.sums.cHigh.wallUs);
      out.push({
        round,
        variant: c.id,
        c1: { p50Us: lat[Math.floor(lat.length * 0.5)] ?? Number.NaN, p99Us: lat[Math.floor(lat.length * 0.99)] ?? Number.NaN, cpuUsPerCall: c.sums.c1.cpuUs / c.sums.c1.calls },
        cHigh: { rps: c.sums.cHigh.calls / c.sums.cHigh.seconds, cpuUsPerCall: c.sums.cHigh.cpuUs / c.sums.cHigh.calls },
        serverCallsPerCall: c.serverCalls / (c.sums.c1.calls + c.sums.cHigh.calls),
        failures: c.sums.c1.failures + c.sums.cHigh.failures,
        firstFailure: end.firstFailure,
        foreign,
        disturbed: foreign > FOREIGN_LIMIT,
      });
    }
    return out;
  } finally {
    for (const c of clients) c.child.kill('SIGTERM');
  }
}

// ---------------------------------------------------------------- main

const grpcVersion = (JSON.parse(readFileSync(new URL('../../node_modules/@grpc/grpc-js/package.json', import.meta.url), 'utf8')) as { version: string }).version;
const pinning = canPin ? 'clients pinned to CPU 0, the server to CPU 1 (taskset), the orchestrator unpinned' : 'not pinned (taskset unavailable or fewer than 2 CPUs)';
console.log(`gRPC bench: ${VARIANTS.length} variants × ${ROUNDS} rounds, warm-up ${WARMUP} s per client, then c=1 ${DURATION} s + c=${HIGH} ${DURATION} s each in ${SLICE_MS} ms slices taken in turns; ${pinning}`);
const runs: RunOf[] = [];
let patienceMs = PATIENCE * 1000;
let reruns = 0;
let waitedMs = 0;
const ownLongLived = () => procCpuUs(server.pid) + process.cpuUsage().user + process.cpuUsage().system;
for (let round = 1; round <= ROUNDS; round++) {
  for (let attempt = 0; ; attempt++) {
    const waited = await waitForQuiet(patienceMs, ownLongLived, FOREIGN_LIMIT);
    patienceMs -= waited;
    waitedMs += waited;
    const started = performance.now();
    const got = await runRound(round);
    for (const r of got) {
      console.log(
        `round ${round}/${ROUNDS} ${r.variant.padEnd(14)} c=1 p50 ${f0(r.c1.p50Us).padStart(5)} µs (p99 ${f0(r.c1.p99Us)}), ${f1(r.c1.cpuUsPerCall).padStart(6)} µs CPU/call | c=${HIGH} ${f0(r.cHigh.rps).padStart(7)} calls/s, ${f1(r.cHigh.cpuUsPerCall).padStart(6)} µs CPU/call | server saw ${f2(r.serverCallsPerCall)}× | other load ${f2(r.foreign)} vCPU` +
          (r.failures > 0 ? ` | ${r.failures} failures, first: ${r.firstFailure}` : ''),
      );
    }
    const perRound = VARIANTS.length * (WARMUP + 2 * DURATION) * 1000;
    if (got.some((r) => r.disturbed) && attempt < 2 && patienceMs > perRound) {
      patienceMs -= performance.now() - started;
      reruns++;
      console.log(`  … other processes used more than ${FOREIGN_LIMIT} vCPU during that round: running it again`);
      continue;
    }
    runs.push(...got);
    break;
  }
}

// ---------------------------------------------------------------- report

const enough = (clean: number, total: number) => clean >= Math.max(2, Math.ceil(total / 2));
/** Each round's pair of `variant` and `baseline` (clean rounds when there are enough), and the medians of their paired ratio and differences. */
function compare(variant: GrpcVariantId, baseline: GrpcVariantId) {
  const pairs: [RunOf, RunOf][] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const m = runs.find((r) => r.round === round && r.variant === variant);
    const b = runs.find((r) => r.round === round && r.variant === baseline);
    if (m !== undefined && b !== undefined) pairs.push([m, b]);
  }
  const cleanPairs = pairs.filter(([m, b]) => !m.disturbed && !b.disturbed);
  const use = enough(cleanPairs.length, pairs.length) ? cleanPairs : pairs;
  return {
    pairs,
    use,
    ratio: med(use.map(([m, b]) => m.cHigh.rps / b.cHigh.rps)),
    addP50: med(use.map(([m, b]) => m.c1.p50Us - b.c1.p50Us)),
    addCpu1: med(use.map(([m, b]) => m.c1.cpuUsPerCall - b.c1.cpuUsPerCall)),
    addCpuH: med(use.map(([m, b]) => m.cHigh.cpuUsPerCall - b.cHigh.cpuUsPerCall)),
  };
}
const { pairs, use, ratio, addP50, addCpu1, addCpuH } = compare('grpc-mesh', 'grpc-raw');
const lines: string[] = [
  `Machine: ${cpus().length}× ${cpus()[0]?.model ?? '?'}, Linux ${release()}; Node ${process.version}, @grpc/grpc-js ${grpcVersion}.  `,
  `Layout: ${pinning}.  `,
  `Method: ${ROUNDS} rounds; in each, a fresh client process per variant, ${VARIANTS.length === 2 ? 'both' : 'all'} alive together, each warmed up in turn (${WARMUP / 2} s at c=1 + ${WARMUP / 2} s at c=${HIGH}); then c=1 and c=${HIGH} are measured for ${DURATION} s per variant in slices of ${SLICE_MS} ms taken in turns (A B, B A, …). ` +
    'Server: one raw grpc-js process (`new grpc.Server()`, Echo/Unary answering the 100-byte request text, plaintext HTTP/2). ' +
    `Client CPU = process.cpuUsage() of the client process from the start of a slice to the start of its next one / calls; other processes' CPU from /proc around every slice (${1000 / CLK_TCK} ms ticks). ` +
    `Absolute figures: median over rounds (c=${HIGH} calls/s with min–max). Ratio and "added": median over rounds of the paired ratio/difference with the same round's raw client. ` +
    `Rounds disturbed by other processes (> ${FOREIGN_LIMIT} vCPU) are left out when enough clean ones remain; before each round the bench waited for other load to pass (${f0(waitedMs / 1000)} s in all) and ran disturbed rounds again (${reruns} reruns) within --patience ${PATIENCE} s.`,
  '',
  `meshlet measured: ${MESHLET.name}.`,
  'meshlet config (bench/grpc/proto.ts): ServiceEntry `echo.default.svc.cluster.local` port 9090 GRPC (one endpoint), DestinationRule (outlierDetection 5×5xx / 10 s / 30 s, subset v1), VirtualService (a metadata-match rule the calls miss, then the route to v1 with retries 2 on unavailable,connect-failure and timeout 5 s).',
  '',
  `| variant | runs | c=1 p50 µs | c=1 client CPU µs/call | c=${HIGH} calls/s (min–max) | c=${HIGH} client CPU µs/call | server calls per call | failures |`,
  '|---|---|---|---|---|---|---|---|',
];
for (const v of VARIANTS) {
  const all = runs.filter((r) => r.variant === v.id);
  const clean = all.filter((r) => !r.disturbed);
  const rs = enough(clean.length, all.length) ? clean : all;
  const rps = rs.map((r) => r.cHigh.rps);
  lines.push(
    `| ${v.label} | ${rs.length}/${all.length} | ${f0(med(rs.map((r) => r.c1.p50Us)))} | ${f1(med(rs.map((r) => r.c1.cpuUsPerCall)))} | ${f0(med(rps))}${range(rps)} | ${f1(med(rs.map((r) => r.cHigh.cpuUsPerCall)))} | ${f2(med(rs.map((r) => r.serverCallsPerCall)))} | ${all.reduce((s, r) => s + r.failures, 0)} |`,
  );
}
lines.push(
  '',
  `Targets (issue 16), mesh.grpc.client vs the raw client, ${use.length} paired rounds${use.length < pairs.length ? ` (${pairs.length - use.length} disturbed left out)` : ''}:`,
  '',
  '| target | figure | |',
  '|---|---|---|',
  `| c=${HIGH} calls/s ≥ ×0.90 of raw | ×${f2(ratio)} | ${ratio >= 0.9 ? '✅' : '❌'} |`,
  `| added p50 at c=1 ≤ 20 µs | ${signed(addP50, f0)} µs | ${addP50 <= 20 ? '✅' : '❌'} |`,
  `| added client CPU per call, c=1 (reported) | ${signed(addCpu1)} µs | |`,
  `| added client CPU per call, c=${HIGH} (reported) | ${signed(addCpuH)} µs | |`,
  '',
);
if (VARIANTS.some((v) => v.id === 'grpc-raw-istio')) {
  // What Istio's wire content costs a raw client and the server, and what meshlet adds beyond it.
  const rows: [string, ReturnType<typeof compare>][] = [
    ["grpc-raw-istio vs grpc-raw (Istio's wire content alone)", compare('grpc-raw-istio', 'grpc-raw')],
    ['grpc-mesh vs grpc-raw-istio (meshlet beyond the wire content)', compare('grpc-mesh', 'grpc-raw-istio')],
  ];
  lines.push(
    "With --istio-wire (reported, not a target): how much of the above is the wire content Istio's sidecar also sends (the metadata-exchange headers, grpc-timeout — the server then runs a deadline per call), and what meshlet adds beyond it; medians of paired rounds:",
    '',
    `| pair | rounds | c=${HIGH} calls/s ratio | added p50 at c=1 µs | added client CPU µs/call, c=1 | added client CPU µs/call, c=${HIGH} |`,
    '|---|---|---|---|---|---|',
  );
  for (const [label, c] of rows) lines.push(`| ${label} | ${c.use.length} | ×${f2(c.ratio)} | ${signed(c.addP50, f0)} | ${signed(c.addCpu1)} | ${signed(c.addCpuH)} |`);
  lines.push('');
}
lines.push(
  `Per round (c=1 p50 µs / c=${HIGH} calls/s; other processes' CPU in vCPUs, ⚠ = disturbed):`,
  '',
  `| variant | ${Array.from({ length: ROUNDS }, (_, i) => `r${i + 1}`).join(' | ')} |`,
  `|---|${'---|'.repeat(ROUNDS)}`,
);
for (const v of VARIANTS) {
  const cells = Array.from({ length: ROUNDS }, (_, i) => {
    const r = runs.find((x) => x.variant === v.id && x.round === i + 1);
    return r === undefined ? '–' : `${f0(r.c1.p50Us)} / ${f0(r.cHigh.rps)} (${f2(r.foreign)})${r.disturbed ? ' ⚠' : ''}`;
  });
  lines.push(`| ${v.id} | ${cells.join(' | ')} |`);
}
const body = lines.join('\n');
console.log(`\n${body}`);
if (WRITE) {
  writeSection('grpc', 'gRPC: mesh.grpc.client vs a raw grpc-js client (unary)', COMMAND, body);
  console.log('written to bench/RESULTS.md (section "grpc")');
}
server.kill('SIGTERM');
