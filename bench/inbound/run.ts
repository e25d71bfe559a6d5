/**
 * Inbound benchmark: what meshlet's server side costs a node:http, Express or Fastify server.
 *
 *   node_modules/.bin/node bench/inbound/run.ts [--rounds N] [--slice MS] [--slices N] [--warmup S] [--concurrency C] [--telemetry] [--spin US]… [--framework F]… [--mesh-module src|FILE] [--server-cpu-prof DIR] [--quick] [--write]
 *
 * Six servers, each its own process pinned to CPU 0 (the load client runs on CPU 1): http, express,
 * fastify, each raw and with meshlet in front under a realistic policy set — one
 * RequestAuthentication (inline JWKS, RS256), an AuthorizationPolicy with three rules, a valid
 * token on every request (so the verified-token cache is what is measured; the uncached signature
 * cost is bench/inbound/jwt.ts's). In each round, every server gets `--slices` slices of
 * `--slice` ms of load at concurrency C in turns (A B C … C B A …), so every variant meets the
 * same state of this noisy VM; a server's CPU is read from /proc around its slices. Ratios are
 * medians over rounds of each round's mesh/raw pair (requests/s, and server CPU µs/request).
 * `--telemetry` adds a third server per framework: meshlet with telemetry on (`startTelemetry()`:
 * Istio metrics on every request, spans sampled at 1 % and exported over OTLP), written to its own
 * section of bench/RESULTS.md.
 *
 * Over loopback a server's CPU per request is not its JavaScript plus a constant: each response's
 * `writev(2)` also runs the loopback receive path and, when the load client sleeps waiting for an
 * answer, wakes it (on this VM an inter-processor wake-up, charged to the server as system time).
 * A server faster than the client rarely finds it asleep; a slower one wakes it on most responses,
 * so a few µs of extra JavaScript show up as more than that. `--spin US` (repeatable) adds a
 * control per framework: the raw server plus US µs of calibrated pure-JavaScript work per request,
 * no meshlet — what that much work alone costs over loopback. A second table gives every server's
 * user and system CPU per request and how often the client slept per request.
 *
 * `--server-cpu-prof DIR` writes a CPU profile of each server's measured rounds (not its start-up
 * or warm-up; sampled every 100 µs through the inspector) to `DIR/<server>.cpuprofile`, and the
 * requests each profile covers to `DIR/requests.json`, for `bench/inbound/profile-diff.ts`.
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { meshletBuild } from '../lib/meshlet-build.ts';
import { median, writeSection } from '../lib/results.ts';
import { writeBenchPolicies } from './policies.ts';

const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string' },
    slice: { type: 'string' },
    slices: { type: 'string' },
    warmup: { type: 'string' },
    concurrency: { type: 'string' },
    quick: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    telemetry: { type: 'boolean', default: false },
    spin: { type: 'string', multiple: true },
    shape: { type: 'boolean', default: false },
    framework: { type: 'string', multiple: true },
    'mesh-module': { type: 'string' },
    'server-cpu-prof': { type: 'string' },
  },
});
const SPINS = (a.spin ?? []).map((x) => {
  const n = Number(x);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--spin ${x}: a positive number of µs`);
  return n;
});
const TELEMETRY = a.telemetry === true;
const quick = a.quick === true;
const ROUNDS = Number(a.rounds ?? (quick ? 3 : 5));
const SLICE_MS = Number(a.slice ?? 250);
const SLICES = Number(a.slices ?? (quick ? 4 : 8));
const WARMUP_S = Number(a.warmup ?? (quick ? 2 : 4));
const C = Number(a.concurrency ?? 64);
/** The built package (dist/, rebuilt when src/ is newer), `--mesh-module src`, or a file (bench/lib/meshlet-build.ts). */
const MESHLET = meshletBuild(a['mesh-module']);
const CPU_PROF = a['server-cpu-prof'] === undefined ? undefined : resolve(a['server-cpu-prof']);
if (CPU_PROF !== undefined) mkdirSync(CPU_PROF, { recursive: true });

const ALL_FRAMEWORKS = ['http', 'express', 'fastify'] as const;
type Framework = (typeof ALL_FRAMEWORKS)[number];
for (const f of a.framework ?? []) if (!(ALL_FRAMEWORKS as readonly string[]).includes(f)) throw new Error(`--framework ${f}: one of ${ALL_FRAMEWORKS.join(', ')}`);
const FRAMEWORKS = ALL_FRAMEWORKS.filter((f) => a.framework === undefined || a.framework.includes(f));
/** `spin<US>`: the raw server plus US µs of pure-JavaScript work per request (a control, no meshlet). */
type Mode = 'raw' | 'mesh' | 'mesh-otel' | 'shape' | `spin${number}`;
type Variant = { framework: Framework; mode: Mode; mesh: boolean; id: string };
const VARIANTS: Variant[] = FRAMEWORKS.flatMap((f) =>
  (['raw', 'mesh', ...(TELEMETRY ? (['mesh-otel'] as const) : []), ...(a.shape === true ? (['shape'] as const) : []), ...SPINS.map((us) => `spin${us}` as const)] as Mode[]).map((mode) => ({ framework: f, mode, mesh: mode === 'mesh' || mode === 'mesh-otel', id: `${f}-${mode}` })),
);

// ---------------------------------------------------------------- config and token

const { dir, token } = await writeBenchPolicies('meshlet-bench-inbound-');

// ---------------------------------------------------------------- servers

interface Server {
  v: Variant;
  proc: ChildProcess;
  pool: Pool;
  phases: readonly string[];
}

/**
 * A process's CPU time in µs: the sum of its threads' run time from `/proc/<pid>/task/<tid>/schedstat`
 * (nanoseconds; the JS thread, GC helpers, libuv's pool), else user + system from `/proc/<pid>/stat`
 * (10 ms ticks: a 250 ms slice of a busy server at ~30 µs a request is ~8000 requests measured
 * to ±1 tick, about ±1 µs a request).
 */
function cpuUs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // A thread that ended between the listing and the read.
      }
    }
    if (ns > 0) return ns / 1000;
  } catch {
    // No schedstat (a kernel without CONFIG_SCHEDSTATS): ticks below.
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks / 100) * 1e6;
}

/** A process's user and system CPU in clock ticks (10 ms) from `/proc/<pid>/stat`. */
function userSysTicks(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]), sys: Number(fields[12]) };
}

/** How often this (the load client's) main thread went to sleep: `voluntary_ctxt_switches`. */
function clientSleeps(): number {
  const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'));
  return m === null ? 0 : Number(m[1]);
}

function taskset(pid: number, cpu: number): void {
  spawnSync('taskset', ['-pc', String(cpu), String(pid)], { stdio: 'ignore' });
}

async function start(v: Variant): Promise<Server> {
  const proc = fork(new URL('./server.ts', import.meta.url).pathname, [v.framework, v.mode, dir], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, BENCH_MESHLET_INDEX: MESHLET.index, BENCH_MESHLET_TELEMETRY: MESHLET.telemetry, ...(CPU_PROF === undefined ? {} : { BENCH_CPU_PROF: '1' }) },
  });
  const ready = await new Promise<{ port: number; phases: string[] }>((resolve, reject) => {
    proc.once('message', (m) => resolve(m as { port: number; phases: string[] }));
    proc.once('exit', (code) => reject(new Error(`${v.id} exited with ${code}`)));
  });
  taskset(proc.pid as number, 0);
  return { v, proc, pool: new Pool(`http://127.0.0.1:${ready.port}`, { connections: C }), phases: ready.phases };
}

async function load(s: Server, ms: number): Promise<{ requests: number; failures: number; cpuUs: number; userTicks: number; sysTicks: number; clientSleeps: number }> {
  const cpu0 = cpuUs(s.proc.pid as number);
  const t0 = userSysTicks(s.proc.pid as number);
  const sleeps0 = clientSleeps();
  const end = performance.now() + ms;
  let requests = 0;
  let failures = 0;
  let n = 0;
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (performance.now() < end) {
        const r = await s.pool.request({ method: 'GET', path: `/api/items/${n++ % 1000}`, headers: { authorization: `Bearer ${token}` } });
        await r.body.dump();
        if (r.statusCode === 200) requests++;
        else failures++;
      }
    }),
  );
  const sleeps = clientSleeps() - sleeps0;
  const t1 = userSysTicks(s.proc.pid as number);
  return { requests, failures, cpuUs: cpuUs(s.proc.pid as number) - cpu0, userTicks: t1.user - t0.user, sysTicks: t1.sys - t0.sys, clientSleeps: sleeps };
}

if (a.write === true && a.framework !== undefined) throw new Error('--write measures every framework: leave out --framework');
taskset(process.pid, 1);
const servers: Server[] = [];
for (const v of VARIANTS) servers.push(await start(v));
for (const s of servers) if (s.v.mesh) console.log(`${s.v.id}: phases ${s.phases.join(' → ') || '(none)'}`);
console.log(`warm-up ${WARMUP_S} s each…`);
for (const s of servers) await load(s, WARMUP_S * 1000);

/** Asks every server to start (or stop and write) its CPU profile, and waits until all have. */
async function profiles(what: 'start' | 'stop'): Promise<void> {
  if (CPU_PROF === undefined) return;
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((done) => {
          const on = (m: { type?: string }): void => {
            if (m.type !== (what === 'start' ? 'profile-started' : 'profile-written')) return;
            s.proc.off('message', on);
            done();
          };
          s.proc.on('message', on);
          s.proc.send({ type: `profile-${what}`, file: join(CPU_PROF, `${s.v.id}.cpuprofile`) });
        }),
    ),
  );
}

interface Tally {
  requests: number;
  failures: number;
  cpuUs: number;
  ms: number;
  userTicks: number;
  sysTicks: number;
  clientSleeps: number;
}
const rounds: Map<string, Tally>[] = [];
await profiles('start');
for (let r = 0; r < ROUNDS; r++) {
  const t = new Map<string, Tally>(VARIANTS.map((v) => [v.id, { requests: 0, failures: 0, cpuUs: 0, ms: 0, userTicks: 0, sysTicks: 0, clientSleeps: 0 }]));
  for (let i = 0; i < SLICES; i++) {
    const order = i % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      const x = await load(s, SLICE_MS);
      const y = t.get(s.v.id) as Tally;
      y.requests += x.requests;
      y.failures += x.failures;
      y.cpuUs += x.cpuUs;
      y.ms += SLICE_MS;
      y.userTicks += x.userTicks;
      y.sysTicks += x.sysTicks;
      y.clientSleeps += x.clientSleeps;
    }
  }
  rounds.push(t);
  console.log(`round ${r + 1}: ${VARIANTS.map((v) => `${v.id} ${((t.get(v.id) as Tally).requests / ((t.get(v.id) as Tally).ms / 1000)).toFixed(0)} rps`).join(', ')}`);
}

await profiles('stop');
if (CPU_PROF !== undefined) {
  const requests = Object.fromEntries(VARIANTS.map((v) => [v.id, rounds.reduce((n, t) => n + (t.get(v.id) as Tally).requests + (t.get(v.id) as Tally).failures, 0)]));
  writeFileSync(join(CPU_PROF, 'requests.json'), `${JSON.stringify(requests, null, 2)}\n`);
  console.log(`CPU profiles of the measured rounds in ${CPU_PROF}`);
}

const rps = (x: Tally) => x.requests / (x.ms / 1000);
const cpu = (x: Tally) => x.cpuUs / Math.max(1, x.requests);
function table(mode: Mode, label: string): string[] {
  const out: string[] = [];
  out.push(`| server | raw rps | ${label} rps | ratio (median of rounds) | server CPU/request raw | ${label} | added CPU/request | failures |`);
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const f of FRAMEWORKS) {
    const raw = rounds.map((t) => t.get(`${f}-raw`) as Tally);
    const mesh = rounds.map((t) => t.get(`${f}-${mode}`) as Tally);
    const ratio = median(raw.map((x, i) => rps(mesh[i] as Tally) / rps(x)));
    const added = median(raw.map((x, i) => cpu(mesh[i] as Tally) - cpu(x)));
    const fails = mesh.reduce((n, x) => n + x.failures, 0) + raw.reduce((n, x) => n + x.failures, 0);
    out.push(`| ${f} | ${median(raw.map(rps)).toFixed(0)} | ${median(mesh.map(rps)).toFixed(0)} | ×${ratio.toFixed(2)} | ${median(raw.map(cpu)).toFixed(1)} µs | ${median(mesh.map(cpu)).toFixed(1)} µs | ${added >= 0 ? '+' : ''}${added.toFixed(1)} µs | ${fails} |`);
  }
  return out;
}
const setup = `Concurrency ${C}, ${ROUNDS} rounds of ${SLICES} slices × ${SLICE_MS} ms per server, taken in turns; servers on CPU 0, load client on CPU 1. Policy: one RequestAuthentication (inline JWKS, RS256, a valid token on every request), one AuthorizationPolicy with three rules. meshlet measured: ${MESHLET.name}.`;
/** Per server, over all rounds: user and system CPU per request (10 ms ticks) and the load client's sleeps per request. */
function kernelTable(): string[] {
  const out = ['| server | user CPU/request | system CPU/request | client sleeps/request |', '|---|---:|---:|---:|'];
  for (const v of VARIANTS) {
    const xs = rounds.map((t) => t.get(v.id) as Tally);
    const n = Math.max(1, xs.reduce((k, x) => k + x.requests, 0));
    const tick = 1e6 / 100;
    out.push(`| ${v.id} | ${((xs.reduce((k, x) => k + x.userTicks, 0) * tick) / n).toFixed(1)} µs | ${((xs.reduce((k, x) => k + x.sysTicks, 0) * tick) / n).toFixed(1)} µs | ${(xs.reduce((k, x) => k + x.clientSleeps, 0) / n).toFixed(2)} |`);
  }
  return out;
}
const control =
  SPINS.length === 0 && a.shape !== true
    ? []
    : [
        '',
        'Control: the raw server plus calibrated pure-JavaScript work per request (no meshlet), what that much work alone costs over loopback.',
        ...SPINS.flatMap((us) => ['', ...table(`spin${us}`, `raw + ${us} µs JS`)]),
        ...(a.shape === true ? ['', 'Control: the raw server whose requests and responses get the own properties meshlet gives them (`on`, `once`, `addListener`, `meshlet`, two symbols; `writeHead`), nothing else.', '', ...table('shape', 'raw + shape')] : []),
        '',
        'Kernel side: user and system CPU per request, and how often the load client slept per request (a server slower than the client wakes it on most responses).',
        '',
        ...kernelTable(),
      ];
const body = [setup, '', ...table('mesh', 'with meshlet'), ...control].join('\n');
console.log(`\n${body}`);
const command = `node_modules/.bin/node bench/inbound/run.ts${process.argv.slice(2).length > 0 ? ` ${process.argv.slice(2).join(' ')}` : ''}`;
if (a.write === true) writeSection('inbound', 'Inbound: meshlet in front of node:http, Express and Fastify', command, body);
if (TELEMETRY) {
  const otel = [
    `${setup} Telemetry on: \`startTelemetry()\` in the server process (Prometheus endpoint, OTLP/HTTP span export to a local sink), Istio metrics (\`reporter="destination"\`) on every request, server spans sampled at 1 %.`,
    '',
    ...table('mesh', 'with meshlet'),
    '',
    ...table('mesh-otel', 'meshlet + telemetry'),
  ].join('\n');
  console.log(`\n${otel}`);
  if (a.write === true) writeSection('inbound-telemetry', 'Inbound: meshlet with telemetry on (issue 15)', command, otel);
}

for (const s of servers) {
  await s.pool.close();
  s.proc.kill();
}
rmSync(dir, { recursive: true, force: true });
