/**
 * Where a gRPC unary call's bytes are allocated, by function: V8's sampling heap profiler with
 * the objects that minor and major GCs collected counted too (so short-lived garbage shows),
 * over `N` calls at concurrency 64 after 20,000 warm-up calls, against bench/grpc/server.ts in a
 * child process. Sampling (every 256 B): per-function figures move by a few hundred bytes between
 * runs; the total is steady.
 *
 *   node_modules/.bin/node bench/grpc/alloc.ts raw|istio|mesh   (env N=20000 TOP=40)
 *
 * `raw` a grpc-js client; `istio` the same sending Istio's wire headers (as bench/grpc/client.ts's
 * grpc-raw-istio); `mesh` `mesh.grpc.client` (bench/grpc/proto.ts config).
 *
 * @module
 */
import { fork } from 'node:child_process';
import { printAllocations, sampleAllocations } from '../lib/alloc-sampling.ts';
import { EchoClient, grpc, istioWire, MESH_PORT, meshResources, TEXT } from './proto.ts';

const variant = process.argv[2] ?? 'mesh';
if (!['raw', 'istio', 'mesh'].includes(variant)) throw new Error(`unknown variant ${variant} (raw, istio, mesh)`);
const N = Number(process.env.N ?? 20_000);
const server = fork(new URL('./server.ts', import.meta.url).pathname, [], { execArgv: [] });
const port = await new Promise<number>((r) => server.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
type Unary = (req: { text: string }, ...rest: unknown[]) => void;
let client: grpc.Client & { Unary: Unary };
type MeshLike = { grpc: { client<C>(ctor: unknown, target: string): C }; close(): Promise<void> };
let mesh: MeshLike | undefined;
if (variant === 'mesh') {
  const { createMesh } = await import('../../src/index.ts');
  const m = (await createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) as never })) as unknown as MeshLike;
  mesh = m;
  client = m.grpc.client(EchoClient, `echo:${MESH_PORT}`);
} else client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as never;
const wire = variant === 'istio' ? istioWire() : undefined;
const call = () =>
  new Promise<void>((resolve, reject) => {
    const done = (e: Error | null) => (e ? reject(e) : resolve());
    if (wire !== undefined) client.Unary({ text: TEXT }, wire.clone(), done);
    else client.Unary({ text: TEXT }, done);
  });
const run = async (n: number) => {
  let i = 0;
  await Promise.all(Array.from({ length: 64 }, async () => { while (i++ < n) await call(); }));
};
await run(20_000);
const profile = await sampleAllocations(() => run(N), N, 256);
printAllocations(`${variant} (${N} calls at c=64)`, profile, Number(process.env.TOP ?? 40));
client.close();
await mesh?.close();
server.kill();
