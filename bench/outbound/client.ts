/**
 * One client of the outbound benchmark, in its own process (started by bench/outbound/run.ts
 * over an IPC channel, one process per variant per round; the variants of a round are alive
 * together). It warms up, reports `ready`, then runs measured slices when the parent asks
 * (`slice`: concurrency, milliseconds) and answers each with its requests, latencies and the
 * process's CPU time at the slice's start; `stop` closes it with a `result` message.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Agent, type Dispatcher, fetch, request } from 'undici';
import { HOST, meshResources } from './mesh-config.ts';
import { type BenchTelemetry, startBenchTelemetry } from '../lib/otel.ts';

export type VariantId = 'undici-request' | 'mesh-dispatcher' | 'undici-fetch' | 'undici-request-loaded' | 'undici-fetch-loaded' | 'mesh-fetch' | 'mesh-dispatcher-otel' | 'mesh-fetch-otel' | 'mesh-dispatcher-otel-nospans' | 'mesh-dispatcher-otel-notrace' | 'mesh-dispatcher-otel-nometrics' | 'mesh-dispatcher-otel-sdkonly' | 'nginx-1hop' | 'nginx-2hop';

export interface ClientOptions {
  variant: VariantId;
  /** Upstream port (direct variants and the mesh config). */
  upstreamPort: number;
  /** Port the client sends to for the nginx variants. */
  nginxPort?: number;
  /** Warm-up seconds (half at c=1, half at highConcurrency) before the process reports ready. */
  warmup: number;
  highConcurrency: number;
  /** URL of the module exporting createMesh (bench/lib/meshlet-build.ts). */
  meshModule: string;
  /** URL of the same build's `meshlet/telemetry` entry (startTelemetry), for the -otel variants. */
  telemetryModule: string;
}

/** What the parent asks for: one measured slice. */
export interface SliceRequest {
  type: 'slice';
  concurrency: number;
  ms: number;
  /** Return every request's latency. */
  record: boolean;
}

/** One measured slice. */
export interface SliceResult {
  type: 'slice';
  /** The process's CPU time (user + system, µs) when the slice started: the parent charges a slice with the CPU up to the same process's next slice, so work V8 does in the background after the slice (GC, compilation) counts. */
  cpuStartUs: number;
  requests: number;
  failures: number;
  seconds: number;
  latenciesUs: number[];
}

/** The client's last message. */
export interface ClientResult {
  type: 'result';
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
type CreateMesh = (options: { service: string; namespace: string; labels: Record<string, string>; config: object[]; telemetry?: object }) => Promise<MeshLike>;

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
  let agent: Agent | undefined;
  let mesh: MeshLike | undefined;
  let telemetry: BenchTelemetry | undefined;
  let call: Call;
  let lastBody = '';
  const direct = `http://127.0.0.1:${opts.upstreamPort}/x`;
  // -loaded: the raw client in a process that also imported meshlet and made a mesh it never
  // calls — what the mesh's presence in the process (heap, timers, loaded code) costs a call it
  // has no part in.
  if (opts.variant === 'undici-request-loaded' || opts.variant === 'undici-fetch-loaded') {
    const createMesh = await loadCreateMesh(opts.meshModule);
    if (typeof createMesh === 'string') throw new Error(createMesh);
    mesh = await createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(opts.upstreamPort) });
  }
  switch (opts.variant) {
    case 'undici-request-loaded':
    case 'undici-request':
    case 'nginx-1hop':
    case 'nginx-2hop': {
      const a = new Agent();
      agent = a;
      const url = opts.variant.startsWith('undici-request') ? direct : `http://127.0.0.1:${opts.nginxPort}/x`;
      call = async () => {
        const res = await request(url, { dispatcher: a });
        lastBody = await res.body.text();
        return res.statusCode;
      };
      break;
    }
    case 'undici-fetch-loaded':
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
    case 'mesh-fetch':
    case 'mesh-dispatcher-otel':
    case 'mesh-fetch-otel':
    case 'mesh-dispatcher-otel-nospans':
    case 'mesh-dispatcher-otel-notrace':
    case 'mesh-dispatcher-otel-nometrics':
    case 'mesh-dispatcher-otel-sdkonly': {
      // Telemetry on: the SDK installed before the mesh starts (metrics on every call, spans at 1 %).
      // The others split that cost, one switch each (the SDK installed in all of them):
      // -nospans: tracing sampled at 0 % (trace headers still written, no span recorded or exported): what the 1 % of sampled calls cost;
      // -notrace: tracing off (telemetry.tracing.enabled false: no trace headers; x-request-id is still generated, as Envoy does);
      // -nometrics: Istio's metrics off (telemetry.metrics.enabled false), tracing at 1 %;
      // -sdkonly: both off and meshlet's own metrics off — what installing the SDK costs by itself.
      if (opts.variant.includes('-otel')) telemetry = await startBenchTelemetry(opts.telemetryModule);
      const createMesh = await loadCreateMesh(opts.meshModule);
      if (typeof createMesh === 'string') throw new Error(createMesh);
      const v = opts.variant;
      const tracing = v.endsWith('-nospans') ? { samplingPercentage: 0 } : v.endsWith('-notrace') || v.endsWith('-sdkonly') ? { enabled: false } : undefined;
      const metricsOff = v.endsWith('-nometrics') || v.endsWith('-sdkonly');
      const split = {
        ...(tracing === undefined ? {} : { tracing }),
        ...(metricsOff ? { metrics: { enabled: false } } : {}),
        ...(v.endsWith('-sdkonly') ? { ownMetrics: false } : {}),
      };
      const m = await createMesh({ service: 'bench-client', namespace: 'default', labels: { app: 'bench-client' }, config: meshResources(opts.upstreamPort), ...(Object.keys(split).length > 0 ? { telemetry: split } : {}) });
      mesh = m;
      if (opts.variant.startsWith('mesh-dispatcher')) {
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

  /** Runs `concurrency` loops of calls for `ms`; with `record`, returns every latency (µs). */
  async function phase(concurrency: number, ms: number, record: boolean): Promise<SliceResult> {
    const c0 = process.cpuUsage();
    const cpuStartUs = c0.user + c0.system;
    const lat: number[] = [];
    let n = 0;
    let failures = 0;
    const t0 = performance.now();
    const deadline = t0 + ms;
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
        if (record) lat.push((performance.now() - s) * 1000);
        n++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    total += n;
    return { type: 'slice', cpuStartUs, requests: n, failures, seconds: (performance.now() - t0) / 1000, latenciesUs: lat };
  }

  // A first request must succeed with the full 100-byte body before anything is measured.
  const status = await call();
  total++;
  if (status !== 200 || lastBody.length !== 100) throw new Error(`check request: HTTP ${status}, ${lastBody.length}-byte body`);

  await phase(1, (opts.warmup / 2) * 1000, false);
  await phase(opts.highConcurrency, (opts.warmup / 2) * 1000, false);
  // No forced gc() here: no application forces one, and after one V8 takes a further second or
  // two to get back to full speed (mesh.fetch, with more code to re-optimise, longer than
  // undici.fetch), which earlier versions of this bench — a gc() before every measured phase,
  // 1.5 s of warm-up — reported as meshlet's cost.
  process.send?.({ type: 'ready' });

  // Then measured slices, one at a time, as the parent asks (it alternates between the clients).
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

  await mesh?.close();
  await telemetry?.shutdown();
  await agent?.close();
  const result: ClientResult = { type: 'result', totalRequests: total };
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
