/**
 * Inbound, in one process and without the kernel: meshlet's own CPU per request in front of
 * node:http, Express and Fastify.
 *
 *   node_modules/.bin/node bench/inbound/inproc.ts [--telemetry] [--no-debug-headers] [--rounds N] [--requests N] [--repeat N] [--framework F]… [--compare DIR | --base DIR]
 *
 * bench/inbound/run.ts measures whole server processes over loopback TCP, so its CPU per request
 * includes the kernel's side of every response (the `writev(2)` that also runs the loopback
 * receive path and wakes the load client); that part grows when a server gets slower and the
 * client waits more often, and it moves by several µs between runs on a shared machine. Here a
 * raw server and a meshlet server of the same framework are real `http.Server`s in one process,
 * fed HTTP/1.1 bytes through in-memory sockets (Node's own parser, `ServerResponse`, the
 * framework, meshlet; no syscalls), in interleaved slices (raw, mesh, mesh, raw, …); CPU is
 * `process.cpuUsage()` around each slice. "added" is the median over rounds of each round's
 * meshlet − raw µs/request: the JavaScript meshlet adds, without the kernel's share. Bytes
 * allocated on the JS heap per request (the heap's growth over a slice plus what its GCs freed,
 * as bench/grpc/inproc.ts counts them) are nearly deterministic: a step of some tens of bytes is
 * real when the CPU figures' spread hides it.
 *
 * Same policy set as run.ts: one RequestAuthentication (inline JWKS, RS256), one
 * AuthorizationPolicy with three rules, a valid token on every request (the verified-token
 * cache). `--telemetry` runs a second process per framework with `startTelemetry()` (Istio
 * metrics on every request, spans at 1 % exported over OTLP to a local sink). Each (framework,
 * mode) runs in its own child process, `--repeat` times; the figure is the median of the
 * children's. Every other child makes and warms the meshlet server first: in one process, the
 * second of two Express apps (each has its own `req`/`res` prototypes) to run costs ~0.6–1 µs a
 * request more than the first, even when the two are the same app, so a fixed order would count
 * that against whichever comes second; an even `--repeat` balances the two orders. `--compare
 * DIR` also runs the children against another checkout's `src/` (a `git worktree` of the base
 * commit with its own node_modules link), interleaved with this one's (A B A B …, each pair in
 * the same order), and prints B − A; `--base DIR` is the same option under the name
 * bench/grpc/inproc.ts uses.
 */
import { fork } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { writeBenchPolicies } from './policies.ts';

const { values: a } = parseArgs({
  options: {
    child: { type: 'string' },
    telemetry: { type: 'boolean', default: false },
    /** The meshes run with `proxyHeaders.envoyDebugHeaders` disabled (no `x-envoy-upstream-service-time` on served responses). */
    'no-debug-headers': { type: 'boolean', default: false },
    rounds: { type: 'string' },
    requests: { type: 'string' },
    repeat: { type: 'string' },
    framework: { type: 'string', multiple: true },
    compare: { type: 'string' },
    base: { type: 'string' },
  },
});

const FRAMEWORKS = ['http', 'express', 'fastify'] as const;
type Framework = (typeof FRAMEWORKS)[number];
type Mode = 'mesh' | 'mesh-otel';
const BODY = JSON.stringify({ id: 1, name: 'item', tags: ['a', 'b'] });
/** In-memory connections per server, each one request at a time (keep-alive). */
const CONNECTIONS = 16;
const HERE = resolve(fileURLToPath(new URL('../..', import.meta.url)));

// ---------------------------------------------------------------- parent

async function parent(): Promise<void> {
  const rounds = Number(a.rounds ?? 7);
  const requests = Number(a.requests ?? 300);
  const repeat = Number(a.repeat ?? 4);
  const frameworks = (a.framework ?? [...FRAMEWORKS]) as Framework[];
  for (const f of frameworks) if (!(FRAMEWORKS as readonly string[]).includes(f)) throw new Error(`--framework ${f}: one of ${FRAMEWORKS.join(', ')}`);
  const modes: Mode[] = a.telemetry === true ? ['mesh', 'mesh-otel'] : ['mesh'];
  const base = a.compare ?? a.base;
  const trees = base === undefined ? [HERE] : [resolve(base), HERE];
  const dir = await writeConfig();
  try {
    console.log(`Inbound in one process, no kernel${a['no-debug-headers'] === true ? ', proxyHeaders.envoyDebugHeaders disabled' : ''}: ${rounds} rounds × 4 slices × ${requests} requests × ${CONNECTIONS} connections per server, ${repeat} processes per variant${trees.length > 1 ? `; A = ${trees[0]}, B = ${trees[1]}` : ''}`);
    console.log('CPU µs/request (process.cpuUsage); added = meshlet − raw, median of rounds, then median of processes; B/request: bytes allocated on the JS heap\n');
    console.log(`| server | mode |${trees.length > 1 ? ' tree |' : ''} raw | with meshlet | added | added per process | raw B | meshlet B | added B |`);
    console.log(`|---|---|${trees.length > 1 ? '---|' : ''}---:|---:|---:|---|---:|---:|---:|`);
    for (const framework of frameworks) {
      for (const mode of modes) {
        const got: Result[][] = trees.map(() => []);
        for (let i = 0; i < repeat; i++) for (const [t, tree] of trees.entries()) (got[t] as Result[]).push(await runChild({ tree, framework, mode, dir, rounds, requests, meshFirst: i % 2 === 1, debugHeaders: a['no-debug-headers'] !== true }));
        for (const [t, rs] of got.entries()) {
          const label = trees.length > 1 ? ` ${t === 0 ? 'A' : 'B'} |` : '';
          const bytes = (f: (r: Result) => number) => median(rs.map(f)).toFixed(0);
          console.log(`| ${framework} | ${mode} |${label} ${median(rs.map((r) => r.raw)).toFixed(2)} | ${median(rs.map((r) => r.mesh)).toFixed(2)} | +${median(rs.map((r) => r.added)).toFixed(2)} | ${rs.map((r) => r.added.toFixed(2)).join(', ')} | ${bytes((r) => r.rawBytes)} | ${bytes((r) => r.meshBytes)} | ${bytes((r) => r.meshBytes - r.rawBytes)} |`);
        }
        if (trees.length > 1) {
          const d = (got[1] as Result[]).map((r, i) => r.added - ((got[0] as Result[])[i] as Result).added);
          const db = (got[1] as Result[]).map((r, i) => r.meshBytes - r.rawBytes - (((got[0] as Result[])[i] as Result).meshBytes - ((got[0] as Result[])[i] as Result).rawBytes));
          console.log(`| ${framework} | ${mode} | B − A | | | ${median(d) >= 0 ? '+' : ''}${median(d).toFixed(2)} | ${d.map((x) => x.toFixed(2)).join(', ')} | | | ${median(db) >= 0 ? '+' : ''}${median(db).toFixed(0)} |`);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Result {
  readonly raw: number;
  readonly mesh: number;
  readonly added: number;
  /** Bytes allocated per request (median of rounds). */
  readonly rawBytes: number;
  readonly meshBytes: number;
}

function runChild(args: ChildArgs): Promise<Result> {
  return new Promise((ok, fail) => {
    const p = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: Result | undefined;
    p.on('message', (m) => {
      result = m as Result;
    });
    p.on('error', fail);
    p.on('exit', (code) => (result === undefined ? fail(new Error(`inproc child (${args.framework} ${args.mode}) exited with ${code}`)) : ok(result)));
  });
}

/** The policies of run.ts (./policies.ts), the token beside them in the directory for the children. */
async function writeConfig(): Promise<string> {
  const { dir, token } = await writeBenchPolicies('meshlet-bench-inproc-');
  writeFileSync(join(dir, 'token'), token);
  return dir;
}

// ---------------------------------------------------------------- child: one framework, one mode, one tree

interface ChildArgs {
  readonly tree: string;
  readonly framework: Framework;
  readonly mode: Mode;
  readonly dir: string;
  readonly rounds: number;
  readonly requests: number;
  /** Make and warm the meshlet server before the raw one. */
  readonly meshFirst: boolean;
  /** `proxyHeaders.envoyDebugHeaders` left on (the default). */
  readonly debugHeaders: boolean;
}

/** A connection's server side in memory: what the server writes is checked and dropped; a request's answer ends with BODY. */
class MemorySocket extends Duplex {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 40_000;
  readonly localAddress = '127.0.0.1';
  readonly localPort = 8000;
  readonly remoteFamily = 'IPv4';
  bytesWritten = 0;
  bytesRead = 0;
  #answered: (() => void) | undefined;
  #failed: ((err: Error) => void) | undefined;

  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.#got(chunk);
    cb();
  }
  override _writev(chunks: { chunk: Buffer }[], cb: () => void): void {
    for (const c of chunks) this.#got(c.chunk);
    cb();
  }
  #got(chunk: Buffer | string): void {
    this.bytesWritten += chunk.length;
    const s = typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    if (s.startsWith('HTTP/1.1 ') && !s.startsWith('HTTP/1.1 200')) this.#failed?.(new Error(`not a 200: ${s.slice(0, 60)}`));
    else if (s.endsWith(BODY)) {
      const done = this.#answered;
      this.#answered = undefined;
      done?.();
    }
  }
  /** Sends one request and resolves when its answer was written. */
  request(bytes: Buffer): Promise<void> {
    return new Promise((ok, fail) => {
      this.#answered = ok;
      this.#failed = fail;
      this.bytesRead += bytes.length;
      this.push(bytes);
    });
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  address(): { address: string; port: number; family: string } {
    return { address: '127.0.0.1', port: 8000, family: 'IPv4' };
  }
}

async function child(c: ChildArgs): Promise<void> {
  const token = readFileSync(join(c.dir, 'token'), 'utf8');
  const src = (p: string) => pathToFileURL(join(c.tree, p)).href;
  if (c.mode === 'mesh-otel') await ((await import(src('bench/lib/otel.ts'))) as typeof import('../lib/otel.ts')).startBenchTelemetry(src('src/telemetry/sdk/index.ts'));
  const { createMesh } = (await import(src('src/index.ts'))) as typeof import('../../src/index.ts');
  const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: c.dir, watch: false, ...(c.debugHeaders ? {} : { proxyHeaders: { envoyDebugHeaders: { disabled: true } } }) });
  const express = (await import('express')).default;
  const Fastify = (await import('fastify')).default;
  const plain = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(BODY)) });
    res.end(BODY);
  };
  const make = async (withMesh: boolean): Promise<Server> => {
    if (c.framework === 'http') return withMesh ? mesh.createServer(plain) : createServer(plain);
    if (c.framework === 'express') {
      const app = express();
      if (withMesh) app.use(mesh.express());
      app.get('/api/items/:id', (_req, res) => {
        res.type('application/json').send(BODY);
      });
      return createServer(app);
    }
    const app = Fastify(withMesh ? { ...mesh.fastifyOptions() } : {});
    if (withMesh) await app.register(mesh.fastify() as never);
    app.get('/api/items/:id', async (_req, reply) => reply.type('application/json').send(BODY));
    await app.ready();
    return app.server;
  };
  const connect = (server: Server) =>
    Array.from({ length: CONNECTIONS }, () => {
      const s = new MemorySocket();
      server.emit('connection', s);
      return s;
    });
  let n = 0;
  const drive = async (sockets: MemorySocket[], perSocket: number) => {
    await Promise.all(
      sockets.map(async (s) => {
        for (let i = 0; i < perSocket; i++) await s.request(Buffer.from(`GET /api/items/${n++ % 1000} HTTP/1.1\r\nhost: httpbin.foo\r\nauthorization: Bearer ${token}\r\nuser-agent: bench\r\nconnection: keep-alive\r\n\r\n`, 'latin1'));
      }),
    );
  };
  const first = connect(await make(c.meshFirst));
  const second = connect(await make(!c.meshFirst));
  const [raw, meshed] = c.meshFirst ? [second, first] : [first, second];
  for (let i = 0; i < 4; i++) for (const which of c.meshFirst ? [meshed, raw] : [raw, meshed]) await drive(which, 500);
  if (process.env.INPROC_ALLOC !== undefined) {
    // Bytes allocated per meshed request by function (V8's sampling heap profiler, collected garbage included).
    const { printAllocations, sampleAllocations } = await import('../lib/alloc-sampling.ts');
    const perOps = 4 * c.requests * CONNECTIONS;
    const prof = await sampleAllocations(() => drive(meshed, 4 * c.requests), perOps, 512);
    printAllocations(`${c.framework} ${c.mode}, by function (sampled)`, prof, Number(process.env.INPROC_ALLOC) || 30);
  }
  const cpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const perRaw: number[] = [];
  const perMesh: number[] = [];
  const bytesRaw: number[] = [];
  const bytesMesh: number[] = [];
  for (let r = 0; r < c.rounds; r++) {
    let tRaw = 0;
    let tMesh = 0;
    let bRaw = 0;
    let bMesh = 0;
    for (let s = 0; s < 4; s++) {
      for (const which of s % 2 === 0 ? [raw, meshed] : [meshed, raw]) {
        const gc = new v8.GCProfiler();
        const h0 = v8.getHeapStatistics().used_heap_size;
        gc.start();
        const t0 = cpu();
        await drive(which, c.requests);
        const t = cpu() - t0;
        const h1 = v8.getHeapStatistics().used_heap_size;
        let freed = 0;
        for (const g of gc.stop()?.statistics ?? []) freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
        if (which === raw) {
          tRaw += t;
          bRaw += h1 - h0 + freed;
        } else {
          tMesh += t;
          bMesh += h1 - h0 + freed;
        }
      }
    }
    const count = 4 * c.requests * CONNECTIONS;
    perRaw.push(tRaw / count);
    perMesh.push(tMesh / count);
    bytesRaw.push(bRaw / count);
    bytesMesh.push(bMesh / count);
  }
  const result: Result = { raw: median(perRaw), mesh: median(perMesh), added: median(perMesh.map((m, i) => m - (perRaw[i] as number))), rawBytes: median(bytesRaw), meshBytes: median(bytesMesh) };
  process.send?.(result);
  await mesh.close();
  process.exit(0);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? (s[h] as number) : ((s[h - 1] as number) + (s[h] as number)) / 2;
}

if (a.child !== undefined) await child(JSON.parse(a.child) as ChildArgs);
else await parent();
