/**
 * Where `mesh.fetch`'s cost over `undici.fetch` comes from, by construction: a ladder of
 * variants, each adding one thing to the one before, measured interleaved in one process
 * (client CPU per request, `process.cpuUsage`), with the same ladder for `undici.request` so
 * the two APIs' steps can be compared.
 *
 *   node bench/outbound/ladder.ts [variants] (env ROUNDS=50 N=1000 C=64)
 *
 * One process runs every variant (same heap, same JIT, same machine state); slices of N
 * requests at concurrency C rotate through the variants, in reverse order every other round,
 * and each step is the median over rounds of the paired difference (with a bootstrap 90 %
 * interval). The upstream is bench/outbound/upstream.ts in its own process; its CPU is not
 * counted. The headers the mesh adds are captured from a request the mesh sends, not typed in.
 *
 * Variants (fetch / request):
 *   f1  / r1   undici with its own Agent, URL with the upstream's IP
 *   fw  / rw   + a plain Dispatcher subclass that forwards to that Agent (fetch with a dispatcher that is not an Agent)
 *   fwh / rwh  + that dispatcher adds the mesh's request headers (as the mesh does: below fetch, at dispatch)
 *   f2  / r2   the Agent, the mesh's headers given by the caller (fetch: `init.headers`, through fetch's Headers)
 *   mf3 / mr3  mesh.dispatcher, the service's full name
 *   mf4 / mr4  mesh.dispatcher, the short name (`upstream`)
 *   mf5        mesh.fetch, the short name (what bench:outbound's mesh-fetch sends)
 *   mr4f       mr4 with the headers undici's fetch adds (accept, accept-language, user-agent, …)
 *
 * @module
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:net';
import { Agent, Dispatcher, fetch, request } from 'undici';
import { HOST, meshResources } from './mesh-config.ts';

const ALL = ['f1', 'fw', 'fwh', 'f2', 'mf3', 'mf4', 'mf5', 'r1', 'rw', 'rwh', 'r2', 'mr3', 'mr4', 'mr4f'];
const STEPS = ['fw-f1', 'fwh-fw', 'f2-f1', 'mf3-fwh', 'mf4-mf3', 'mf5-mf4', 'mf5-f1', 'rw-r1', 'rwh-rw', 'r2-r1', 'mr3-rwh', 'mr4-mr3', 'mr4f-mr4', 'mr4-r1'];
const names = (process.argv[2] ?? ALL.join(',')).split(',');
for (const n of names) if (!ALL.includes(n)) throw new Error(`unknown variant ${n} (known: ${ALL.join(', ')})`);
const ROUNDS = Number(process.env.ROUNDS ?? 50);
const N = Number(process.env.N ?? 1000);
const C = Number(process.env.C ?? 64);

interface MeshLike {
  dispatcher: Dispatcher;
  fetch(input: string, init?: object): Promise<{ text(): Promise<string> }>;
  close(): Promise<void>;
}
const { createMesh } = (await import('../../src/index.ts')) as unknown as { createMesh(o: object): Promise<MeshLike> };
const meshOptions = (port: number) => ({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) });

/** The headers the mesh adds to a request (all but host and connection), from one it sends to a recording server. */
async function meshHeaders(): Promise<Record<string, string>> {
  let head = '';
  const answer = 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n';
  const servers = [createServer(), createServer()];
  for (const s of servers) {
    s.on('connection', (sock) =>
      sock.once('data', (d: Buffer) => {
        head = d.toString('latin1');
        sock.end(answer);
      }),
    );
  }
  const first = servers[0]!;
  const port = await new Promise<number>((r) => first.listen(0, '127.0.0.1', () => r((first.address() as { port: number }).port)));
  await new Promise<void>((r) => servers[1]!.listen(port, '127.0.0.2', r));
  const mesh = await createMesh(meshOptions(port));
  const res = await request(`http://${HOST}:${port}/x`, { dispatcher: mesh.dispatcher });
  await res.body.text();
  await mesh.close();
  for (const s of servers) s.close();
  const out: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).toLowerCase();
    if (k !== 'host' && k !== 'connection') out[k] = line.slice(i + 1).trim();
  }
  return out;
}

const MESH_HEADERS = await meshHeaders();
const FETCH_HEADERS = { accept: '*/*', 'accept-language': '*', 'user-agent': 'undici', 'accept-encoding': 'gzip, deflate' };

const up = fork(new URL('./upstream.ts', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const port = await new Promise<number>((r) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
const mesh = await createMesh(meshOptions(port));
const agent = new Agent();
const direct = `http://127.0.0.1:${port}/x`;
const full = `http://${HOST}:${port}/x`;
const short = `http://upstream:${port}/x`;

/** A Dispatcher that is not undici's: forwards to the Agent, adding headers below the caller as the mesh does. */
class Forward extends Dispatcher {
  readonly #add: Record<string, string> | undefined;
  constructor(add?: Record<string, string>) {
    super();
    this.#add = add;
  }
  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#add === undefined) return agent.dispatch(opts, handler);
    const h: Record<string, string> = Object.create(null);
    const src = opts.headers as Record<string, string> | null | undefined;
    if (src != null) for (const k in src) h[k] = src[k]!;
    for (const k in this.#add) h[k] = this.#add[k]!;
    return agent.dispatch({ ...opts, headers: h }, handler);
  }
}
const fw = new Forward();
const fwh = new Forward(MESH_HEADERS);
const d = mesh.dispatcher;
const viaFetch = async (url: string, init: object) => void (await (await fetch(url, init as never)).text());
const viaRequest = async (url: string, init: object) => void (await (await request(url, init as never)).body.text());
const variants: Record<string, () => Promise<void>> = {
  f1: () => viaFetch(direct, { dispatcher: agent }),
  fw: () => viaFetch(direct, { dispatcher: fw }),
  fwh: () => viaFetch(direct, { dispatcher: fwh }),
  f2: () => viaFetch(direct, { dispatcher: agent, headers: MESH_HEADERS }),
  mf3: () => viaFetch(full, { dispatcher: d }),
  mf4: () => viaFetch(short, { dispatcher: d }),
  mf5: async () => void (await (await mesh.fetch(short)).text()),
  r1: () => viaRequest(direct, { dispatcher: agent }),
  rw: () => viaRequest(direct, { dispatcher: fw }),
  rwh: () => viaRequest(direct, { dispatcher: fwh }),
  r2: () => viaRequest(direct, { dispatcher: agent, headers: MESH_HEADERS }),
  mr3: () => viaRequest(full, { dispatcher: d }),
  mr4: () => viaRequest(short, { dispatcher: d }),
  mr4f: () => viaRequest(short, { dispatcher: d, headers: FETCH_HEADERS }),
};

async function run(call: () => Promise<void>, n: number): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: C }, async () => { while (i++ < n) await call(); }));
}

for (const n of names) await run(variants[n]!, 15_000);
for (const n of names) await run(variants[n]!, 5_000);
const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const n of r % 2 === 0 ? names : [...names].reverse()) {
    const c0 = process.cpuUsage();
    await run(variants[n]!, N);
    const c = process.cpuUsage(c0);
    cpu[n]!.push((c.user + c.system) / N);
  }
}
await mesh.close();
await agent.close();
up.kill();

const median = (x: readonly number[]) => {
  const s = [...x].sort((p, q) => p - q);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** A bootstrap 90 % interval of the median. */
const interval = (x: readonly number[]) => {
  const m: number[] = [];
  for (let b = 0; b < 1000; b++) m.push(median(Array.from({ length: x.length }, () => x[Math.floor(Math.random() * x.length)]!)));
  m.sort((p, q) => p - q);
  return [m[50]!, m[949]!] as const;
};
const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;
console.log(`client CPU µs/request, median of ${ROUNDS} rounds of ${N} requests at c=${C}; mesh headers: ${Object.keys(MESH_HEADERS).join(', ')}`);
for (const n of names) console.log(`${n.padEnd(5)} ${median(cpu[n]!).toFixed(1).padStart(7)}`);
console.log('step (paired per round)      median   90 % interval');
for (const step of STEPS) {
  const [a, b] = step.split('-') as [string, string];
  if (!names.includes(a) || !names.includes(b)) continue;
  const diff = cpu[a]!.map((v, i) => v - cpu[b]![i]!);
  const [lo, hi] = interval(diff);
  console.log(`${`${a} - ${b}`.padEnd(28)} ${signed(median(diff)).padStart(6)}   ${signed(lo)} .. ${signed(hi)}`);
}
process.exit(0);
