/**
 * An app's answer to an upgrade request (`connection: upgrade`, `upgrade: websocket`) that is not a
 * 101 but names the upgrade itself (a 426 Upgrade Required, a 204), on the request path (no
 * `'upgrade'` listener). Envoy's inbound connection manager keeps such an answer's `connection` and
 * `upgrade` when request and answer are both upgrades, and gives one without a body and without
 * framing of its own `content-length: 0` unless it is a 1xx
 * (source/common/http/conn_manager_utility.cc `ConnectionManagerUtility::mutateResponseHeaders`:
 * `Utility::isUpgrade(*request_headers) && Utility::isUpgrade(response_headers)`, `no_body && !is_1xx`).
 * Any other answer loses them (the hop-by-hop test), and so does an upgrade answer to a request that
 * asked for none. Through every framework's real entry point; the callers read the wire: a raw TCP
 * socket (the head's exact lines, and a second request on the same connection) and curl.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import Koa from 'koa';
import type { AddressInfo } from 'node:net';
import { createMesh, type Mesh } from '../../src/index.ts';
import { listen } from '../helpers/frameworks.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const UPGRADE_HEADERS = { Connection: 'Upgrade', Upgrade: 'websocket', 'x-app': 'kept' };

/** The status asked for in the path (/426 or /204); a 426 has a body. */
function statusOf(url: string | undefined): number {
  return Number((url ?? '/426').slice(1, 4));
}

type Start = (mesh: Mesh) => Promise<{ port: number; close(): Promise<void> }>;

function nodeServer(mesh: Mesh, listener: (req: IncomingMessage, res: ServerResponse) => void): ReturnType<Start> {
  const server = mesh.createServer(listener);
  return listen(server).then((port) => ({ port, close: () => new Promise<void>((r) => server.close(() => r())) }));
}

const entries: [string, Start][] = [
  [
    'node:http (mesh.createServer)',
    (mesh) =>
      nodeServer(mesh, (req, res) => {
        req.resume();
        const status = statusOf(req.url);
        res.writeHead(status, UPGRADE_HEADERS);
        res.end(status === 426 ? 'use websocket' : undefined);
      }),
  ],
  ...(
    [
      ['Express 5', express],
      ['Express 4', express4],
    ] as const
  ).map(([name, make]): [string, Start] => [
    name,
    async (mesh) => {
      const app = (make as typeof express)();
      app.use(mesh.express());
      app.use((req, res) => {
        const status = statusOf(req.url);
        res.status(status).set(UPGRADE_HEADERS);
        if (status === 426) res.send('use websocket');
        else res.end();
      });
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
    },
  ]),
  [
    'Fastify 5',
    async (mesh) => {
      const app = Fastify({ ...mesh.fastifyOptions() });
      await app.register(mesh.fastify() as never);
      app.get('/*', async (req, reply) => {
        const status = statusOf(req.url);
        reply.code(status).headers(UPGRADE_HEADERS);
        return status === 426 ? 'use websocket' : reply.send();
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
    },
  ],
  [
    'Koa 3 (mesh.createServer(app.callback()))',
    (mesh) => {
      const app = new Koa();
      app.use(async (ctx) => {
        const status = statusOf(ctx.url);
        ctx.status = status;
        ctx.set(UPGRADE_HEADERS);
        if (status === 426) ctx.body = 'use websocket';
      });
      return nodeServer(mesh, app.callback());
    },
  ],
  [
    'Hono 4 (mesh.createServer(getRequestListener(app.fetch)))',
    (mesh) => {
      const app = new Hono();
      app.get('*', (c) => {
        const status = statusOf(new URL(c.req.url).pathname);
        return status === 426 ? c.body('use websocket', 426, UPGRADE_HEADERS) : c.body(null, 204, UPGRADE_HEADERS);
      });
      return nodeServer(mesh, getRequestListener(app.fetch));
    },
  ],
];

interface Head {
  status: number;
  /** Header lines, names lower-cased, in order. */
  lines: [string, string][];
  body: string;
  /** Whether the whole answer was read (its content-length, its last chunk, or a head that has no body). */
  done: boolean;
}

/** Two requests on one TCP connection (the first asking for an upgrade when `upgrade`), the answers as read off the wire. */
function twoOnOneConnection(port: number, path: string, upgrade: boolean): Promise<[Head, Head]> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    const first = upgrade ? 'connection: Upgrade\r\nupgrade: websocket\r\n' : '';
    s.write(`GET ${path} HTTP/1.1\r\nhost: reviews\r\n${first}\r\n`);
    s.setEncoding('latin1');
    s.on('data', (c: string) => {
      data += c;
      const heads = parse(data);
      if (heads.length === 1 && !s.writableEnded && heads[0]?.done === true) {
        s.write(`GET ${path} HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n`);
        s.end();
      }
    });
    s.on('error', reject);
    s.on('close', () => {
      const heads = parse(data);
      if (heads.length !== 2) reject(new Error(`expected two answers on the connection, got:\n${data}`));
      else resolve(heads as [Head, Head]);
    });
  });
}

/** The answers in `data`: heads and bodies (a chunked body as its chunks' text). */
function parse(data: string): Head[] {
  const out: Head[] = [];
  let rest = data;
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...headerLines] = rest.slice(0, end).split('\r\n');
    const lines = headerLines.map((l): [string, string] => [(l.slice(0, l.indexOf(':')) as string).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]);
    const status = Number((statusLine as string).slice(9, 12));
    rest = rest.slice(end + 4);
    let body = '';
    let done = status === 204 || status === 304;
    const cl = lines.find(([n]) => n === 'content-length');
    if (cl !== undefined) {
      body = rest.slice(0, Number(cl[1]));
      rest = rest.slice(Number(cl[1]));
      done = body.length === Number(cl[1]);
    } else if (lines.some(([n, v]) => n === 'transfer-encoding' && v === 'chunked')) {
      for (;;) {
        const nl = rest.indexOf('\r\n');
        if (nl < 0) break;
        const size = Number.parseInt(rest.slice(0, nl), 16);
        body += rest.slice(nl + 2, nl + 2 + size);
        rest = rest.slice(nl + 2 + size + 2);
        if (size === 0) {
          done = true;
          break;
        }
      }
    }
    out.push({ status, lines, body, done });
  }
  return out;
}

function values(head: Head, name: string): string[] {
  return head.lines.filter(([n]) => n === name).map(([, v]) => v);
}

const execFileP = promisify(execFile);

describe("an app's upgrade answer (not a 101) to an upgrade request", () => {
  for (const [name, start] of entries) {
    it(`${name}: a 426 keeps connection and upgrade, framed by the server; the connection serves the next request`, async () => {
      const mesh = await createMesh({ service: 'reviews', namespace: 'foo', logger: quiet, config: [] as never });
      const server = await start(mesh);
      try {
        const [a, b] = await twoOnOneConnection(server.port, '/426', true);
        assert.equal(a.status, 426);
        assert.equal(a.body, 'use websocket');
        assert.deepEqual(values(a, 'connection'), ['Upgrade'], `the head: ${JSON.stringify(a.lines)}`);
        assert.deepEqual(values(a, 'upgrade'), ['websocket']);
        assert.deepEqual(values(a, 'x-app'), ['kept']);
        assert.deepEqual(values(a, 'keep-alive'), []);
        // The next request on the connection is answered as any other.
        assert.equal(b.status, 426);
        assert.equal(b.body, 'use websocket');
        // It asked for no upgrade: its answer loses both (Envoy: isUpgrade(request) is false).
        assert.deepEqual(values(b, 'upgrade'), []);
        assert.ok(!values(b, 'connection').some((v) => /upgrade/i.test(v)), `connection: ${values(b, 'connection').join()}`);
        // curl, an independent client: the same head.
        const { stdout } = await execFileP('curl', ['-s', '-D', '-', '-o', '/dev/null', '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', `http://127.0.0.1:${server.port}/426`]);
        assert.match(stdout, /^HTTP\/1\.1 426 /);
        assert.match(stdout, /\r\nconnection: upgrade\r\n/i);
        assert.match(stdout, /\r\nupgrade: websocket\r\n/i);
      } finally {
        await server.close();
        await mesh.close();
      }
    });

    it(`${name}: a 204 keeps them and gets content-length: 0 (Envoy: no body, not a 1xx)`, async () => {
      const mesh = await createMesh({ service: 'reviews', namespace: 'foo', logger: quiet, config: [] as never });
      const server = await start(mesh);
      try {
        const [a, b] = await twoOnOneConnection(server.port, '/204', true);
        assert.equal(a.status, 204);
        assert.deepEqual(values(a, 'connection'), ['Upgrade'], `the head: ${JSON.stringify(a.lines)}`);
        assert.deepEqual(values(a, 'upgrade'), ['websocket']);
        assert.deepEqual(values(a, 'content-length'), ['0']);
        assert.deepEqual(values(a, 'transfer-encoding'), []);
        assert.equal(b.status, 204);
        assert.deepEqual(values(b, 'upgrade'), []);
        assert.deepEqual(values(b, 'content-length'), [], 'an answer to a request that asked for no upgrade is left as node frames it');
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }
});
