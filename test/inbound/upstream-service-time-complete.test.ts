/**
 * `x-envoy-upstream-service-time` on a served response counts from the request's end, and a
 * response written before the request's body has all come has none: Envoy's router sets it in
 * `Filter::onUpstreamHeaders` only when `downstream_request_complete_time_` is valid ("Only send
 * upstream service time if we received the complete request and this is not a premature
 * response", source/common/router/router.cc), as the client side already does
 * (core/upstream-service-time.ts serviceTimeAt). Through node:http (mesh.createServer) and Fastify
 * (mesh.fastifyOptions), with a raw client that holds the body back.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { type Echo, unary } from '../helpers/grpc.ts';
import { plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const NAME = 'x-envoy-upstream-service-time';
/** How long the client holds the rest of the body back. */
const HOLD_MS = 400;

/**
 * The app: `/early-later` answers on the turn after it is handed the request, without reading the body;
 * `/read` answers when the body has been read to its end; `/ignore` answers a body it never reads,
 * in the turn it is handed the request, and `/ignore-later` on a later turn.
 */
function app(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/ignore') {
    res.end('ignored');
    return;
  }
  if (req.url === '/ignore-later') {
    setImmediate(() => res.end('ignored'));
    return;
  }
  if (req.url === '/early-later') {
    setImmediate(() => {
      res.setHeader(NAME, 'app');
      res.end('early');
    });
    return;
  }
  req.resume();
  req.on('end', () => res.end('read'));
}

async function nodeServer(mesh: Mesh): Promise<{ port: number; close(): Promise<void> }> {
  const s = mesh.createServer(app);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as AddressInfo).port, close: () => new Promise<void>((r) => s.close(() => r())) };
}

async function fastifyServer(mesh: Mesh): Promise<{ port: number; close(): Promise<void> }> {
  const f = Fastify({ ...mesh.fastifyOptions() });
  await f.register(mesh.fastify() as never);
  // The raw body, as the app reads it.
  f.removeAllContentTypeParsers();
  f.addContentTypeParser('*', (_req, _payload, done) => done(null));
  for (const path of ['/read', '/ignore', '/ignore-later', '/early-later']) {
    f.post(path, (req, reply) => {
      reply.hijack();
      app(req.raw, reply.raw);
    });
  }
  await f.listen({ port: 0, host: '127.0.0.1' });
  return { port: (f.server.address() as AddressInfo).port, close: () => f.close() };
}

/** Sends a POST's head and half its body, holds the rest back `HOLD_MS` (or until the head came), and returns the response head's lines. */
async function post(port: number, path: string): Promise<Map<string, string>> {
  const sock: Socket = connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  let text = '';
  const head = new Promise<string>((resolve, reject) => {
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const i = text.indexOf('\r\n\r\n');
      if (i >= 0) resolve(text.slice(0, i));
    });
    sock.on('error', reject);
  });
  sock.write(`POST ${path} HTTP/1.1\r\nhost: httpbin\r\ncontent-type: application/octet-stream\r\ncontent-length: 10\r\n\r\n01234`);
  const early = await Promise.race([head, sleep(HOLD_MS).then(() => undefined)]);
  sock.write('56789');
  const h = early ?? (await head);
  sock.destroy();
  const lines = new Map<string, string>();
  for (const l of h.split('\r\n').slice(1)) {
    const i = l.indexOf(':');
    lines.set(l.slice(0, i).toLowerCase(), l.slice(i + 1).trim());
  }
  return lines;
}

for (const [name, start] of [
  ['node:http', nodeServer],
  ['Fastify', fastifyServer],
] as const) {
  describe(`${name}: x-envoy-upstream-service-time and the request's body`, () => {
    it('a head written before the body has all come has none of the mesh (the app’s own passes); one after counts from the body’s end', async () => {
      const mesh = await createMesh({ service: 'httpbin', config: [] as never, logger: quiet });
      const server = await start(mesh);
      try {
        // (An answer in the very turn the request was handed over cannot tell: it is taken as premature, see service-time.ts.)
        const early = await post(server.port, '/early-later');
        assert.equal(early.get(NAME), 'app', 'a premature response: Envoy writes none, the app’s own is left');
        const read = await post(server.port, '/read');
        const v = read.get(NAME);
        assert.match(v ?? '', /^\d+$/);
        // The app answered in the same turn as the body's end; the body's wait is not the app's time.
        assert.ok(Number(v) < HOLD_MS, `${NAME} ${v} counts from the body's end, not from the request's head ${HOLD_MS} ms before it`);
      } finally {
        await server.close();
        await mesh.close();
      }
    });

    it('a small body that came with the head is complete: the app’s answer (on a later turn) has it whether or not the app reads the body', async () => {
      const mesh = await createMesh({ service: 'httpbin', config: [] as never, logger: quiet });
      const server = await start(mesh);
      try {
        for (const path of ['/ignore-later', '/read']) {
          const r = await request(`http://127.0.0.1:${server.port}${path}`, { method: 'POST', body: 'hello', headers: { 'content-type': 'application/octet-stream' } });
          await r.body.text();
          assert.match(String(r.headers[NAME]), /^\d+$/, `${path}: ${String(r.headers[NAME])}`);
        }
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  });
}

describe('HTTP/2 (mesh.handler on an http2 server): a body the caller has sent whole', () => {
  it('has the header whether or not the app reads it; a head before the body ends has none', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [] as never, logger: quiet });
    const s = http2.createServer(mesh.handler(app as never) as never);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const c = http2.connect(`http://127.0.0.1:${(s.address() as AddressInfo).port}`);
    const ask = (path: string, whole: boolean) =>
      new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const r = c.request({ ':method': 'POST', ':path': path });
        r.on('response', (h) => {
          resolve(h);
          if (!whole) r.end('rest');
        });
        r.on('error', reject);
        r.resume();
        if (whole) r.end('hello');
        else r.write('part');
      });
    try {
      for (const path of ['/ignore-later', '/read']) assert.match(String((await ask(path, true))[NAME]), /^\d+$/, path);
      assert.equal((await ask('/early-later', false))[NAME], 'app', 'premature: the app’s own');
    } finally {
      c.close();
      await new Promise<void>((r) => s.close(() => r()));
      await mesh.close();
    }
  });
});

let checks = 0;
describe('x-envoy-upstream-service-time after an external authorizer', () => {
  /** An HTTP authorizer (envoyExtAuthzHttp) that allows every check after `HOLD_MS`. */
  async function slowAuthorizer(): Promise<{ port: number; close(): Promise<void> }> {
    const s = createServer((req, res) => {
      checks++;
      req.resume();
      void sleep(HOLD_MS).then(() => res.end());
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return {
      port: (s.address() as AddressInfo).port,
      close: () => {
        s.closeAllConnections();
        return new Promise<void>((r) => s.close(() => r()));
      },
    };
  }

  it('a gRPC call: counted from when the request reached the handler complete, not from its half-close while the authorizer decided (Envoy’s router sees the request after ext_authz)', async () => {
    const ext = await slowAuthorizer();
    const mesh = await createMesh({
      service: 'echo',
      logger: quiet,
      extensionProviders: [{ name: 'slow-authz', envoyExtAuthzHttp: { service: '127.0.0.1', port: ext.port } }],
      config: [
        {
          apiVersion: 'security.istio.io/v1',
          kind: 'AuthorizationPolicy',
          metadata: { name: 'ext', namespace: 'default' },
          spec: { action: 'CUSTOM', provider: { name: 'slow-authz' }, rules: [{ to: [{ operation: { paths: ['/meshlet.test.Echo/*'] } }] }] },
        },
      ] as never,
    });
    const s = await startMeshGrpcServer(mesh, 'insecure');
    const client = plainClient(s.port) as unknown as Echo;
    try {
      const r = await unary(client, { text: 'hi' });
      assert.equal(r.error, undefined);
      const v = r.metadata?.get(NAME)[0];
      assert.match(String(v), /^\d+$/);
      // The handler answers at once; the authorizer's wait came before the request reached it.
      assert.equal(checks, 1, 'the authorizer was asked');
      assert.ok(Number(v) < HOLD_MS, `${NAME} ${String(v)} leaves out the authorizer's ${HOLD_MS} ms`);
    } finally {
      client.close();
      await s.close();
      await mesh.close();
      await ext.close();
    }
  });
});
