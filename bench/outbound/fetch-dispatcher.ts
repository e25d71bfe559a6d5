/**
 * Does undici's `fetch` itself cost more through a Dispatcher that is not undici's own? No
 * meshlet here: each mode runs a loop at c=64 in a fresh process (client pinned to CPU 0, the
 * bench upstream on CPU 1, as bench/outbound/gc-regime.ts) and reports CPU per request, bytes
 * allocated per request and what the scavenges cost.
 *
 *   node_modules/.bin/node bench/outbound/fetch-dispatcher.ts [--rounds 3] [--requests 20000] [--modes a,b] [--api fetch|request]
 *
 * Modes (each a dispatcher given to `fetch(url, { dispatcher })`, or `undici.request`):
 *   agent         undici's Agent.
 *   fwd           a Dispatcher subclass that passes `dispatch(opts, handler)` to that Agent.
 *   fwd-headers   the same, adding the five request headers meshlet adds (their real sizes).
 *   wrap          a pass-through that gives the caller's handler its own controller object
 *                 (an object standing between fetch and undici's controller, as any dispatcher
 *                 with its own handler chain does: meshlet's call, undici's interceptors).
 *   wrap-headers  wrap + the five headers.
 *   fwd-work      fwd doing a fixed amount of plain JS work per call before passing it on, about
 *                 what meshlet allocates per call (12 small objects, ~2.6 KB) and a loop over the
 *                 peer-metadata header's characters: `fwd-work` − `fwd` under `--api fetch` against
 *                 the same under `--api request` says whether the same per-call work costs more in
 *                 a process that makes fetch calls (no meshlet involved).
 *
 * @module
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { measureSlice, perVariant } from '../lib/slice-meter.ts';

const SELF = fileURLToPath(import.meta.url);
const MODES = ['agent', 'fwd', 'fwd-headers', 'wrap', 'wrap-headers', 'fwd-work'] as const;
type Mode = (typeof MODES)[number];

/** meshlet's outbound request headers in bench/outbound's config (captured from one call; the values' sizes are what matters). */
const MESH_HEADERS: Record<string, string> = {
  'x-request-id': '3755faa1-2091-4592-8707-b6d6c9bd8092',
  'x-envoy-attempt-count': '1',
  'x-envoy-peer-metadata-id': 'sidecar~127.0.0.1~bench-client.default~default.svc.cluster.local',
  'x-envoy-peer-metadata':
    'ChoKCkNMVVNURVJfSUQSDBoKS3ViZXJuZXRlcwqHAQoGTEFCRUxTEn0qewoVCgNhcHASDhoMYmVuY2gtY2xpZW50CjEKH3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLW5hbWUSDhoMYmVuY2gtY2xpZW50Ci8KI3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLXJldmlzaW9uEggaBmxhdGVzdAoWCgROQU1FEg4aDGJlbmNoLWNsaWVudAoWCglOQU1FU1BBQ0USCRoHZGVmYXVsdAofCg1XT1JLTE9BRF9OQU1FEg4aDGJlbmNoLWNsaWVudA==',
  'x-envoy-expected-rq-timeout-ms': '4997',
};

interface Sample {
  mode: Mode;
  cpuUsPerReq: number;
  mainUsPerReq: number;
  bytesPerReq: number;
  scavengeMsPer1000: number;
  gcMsPer1000: number;
}

async function child(mode: Mode, port: number, requests: number, api: string): Promise<Sample> {
  const undici = await import('undici');
  type Controller = { abort(r?: Error): void; pause(): void; resume(): void; readonly aborted: boolean; readonly paused: boolean; readonly reason: Error | null; readonly rawHeaders?: unknown; readonly rawTrailers?: unknown };
  type Handler = Record<string, ((...a: unknown[]) => unknown) | undefined>;
  const agent = new undici.Agent({ connections: 64 });
  const add = mode.endsWith('-headers') ? MESH_HEADERS : undefined;
  /** The caller's handler, given this object as its controller; undici's controller behind it. */
  class Wrap {
    readonly #h: Handler;
    #c: Controller | undefined;
    constructor(h: Handler) {
      this.#h = h;
    }
    onRequestStart(c: Controller, ctx: unknown) {
      this.#c = c;
      this.#h.onRequestStart?.(this, ctx);
    }
    onResponseStarted() {
      this.#h.onResponseStarted?.();
    }
    onResponseStart(_c: Controller, s: number, hd: unknown, m: string) {
      return this.#h.onResponseStart?.(this, s, hd, m);
    }
    onResponseData(_c: Controller, d: Buffer) {
      return this.#h.onResponseData?.(this, d);
    }
    onResponseEnd(_c: Controller, t: unknown) {
      this.#h.onResponseEnd?.(this, t);
    }
    onResponseError(_c: Controller, e: Error) {
      this.#h.onResponseError?.(this, e);
    }
    onRequestUpgrade(_c: Controller, s: number, hd: unknown, sock: unknown) {
      this.#h.onRequestUpgrade?.(this, s, hd, sock);
    }
    abort(r?: Error) {
      this.#c?.abort(r);
    }
    pause() {
      this.#c?.pause();
    }
    resume() {
      this.#c?.resume();
    }
    get aborted() {
      return this.#c?.aborted ?? false;
    }
    get paused() {
      return this.#c?.paused ?? false;
    }
    get reason() {
      return this.#c?.reason ?? null;
    }
    get rawHeaders() {
      return this.#c?.rawHeaders;
    }
    get rawTrailers() {
      return this.#c?.rawTrailers;
    }
  }
  const metadata = MESH_HEADERS['x-envoy-peer-metadata'] as string;
  /** fwd-work's per-call work: short-lived small objects and a loop, kept until the next call. */
  const work = (): void => {
    let acc = 0;
    let list: object | undefined;
    for (let i = 0; i < 12; i++) list = { a: i, b: `${i}:${acc}`, c: [i, i + 1], d: { e: i }, next: list };
    for (let r = 0; r < 4; r++) for (let i = 0; i < metadata.length; i++) acc = (acc * 31 + metadata.charCodeAt(i)) | 0;
    // Kept until the next call: the objects escape (not optimised away) and die young.
    (globalThis as { fetchDispatcherSink?: unknown }).fetchDispatcherSink = [list, acc];
  };
  class Forward extends undici.Dispatcher {
    override dispatch(opts: import('undici').Dispatcher.DispatchOptions, handler: import('undici').Dispatcher.DispatchHandler): boolean {
      if (mode === 'fwd-work') work();
      const h = mode.startsWith('wrap') ? (new Wrap(handler as unknown as Handler) as unknown as typeof handler) : handler;
      if (add === undefined) return agent.dispatch(opts, h);
      const headers: Record<string, string> = Object.create(null);
      const src = opts.headers as Record<string, string> | null | undefined;
      if (src != null) for (const k in src) headers[k] = src[k] as string;
      for (const k in add) headers[k] = add[k] as string;
      return agent.dispatch({ ...opts, headers }, h);
    }
  }
  const dispatcher = mode === 'agent' ? agent : new Forward();
  const url = `http://127.0.0.1:${port}/x`;
  const one =
    api === 'fetch'
      ? async (): Promise<void> => void (await (await undici.fetch(url, { dispatcher })).text())
      : async (): Promise<void> => void (await (await undici.request(url, { dispatcher })).body.text());
  const run = async (n: number): Promise<void> => {
    let i = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (i++ < n) await one();
      }),
    );
  };
  let scavengeMs = 0;
  let gcMs = 0;
  let on = false;
  const obs = new PerformanceObserver((list) => {
    if (!on) return;
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      if ((e as { detail?: { kind?: number } }).detail?.kind === 1) scavengeMs += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  await run(Math.round(requests / 2));
  on = true;
  const per = perVariant([mode]);
  await measureSlice(per, mode, requests, () => run(requests));
  on = false;
  obs.disconnect();
  await agent.close();
  return {
    mode,
    cpuUsPerReq: +(per.cpu[mode]?.[0] ?? 0).toFixed(1),
    mainUsPerReq: +(per.main[mode]?.[0] ?? 0).toFixed(1),
    bytesPerReq: Math.round(per.alloc[mode]?.[0] ?? 0),
    scavengeMsPer1000: +((scavengeMs / requests) * 1000).toFixed(2),
    gcMsPer1000: +((gcMs / requests) * 1000).toFixed(2),
  };
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '3'));
  const requests = Number(arg('--requests', '20000'));
  const api = arg('--api', 'fetch');
  if (api !== 'request' && api !== 'fetch') throw new Error(`--api: ${api} (request or fetch)`);
  const modes = arg('--modes', MODES.join(',')).split(',') as Mode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: unknown mode ${m} (one of ${MODES.join(', ')})`);
  const pin = spawnSync('taskset', ['-V']).status === 0;
  const up: ChildProcess = fork(fileURLToPath(new URL('./upstream.ts', import.meta.url)), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  if (pin && up.pid !== undefined) spawnSync('taskset', ['-pc', '1', String(up.pid)]);
  const port = await new Promise<number>((resolve) => up.on('message', (m: { type?: string; port?: number }) => m.type === 'ready' && resolve(m.port as number)));
  const all = new Map<Mode, Sample[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
      const cmd = [...process.execArgv, SELF, '--child', mode, String(port), String(requests), api];
      const res = pin ? spawnSync('taskset', ['-c', '0', process.execPath, ...cmd], { encoding: 'utf8' }) : spawnSync(process.execPath, cmd, { encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`${mode}: ${res.stderr}`);
      all.get(mode)?.push(JSON.parse(res.stdout.trim().split('\n').pop() as string) as Sample);
    }
  }
  up.kill();
  console.log(`${rounds} rounds, ${requests} requests measured per process (after ${Math.round(requests / 2)} to warm up), c=64, ${api}, Node ${process.version}${pin ? ', client on CPU 0, upstream on CPU 1' : ''}; medians:\n`);
  console.log('| mode | client CPU µs/req | main thread µs/req | bytes allocated/req | scavenge ms per 1000 requests | GC ms per 1000 requests |');
  console.log('|---|---|---|---|---|---|');
  for (const [mode, xs] of all) {
    const m = (f: (s: Sample) => number) => median(xs.map(f));
    console.log(`| ${mode} | ${m((s) => s.cpuUsPerReq).toFixed(1)} | ${m((s) => s.mainUsPerReq).toFixed(1)} | ${m((s) => s.bytesPerReq)} | ${m((s) => s.scavengeMsPer1000).toFixed(1)} | ${m((s) => s.gcMsPer1000).toFixed(1)} |`);
  }
}

if (process.argv[2] === '--child') {
  const [mode, port, requests, api] = process.argv.slice(3);
  console.log(JSON.stringify(await child(mode as Mode, Number(port), Number(requests), api ?? 'fetch')));
  process.exit(0);
} else {
  await main();
}
