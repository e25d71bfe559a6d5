/**
 * The outbound benchmark's report (bench/outbound/run.ts measures, this formats): the figures
 * per variant, the targets next to them, whole-path CPU and sanity checks, and every round.
 *
 * @module
 */
import { cpus, release } from 'node:os';
import { median } from '../lib/results.ts';
import type { VariantId } from './client.ts';

export interface Variant {
  id: VariantId;
  label: string;
  baseline?: VariantId;
  meshlet?: boolean;
  nginx?: 1 | 2;
  /** One of the telemetry-on variants that split its cost, run only when named in --variants. */
  split?: boolean;
}

export interface PhaseResult {
  requests: number;
  failures: number;
  seconds: number;
  cpuUsPerReq: number;
  rps: number;
  p50Us?: number;
  p99Us?: number;
}
export interface RunResult {
  c1: PhaseResult;
  cHigh: PhaseResult;
  totalRequests: number;
  firstFailure?: string;
}
export interface PhaseCpu {
  /** nginx (all instances) CPU µs per client request. */
  proxies: number;
  /** Upstream CPU µs per client request. */
  upstream: number;
  /** CPU used on the machine by anything but this benchmark's processes, in vCPUs (0–2), over the phase. */
  foreign: number;
  /** Steal time over the phase, in vCPUs. */
  steal: number;
}
export interface ServerCpu {
  c1: PhaseCpu;
  cHigh: PhaseCpu;
}
export interface Run {
  round: number;
  variant: VariantId;
  result: RunResult;
  upstreamRequests: number;
  v2Requests: number;
  /** Connections the upstream accepted for this client (direct variants: the client's; nginx: nginx's). */
  upstreamConnections: number;
  /** Proxy and upstream CPU µs per client request, per measured phase. */
  server: ServerCpu;
  /** Other processes used more than FOREIGN_LIMIT vCPU during a measured phase (kept after the reruns ran out). */
  disturbed: boolean;
}

export const f0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '–');
export const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
export const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
export const signed = (x: number, f = f1) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${f(x)}` : '–');
export const range = (xs: number[], f = f0) => (xs.length > 1 ? ` (${f(Math.min(...xs))}–${f(Math.max(...xs))})` : '');
export const med = (xs: number[]) => (xs.length === 0 ? Number.NaN : median(xs));

export interface Notes {
  undiciVersion: string;
  nginxVer: string | undefined;
  pinning: string;
  /** Which meshlet was measured (bench/lib/meshlet-build.ts). */
  meshModule: string;
  meshSkip: string | undefined;
  configNote: string;
  reruns: number;
  waitedMs: number;
}

/** The run's settings the report describes. */
export interface ReportSettings {
  rounds: number;
  warmup: number;
  duration: number;
  sliceMs: number;
  high: number;
  clkTck: number;
  foreignLimit: number;
  oneCore: boolean;
  patience: number;
}

/** The Markdown section for bench/RESULTS.md. */
export function report(variants: Variant[], runs: Run[], failed: Map<VariantId, string>, notes: Notes, settings: ReportSettings): string {
  const { rounds: ROUNDS, warmup: WARMUP, duration: DURATION, sliceMs: SLICE_MS, high: HIGH, clkTck: CLK_TCK, foreignLimit: FOREIGN_LIMIT, oneCore: ONE_CORE, patience: PATIENCE } = settings;
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
    `Method: ${ROUNDS} rounds; in each, a fresh client process per variant, all alive together, each warmed up in turn (${WARMUP / 2} s at c=1 + ${WARMUP / 2} s at c=${HIGH}); then c=1 and c=${HIGH} are measured for ${DURATION} s per variant in slices of ${SLICE_MS} ms that the variants take in turns (A B C … C B A …), so every variant meets the same state of the VM. ` +
      `Upstream: one bare node:http process (GET → 200, 100-byte body, keep-alive) on 127.0.0.1 and 127.0.0.2 (= mesh endpoints v1 and v2). ` +
      `nginx: single-process instances, \`upstream { keepalive 64; }\`, \`proxy_http_version 1.1\`, \`Connection ""\`, no access log; 2 hops = client-side nginx → server-side nginx → upstream. ` +
      `Client CPU = process.cpuUsage() of the client process from the start of each slice to the start of its next one (so background GC/JIT work after a slice counts) / requests; proxy and upstream CPU from /proc/<pid>/stat around each slice (${1000 / CLK_TCK} ms ticks). ` +
      `Absolute figures: median over rounds (c=${HIGH} rps with min–max). Ratios and "added": median over rounds of the paired ratio/difference against the same round's baseline of the same client API. ` +
      `Runs disturbed by other processes (> ${FOREIGN_LIMIT} vCPU of other load) are left out of both when enough clean ones remain (≥ 2 and ≥ half); the "runs" column says how many were used.`,
    '',
    `meshlet measured: ${notes.meshModule}.`,
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
    `CPU per request on the whole path (median over rounds, µs): client / proxies (all nginx processes) / upstream = total. Sanity: requests the upstream saw per client request (1.00 = no retries or extra requests), share sent to v2 (127.0.0.2; the mesh config splits 90/10), TCP connections the upstream accepted per client process (a client at c=${HIGH} needs about ${HIGH}), failed requests.`,
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
      `Before each round the bench waited for other load to drop to ≤ ${FOREIGN_LIMIT} vCPU (${f0(notes.waitedMs / 1000)} s in all), and ran disturbed rounds again (${notes.reruns} reruns), within --patience ${PATIENCE} s; ` +
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

