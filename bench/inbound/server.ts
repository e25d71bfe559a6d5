/**
 * One server of the inbound benchmark, in its own process: node:http, Express 5 or Fastify 5,
 * with or without meshlet in front, with meshlet plus telemetry (`mesh-otel`), or raw plus a fixed
 * amount of pure-JavaScript work per request (`spin<US>`, a control) (started by
 * bench/inbound/run.ts over IPC). It answers
 * `GET /api/items/<n>` with a small JSON body and reports its port.
 */
import { createServer, type IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';

const [framework, modeArg, configDir] = process.argv.slice(2) as ['http' | 'express' | 'fastify', string, string];
// `spin<US>`: a control — the raw server plus US µs of pure-JavaScript work per request.
const SPIN_US = modeArg.startsWith('spin') ? Number(modeArg.slice(4)) : 0;
// `shape`: a control — the raw server whose requests and responses get the own properties
// meshlet's adapters give them (nothing else meshlet does): what their hidden classes alone cost.
const SHAPE = modeArg === 'shape';
const withMesh = (SPIN_US > 0 || SHAPE ? 'raw' : modeArg) as 'raw' | 'mesh' | 'mesh-otel';
const BODY = JSON.stringify({ id: 1, name: 'item', tags: ['a', 'b'] });

// Telemetry on: startTelemetry() (Prometheus endpoint, OTLP span export to a sink), as bench/outbound's -otel variants.
// Which meshlet: set by bench/inbound/run.ts (bench/lib/meshlet-build.ts: the built package by default).
const INDEX = process.env['BENCH_MESHLET_INDEX'] ?? new URL('../../src/index.ts', import.meta.url).href;
const TELEMETRY = process.env['BENCH_MESHLET_TELEMETRY'] ?? new URL('../../src/telemetry/sdk/index.ts', import.meta.url).href;
if (withMesh === 'mesh-otel') await (await import('../lib/otel.ts')).startBenchTelemetry(TELEMETRY);
const { createMesh } = withMesh !== 'raw' ? ((await import(INDEX)) as typeof import('../../src/index.ts')) : { createMesh: undefined };
const mesh = createMesh === undefined ? undefined : await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: configDir, watch: false });

let sink = 1;
/** `k` rounds of integer arithmetic (no allocation, no I/O). */
function work(k: number): void {
  let x = sink;
  for (let i = 0; i < k; i++) x = (x * 48271) % 2147483647;
  sink = x;
}
/** Rounds of {@link work} per µs of this process's CPU, measured once at start (after a warm-up). */
let perUs = 0;
if (SPIN_US > 0) {
  work(2e6);
  const c0 = process.cpuUsage();
  work(5e7);
  const c = process.cpuUsage(c0);
  perUs = 5e7 / (c.user + c.system);
}
const spinRounds = Math.round(perUs * SPIN_US);
function spin(): void {
  if (spinRounds > 0) work(spinRounds);
}

const kScope = Symbol('shape.scope');
const kOn = Symbol('shape.on');
const INFO = Object.freeze({ principal: undefined });
function shapeOn(this: IncomingMessage, name: string | symbol, listener: (...args: unknown[]) => void): IncomingMessage {
  return Readable.prototype.on.call(this, name, listener) as IncomingMessage;
}
function shapeOnce(this: IncomingMessage, name: string | symbol, listener: (...args: unknown[]) => void): IncomingMessage {
  return Readable.prototype.once.call(this, name, listener) as IncomingMessage;
}
function shapeWriteHead(this: ServerResponse, ...args: unknown[]): ServerResponse {
  return (ServerResponse.prototype.writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
}
/** The own properties meshlet's adapters give an admitted request and its response, in their order (`shape` mode). */
function shape(req: IncomingMessage, res: ServerResponse): void {
  if (!SHAPE) return;
  const r = req as unknown as Record<string | symbol, unknown>;
  r['meshlet'] = INFO;
  r[kScope] = INFO;
  r[kOn] = req.on;
  r['on'] = shapeOn;
  r['addListener'] = shapeOn;
  r['once'] = shapeOnce;
  (res as unknown as Record<string, unknown>)['writeHead'] = shapeWriteHead;
}

function plain(req: IncomingMessage, res: ServerResponse): void {
  shape(req, res);
  spin();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(BODY)) });
  res.end(BODY);
}

let port: number;
if (framework === 'http') {
  const server = mesh === undefined ? createServer(plain) : mesh.createServer(plain);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
} else if (framework === 'express') {
  const app = express();
  if (mesh !== undefined) app.use(mesh.express());
  if (SHAPE) app.use((req, res, next) => {
    shape(req, res);
    next();
  });
  app.get('/api/items/:id', (_req, res) => {
    spin();
    res.type('application/json').send(BODY);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  server.keepAliveTimeout = 60_000;
  port = (server.address() as AddressInfo).port;
} else {
  const app = Fastify(mesh === undefined ? {} : { ...mesh.fastifyOptions() });
  if (mesh !== undefined) await app.register(mesh.fastify() as never);
  if (SHAPE) app.addHook('onRequest', (request, reply, done) => {
    shape(request.raw, reply.raw);
    done();
  });
  app.get('/api/items/:id', async (_req, reply) => {
    spin();
    return reply.type('application/json').send(BODY);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  app.server.keepAliveTimeout = 60_000;
  port = (app.server.address() as AddressInfo).port;
}
// `--server-cpu-prof` (bench/inbound/run.ts): a CPU profile of the measured rounds only (not the
// start-up or the warm-up), started and stopped over IPC, written where run.ts says.
if (process.env['BENCH_CPU_PROF'] !== undefined) {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: Number(process.env['BENCH_CPU_PROF_INTERVAL'] ?? 100) });
  process.on('message', (m: { type?: string; file?: string }) => {
    if (m.type === 'profile-start') void session.post('Profiler.start').then(() => process.send?.({ type: 'profile-started' }));
    else if (m.type === 'profile-stop')
      void session.post('Profiler.stop').then(({ profile }) => {
        writeFileSync(m.file as string, JSON.stringify(profile));
        process.send?.({ type: 'profile-written' });
      });
  });
}
process.send?.({ type: 'ready', port, phases: mesh === undefined ? [] : mesh.diagnostics().inboundPhases });
process.on('disconnect', () => process.exit(0));
