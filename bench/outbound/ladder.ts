/**
 * Where `mesh.fetch`'s cost over `undici.fetch` comes from, by construction: a ladder of
 * variants, each adding one thing to the one before, measured interleaved in one process,
 * with the same ladder for `undici.request` so the two APIs' steps can be compared.
 *
 *   node bench/outbound/ladder.ts [variants] (env ROUNDS=50 N=1000 C=64 LAYOUT=1core)
 *
 * One process runs every variant (same heap, same JIT, same machine state); slices of N
 * requests at concurrency C rotate through the variants, in reverse order every other round,
 * and each step is the median over rounds of the paired difference (with a bootstrap 90 %
 * interval). The upstream is bench/outbound/upstream.ts in its own process; its CPU is not
 * counted. The headers the mesh adds are captured from a request the mesh sends, not typed in.
 *
 * Three figures per slice, per request: `cpu` (the process's user + system CPU, what
 * bench:outbound reports), `main` (the main thread's alone: no GC helper or compiler thread,
 * less noisy) and `alloc` (bytes allocated on the JS heap, from the GCs' before/after sizes:
 * nearly deterministic, so a step of a few hundred bytes is real even when the CPU figures'
 * intervals are wide).
 *
 * LAYOUT (taskset, as `bench:outbound --layout`): `1core` (default, issue #12's layout): this
 * process and the upstream both on CPU 0 — the client's sends never wake the upstream on another
 * vCPU, whose cost (an IPI, a VM exit) otherwise lands in the client's socket writes and grows
 * when the client is slower (CPU profiles on this 2-vCPU VM, `writeLatin1String` per request:
 * unpinned 46 µs for f1, 88 for mf5; pinned 1core 28 and 29); `2core`: client CPU 0, upstream
 * CPU 1; `none`: not pinned.
 * Fewer variants (e.g. `rw,rwh`) pair closer in time and give narrower intervals.
 *
 * A/B of a change: BASE=/path/to/other/tree/src/index.ts makes a second mesh from that tree's
 * code (e.g. a `git worktree` of main, its node_modules linked: both trees then share one
 * undici) in the same process, and the variants bmf4, bmf5 and bmr4 send through it; the steps
 * mf4 - bmf4, mf5 - bmf5 and mr4 - bmr4 are this tree's change, interleaved with the base.
 *
 * Variants (fetch / request):
 *   f1  / r1   undici with its own Agent, URL with the upstream's IP
 *   f1n        f1 with mf5's URL (`http://upstream:…`, an Agent that resolves the name to the IP): undici's
 *              fetch treats a name that is not localhost or a loopback IP differently (not a potentially
 *              trustworthy origin), so mf5 - f1n is the mesh's cost for the same URL
 *         r1n  r1 with mr4's URL, as f1n (undici's Client and Request handle a name and an IP differently): mr4 - r1n
 *              is the mesh's cost for the same URL, to set against mf5 - f1n
 *   fw  / rw   + a plain Dispatcher subclass that forwards to that Agent (fetch with a dispatcher that is not an Agent)
 *   fwh / rwh  + that dispatcher adds the mesh's request headers (as the mesh does: below fetch, at dispatch)
 *         rwc  rw's dispatcher copying the caller's headers and options as rwh's does, adding none
 *         rws  rwc adding three one-byte headers (x-a, x-b, x-c): rwh - rws is the mesh headers' size
 *   f2  / r2   the Agent, the mesh's headers given by the caller (fetch: `init.headers`, through fetch's Headers)
 *   mf3 / mr3  mesh.dispatcher, the service's full name
 *   mf4 / mr4  mesh.dispatcher, the short name (`upstream`)
 *   mf5        mesh.fetch, the short name (what bench:outbound's mesh-fetch sends)
 *   mr4f       mr4 with the headers undici's fetch adds (accept, accept-language, user-agent, …)
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Agent, Dispatcher, fetch, request } from 'undici';
import { pinFromStart } from '../lib/pin.ts';
import { METRICS, measureSlice, perVariant } from '../lib/slice-meter.ts';
import { HOST, meshResources } from './mesh-config.ts';

const ALL = ['bmf4', 'bmf5', 'bmr4', 'f1', 'f1n', 'fw', 'fwc', 'fws', 'fwh', 'f2', 'mf3', 'mf4', 'mf5', 'r1', 'r1n', 'rw', 'rwc', 'rws', 'rwh', 'r2', 'mr3', 'mr4', 'mr4f'];
const STEPS = ['fw-f1', 'fwc-fw', 'fws-fwc', 'fwh-fws', 'fwh-fw', 'f2-f1', 'mf3-fwh', 'mf4-mf3', 'mf5-mf4', 'mf5-f1', 'f1n-f1', 'mf5-f1n', 'r1n-r1', 'mr4-r1n', 'rw-r1', 'rwh-rw', 'rwc-rw', 'rws-rwc', 'rwh-rws', 'r2-r1', 'mr3-rwh', 'mr4-mr3', 'mr4f-mr4', 'mr4-r1', 'mf4-bmf4', 'mf5-bmf5', 'mr4-bmr4'];
const names = (process.argv[2] ?? ALL.join(',')).split(',');
for (const n of names) if (!ALL.includes(n)) throw new Error(`unknown variant ${n} (known: ${ALL.join(', ')})`);
const ROUNDS = Number(process.env.ROUNDS ?? 50);
const N = Number(process.env.N ?? 1000);
const C = Number(process.env.C ?? 64);
// Pinned from the start (every thread of this process: GC helpers, compiler, libuv).
const pin = pinFromStart('LADDER_PINNED');

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

const upstreamScript = [process.execPath, new URL('./upstream.ts', import.meta.url).pathname];
const [upCmd, ...upArgs] = pin.upstream(upstreamScript);
const up = spawn(upCmd!, upArgs, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const port = await new Promise<number>((r) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
const mesh = await createMesh(meshOptions(port));
const BASE = process.env.BASE;
if (BASE === undefined && names.some((n) => n.startsWith('b'))) throw new Error('the variants bmf4, bmf5 and bmr4 need BASE=<other tree>/src/index.ts');
const baseMesh = BASE === undefined ? undefined : await ((await import(BASE)) as { createMesh(o: object): Promise<MeshLike> }).createMesh(meshOptions(port));
const agent = new Agent();
/** Resolves every name to the upstream's IP (f1n). */
const named = new Agent({ connect: { lookup: (_h: string, _o: object, cb: (e: null, a: { address: string; family: number }[]) => void) => cb(null, [{ address: '127.0.0.1', family: 4 }]) } as never });
const direct = `http://127.0.0.1:${port}/x`;
const full = `http://${HOST}:${port}/x`;
const short = `http://upstream:${port}/x`;

/** A Dispatcher that is not undici's: forwards to the Agent, adding headers below the caller as the mesh does. */
class Forward extends Dispatcher {
  readonly #add: Record<string, string> | undefined;
  /** `add` undefined: forwards `opts` as they are; an object (even empty): copies them, adding its headers. */
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
const fwc = new Forward({});
const fws = new Forward({ 'x-a': '1', 'x-b': '2', 'x-c': '3' });
const d = mesh.dispatcher;
const viaFetch = async (url: string, init: object) => void (await (await fetch(url, init as never)).text());
const viaRequest = async (url: string, init: object) => void (await (await request(url, init as never)).body.text());
const b = baseMesh as MeshLike;
const variants: Record<string, () => Promise<void>> = {
  bmf4: () => viaFetch(short, { dispatcher: b.dispatcher }),
  bmf5: async () => void (await (await b.fetch(short)).text()),
  bmr4: () => viaRequest(short, { dispatcher: b.dispatcher }),
  f1: () => viaFetch(direct, { dispatcher: agent }),
  f1n: () => viaFetch(short, { dispatcher: named }),
  fw: () => viaFetch(direct, { dispatcher: fw }),
  fwh: () => viaFetch(direct, { dispatcher: fwh }),
  fwc: () => viaFetch(direct, { dispatcher: fwc }),
  fws: () => viaFetch(direct, { dispatcher: fws }),
  f2: () => viaFetch(direct, { dispatcher: agent, headers: MESH_HEADERS }),
  mf3: () => viaFetch(full, { dispatcher: d }),
  mf4: () => viaFetch(short, { dispatcher: d }),
  mf5: async () => void (await (await mesh.fetch(short)).text()),
  r1: () => viaRequest(direct, { dispatcher: agent }),
  r1n: () => viaRequest(short, { dispatcher: named }),
  rw: () => viaRequest(direct, { dispatcher: fw }),
  rwh: () => viaRequest(direct, { dispatcher: fwh }),
  rwc: () => viaRequest(direct, { dispatcher: fwc }),
  rws: () => viaRequest(direct, { dispatcher: fws }),
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
const per = perVariant(names);
for (let r = 0; r < ROUNDS; r++) {
  for (const n of r % 2 === 0 ? names : [...names].reverse()) {
    await measureSlice(per, n, N, () => run(variants[n]!, N));
  }
}
await mesh.close();
await baseMesh?.close();
await agent.close();
await named.close();
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
const signed = (v: number, digits = 1) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
const layout = !pin.pinned ? 'not pinned' : pin.layout === '1core' ? 'client and upstream on CPU 0' : 'client on CPU 0, upstream on CPU 1';
console.log(`per request, median of ${ROUNDS} rounds of ${N} requests at c=${C}, ${layout}; mesh headers: ${Object.keys(MESH_HEADERS).join(', ')}`);
console.log('        cpu µs  main µs  alloc B');
for (const n of names) console.log(`${n.padEnd(5)} ${median(per.cpu[n]!).toFixed(1).padStart(8)} ${median(per.main[n]!).toFixed(1).padStart(8)} ${median(per.alloc[n]!).toFixed(0).padStart(8)}`);
console.log('step (paired per round)   cpu µs (90 % interval)     main µs (90 % interval)    alloc B (90 % interval)');
for (const step of STEPS) {
  const [a, b] = step.split('-') as [string, string];
  if (!names.includes(a) || !names.includes(b)) continue;
  const cols = METRICS.map((m) => {
    const diff = per[m][a]!.map((v, i) => v - per[m][b]![i]!);
    const [lo, hi] = interval(diff);
    const f = m === 'alloc' ? 0 : 1;
    return `${signed(median(diff), f).padStart(7)} (${signed(lo, f)} .. ${signed(hi, f)})`.padEnd(27);
  });
  console.log(`${`${a} - ${b}`.padEnd(24)}  ${cols.join(' ')}`);
}
process.exit(0);
