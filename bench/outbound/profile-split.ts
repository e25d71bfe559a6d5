/**
 * Self time per request from two CPU profiles (e.g. `GC_REGIME_CPU_PROF=<file>
 * bench/outbound/gc-regime.ts --api fetch --modes mesh` and the same with `--api request`), by
 * where the code comes from: meshlet's src/, undici, Node's own, GC and the rest; then meshlet's
 * functions side by side.
 *
 * V8 counts the ticks of a function inlined into another against the function it was inlined
 * into (the profile's `positionTicks` then name lines of the inlined function's own file). A
 * meshlet function that calls undici's fetch handler (the exchange's `deliverHead` calls fetch's
 * `onResponseStarted`) can thus show fetch's work as its own. Lines past the end of the meshlet
 * file they are counted in are certainly another file's and are shown apart ("inlined"); lines
 * within it may still be (so "own" is an upper bound).
 *
 *   node_modules/.bin/node bench/outbound/profile-split.ts <a.cpuprofile> <b.cpuprofile> [requests per profile] [rows]
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  positionTicks?: { line: number; ticks: number }[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
}

const [fileA, fileB, requestsArg = '20000', rowsArg = '30'] = process.argv.slice(2);
if (fileA === undefined || fileB === undefined) throw new Error('profile-split: give two .cpuprofile files');
const requests = Number(requestsArg);
const lineCounts = new Map<string, number>();

function linesOf(url: string): number {
  let n = lineCounts.get(url);
  if (n === undefined) {
    try {
      n = readFileSync(url.startsWith('file:') ? fileURLToPath(url) : url, 'utf8').split('\n').length;
    } catch {
      n = Number.POSITIVE_INFINITY;
    }
    lineCounts.set(url, n);
  }
  return n;
}

function category(url: string, name: string): string {
  if (url.includes('/src/')) return 'meshlet';
  if (url.includes('undici')) return 'undici';
  if (url.startsWith('node:')) return 'node';
  if (url === '') return name === '' ? '(native)' : name;
  return 'other';
}

interface Split {
  perTick: number;
  categories: Map<string, number>;
  functions: Map<string, number>;
  own: number;
  inlined: number;
}

function split(file: string): Split {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  // µs per tick per request: the profile's duration over its samples, over the requests it covers.
  const perTick = (p.endTime - p.startTime) / p.samples.length / requests;
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  let own = 0;
  let inlined = 0;
  for (const n of p.nodes) {
    const { functionName, url, lineNumber } = n.callFrame;
    const c = category(url, functionName);
    categories.set(c, (categories.get(c) ?? 0) + n.hitCount * perTick);
    if (c !== 'meshlet') continue;
    const key = `${functionName || '(anonymous)'} ${url.split('/src/')[1] ?? url}:${lineNumber + 1}`;
    functions.set(key, (functions.get(key) ?? 0) + n.hitCount * perTick);
    const max = linesOf(url);
    let positioned = 0;
    for (const t of n.positionTicks ?? []) {
      positioned += t.ticks;
      if (t.line > max) inlined += t.ticks * perTick;
      else own += t.ticks * perTick;
    }
    own += (n.hitCount - positioned) * perTick;
  }
  return { perTick, categories, functions, own, inlined };
}

const a = split(fileA);
const b = split(fileB);
const f = (v: number | undefined) => (v ?? 0).toFixed(2).padStart(8);
console.log(`self time, µs per request (${requests} requests per profile): A = ${fileA}, B = ${fileB}\n`);
console.log(`${'where'.padEnd(26)}        A        B`);
const cats = [...new Set([...a.categories.keys(), ...b.categories.keys()])].sort((x, y) => (b.categories.get(y) ?? 0) + (a.categories.get(y) ?? 0) - (b.categories.get(x) ?? 0) - (a.categories.get(x) ?? 0));
for (const c of cats) console.log(`${c.padEnd(26)} ${f(a.categories.get(c))} ${f(b.categories.get(c))}`);
console.log(`${'meshlet: its own lines'.padEnd(26)} ${f(a.own)} ${f(b.own)}`);
console.log(`${'meshlet: other files inlined'.padEnd(26)} ${f(a.inlined)} ${f(b.inlined)}\n`);
console.log('meshlet functions (self, inlined code included)        A        B');
const keys = [...new Set([...a.functions.keys(), ...b.functions.keys()])];
keys.sort((x, y) => (a.functions.get(y) ?? 0) + (b.functions.get(y) ?? 0) - (a.functions.get(x) ?? 0) - (b.functions.get(x) ?? 0));
for (const k of keys.slice(0, Number(rowsArg))) console.log(`${k.slice(0, 52).padEnd(52)} ${f(a.functions.get(k))} ${f(b.functions.get(k))}`);
