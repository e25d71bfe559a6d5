/**
 * Are the mesh's per-call objects made in old space (pretenured) when the calls come from undici's
 * fetch? fetch keeps every finished request alive until a full GC (fetch-retain.ts), and the mesh's
 * exchange is reachable from what it keeps (fetch's response body stream resumes through its
 * controller, which is the exchange); V8 allocates the objects of a site whose objects survive
 * scavenges in old space, where every young object written into them costs a write barrier.
 * Counted, not timed: each call's exchange and its request header object are checked with V8's
 * `%InYoungGeneration` right after they are made, through mesh.fetch and through mesh.dispatcher
 * with `undici.request` (c=64, the bench upstream in a child process).
 *
 *   node_modules/.bin/node --allow-natives-syntax bench/outbound/fetch-tenure.ts [fetch|request] [phases] [requests]
 *
 * @module
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { UndiciExchange } from '../../src/adapters/undici/exchange.ts';
import { createMesh } from '../../src/index.ts';
import { meshResources } from './mesh-config.ts';

const [api = 'fetch', phasesArg = '6', requestsArg = '10000'] = process.argv.slice(2);
if (api !== 'fetch' && api !== 'request') throw new Error(`fetch-tenure: api ${api}: fetch or request`);
const phases = Number(phasesArg);
const requests = Number(requestsArg);
let inYoung: (o: unknown) => boolean;
try {
  inYoung = new Function('o', 'return %InYoungGeneration(o)') as (o: unknown) => boolean;
} catch {
  throw new Error('fetch-tenure: run with --allow-natives-syntax');
}

// The check itself: a long-lived object is old, a fresh one young.
if (inYoung(Object.prototype) || !inYoung({})) throw new Error('fetch-tenure: %InYoungGeneration does not tell old from young objects in this V8');

let young = 0;
let old = 0;
let oldHeaders = 0;
const begin = UndiciExchange.prototype.begin;
UndiciExchange.prototype.begin = function (this: UndiciExchange): void {
  if (inYoung(this)) young++;
  else old++;
  if (!inYoung(this.headers)) oldHeaders++;
  begin.call(this);
};

const up = fork(fileURLToPath(new URL('./upstream.ts', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
const port = await new Promise<number>((r) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
const mesh = await createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) as never });
const url = `http://upstream:${port}/x`;
const call =
  api === 'fetch'
    ? async () => void (await (await mesh.fetch(url)).text())
    : async () => void (await (await request(url, { dispatcher: mesh.dispatcher })).body.text());

async function run(n: number): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (i++ < n) await call();
    }),
  );
}

console.log(`mesh.${api === 'fetch' ? 'fetch' : 'dispatcher with undici.request'}, c=64, ${requests} requests per phase`);
for (let p = 1; p <= phases; p++) {
  young = old = oldHeaders = 0;
  await run(requests);
  console.log(`phase ${p}: exchanges made young ${young}, old ${old}; request header objects made old ${oldHeaders}`);
}
await mesh.close();
up.kill();
