/**
 * The server side through each framework's real entry point — node:http (`mesh.createServer`),
 * Express 5 and Express 4 (`app.use(mesh.express())`), Fastify 5 (`fastify.register(mesh.fastify())`
 * with `mesh.fastifyOptions()`) — driven by one shared table: the same requests, the same answers.
 * Each app echoes what it saw: the path it routed on, `req.meshlet`, and its MeshContext.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { Client, request } from 'undici';

/** A request with its path sent exactly as written (a URL string would be normalized by the client). */
async function raw(port: number, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const client = new Client(`http://127.0.0.1:${port}`);
  try {
    const r = await client.request({ path, method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body });
    return { statusCode: r.statusCode, text: await r.body.text() };
  } finally {
    await client.close();
  }
}
import { createMesh, type Mesh } from '../../src/index.ts';

interface Seen {
  path: string;
  meshlet: boolean;
  deadlineIn: number | null;
  body?: unknown;
}

/** What every app answers: what it saw. */
function seen(mesh: Mesh, path: string, meshlet: unknown, body?: unknown): Seen {
  const d = mesh.context().deadline;
  return { path, meshlet: meshlet !== undefined && meshlet !== null, deadlineIn: Number.isFinite(d) ? Math.round((d - performance.now()) / 1000) : null, body };
}

interface Framework {
  name: string;
  start(mesh: Mesh): Promise<{ port: number; close(): Promise<void> }>;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

const frameworks: Framework[] = [
  {
    name: 'node:http (mesh.createServer)',
    async start(mesh) {
      const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (c) => chunks.push(c as Buffer));
        req.on('end', () => {
          // After body events: the context must still be there.
          const body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(seen(mesh, req.url ?? '', (req as { meshlet?: unknown }).meshlet, body)));
        });
      });
      const port = await listen(server);
      return { port, close: () => new Promise((r) => server.close(() => r())) };
    },
  },
  ...(
    [
      ['Express 5', express],
      ['Express 4', express4],
    ] as const
  ).map(([name, make]) => ({
    name,
    async start(mesh: Mesh) {
      const app = (make as typeof express)();
      app.use(mesh.express());
      app.use((make as typeof express).json());
      app.all('/{*rest}', (req, res) => res.json(seen(mesh, req.path, (req as { meshlet?: unknown }).meshlet, (req as { body?: unknown }).body)));
      if (name === 'Express 4') {
        // Express 4's path syntax.
        (app as unknown as { _router: { stack: unknown[] } })._router.stack.pop();
        app.all('*', (req, res) => res.json(seen(mesh, req.path, (req as { meshlet?: unknown }).meshlet, (req as { body?: unknown }).body)));
      }
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
    },
  })),
  {
    name: 'Fastify 5',
    async start(mesh) {
      const app = Fastify({ ...mesh.fastifyOptions() });
      await app.register(mesh.fastify() as never);
      app.all('/*', async (req) => seen(mesh, req.url.split('?')[0] as string, (req as unknown as { meshlet?: unknown }).meshlet, req.body));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
    },
  },
];

const rows: { name: string; method?: string; path: string; headers?: Record<string, string>; body?: unknown; status: number; path_?: string; deadlineIn?: number; text?: RegExp }[] = [
  { name: 'a plain request reaches the app with req.meshlet', path: '/a/b', status: 200, path_: '/a/b' },
  { name: '/public/../admin reaches the app as /admin', path: '/public/../admin', status: 200, path_: '/admin' },
  { name: '/%2e%2e/admin reaches the app as /admin', path: '/%2e%2e/admin', status: 200, path_: '/admin' },
  { name: '/./admin reaches the app as /admin', path: '/./admin', status: 200, path_: '/admin' },
  { name: 'a path Envoy refuses (an encoded NUL) is answered 400', path: '/xyz/.%00../abc', status: 400, text: /^Bad Request$/ },
  { name: 'x-envoy-expected-rq-timeout-ms becomes the MeshContext deadline', path: '/t', headers: { 'x-envoy-expected-rq-timeout-ms': '30000' }, status: 200, path_: '/t', deadlineIn: 30 },
  { name: 'a JSON body: the context is still there after the body was parsed', method: 'POST', path: '/post', headers: { 'content-type': 'application/json', 'x-envoy-expected-rq-timeout-ms': '60000' }, body: { a: 1 }, status: 200, path_: '/post', deadlineIn: 60 },
];

for (const fw of frameworks) {
  describe(fw.name, () => {
    let mesh: Mesh;
    let server: { port: number; close(): Promise<void> };
    before(async () => {
      mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [] });
      server = await fw.start(mesh);
    });
    after(async () => {
      await server.close();
      await mesh.close();
    });
    for (const row of rows) {
      it(row.name, async () => {
        const r = await raw(server.port, row.path, { method: row.method, headers: row.headers, body: row.body === undefined ? undefined : JSON.stringify(row.body) });
        const text = r.text;
        assert.equal(r.statusCode, row.status, text);
        if (row.text !== undefined) {
          assert.match(text, row.text);
          return;
        }
        const s = JSON.parse(text) as Seen;
        assert.equal(s.path, row.path_);
        assert.equal(s.meshlet, true, 'req.meshlet is set');
        assert.equal(s.deadlineIn, row.deadlineIn ?? null);
        if (row.body !== undefined) assert.deepEqual(s.body, row.body);
      });
    }
  });
}

describe('Fastify without mesh.fastifyOptions()', () => {
  it('refuses a path that is not normal (400) instead of serving it on a path other than the one judged', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [] });
    const app = Fastify();
    await app.register(mesh.fastify() as never);
    app.get('/*', async (req) => ({ path: req.url }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    try {
      assert.equal((await raw(port, '/a/b')).statusCode, 200);
      // A real socket and a raw path: fastify's inject() (and a URL string) would normalize it first.
      const bad = await raw(port, '/public/../admin');
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.text, 'Bad Request');
    } finally {
      await app.close();
      await mesh.close();
    }
  });
});

describe('mesh.createServer', () => {
  it('requires a listener', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [] });
    try {
      assert.throws(() => mesh.createServer(undefined as never), /a request listener is required/);
    } finally {
      await mesh.close();
    }
  });

  it('mesh.close() stops accepting and lets a request in flight finish', async () => {
    // A close that waited for closeTimeoutMs (a minute) instead of the request would time the test out.
    const mesh = await createMesh({ service: 'httpbin', config: [], closeTimeoutMs: 60_000 });
    let release: (() => void) | undefined;
    const server = mesh.createServer((_req, res) => {
      release = () => res.end('done');
    });
    const port = await listen(server);
    const inFlight = request(`http://127.0.0.1:${port}/slow`);
    while (release === undefined) await new Promise((r) => setTimeout(r, 5));
    const closing = mesh.close();
    await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(request(`http://127.0.0.1:${port}/new`, { reset: true }), /ECONNREFUSED|other side closed|SocketError/);
    (release as () => void)();
    const r = await inFlight;
    assert.equal(await r.body.text(), 'done');
    await closing;
    assert.equal(server.listening, false);
  });
});
