/**
 * What a finished request leaves alive until the next full GC: bytes per request still on the
 * heap after 1000 requests (c=64, every one finished) and two scavenges, and after a full GC.
 * Counted, not timed, so it holds on a busy machine. A scavenge copies (and after two, promotes)
 * whatever it finds alive, so bytes that survive scavenges are what make them slow.
 *
 *   node_modules/.bin/node --expose-gc bench/outbound/fetch-retain.ts [raw|mesh] [fetch|request] [rounds]
 *
 * `raw`: undici's own Agent (no meshlet loaded); `mesh`: mesh.fetch / mesh.dispatcher
 * (MESH=<file> for another tree's src/index.ts).
 *
 * @module
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import * as undici from 'undici';
import { HOST, meshResources } from './mesh-config.ts';

const [mode = 'raw', api = 'fetch', roundsArg = '5'] = process.argv.slice(2);
if (mode !== 'raw' && mode !== 'mesh') throw new Error(`mode ${mode}: raw or mesh`);
if (api !== 'fetch' && api !== 'request') throw new Error(`api ${api}: fetch or request`);
const gc = (globalThis as { gc?: (o?: { type: 'minor' | 'major' }) => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

const up = fork(fileURLToPath(new URL('./upstream.ts', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
const port = await new Promise<number>((r) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
interface MeshLike {
  dispatcher: undici.Dispatcher;
  fetch: typeof undici.fetch;
  close(): Promise<void>;
}
let mesh: MeshLike | undefined;
if (mode === 'mesh') {
  const m = (await import(process.env.MESH ?? '../../src/index.ts')) as { createMesh(o: object): Promise<MeshLike> };
  mesh = await m.createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) });
}
const agent = new undici.Agent({ connections: 64 });
const url = mesh === undefined ? `http://127.0.0.1:${port}/x` : `http://${HOST}:${port}/x`;
const one =
  api === 'fetch'
    ? async () => void (await (await (mesh === undefined ? undici.fetch(url, { dispatcher: agent }) : mesh.fetch(url))).text())
    : async () => void (await (await undici.request(url, { dispatcher: mesh?.dispatcher ?? agent })).body.text());
const run = async (n: number) => {
  let i = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (i++ < n) await one();
    }),
  );
};
await run(20_000);
const used = () => v8.getHeapStatistics().used_heap_size;
const afterScavenges: number[] = [];
const afterFull: number[] = [];
for (let k = 0; k < Number(roundsArg); k++) {
  gc();
  gc();
  const u0 = used();
  await run(1000);
  await new Promise((r) => setImmediate(r));
  gc({ type: 'minor' });
  gc({ type: 'minor' });
  afterScavenges.push(Math.round((used() - u0) / 1000));
  gc();
  afterFull.push(Math.round((used() - u0) / 1000));
}
const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1];
console.log(`${mode} ${api}: bytes per finished request alive after two scavenges ${median(afterScavenges)} (${afterScavenges.join(' ')}), after a full GC ${median(afterFull)} (${afterFull.join(' ')})`);
await mesh?.close();
await agent.close();
up.kill();
