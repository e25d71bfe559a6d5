/**
 * The server frameworks as users run them — node:http (`mesh.createServer`), Express 5 and
 * Express 4 (`app.use(mesh.express())`), Fastify 5 (`fastify.register(mesh.fastify())` with
 * `mesh.fastifyOptions()`), Koa 3 (`mesh.createServer(app.callback())`) and Hono 4 on its node
 * adapter (`mesh.createServer(getRequestListener(app.fetch))`), as docs/server.md promises any
 * (req, res) listener works — each serving one app that echoes what it saw: the path it routed
 * on, the query the framework parsed, the headers that matter to the mesh, `req.meshlet`, the
 * MeshContext deadline, and the body. Shared by the server-side tables, so every row runs
 * through every framework.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import Koa from 'koa';
import { Client } from 'undici';
import type { Mesh } from '../../src/index.ts';

/** A request with its path sent exactly as written (a URL string would be normalized by the client). */
export async function raw(
  port: number,
  path: string,
  init: { method?: string; headers?: Record<string, string | string[]>; body?: string } = {},
): Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const client = new Client(`http://127.0.0.1:${port}`);
  try {
    const r = await client.request({ path, method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body });
    return { statusCode: r.statusCode, headers: r.headers, text: await r.body.text() };
  } finally {
    await client.close();
  }
}

/** What every app answers. */
export interface Seen {
  path: string;
  query: Record<string, unknown>;
  headers: Record<string, unknown>;
  meshlet: { requestPrincipal?: string; claims?: Record<string, unknown>; authz?: { decision: string; policy?: string; rule?: number } } | null;
  deadlineIn: number | null;
  body?: unknown;
}

/** A request's body as JSON (undefined when empty), read from the node stream. */
async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
}

/** Headers the apps echo back. */
const ECHOED = ['authorization', 'cookie', 'x-jwt-sub', 'x-jwt-payload', 'x-ext-authz-added', 'x-forwarded-client-cert', 'x-envoy-internal', 'x-envoy-max-retries', 'x-envoy-expected-rq-timeout-ms'];

function seen(mesh: Mesh, path: string, query: unknown, headers: IncomingMessage['headers'], meshlet: unknown, body?: unknown): Seen {
  const d = mesh.context().deadline;
  const h: Record<string, unknown> = {};
  for (const k of ECHOED) if (headers[k] !== undefined) h[k] = headers[k];
  return {
    path,
    query: { ...(query as Record<string, unknown>) },
    headers: h,
    meshlet: (meshlet ?? null) as Seen['meshlet'],
    deadlineIn: Number.isFinite(d) ? Math.round((d - performance.now()) / 1000) : null,
    body,
  };
}

export interface Framework {
  name: string;
  start(mesh: Mesh): Promise<{ port: number; close(): Promise<void> }>;
}

export function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

export const frameworks: Framework[] = [
  {
    name: 'node:http (mesh.createServer)',
    async start(mesh) {
      const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on('data', (c) => chunks.push(c as Buffer));
        req.on('end', () => {
          // After body events: the context must still be there.
          const body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
          const url = new URL(req.url ?? '/', 'http://x');
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(seen(mesh, url.pathname, Object.fromEntries(url.searchParams), req.headers, (req as { meshlet?: unknown }).meshlet, body)));
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
      const handler = (req: express.Request, res: express.Response) => {
        res.json(seen(mesh, req.path, req.query, req.headers, (req as { meshlet?: unknown }).meshlet, (req as { body?: unknown }).body));
      };
      // Each version's own catch-all syntax.
      if (name === 'Express 4') app.all('*', handler);
      else app.all('/{*rest}', handler);
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
      app.all('/*', async (req) => seen(mesh, req.url.split('?')[0] as string, req.query, req.headers, (req as unknown as { meshlet?: unknown }).meshlet, req.body));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
    },
  },
  {
    name: 'Koa 3 (mesh.createServer(app.callback()))',
    async start(mesh) {
      const app = new Koa();
      // Koa reads the path, query and headers from the request the mesh handed on.
      app.use(async (ctx) => {
        const body = await jsonBody(ctx.req);
        ctx.body = seen(mesh, ctx.path, ctx.query, ctx.headers, (ctx.req as { meshlet?: unknown }).meshlet, body);
      });
      const server = mesh.createServer(app.callback());
      const port = await listen(server);
      return { port, close: () => new Promise((r) => server.close(() => r())) };
    },
  },
  {
    name: "Hono 4 (mesh.createServer(getRequestListener(app.fetch)))",
    async start(mesh) {
      const app = new Hono<{ Bindings: { incoming: IncomingMessage } }>();
      // Hono's node adapter builds a WHATWG Request from the node request (its rawHeaders and url).
      app.all('*', async (c) => {
        const text = await c.req.text();
        const headers: IncomingMessage['headers'] = {};
        for (const [k, v] of c.req.raw.headers) headers[k] = v;
        return c.json(seen(mesh, c.req.path, c.req.query(), headers, (c.env.incoming as { meshlet?: unknown }).meshlet, text === '' ? undefined : JSON.parse(text)));
      });
      const server = mesh.createServer(getRequestListener(app.fetch));
      const port = await listen(server);
      return { port, close: () => new Promise((r) => server.close(() => r())) };
    },
  },
];
