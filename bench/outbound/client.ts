/**
 * One client run of the outbound benchmark, in its own process (started by bench/outbound/run.ts
 * over an IPC channel, one process per variant per round): warm up, then c=1 for `duration`
 * seconds (per-request latency) and c=64 for `duration` seconds (throughput), with the client
 * process's CPU time (process.cpuUsage) over each measured phase. Sends one `result` message.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Agent, type Dispatcher, fetch, request } from 'undici';
import { HOST, meshResources } from './mesh-config.ts';

export type VariantId = 'undici-request' | 'mesh-dispatcher' | 'undici-fetch' | 'mesh-fetch' | 'nginx-1hop' | 'nginx-2hop';

export interface ClientOptions {
  variant: VariantId;
  /** Upstream port (direct variants and the mesh config). */
  upstreamPort: number;
  /** Port the client sends to for the nginx variants. */
  nginxPort?: number;
  warmup: number;
  duration: number;
  highConcurrency: number;
  /** URL of the module exporting createMesh (default: src/index.ts). */
  meshModule: string;
}

export interface PhaseResult {
  requests: number;
  failures: number;
  seconds: number;
  cpuUsPerReq: number;
  rps: number;
  p50Us?: number;
  p99Us?: number;
}

export interface ClientResult {
  type: 'result';
  c1: PhaseResult;
  cHigh: PhaseResult;
  /** Every request this process sent, warm-up and checks included (compare with the upstream's count). */
  totalRequests: number;
  firstFailure?: string;
}

/** The slice of meshlet's public API this benchmark uses; typed here so the bench compiles before it exists. */
interface MeshLike {
  dispatcher: Dispatcher;
  fetch(input: string, init?: object): Promise<{ status: number; text(): Promise<string> }>;
  close(): Promise<void>;
}
type CreateMesh = (options: { service: string; namespace: string; labels: Record<string, string>; config: object[] }) => Promise<MeshLike>;

/** Loads createMesh (from src/index.ts unless told otherwise); a string explains why it is not usable. */
export async function loadCreateMesh(moduleUrl: string): Promise<CreateMesh | string> {
  try {
    const mod = (await import(moduleUrl)) as Record<string, unknown>;
    return typeof mod.createMesh === 'function' ? (mod.createMesh as CreateMesh) : 'createMesh not available yet';
  } catch (err) {
    return `importing ${moduleUrl} failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

type Call = () => Promise<number>;

async function main(opts: ClientOptions): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  let agent: Agent | undefined;
  let mesh: MeshLike | undefined;
  let call: Call;
  let lastBody = '';
  const direct = `http://127.0.0.1:${opts.upstreamPort}/x`;
  switch (opts.variant) {
    case 'undici-request':
    case 'nginx-1hop':
    case 'nginx-2hop': {
      const a = new Agent();
      agent = a;
      const url = opts.variant === 'undici-request' ? direct : `http://127.0.0.1:${opts.nginxPort}/x`;
      call = async () => {
        const res = await request(url, { dispatcher: a });
        lastBody = await res.body.text();
        return res.statusCode;
      };
      break;
    }
    case 'undici-fetch': {
      const a = new Agent();
      agent = a;
      call = async () => {
        const res = await fetch(direct, { dispatcher: a });
        lastBody = await res.text();
        return res.status;
      };
      break;
    }
    case 'mesh-dispatcher':
    case 'mesh-fetch': {
      const createMesh = await loadCreateMesh(opts.meshModule);
      if (typeof createMesh === 'string') throw new Error(createMesh);
      const m = await createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(opts.upstreamPort) });
      mesh = m;
      if (opts.variant === 'mesh-dispatcher') {
        const url = `http://${HOST}:${opts.upstreamPort}/x`;
        const dispatcher = m.dispatcher;
        call = async () => {
          const res = await request(url, { dispatcher });
          lastBody = await res.body.text();
          return res.statusCode;
        };
      } else {
        const url = `http://upstream:${opts.upstreamPort}/x`;
        call = async () => {
          const res = await m.fetch(url);
          lastBody = await res.text();
          return res.status;
        };
      }
      break;
    }
    default:
      throw new Error(`unknown variant ${String(opts.variant)}`);
  }

  let total = 0;
  let firstFailure: string | undefined;
  const fail = (what: string) => {
    firstFailure ??= what;
  };

  async function phase(concurrency: number, seconds: number, record: boolean, mark?: 'c1' | 'cHigh'): Promise<PhaseResult> {
    gc?.();
    // the parent samples nginx/upstream CPU from /proc at these marks
    if (mark !== undefined) process.send?.({ type: 'mark', name: `${mark}:start` });
    const lat = record ? new Float64Array(Math.ceil(seconds * 40_000) + 1024) : undefined;
    let n = 0;
    let failures = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    const loop = async () => {
      while (performance.now() < deadline) {
        const s = performance.now();
        try {
          const status = await call();
          if (status !== 200) {
            failures++;
            fail(`HTTP ${status}${lastBody.length < 200 ? `: ${lastBody}` : ''}`);
          }
        } catch (err) {
          failures++;
          fail(`${(err as Error).name}: ${(err as Error).message}`);
        }
        if (failures > 100 && failures > n / 10) throw new Error(`too many failures (${failures} of ${n + 1}), first: ${firstFailure}`);
        if (lat !== undefined && n < lat.length) lat[n] = performance.now() - s;
        n++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    if (mark !== undefined) process.send?.({ type: 'mark', name: `${mark}:end` });
    total += n;
    const out: PhaseResult = { requests: n, failures, seconds: elapsed, cpuUsPerReq: (cpu.user + cpu.system) / n, rps: n / elapsed };
    if (lat !== undefined) {
      const sorted = lat.subarray(0, Math.min(n, lat.length)).sort();
      out.p50Us = (sorted[Math.floor(sorted.length * 0.5)] ?? Number.NaN) * 1000;
      out.p99Us = (sorted[Math.floor(sorted.length * 0.99)] ?? Number.NaN) * 1000;
    }
    return out;
  }

  // A first request must succeed with the full 100-byte body before anything is measured.
  const status = await call();
  total++;
  if (status !== 200 || lastBody.length !== 100) throw new Error(`check request: HTTP ${status}, ${lastBody.length}-byte body`);

  await phase(1, opts.warmup / 2, false);
  await phase(opts.highConcurrency, opts.warmup / 2, false);
  const c1 = await phase(1, opts.duration, true, 'c1');
  const cHigh = await phase(opts.highConcurrency, opts.duration, false, 'cHigh');

  await mesh?.close();
  await agent?.close();
  const result: ClientResult = { type: 'result', c1, cHigh, totalRequests: total };
  if (firstFailure !== undefined) result.firstFailure = firstFailure;
  process.send?.(result);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.send === undefined) throw new Error('client.ts is started by bench/outbound/run.ts (needs an IPC channel)');
  process.on('disconnect', () => process.exit(0));
  try {
    await main(JSON.parse(process.argv[2] ?? '{}') as ClientOptions);
    process.disconnect();
  } catch (err) {
    process.send({ type: 'error', message: (err as Error).stack ?? String(err) });
    process.exitCode = 1;
    process.disconnect();
  }
}
