/**
 * What `import 'meshlet'` costs an app, built as one file per module (what `tsc` emits) and as
 * the package ships it (scripts/bundle.ts: a few bundled files), side by side.
 *
 *   node bench/startup/import.ts [--rounds 9]
 *
 * Both builds are made from this tree into node_modules/.cache/meshlet-bench/ (inside the repo,
 * so both resolve the same undici, yaml, jose, … from node_modules). Each round starts a fresh
 * process per build, in alternating order, that imports the build's `index.js`, makes a mesh from
 * the outbound benchmark's resources (bench/outbound/mesh-config.ts: a ServiceEntry, a
 * DestinationRule and a VirtualService with a weighted split) and closes it. Per process:
 * `import` ms (wall), `createMesh` ms, the heap used after two full GCs, and how many of
 * meshlet's files Node loaded. Reported: medians over rounds, and the median of the paired
 * bundle / files ratios of each round (this machine's speed moves by 40 % between runs).
 *
 * @module
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from '../lib/results.ts';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '9' } } });
const ROUNDS = Number(args.rounds);
const ROOT = resolve(import.meta.dirname, '../..');
const WORK = join(ROOT, 'node_modules', '.cache', 'meshlet-bench', 'startup');
const NODE = process.execPath;

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const builds = { files: join(WORK, 'files'), bundle: join(WORK, 'bundle') } as const;
execFileSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json', '--outDir', builds.files, '--declaration', 'false', '--declarationMap', 'false'], { cwd: ROOT, stdio: 'inherit' });
execFileSync(NODE, ['scripts/bundle.ts', builds.bundle], { cwd: ROOT, stdio: 'inherit' });

const probe = join(WORK, 'probe.mjs');
writeFileSync(
  probe,
  `import { registerHooks } from 'node:module';
import { pathToFileURL } from 'node:url';
let files = 0;
const dir = pathToFileURL(process.argv[2]).href;
registerHooks({ load(url, ctx, next) { if (url.startsWith(dir)) files++; return next(url, ctx); } });
const { meshResources } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'bench/outbound/mesh-config.ts')).href)});
const t0 = performance.now();
const { createMesh } = await import(dir + '/index.js');
const t1 = performance.now();
const mesh = await createMesh({ service: 'bench', namespace: 'default', config: meshResources(9080) });
const t2 = performance.now();
await mesh.close();
globalThis.gc(); globalThis.gc();
console.log(JSON.stringify({ importMs: t1 - t0, createMs: t2 - t1, heapMB: process.memoryUsage().heapUsed / 1e6, files }));
`,
);

interface Sample {
  importMs: number;
  createMs: number;
  heapMB: number;
  files: number;
}
const samples: Record<keyof typeof builds, Sample[]> = { files: [], bundle: [] };
const order = Object.keys(builds) as (keyof typeof builds)[];
for (let r = 0; r < ROUNDS; r++) {
  for (const name of r % 2 === 0 ? order : [...order].reverse()) {
    const run = spawnSync(NODE, ['--expose-gc', probe, builds[name]], { cwd: ROOT, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`${name}: exited ${run.status}\n${run.stderr}`);
    samples[name].push(JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as Sample);
  }
}

const f1 = (x: number) => x.toFixed(1);
const rows = order.map((name) => {
  const s = samples[name];
  return `| ${name === 'files' ? 'one file per module (tsc)' : 'bundled (as shipped)'} | ${median(s.map((x) => x.files))} | ${f1(median(s.map((x) => x.importMs)))} | ${f1(median(s.map((x) => x.createMs)))} | ${f1(median(s.map((x) => x.heapMB)))} |`;
});
const ratio = (k: keyof Sample) => median(samples.bundle.map((b, i) => b[k] / (samples.files[i] as Sample)[k]));
console.log(`${ROUNDS} rounds, Node ${process.version}; medians\n`);
console.log('| build | meshlet files loaded | import ms | createMesh ms | heap after GC MB |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log(`\nbundled / one file per module, median of paired ratios: import ×${ratio('importMs').toFixed(2)}, createMesh ×${ratio('createMs').toFixed(2)}, heap ×${ratio('heapMB').toFixed(2)}`);
rmSync(WORK, { recursive: true, force: true });
