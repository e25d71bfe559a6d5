/**
 * Draining the servers the mesh makes (`mesh.close()`), as Envoy's HTTP connection manager drains
 * an HTTP/1 listener: an answer given while draining says `Connection: close`
 * (source/common/http/conn_manager_impl.cc, encodeHeaders), so a keep-alive caller opens a new
 * connection for its next request instead of sending it on one the server is about to close
 * (where it would be reset after it was sent, with no way to know whether it was processed).
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { createMesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';

/** A raw keep-alive HTTP/1.1 connection: what it received, and whether the server ended it. */
function keepAliveConnection(port: number): Promise<{ socket: Socket; received: () => string; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (data += c));
    const ended = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', reject);
    socket.once('connect', () => resolve({ socket, received: () => data, ended }));
  });
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}

describe('mesh.close(): HTTP/1 answers during the drain say Connection: close', () => {
  it('mesh.createServer: a request in flight when the drain starts is answered with Connection: close and its connection closed after it', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [], closeTimeoutMs: 60_000 });
    const waiting: ServerResponse[] = [];
    const server = mesh.createServer((_req, res) => void waiting.push(res));
    const port = await listen(server);
    const c = await keepAliveConnection(port);
    c.socket.write('GET /slow HTTP/1.1\r\nHost: httpbin\r\nConnection: keep-alive\r\n\r\n');
    await until(() => waiting.length === 1);
    const closing = mesh.close();
    await until(() => !server.listening);
    (waiting[0] as ServerResponse).end('done');
    await c.ended;
    await closing;
    assert.match(c.received(), /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(c.received(), /\r\nconnection: close\r\n/i, c.received());
    assert.match(c.received(), /\r\n\r\ndone$/);
  });

  it('Fastify on mesh.fastifyOptions(): an answer given during the drain says Connection: close', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [], closeTimeoutMs: 60_000 });
    const fastify = Fastify({ ...mesh.fastifyOptions() });
    await fastify.register(mesh.fastify());
    let release: (() => void) | undefined;
    fastify.get('/slow', () => new Promise((r) => (release = () => r('slow'))));
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    const c = await keepAliveConnection((fastify.server.address() as { port: number }).port);
    c.socket.write('GET /slow HTTP/1.1\r\nHost: httpbin\r\n\r\n');
    await until(() => release !== undefined);
    const closing = mesh.close();
    await until(() => !fastify.server.listening);
    (release as () => void)();
    await c.ended;
    await closing;
    await fastify.close();
    assert.match(c.received(), /^HTTP\/1\.1 200 OK\r\n(?:[^\r\n]*\r\n)*connection: close\r\n[\s\S]*\r\n\r\nslow$/i, c.received());
  });
});
