/**
 * One server of the inbound benchmark, in its own process: node:http, Express 5 or Fastify 5,
 * with or without meshlet in front, and with meshlet plus telemetry (`mesh-otel`) (started by
 * bench/inbound/run.ts over IPC). It answers
 * `GET /api/items/<n>` with a small JSON body and reports its port.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';

const [framework, withMesh, configDir] = process.argv.slice(2) as ['http' | 'express' | 'fastify', 'raw' | 'mesh' | 'mesh-otel', string];
const BODY = JSON.stringify({ id: 1, name: 'item', tags: ['a', 'b'] });

// Telemetry on: startTelemetry() (Prometheus endpoint, OTLP span export to a sink), as bench/outbound's -otel variants.
if (withMesh === 'mesh-otel') await (await import('../lib/otel.ts')).startBenchTelemetry();
const { createMesh } = withMesh !== 'raw' ? await import('../../src/index.ts') : { createMesh: undefined };
const mesh = createMesh === undefined ? undefined : await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin', version: 'v1' }, config: configDir, watch: false });

function plain(_req: IncomingMessage, res: ServerResponse): void {
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
  app.get('/api/items/:id', (_req, res) => {
    res.type('application/json').send(BODY);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  server.keepAliveTimeout = 60_000;
  port = (server.address() as AddressInfo).port;
} else {
  const app = Fastify(mesh === undefined ? {} : { ...mesh.fastifyOptions() });
  if (mesh !== undefined) await app.register(mesh.fastify() as never);
  app.get('/api/items/:id', async (_req, reply) => reply.type('application/json').send(BODY));
  await app.listen({ port: 0, host: '127.0.0.1' });
  app.server.keepAliveTimeout = 60_000;
  port = (app.server.address() as AddressInfo).port;
}
process.send?.({ type: 'ready', port, phases: mesh === undefined ? [] : mesh.diagnostics().inboundPhases });
process.on('disconnect', () => process.exit(0));
