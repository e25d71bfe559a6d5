/**
 * The headers an external authorizer sends to the caller.
 *
 * A denial with several lines of one header — an OAuth2 login redirect
 * that sets two cookies (oauth2-proxy splits a large session cookie into `_0`, `_1`) — reaches
 * the caller as several lines, as Envoy's ext_authz filter adds each (`addCopy`, "allowing the
 * same header to be set multiple times, e.g. `Set-Cookie`"), not joined into one value with `,`,
 * which a browser reads as one broken cookie. Through node:http (`mesh.createServer`), Express
 * and Fastify, with a real HTTP authorizer on 127.0.0.1.
 *
 * On an allow, `headersToDownstreamOnAllow` are appended to the app's response (Envoy's
 * `addCopy` when it encodes the response, each line of its own): an authorizer refreshing its
 * session cookies and an app setting its own all reach the caller.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import express from 'express';
import Fastify from 'fastify';
import { frameworks, listen, raw } from '../helpers/frameworks.ts';

const COOKIES = ['_oauth2_proxy_csrf=abc; Path=/; HttpOnly', '_oauth2_proxy_0=def; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/'];

/** Denies every check with a login redirect setting two cookies, and two lines of x-ext-authz-reason. */
async function authorizer(): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => {
    res.setHeader('set-cookie', COOKIES);
    res.setHeader('x-ext-authz-reason', ['no-session', 'redirected']);
    // Meaningful on an allow only; Envoy drops it from every answer, a denial's included.
    res.setHeader('x-envoy-auth-headers-to-remove', 'cookie');
    res.writeHead(302, { location: 'https://login.example.com/oauth2/start' });
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

const policy = {
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'ext', namespace: 'foo' },
  spec: { action: 'CUSTOM', provider: { name: 'oauth' }, rules: [{ to: [{ operation: { paths: ['/app/*'] } }] }] },
};

describe('a denial with several set-cookie lines: each reaches the caller as a line of its own', () => {
  let ext: Awaited<ReturnType<typeof authorizer>>;
  const meshes: Mesh[] = [];
  before(async () => {
    ext = await authorizer();
  });
  after(async () => {
    for (const m of meshes) await m.close();
    await new Promise<void>((r) => ext.server.close(() => r()));
  });

  for (const [name, deny] of [
    ['headersToDownstreamOnDeny unset (every header but Host)', undefined],
    ['headersToDownstreamOnDeny listing them', ['set-cookie', 'x-ext-authz-*', 'x-envoy-*']],
  ] as const) {
    for (const fw of frameworks.filter((f) => /node:http|Express 5|Fastify/.test(f.name))) {
      it(`${fw.name}, ${name}`, async () => {
        const mesh = await createMesh({
          service: 'httpbin',
          namespace: 'foo',
          labels: { app: 'httpbin' },
          config: [policy] as never,
          extensionProviders: [{ name: 'oauth', envoyExtAuthzHttp: { service: '127.0.0.1', port: ext.port, ...(deny === undefined ? {} : { headersToDownstreamOnDeny: [...deny] }) } }],
          logger: { warn: () => undefined, info: () => undefined },
        });
        meshes.push(mesh);
        const s = await fw.start(mesh);
        try {
          const r = await raw(s.port, '/app/a');
          assert.equal(r.statusCode, 302);
          assert.equal(r.headers.location, 'https://login.example.com/oauth2/start');
          assert.deepEqual(r.headers['set-cookie'], COOKIES);
          assert.deepEqual(r.headers['x-ext-authz-reason'], ['no-session', 'redirected']);
          assert.equal(r.headers['x-envoy-auth-headers-to-remove'], undefined);
        } finally {
          await s.close();
        }
      });
    }
  }
});

/** Allows every check, refreshing the session cookies and saying who it is (headersToDownstreamOnAllow). */
async function allowingAuthorizer(): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => {
    // A session cookie split in two, as oauth2-proxy splits a large one.
    res.writeHead(200, { 'set-cookie': ['_oauth2_proxy_0=refreshed; Path=/', '_oauth2_proxy_1=more; Path=/'], 'x-auth-user': 'alice' });
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

describe("headersToDownstreamOnAllow: the authorizer's headers are added to the app's response, after the app's own (Envoy appends them)", () => {
  let ext: Awaited<ReturnType<typeof allowingAuthorizer>>;
  let mesh: Mesh;
  before(async () => {
    ext = await allowingAuthorizer();
    mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      labels: { app: 'httpbin' },
      config: [policy] as never,
      extensionProviders: [{ name: 'oauth', envoyExtAuthzHttp: { service: '127.0.0.1', port: ext.port, headersToDownstreamOnAllow: ['set-cookie', 'x-auth-user'] } }],
      logger: { warn: () => undefined, info: () => undefined },
    });
  });
  after(async () => {
    await mesh.close();
    await new Promise<void>((r) => ext.server.close(() => r()));
  });

  const apps: [string, (port: number) => Promise<{ port: number; close(): Promise<void> }>][] = [
    [
      'node:http, the app calling setHeader',
      async () => {
        const s = mesh.createServer((_req, res) => {
          res.setHeader('set-cookie', 'app=1; Path=/');
          res.end('app');
        });
        const port = await listen(s);
        return { port, close: () => new Promise<void>((r) => s.close(() => r())) };
      },
    ],
    [
      'node:http, the app passing its headers to writeHead',
      async () => {
        const s = mesh.createServer((_req, res) => {
          res.writeHead(200, { 'Set-Cookie': 'app=1; Path=/' });
          res.end('app');
        });
        const port = await listen(s);
        return { port, close: () => new Promise<void>((r) => s.close(() => r())) };
      },
    ],
    [
      'Express 5 (res.cookie)',
      async () => {
        const app = express();
        app.use(mesh.express());
        app.get('/{*rest}', (_req, res) => {
          res.cookie('app', '1');
          res.send('app');
        });
        const s = app.listen(0, '127.0.0.1');
        await new Promise((r) => s.once('listening', r));
        return { port: (s.address() as AddressInfo).port, close: () => new Promise<void>((r) => s.close(() => r())) };
      },
    ],
    [
      'Fastify 5 (reply.header)',
      async () => {
        const app = Fastify({ ...mesh.fastifyOptions() });
        await app.register(mesh.fastify() as never);
        app.get('/*', async (_req, reply) => {
          reply.header('set-cookie', 'app=1; Path=/');
          return 'app';
        });
        await app.listen({ port: 0, host: '127.0.0.1' });
        return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
      },
    ],
  ];
  for (const [name, start] of apps) {
    it(name, async () => {
      const s = await start(0);
      try {
        const r = await raw(s.port, '/app/a');
        assert.equal(r.statusCode, 200, r.text);
        assert.equal(r.text, 'app');
        const cookies = ([] as string[]).concat(r.headers['set-cookie'] ?? []);
        assert.equal(cookies.length, 3, JSON.stringify(cookies));
        assert.match(cookies[0] as string, /^app=1/);
        assert.deepEqual(cookies.slice(1), ['_oauth2_proxy_0=refreshed; Path=/', '_oauth2_proxy_1=more; Path=/']);
        assert.equal(r.headers['x-auth-user'], 'alice');
      } finally {
        await s.close();
      }
    });
  }
});
