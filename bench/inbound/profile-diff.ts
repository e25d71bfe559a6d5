/**
 * Self time per request of two servers' CPU profiles, side by side (`bench/inbound/run.ts
 * --server-cpu-prof DIR` writes them): by where the code comes from (meshlet, the framework's
 * packages, Node's own internals, V8's builtins and natives, GC), then every function whose self
 * time differs, largest difference first. Idle samples are left out; each sample counts for the
 * time to the next one.
 *
 *   node_modules/.bin/node bench/inbound/profile-diff.ts DIR express-raw express-mesh [rows]
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [dir, idA, idB, rowsArg = '40'] = process.argv.slice(2);
if (dir === undefined || idA === undefined || idB === undefined) throw new Error('profile-diff: give DIR and two server ids (express-raw express-mesh)');
const requests = JSON.parse(readFileSync(join(dir, 'requests.json'), 'utf8')) as Record<string, number>;

function category(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(V8 builtin / native)';
  const m = /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m !== null) return `npm:${m[1]}`;
  if (url.includes('/dist/') || url.includes('/src/')) return 'meshlet';
  if (url.startsWith('node:')) return 'node internals';
  return 'other';
}

interface Split {
  categories: Map<string, number>;
  functions: Map<string, number>;
  total: number;
}

function split(id: string): Split {
  const p = JSON.parse(readFileSync(join(dir as string, `${id}.cpuprofile`), 'utf8')) as Profile;
  const n = requests[id];
  if (n === undefined || n === 0) throw new Error(`profile-diff: no requests for ${id} in ${dir}/requests.json`);
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i] as number) as Node;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    const us = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / n;
    total += us;
    const c = category(url, functionName);
    categories.set(c, (categories.get(c) ?? 0) + us);
    const file = url.replace(/^.*node_modules\//, '').replace(/^.*\/(dist|src)\//, '$1/');
    const key = `${functionName || '(anonymous)'} ${file}${url === '' ? '' : `:${lineNumber + 1}`}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  return { categories, functions, total };
}

const a = split(idA);
const b = split(idB);
const f = (v: number | undefined) => (v ?? 0).toFixed(2).padStart(8);
console.log(`self time, µs per request: A = ${idA} (${requests[idA]} requests), B = ${idB} (${requests[idB]})\n`);
console.log(`${'where'.padEnd(60)}        A        B      B−A`);
const cats = [...new Set([...a.categories.keys(), ...b.categories.keys()])].sort((x, y) => (b.categories.get(y) ?? 0) - (b.categories.get(x) ?? 0));
for (const c of cats) console.log(`${c.padEnd(60)} ${f(a.categories.get(c))} ${f(b.categories.get(c))} ${f((b.categories.get(c) ?? 0) - (a.categories.get(c) ?? 0))}`);
console.log(`${'all (idle left out)'.padEnd(60)} ${f(a.total)} ${f(b.total)} ${f(b.total - a.total)}\n`);
console.log(`${'functions, largest difference first'.padEnd(60)}        A        B      B−A`);
const keys = [...new Set([...a.functions.keys(), ...b.functions.keys()])];
const d = (k: string) => (b.functions.get(k) ?? 0) - (a.functions.get(k) ?? 0);
keys.sort((x, y) => Math.abs(d(y)) - Math.abs(d(x)));
for (const k of keys.slice(0, Number(rowsArg))) console.log(`${k.slice(0, 60).padEnd(60)} ${f(a.functions.get(k))} ${f(b.functions.get(k))} ${f(d(k))}`);
