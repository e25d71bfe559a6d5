/**
 * One client of the gRPC benchmark, in its own process (started by bench/grpc/run.ts, one per
 * variant per round, the variants of a round alive together): `grpc-raw` is a grpc-js client
 * straight to the server; `grpc-raw-istio` is the same client sending on every call what the mesh
 * sends on the wire (Istio's metadata-exchange headers and the route timeout as `grpc-timeout`);
 * `grpc-mesh` is `mesh.grpc.client` through the mesh (bench/grpc/proto.ts config). It warms up, reports `ready`, then runs measured slices of unary calls when the parent
 * asks — the same messages as bench/outbound/client.ts (`slice` → SliceResult, `cpu`, `stop` →
 * ClientResult).
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { ClientResult, SliceRequest, SliceResult } from '../outbound/client.ts';
import { EchoClient, grpc, istioWire, MESH_PORT, meshResources, TEXT } from './proto.ts';

export type GrpcVariantId = 'grpc-raw' | 'grpc-raw-istio' | 'grpc-mesh';

export interface GrpcClientOptions {
  variant: GrpcVariantId;
  serverPort: number;
  /** Warm-up seconds (half at c=1, half at highConcurrency). */
  warmup: number;
  highConcurrency: number;
  /** URL of the module exporting createMesh. */
  meshModule: string;
}

type Unary = {
  (req: { text: string }, cb: (err: grpc.ServiceError | null, res?: { text: string }) => void): void;
  (req: { text: string }, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: { text: string }) => void): void;
};

interface MeshLike {
  grpc: { client<C>(ctor: new (...a: never[]) => C, target: string): C };
  close(): Promise<void>;
}

async function main(opts: GrpcClientOptions): Promise<void> {
  let mesh: MeshLike | undefined;
  let client: grpc.Client & { Unary: Unary };
  if (opts.variant !== 'grpc-mesh') {
    client = new EchoClient(`127.0.0.1:${opts.serverPort}`, grpc.credentials.createInsecure()) as never;
  } else {
    const mod = (await import(opts.meshModule)) as { createMesh(o: object): Promise<MeshLike> };
    mesh = await mod.createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(opts.serverPort) });
    client = mesh.grpc.client(EchoClient as never, `echo:${MESH_PORT}`) as never;
  }
  const wire = opts.variant === 'grpc-raw-istio' ? istioWire() : undefined;
  const call = (): Promise<string | undefined> =>
    new Promise((resolve) => {
      const done = (err: grpc.ServiceError | null, res?: { text: string }) => {
        if (err !== null) resolve(`${grpc.status[err.code]}: ${err.details}`);
        else resolve(res?.text === TEXT ? undefined : 'wrong reply');
      };
      // A Metadata per call, as a caller makes one (grpc-js takes it over).
      if (wire === undefined) client.Unary({ text: TEXT }, done);
      else client.Unary({ text: TEXT }, wire.clone(), done);
    });

  let total = 0;
  let firstFailure: string | undefined;
  async function phase(concurrency: number, ms: number, record: boolean): Promise<SliceResult> {
    const c0 = process.cpuUsage();
    const lat: number[] = [];
    let n = 0;
    let failures = 0;
    const t0 = performance.now();
    const deadline = t0 + ms;
    const loop = async () => {
      while (performance.now() < deadline) {
        const s = performance.now();
        const failure = await call();
        if (failure !== undefined) {
          failures++;
          firstFailure ??= failure;
          if (failures > 100 && failures > n / 10) throw new Error(`too many failures (${failures} of ${n + 1}), first: ${firstFailure}`);
        }
        if (record) lat.push((performance.now() - s) * 1000);
        n++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    total += n;
    return { type: 'slice', cpuStartUs: c0.user + c0.system, requests: n, failures, seconds: (performance.now() - t0) / 1000, latenciesUs: lat };
  }

  const check = await call();
  total++;
  if (check !== undefined) throw new Error(`check call failed: ${check}`);
  await phase(1, (opts.warmup / 2) * 1000, false);
  await phase(opts.highConcurrency, (opts.warmup / 2) * 1000, false);
  process.send?.({ type: 'ready' });

  await new Promise<void>((resolve, reject) => {
    process.on('message', (m: SliceRequest | { type: 'stop' } | { type: 'cpu' }) => {
      if (m.type === 'stop') return resolve();
      if (m.type === 'cpu') {
        const c = process.cpuUsage();
        process.send?.({ type: 'cpu', cpuStartUs: c.user + c.system });
        return;
      }
      phase(m.concurrency, m.ms, m.record).then((r) => process.send?.(r), reject);
    });
  });
  client.close();
  await mesh?.close();
  const result: ClientResult = { type: 'result', totalRequests: total };
  if (firstFailure !== undefined) result.firstFailure = firstFailure;
  process.send?.(result);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.send === undefined) throw new Error('client.ts is started by bench/grpc/run.ts (needs an IPC channel)');
  process.on('disconnect', () => process.exit(0));
  try {
    await main(JSON.parse(process.argv[2] ?? '{}') as GrpcClientOptions);
    process.disconnect();
  } catch (err) {
    process.send({ type: 'error', message: (err as Error).stack ?? String(err) });
    process.exitCode = 1;
    process.disconnect();
  }
}
