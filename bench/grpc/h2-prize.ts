/**
 * How much a unary gRPC call costs a client made straight on a `node:http2` session, against a raw
 * grpc-js client, with the same wire (Istio's metadata-exchange headers and `grpc-timeout`), one
 * process, 10 interleaved rounds, the bench's Echo server in a child process: what the gRPC
 * transport's own HTTP/2 streams could save over grpc-js endpoint channels (bench/RESULTS.md).
 *
 *   C=1 N=2000 node_modules/.bin/node bench/grpc/h2-prize.ts
 *   C=64 N=10000 node_modules/.bin/node bench/grpc/h2-prize.ts
 *
 * @module
 */
import { fork } from 'node:child_process';
import * as http2 from 'node:http2';
import { EchoClient, grpc, istioWire, TEXT } from './proto.ts';
const srv = fork(new URL('./server.ts', import.meta.url).pathname, [], { execArgv: [] });
const port = await new Promise<number>((r) => srv.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && r(m.port as number)));
type Cb = (e: grpc.ServiceError | null) => void;
type Echo = grpc.Client & { Unary(req: { text: string }, ...rest: [grpc.Metadata, Cb] | [Cb]): void };
const raw = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Echo;
const wire = istioWire();
const def = (EchoClient as unknown as { service: Record<string, { path: string; requestSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown }> }).service.Unary!;
const sess = http2.connect(`http://127.0.0.1:${port}`);
const wh: Record<string, string> = {};
for (const [k, v] of Object.entries(wire.getMap())) wh[k] = String(v);
function native(): Promise<void> {
  return new Promise((res, rej) => {
    const payload = def.requestSerialize({ text: TEXT });
    const st = sess.request({ ':method': 'POST', ':path': def.path, ':scheme': 'http', 'content-type': 'application/grpc', te: 'trailers', ...wh });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('trailers', (t) => { status = t['grpc-status'] as string; });
    st.on('end', () => {
      const b = Buffer.concat(chunks);
      const len = b.readUInt32BE(1);
      def.responseDeserialize(b.subarray(5, 5 + len));
      if (status !== '0') rej(new Error(`status ${status}`)); else res();
    });
    st.on('error', rej);
    const f = Buffer.allocUnsafe(5 + payload.length); f[0] = 0; f.writeUInt32BE(payload.length, 1); payload.copy(f, 5);
    st.end(f);
  });
}
const variants: [string, () => Promise<void>][] = [
  ['grpcjs', () => new Promise((res, rej) => raw.Unary({ text: TEXT }, wire.clone(), (e: grpc.ServiceError | null) => (e ? rej(e) : res())))],
  ['native', native],
];
const C = Number(process.env.C ?? 1); const N = Number(process.env.N ?? 3000);
async function run(f: () => Promise<void>, n: number) {
  let i = 0; const lat: number[] = [];
  await Promise.all(Array.from({ length: C }, async () => { while (i++ < n) { const a = performance.now(); await f(); lat.push(performance.now() - a); } }));
  return lat;
}
for (const [, f] of variants) await run(f, 4000);
const cpu = new Map<string, number[]>(variants.map(([n]) => [n, []])); const p50 = new Map<string, number[]>(variants.map(([n]) => [n, []])); const rps = new Map<string, number[]>(variants.map(([n]) => [n, []]));
for (let r = 0; r < 10; r++) {
  for (const [n, f] of r % 2 ? [...variants].reverse() : variants) {
    const t0 = process.threadCpuUsage(); const w0 = performance.now();
    const lat = await run(f, N);
    const t = process.threadCpuUsage(t0); const w = performance.now() - w0;
    cpu.get(n)!.push((t.user + t.system) / N); rps.get(n)!.push(N / w * 1000);
    lat.sort((a, b) => a - b); p50.get(n)!.push(lat[lat.length >> 1]! * 1000);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
for (const [n] of variants) console.log(`C=${C}`, n.padEnd(8), 'cpu µs', med(cpu.get(n)!).toFixed(1), 'p50 µs', med(p50.get(n)!).toFixed(1), 'rps', med(rps.get(n)!).toFixed(0));
console.log('native/grpcjs cpu ratio', med(cpu.get('native')!.map((x, i) => x / cpu.get('grpcjs')![i]!)).toFixed(2), 'rps ratio', med(rps.get('native')!.map((x, i) => x / rps.get('grpcjs')![i]!)).toFixed(2));
raw.close(); sess.close(); srv.kill(); process.exit(0);
