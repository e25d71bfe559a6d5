/**
 * Cold start as a serverless function pays it (AWS Lambda, Cloud Run scaled to zero): the time
 * from the process's start to its first successful outbound call, through the mesh and without it.
 *
 *   node bench/startup/coldstart.ts [--rounds 7] [--node <path to another node>] [--sizes 10,200,2000]
 *
 * An upstream (node:http, 127.0.0.1, port 0) runs in this process (idle while a probe starts). Each round starts, in turn
 * and in an order that alternates between rounds, one fresh process per variant:
 *
 * - `undici`: imports undici and makes one `request()` to the upstream (the baseline);
 * - `mesh N yaml`: imports meshlet (the built package, `dist/`), `createMesh` from a directory of
 *   N Istio resources in YAML (ServiceEntry / DestinationRule / VirtualService triples: three
 *   routes each, one with a URI regex), then one `mesh.fetch` to the first service;
 * - `mesh N json`: the same resources as one JSON `List` (what `kubectl get -o json` writes).
 *
 * Per process: `import` ms, `createMesh` ms, first call ms, and "to first response": ms from the
 * process's start (`performance.now()`, counted from Node's time origin) until the first call's
 * body was read. Medians over rounds; the machine's speed moves between runs, so compare the
 * variants of one run.
 *
 * @module
 */
import { execFile, spawnSync } from 'node:child_process';
import { parseArgs, promisify } from 'node:util';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';

import { meshletBuild } from '../lib/meshlet-build.ts';
import { median } from '../lib/results.ts';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, node: { type: 'string' }, sizes: { type: 'string', default: '10,200,2000' } } });
const ROUNDS = Number(args.rounds);
const NODE = args.node ?? process.execPath;
const SIZES = args.sizes.split(',').map(Number);
const ROOT = resolve(import.meta.dirname, '../..');
const WORK = join(ROOT, 'node_modules', '.cache', 'meshlet-bench', 'coldstart');

/** N resources: triples of a ServiceEntry (the upstream), a DestinationRule and a VirtualService. */
function resources(n: number, port: number): object[] {
  const out: object[] = [];
  for (let i = 0; out.length < n; i++) {
    const host = `svc-${i}.default.svc.cluster.local`;
    const meta = { name: `svc-${i}`, namespace: 'default' };
    const v1 = { host, subset: 'v1' };
    const triple = [
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: meta,
        spec: { hosts: [host], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: port, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', labels: { version: 'v1' } }] },
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: meta,
        spec: { host, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s' } }, subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
      },
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: meta,
        spec: {
          hosts: [host],
          http: [
            { match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: v1 }] },
            { match: [{ uri: { regex: `/items/${i}/[0-9]+` } }], route: [{ destination: v1 }], retries: { attempts: 2, retryOn: '5xx' } },
            { route: [{ destination: v1 }], timeout: '5s' },
          ],
        },
      },
    ];
    out.push(...triple.slice(0, n - out.length));
  }
  return out;
}

/** YAML as people write it: block style, one file per 30 resources. */
function toYaml(value: unknown, indent = ''): string {
  if (Array.isArray(value)) return value.map((v) => `\n${indent}- ${toYaml(v, `${indent}  `).trimStart()}`).join('');
  if (value !== null && typeof value === 'object') {
    return Object.entries(value)
      .map(([k, v]) => (v !== null && typeof v === 'object' ? `\n${indent}${JSON.stringify(k)}:${toYaml(v, `${indent}  `)}` : `\n${indent}${JSON.stringify(k)}: ${JSON.stringify(v)}`))
      .join('');
  }
  return JSON.stringify(value);
}

const upstream = createServer((_req, res) => res.end('ok'));
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
const PORT = (upstream.address() as AddressInfo).port;

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const build = meshletBuild();
const variants: { name: string; args: string[] }[] = [{ name: 'undici', args: ['undici', '-'] }];
for (const n of SIZES) {
  const all = resources(n, PORT);
  const yamlDir = join(WORK, `yaml-${n}`);
  mkdirSync(yamlDir);
  for (let i = 0; i < all.length; i += 30) writeFileSync(join(yamlDir, `part-${i / 30}.yaml`), `${all.slice(i, i + 30).map((r) => toYaml(r).trimStart()).join('\n---\n')}\n`);
  const jsonDir = join(WORK, `json-${n}`);
  mkdirSync(jsonDir);
  writeFileSync(join(jsonDir, 'mesh.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: all }));
  variants.push({ name: `mesh ${n} yaml`, args: ['mesh', yamlDir] }, { name: `mesh ${n} json`, args: ['mesh', jsonDir] });
}

const probe = join(WORK, 'probe.mjs');
writeFileSync(
  probe,
  `const [mode, config, port] = process.argv.slice(2);
const t0 = performance.now();
let t1, t2, status;
if (mode === 'undici') {
  const { request } = await import('undici');
  t1 = t2 = performance.now();
  const r = await request('http://127.0.0.1:' + port + '/');
  await r.body.text();
  status = r.statusCode;
} else {
  const { createMesh } = await import(${JSON.stringify(build.index)});
  t1 = performance.now();
  const mesh = await createMesh({ service: 'app', config, watch: false });
  t2 = performance.now();
  const r = await mesh.fetch('http://svc-0.default.svc.cluster.local:' + port + '/');
  await r.text();
  status = r.status;
  const t3 = performance.now();
  await mesh.close();
  var closeMs = performance.now() - t3;
}
const t3 = performance.now();
if (status !== 200) throw new Error('status ' + status);
console.log(JSON.stringify({ importMs: t1 - t0, createMs: t2 - t1, callMs: (mode === 'undici' ? t3 : t3 - (closeMs ?? 0)) - t2, firstMs: mode === 'undici' ? t3 : t3 - closeMs, closeMs: closeMs ?? 0 }));
`,
);

interface Sample {
  importMs: number;
  createMs: number;
  callMs: number;
  firstMs: number;
  closeMs: number;
}
const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
    // Not spawnSync: the upstream answers from this process's event loop.
    const run = await promisify(execFile)(NODE, [probe, ...v.args, String(PORT)], { cwd: ROOT, encoding: 'utf8' });
    samples.get(v.name)?.push(JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as Sample);
  }
}
upstream.close();

const version = spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
const f = (x: number) => x.toFixed(0);
const base = median((samples.get('undici') as Sample[]).map((s) => s.firstMs));
console.log(`${ROUNDS} rounds, Node ${version}, ${build.name}; medians, ms\n`);
console.log('| variant | import | createMesh | first call | to first response | vs undici | close |');
console.log('|---|---|---|---|---|---|---|');
for (const v of variants) {
  const s = samples.get(v.name) as Sample[];
  const m = (k: keyof Sample) => median(s.map((x) => x[k]));
  const mesh = v.name !== 'undici';
  console.log(`| ${v.name} | ${f(m('importMs'))} | ${mesh ? f(m('createMs')) : '–'} | ${f(m('callMs'))} | ${f(m('firstMs'))} | ${mesh ? `+${f(m('firstMs') - base)}` : '–'} | ${mesh ? m('closeMs').toFixed(1) : '–'} |`);
}
rmSync(WORK, { recursive: true, force: true });
