/**
 * The main thread's own CPU per request, by where the code comes from, from `perf` cpu-clock
 * samples (`GC_REGIME_PERF=<file> bench/outbound/gc-regime.ts --modes <one mode>`, 5000 samples
 * per second of the thread's CPU). Unlike a V8 CPU profile (wall-clock samples: time the thread
 * waited for the CPU lands on whatever it was running), these count CPU only.
 *
 * The groups that do the same work in every process — llhttp's WebAssembly parsing the same
 * responses, undici's HTTP/1 client code — show how much slower *any* code runs in a process:
 * meshlet's cost is read against them (`meshlet / llhttp`), not against another process's
 * absolute figures, which move by ×2 with the machine's state.
 *
 *   node_modules/.bin/node bench/outbound/perf-split.ts <requests> <perf.data>... [--functions N]
 *
 * @module
 */
import { spawnSync } from 'node:child_process';

const HZ = 5000;
const args = process.argv.slice(2);
const fnIndex = args.indexOf('--functions');
const topFunctions = fnIndex >= 0 ? Number(args[fnIndex + 1]) : 0;
if (fnIndex >= 0) args.splice(fnIndex, 2);
const [requestsArg, ...files] = args;
const requests = Number(requestsArg);
if (!(requests > 0) || files.length === 0) throw new Error('perf-split: give the number of requests, then one or more perf.data files');

const GROUPS: [string, (sym: string) => boolean][] = [
  ['meshlet (src/)', (s) => /\/src\/.*\.ts:\d+/.test(s) || /\/dist\/index\.js/.test(s)],
  ['undici HTTP/1 client (client-h1.js)', (s) => s.includes('undici/lib/dispatcher/client-h1.js')],
  ['llhttp (WebAssembly)', (s) => /wasm/i.test(s)],
  ['undici fetch (lib/web)', (s) => s.includes('undici/lib/web/')],
  ['undici, other', (s) => s.includes('undici/lib/')],
  ['Node (node:)', (s) => /JS:.* node:/.test(s)],
  ['V8 builtins', (s) => s.includes('Builtins_')],
  ['kernel', (s) => s.includes('[k]')],
];

interface Split {
  total: number;
  groups: Map<string, number>;
  functions: Map<string, number>;
}

function split(file: string): Split {
  const r = spawnSync('perf', ['report', '-i', file, '--sort', 'sym', '--stdio', '-F', 'sample,sym'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`perf-split: perf report -i ${file} failed: ${r.stderr}`);
  const perRequest = 1e6 / HZ / requests;
  const out: Split = { total: 0, groups: new Map(), functions: new Map() };
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m === null || line.startsWith('#')) continue;
    const us = Number(m[1]) * perRequest;
    const sym = m[2] as string;
    out.total += us;
    const g = GROUPS.find(([, test]) => test(sym))?.[0] ?? 'other native (V8 runtime, GC, libc)';
    out.groups.set(g, (out.groups.get(g) ?? 0) + us);
    if (g === 'meshlet (src/)') {
      const name = sym.replace(/^\[\.\]\s+JS:/, '').replace(/file:\/\/\/.*\/src\//, '');
      out.functions.set(name, (out.functions.get(name) ?? 0) + us);
    }
  }
  return out;
}

const splits = files.map(split);
const names = [...GROUPS.map(([g]) => g), 'other native (V8 runtime, GC, libc)'];
console.log(`Main-thread CPU, µs per request (${requests} requests per file, perf cpu-clock at ${HZ} Hz)\n`);
console.log(`| | ${files.join(' | ')} |`);
console.log(`|---|${files.map(() => '---').join('|')}|`);
for (const g of names) console.log(`| ${g} | ${splits.map((s) => (s.groups.get(g) ?? 0).toFixed(1)).join(' | ')} |`);
console.log(`| total | ${splits.map((s) => s.total.toFixed(1)).join(' | ')} |`);
const ratio = (s: Split, g: string) => {
  const d = s.groups.get(g) ?? 0;
  return d === 0 ? '-' : ((s.groups.get('meshlet (src/)') ?? 0) / d).toFixed(2);
};
console.log(`| meshlet / llhttp | ${splits.map((s) => ratio(s, 'llhttp (WebAssembly)')).join(' | ')} |`);
console.log(`| meshlet / undici HTTP/1 client | ${splits.map((s) => ratio(s, 'undici HTTP/1 client (client-h1.js)')).join(' | ')} |`);
if (topFunctions > 0) {
  for (const [i, s] of splits.entries()) {
    console.log(`\n${files[i]}: meshlet's functions (tier marks: * TurboFan, + Maglev, ^ Sparkplug, ~ interpreted)`);
    for (const [f, us] of [...s.functions].sort((a, b) => b[1] - a[1]).slice(0, topFunctions)) console.log(`  ${us.toFixed(2).padStart(6)}  ${f}`);
  }
}
