/**
 * gRPC unary calls one at a time (c=1) in one process, four variants interleaved (12 rounds of
 * 1,500 calls, order reversed every other round): a raw grpc-js client sending Istio's
 * metadata-exchange headers (`istio`, as bench/grpc/run.ts's grpc-raw-istio), the same plus the
 * two headers an Istio sidecar (and the mesh) also sends on every request, `x-request-id` and
 * `x-envoy-attempt-count` (`istio+2`), `mesh.grpc.client` (`mesh`), and a mesh with those two off
 * (`mesh-2`, `proxyHeaders.requestId` / `attemptCount` disabled). Client thread CPU per call and
 * p50, medians over rounds, and paired differences: how much of the mesh's cost at c=1 is the
 * wire and how much its own code.
 *
 *   node_modules/.bin/node bench/grpc/wire-c1.ts
 *
 * @module
 */
import { fork } from 'node:child_process';
import { EchoClient, grpc, istioWire, MESH_PORT, meshResources, TEXT } from './proto.ts';
import { createMesh } from '../../src/index.ts';
const srv = fork(new URL('./server.ts', import.meta.url).pathname, [], { execArgv: [] });
const port = await new Promise<number>((r) => srv.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
type Cb = (e: grpc.ServiceError | null) => void;
type Echo = grpc.Client & { Unary(req: { text: string }, ...rest: [grpc.Metadata, Cb] | [Cb]): void };
const raw = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Echo;
const wire = istioWire();
const m1 = await createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) as never });
const m2 = await createMesh({ service: 'bench-client2', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(port) as never, proxyHeaders: { requestId: { disabled: true }, attemptCount: { disabled: true } } } as never);
const c1 = m1.grpc.client(EchoClient as never, `echo:${MESH_PORT}`) as unknown as Echo;
const c2 = m2.grpc.client(EchoClient as never, `echo:${MESH_PORT}`) as unknown as Echo;
const w2 = wire.clone(); w2.set('x-request-id', '00000000-0000-4000-8000-000000000000'); w2.set('x-envoy-attempt-count', '1');
const variants: [string, () => Promise<void>][] = [
  ['istio', () => new Promise((res, rej) => raw.Unary({ text: TEXT }, wire.clone(), (e: grpc.ServiceError | null) => (e ? rej(e) : res())))],
  ['istio+2', () => new Promise((res, rej) => raw.Unary({ text: TEXT }, w2.clone(), (e: grpc.ServiceError | null) => (e ? rej(e) : res())))],
  ['mesh', () => new Promise((res, rej) => c1.Unary({ text: TEXT }, (e: grpc.ServiceError | null) => (e ? rej(e) : res())))],
  ['mesh-2', () => new Promise((res, rej) => c2.Unary({ text: TEXT }, (e: grpc.ServiceError | null) => (e ? rej(e) : res())))],
];
const N = 1500;
for (const [, f] of variants) for (let i = 0; i < 3000; i++) await f();
const res = new Map<string, number[]>(variants.map(([n]) => [n, []]));
const lat = new Map<string, number[]>(variants.map(([n]) => [n, []]));
for (let r = 0; r < 12; r++) {
  const order = r % 2 === 0 ? variants : [...variants].reverse();
  for (const [n, f] of order) {
    const t0 = process.threadCpuUsage(); const ds: number[] = [];
    for (let i = 0; i < N; i++) { const a = performance.now(); await f(); ds.push(performance.now() - a); }
    const t = process.threadCpuUsage(t0);
    res.get(n)!.push((t.user + t.system) / N);
    ds.sort((a, b) => a - b); lat.get(n)!.push(ds[N >> 1]! * 1000);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
for (const [n] of variants) console.log(n.padEnd(8), 'cpu', med(res.get(n)!).toFixed(1), 'p50', med(lat.get(n)!).toFixed(1));
const diff = (a: string, b: string) => `${med(res.get(a)!.map((x, i) => x - res.get(b)![i]!)).toFixed(1)} / p50 ${med(lat.get(a)!.map((x, i) => x - lat.get(b)![i]!)).toFixed(1)}`;
console.log('istio+2 - istio', diff('istio+2', 'istio')); console.log('mesh - istio+2', diff('mesh', 'istio+2')); console.log('mesh - mesh-2', diff('mesh', 'mesh-2')); console.log('mesh-2 - istio', diff('mesh-2', 'istio'));
raw.close(); await m1.close(); await m2.close(); srv.kill(); process.exit(0);
