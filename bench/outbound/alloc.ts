/**
 * Where an outbound HTTP request's bytes are allocated, by function: V8's sampling heap profiler
 * with the objects that minor and major GCs collected counted too (so short-lived garbage shows),
 * over `N` requests at concurrency 64 after 10,000 warm-up requests, against
 * bench/outbound/upstream.ts in a child process. Sampling (every 128 B): per-function figures move
 * by a few tens of bytes between runs; the total is steady.
 *
 *   node_modules/.bin/node bench/outbound/alloc.ts r1n|mr4|f1n|mf5   (env N=20000 TOP=40 MESH=<module>)
 *
 * As bench/outbound/ladder.ts names them: `r1n` undici.request with its own Agent to
 * `http://upstream:PORT/x` (the name resolved to the upstream's IP), `mr4` the same URL through
 * `mesh.dispatcher`, `f1n` / `mf5` the same with undici's fetch / `mesh.fetch`. The mesh is the
 * built package (`dist/index.js`) unless MESH names another module.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { Agent, type Dispatcher, fetch, request } from 'undici';
import { printAllocations, sampleAllocations } from '../lib/alloc-sampling.ts';
import { meshResources } from './mesh-config.ts';

interface MeshLike {
  dispatcher: Dispatcher;
  fetch(input: string): Promise<{ text(): Promise<string> }>;
  close(): Promise<void>;
}

const variant = process.argv[2] ?? 'mr4';
const N = Number(process.env.N ?? 20_000);
const up = spawn(process.execPath, [new URL('./upstream.ts', import.meta.url).pathname], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const port = await new Promise<number>((r) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
const { createMesh } = (await import(process.env.MESH ?? new URL('../../dist/index.js', import.meta.url).href)) as { createMesh(o: object): Promise<MeshLike> };
const mesh = await createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) });
const named = new Agent({ connect: { lookup: (_h: string, _o: object, cb: (e: null, a: { address: string; family: number }[]) => void) => cb(null, [{ address: '127.0.0.1', family: 4 }]) } as never });
const url = `http://upstream:${port}/x`;
const calls: Record<string, () => Promise<void>> = {
  r1n: async () => void (await (await request(url, { dispatcher: named })).body.text()),
  mr4: async () => void (await (await request(url, { dispatcher: mesh.dispatcher })).body.text()),
  f1n: async () => void (await (await fetch(url, { dispatcher: named })).text()),
  mf5: async () => void (await (await mesh.fetch(url)).text()),
};
const call = calls[variant];
if (call === undefined) throw new Error(`unknown variant ${variant} (known: ${Object.keys(calls).join(', ')})`);
const run = async (n: number) => {
  let i = 0;
  await Promise.all(Array.from({ length: 64 }, async () => { while (i++ < n) await call(); }));
};
await run(10_000);
const profile = await sampleAllocations(() => run(N), N, 128);
printAllocations(`${variant} (${N} requests at c=64)`, profile, Number(process.env.TOP ?? 40));
await mesh.close();
await named.close();
up.kill();
