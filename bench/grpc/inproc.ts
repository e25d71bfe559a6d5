/**
 * gRPC unary calls in one process, variants interleaved: CPU µs and bytes allocated per call.
 *
 *   node_modules/.bin/node bench/grpc/inproc.ts [--fake] [--variant V]… [--base DIR] [--concurrency N] [--calls N] [--rounds N]
 *
 * Variants: `raw` (a grpc-js client straight to the server), `istio` (the same client sending
 * what the mesh sends on the wire: the metadata-exchange headers and `grpc-timeout`, as
 * bench/grpc/client.ts's grpc-raw-istio), `mesh` (`mesh.grpc.client` of this checkout), `base`
 * (the same from another checkout's `src/`, `--base DIR`: a `git worktree` of the base commit
 * with a node_modules link). All run in this process against one bench/grpc/server.ts child,
 * `--calls` calls at `--concurrency` per slice, one slice per variant per round, the order
 * reversed every other round. CPU is this thread's (`process.threadCpuUsage()`: GC helper
 * threads and the server left out); bytes are the heap's growth over the slice plus what each
 * GC freed (`v8.GCProfiler`); p50 is the median call's duration in the slice (a latency figure
 * only at `--concurrency 1`). Printed: each variant's median over rounds, and the median of the
 * paired differences (B − A, same round) with their range.
 *
 * Measuring the mesh's own JavaScript per call (A/B of two checkouts: `--base DIR --variant base
 * --variant mesh`): run without `--fake`. The upstream is then a loopback HTTP/2 server
 * (bench/grpc/server.ts, a grpc-js server) in a child process, so neither its CPU nor its heap
 * is counted: what is counted is this thread's JavaScript — the app's grpc-js client, the mesh,
 * and the client side of node:http2, which is the mesh's transport now. Bytes per call are
 * deterministic to about ±50 B between rounds whatever else runs on the machine (two identical
 * checkouts differ by less than that), and are the figure to A/B; CPU µs per call include the
 * socket's system calls and move with the machine's load, so they need more rounds and the
 * paired differences.
 *
 * `--fake`: no server and no HTTP/2. The grpc-js channels of the raw client (and of a `base`
 * checkout from before the mesh spoke HTTP/2 itself, whose endpoint connections were grpc-js
 * channels) are READY at once and their calls are answered in-process (the response metadata,
 * the reply, an OK status, each a microtask later), by patching grpc-js's ChannelImplementation
 * here. This checkout's mesh puts its attempts on `node:http2` streams, which this does not
 * fake: `--fake` refuses the `mesh` variant.
 */
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import type { InterceptingListener } from '@grpc/grpc-js';
import { EchoClient, grpc, istioWire, MESH_PORT, meshResources, TEXT } from './proto.ts';

const { values: a } = parseArgs({
  options: {
    fake: { type: 'boolean', default: false },
    variant: { type: 'string', multiple: true },
    base: { type: 'string' },
    concurrency: { type: 'string' },
    calls: { type: 'string' },
    rounds: { type: 'string' },
  },
});
const HERE = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const C = Number(a.concurrency ?? 64);
const N = Number(a.calls ?? 5000);
const ROUNDS = Number(a.rounds ?? 20);
const names = a.variant ?? (a.base === undefined ? ['raw', 'mesh'] : ['base', 'mesh']);

type Done = (err: grpc.ServiceError | null, res?: { text: string }) => void;
interface Unary {
  Unary(req: { text: string }, cb: Done): void;
  Unary(req: { text: string }, md: grpc.Metadata, cb: Done): void;
}

/** grpc-js channels answer every call at once, in-process (see the module comment). */
function fakeEndpoints(): void {
  const req = createRequire(import.meta.url);
  const impl = (req('@grpc/grpc-js/build/src/channel.js') as { ChannelImplementation: { prototype: Record<string, unknown> } }).ChannelImplementation.prototype;
  const reply = (EchoClient.service.Unary as grpc.MethodDefinition<unknown, { text: string; server: string; seen: string[] }>).responseSerialize({ text: TEXT, server: 'bench', seen: [] });
  const head = new grpc.Metadata();
  head.set('content-type', 'application/grpc');
  head.set('grpc-accept-encoding', 'identity,deflate,gzip');
  class FakeCall {
    #l: InterceptingListener | undefined;
    #reading = false;
    #message = false;
    start(_md: grpc.Metadata, l: InterceptingListener): void {
      this.#l = l;
    }
    sendMessageWithContext(ctx: { callback?: () => void }, _m: Buffer): void {
      queueMicrotask(() => ctx.callback?.());
    }
    halfClose(): void {
      queueMicrotask(() => {
        this.#l?.onReceiveMetadata(head.clone());
        this.#message = true;
        this.#deliver();
      });
    }
    startRead(): void {
      this.#reading = true;
      this.#deliver();
    }
    #deliver(): void {
      if (!this.#message || !this.#reading) return;
      this.#message = false;
      this.#reading = false;
      this.#l?.onReceiveMessage(reply);
      queueMicrotask(() => this.#l?.onReceiveStatus({ code: 0, details: 'OK', metadata: new grpc.Metadata() }));
    }
    cancelWithStatus(): void {}
    getPeer(): string {
      return 'fake';
    }
    getCallNumber(): number {
      return 0;
    }
    setCredentials(): void {}
    getAuthContext(): null {
      return null;
    }
  }
  impl.createCall = () => new FakeCall();
  impl.getConnectivityState = () => grpc.connectivityState.READY;
  impl.watchConnectivityState = () => undefined;
}

async function meshClient(root: string, port: number): Promise<Unary> {
  const mod = (await import(pathToFileURL(`${root}/src/index.ts`).href)) as { createMesh(o: object): Promise<{ grpc: { client(ctor: unknown, target: string): unknown } }> };
  const mesh = await mod.createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) });
  return mesh.grpc.client(EchoClient, `echo:${MESH_PORT}`) as Unary;
}

let port = 1;
let server: ReturnType<typeof fork> | undefined;
if (a.fake) {
  if (names.includes('mesh')) throw new Error('--fake: the mesh variant puts its attempts on node:http2 streams (no grpc-js channel to fake); run it without --fake');
  fakeEndpoints();
} else {
  server = fork(fileURLToPath(new URL('./server.ts', import.meta.url)), [], { execArgv: [] });
  port = await new Promise<number>((r) => server?.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
}

const calls: Record<string, () => Promise<void>> = {};
for (const name of names) {
  const wire = name === 'istio' ? istioWire() : undefined;
  const client = name === 'mesh' ? await meshClient(HERE, port) : name === 'base' ? await meshClient(resolve(a.base ?? '.'), port) : (new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Unary);
  calls[name] = () =>
    new Promise<void>((ok, fail) => {
      const done: Done = (err, res) => (err !== null ? fail(err) : res?.text === TEXT ? ok() : fail(new Error('wrong reply')));
      // A Metadata per call, as a caller makes one (grpc-js takes it over).
      if (wire === undefined) client.Unary({ text: TEXT }, done);
      else client.Unary({ text: TEXT }, wire.clone(), done);
    });
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Runs `n` calls, `C` at a time; `lat` gets each call's duration (µs). */
async function slice(call: () => Promise<void>, n: number, lat?: number[]): Promise<void> {
  let left = n;
  const loop = async (): Promise<void> => {
    while (left-- > 0) {
      const t = performance.now();
      await call();
      lat?.push((performance.now() - t) * 1000);
    }
  };
  await Promise.all(Array.from({ length: C }, loop));
}

async function measure(call: () => Promise<void>): Promise<{ cpu: number; bytes: number; p50: number }> {
  const lat: number[] = [];
  const gc = new v8.GCProfiler();
  const h0 = v8.getHeapStatistics().used_heap_size;
  gc.start();
  const t0 = process.threadCpuUsage();
  await slice(call, N, lat);
  const t = process.threadCpuUsage(t0);
  const h1 = v8.getHeapStatistics().used_heap_size;
  let freed = 0;
  for (const s of gc.stop()?.statistics ?? []) freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
  return { cpu: (t.user + t.system) / N, bytes: (h1 - h0 + freed) / N, p50: median(lat) };
}

const range = (xs: number[], d: number): string => `[${Math.min(...xs).toFixed(d)}..${Math.max(...xs).toFixed(d)}]`;

for (let i = 0; i < 3; i++) for (const name of names) await slice(calls[name] as () => Promise<void>, N);
const cpu: Record<string, number[]> = {};
const bytes: Record<string, number[]> = {};
const p50: Record<string, number[]> = {};
for (const name of names) {
  cpu[name] = [];
  bytes[name] = [];
  p50[name] = [];
}
for (let r = 0; r < ROUNDS; r++) {
  for (const name of r % 2 === 0 ? names : [...names].reverse()) {
    const m = await measure(calls[name] as () => Promise<void>);
    cpu[name]?.push(m.cpu);
    bytes[name]?.push(m.bytes);
    p50[name]?.push(m.p50);
  }
}
console.log(`${a.fake ? 'fake endpoints' : 'bench/grpc/server.ts'}: ${ROUNDS} rounds × ${N} unary calls at concurrency ${C}`);
for (const name of names) {
  const c = cpu[name] as number[];
  console.log(`${name.padEnd(6)} ${median(c).toFixed(2)} µs/call ${range(c, 2)}  ${median(bytes[name] as number[]).toFixed(0)} B/call  p50 ${median(p50[name] as number[]).toFixed(1)} µs`);
}
for (let i = 1; i < names.length; i++) {
  const [x, y] = [names[0] as string, names[i] as string];
  const dc = (cpu[y] as number[]).map((v, j) => v - ((cpu[x] as number[])[j] as number));
  const db = (bytes[y] as number[]).map((v, j) => v - ((bytes[x] as number[])[j] as number));
  const dl = (p50[y] as number[]).map((v, j) => v - ((p50[x] as number[])[j] as number));
  console.log(`${y} − ${x}: ${median(dc).toFixed(2)} µs/call ${range(dc, 2)}  ${median(db).toFixed(0)} B/call ${range(db, 0)}  p50 ${median(dl).toFixed(1)} µs ${range(dl, 1)}`);
}
server?.kill();
process.exit(0);
