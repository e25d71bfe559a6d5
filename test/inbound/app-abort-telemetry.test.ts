/**
 * Who ended an unfinished response, in the inbound observation: an app that destroys its
 * response (or its socket) while the caller still waits is what Envoy's inbound cluster sees as
 * its upstream connection ending — `UC`, `upstream_reset_before_response_started{connection_termination}`
 * (status 0) or `upstream_reset_after_response_started{connection_termination}` (the status it
 * sent) — never `DC downstream_remote_disconnect`, which blamed the caller. A caller that leaves
 * is still `DC`, and so is the server closing its connections (`downstream_local_disconnect`). Through node:http (`mesh.createServer`, HTTP/1.1 and HTTP/2 over the bridge),
 * Express and Fastify.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer as rawServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import type { InboundEndMessage } from '../../src/core/observe.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** What the app does: `/before` destroys before the head, `/after` after head and a chunk, `/socket` destroys the socket, `/hold` waits. */
const app: Handler = (req, res) => {
  if (req.url === '/before') res.destroy();
  else if (req.url === '/socket') req.socket.destroy();
  else if (req.url === '/socket-err') req.socket.destroy(new Error('the app gave up'));
  else if (req.url === '/after') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
    setTimeout(() => res.destroy(), 20);
  }
  // '/hold': never answers (the caller leaves).
};

interface Started {
  port: number;
  close(): Promise<void>;
}

const servers: { name: string; start(mesh: Mesh): Promise<Started> }[] = [
  {
    name: 'node:http (mesh.createServer)',
    async start(mesh) {
      const s = mesh.createServer(app);
      return { port: await listen(s as unknown as Server), close: () => new Promise<void>((r) => s.close(() => r())) };
    },
  },
  {
    name: 'Express 5',
    async start(mesh) {
      const a = express();
      a.use(mesh.express());
      a.use((req, res) => app(req, res));
      const s = rawServer(a);
      return { port: await listen(s), close: () => new Promise<void>((r) => s.close(() => r())) };
    },
  },
  {
    name: 'Fastify 5',
    async start(mesh) {
      const f = Fastify({ ...mesh.fastifyOptions() });
      await f.register(mesh.fastify() as never);
      f.all('/*', (request, reply) => {
        reply.hijack();
        app(request.raw, reply.raw);
      });
      await f.listen({ port: 0, host: '127.0.0.1' });
      const a = f.server.address();
      return { port: typeof a === 'object' && a !== null ? a.port : 0, close: () => f.close() };
    },
  },
];

/** Sends GET `path` over HTTP/1.1; `leaveAfterMs` destroys the request (the caller leaves). */
function get1(port: number, path: string, leaveAfterMs?: number): Promise<void> {
  return new Promise((resolve) => {
    const r = request({ host: '127.0.0.1', port, path, agent: false });
    r.on('error', () => resolve());
    r.on('response', (res) => {
      res.on('data', () => {});
      res.on('error', () => resolve());
      res.on('aborted', () => resolve());
      res.on('close', () => resolve());
    });
    r.end();
    if (leaveAfterMs !== undefined) setTimeout(() => r.destroy(), leaveAfterMs);
  });
}

/** Sends GET `path` over HTTP/2 (prior knowledge, as meshlet's own client does); `leaveAfterMs` resets the stream. */
function get2(port: number, path: string, leaveAfterMs?: number): Promise<void> {
  return new Promise((resolve) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const s = session.request({ ':path': path });
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('close', () => {
      session.close();
      resolve();
    });
    s.end();
    if (leaveAfterMs !== undefined) setTimeout(() => s.close(), leaveAfterMs);
  });
}

describe('an unfinished response: the app ended it (UC) or the caller did (DC)', () => {
  const ends: InboundEndMessage[] = [];
  const onEnd = (m: unknown) => ends.push(m as InboundEndMessage);
  before(() => subscribe('meshlet:inbound:end', onEnd));
  after(() => unsubscribe('meshlet:inbound:end', onEnd));

  async function endOf(mesh: Mesh): Promise<[number, string, string]> {
    for (let i = 0; i < 400 && !ends.some((m) => m.workload === mesh.identity); i++) await new Promise((r) => setTimeout(r, 5));
    const e = ends.filter((m) => m.workload === mesh.identity);
    assert.equal(e.length, 1, 'one inbound:end');
    const m = e[0] as InboundEndMessage;
    return [m.status, m.flags, m.details];
  }

  const BEFORE = 'upstream_reset_before_response_started{connection_termination}';
  const AFTER = 'upstream_reset_after_response_started{connection_termination}';
  const rows: { path: string; leave?: number; want: [number, string, string] }[] = [
    { path: '/before', want: [0, 'UC', BEFORE] },
    { path: '/socket', want: [0, 'UC', BEFORE] },
    { path: '/socket-err', want: [0, 'UC', BEFORE] },
    { path: '/after', want: [200, 'UC', AFTER] },
    { path: '/hold', leave: 50, want: [0, 'DC', 'downstream_remote_disconnect'] },
  ];

  for (const fw of servers) {
    for (const row of rows) {
      it(`${fw.name}, HTTP/1.1: ${row.path} → ${row.want[1]} ${row.want[2]}`, async () => {
        const mesh = await createMesh({ service: 'abort', namespace: 'foo', config: [], logger: { warn: () => {} } });
        const server = await fw.start(mesh);
        try {
          ends.length = 0;
          await get1(server.port, row.path, row.leave);
          assert.deepEqual(await endOf(mesh), row.want);
        } finally {
          await server.close();
          await mesh.close();
        }
      });
    }
  }

  it('node:http (mesh.createServer): the server closing its connections (closeAllConnections, mesh.close() past its bound) is DC downstream_local_disconnect', async () => {
    const mesh = await createMesh({ service: 'abort', namespace: 'foo', config: [], logger: { warn: () => {} } });
    let arrived: () => void = () => {};
    const inApp = new Promise<void>((r) => (arrived = r));
    const s = mesh.createServer(() => arrived());
    const port = await listen(s as unknown as Server);
    try {
      ends.length = 0;
      const done = get1(port, '/hold');
      await inApp;
      s.closeAllConnections();
      await done;
      assert.deepEqual(await endOf(mesh), [0, 'DC', 'downstream_local_disconnect(server_closed_connections)']);
    } finally {
      await new Promise<void>((r) => s.close(() => r()));
      await mesh.close();
    }
  });

  // HTTP/2 callers reach the app over the bridge's in-memory HTTP/1.1 connection: the app's
  // destroy and the caller's stream reset must still be told apart there.
  for (const row of rows.filter((r) => !r.path.startsWith('/socket'))) {
    it(`node:http (mesh.createServer), HTTP/2: ${row.path} → ${row.want[1]} ${row.want[2]}`, async () => {
      const mesh = await createMesh({ service: 'abort', namespace: 'foo', config: [], logger: { warn: () => {} } });
      const server = await servers[0]!.start(mesh);
      try {
        ends.length = 0;
        await get2(server.port, row.path, row.leave);
        assert.deepEqual(await endOf(mesh), row.want);
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }
});
