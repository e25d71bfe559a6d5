/**
 * Fastify onRequest hooks added before the mesh's plugin — as NestJS's FastifyAdapter adds its own
 * when it makes the instance, and runs Nest middleware in @fastify/middie's, all before the app
 * can register `mesh.fastify()` — see requests before the plugin judges them. The plugin says so
 * once, and `mesh.protect(fastify.server)` makes the server judge every request first — also the
 * server from `mesh.fastifyOptions()` (PeerAuthentication), on which it used to change nothing.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import Fastify, { type FastifyPluginCallback } from 'fastify';
import { createMesh } from '../../src/index.ts';

const denyAdmin = [
  { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-admin', namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } },
];

/** A stand-in for @fastify/middie: a plugin of its name, without encapsulation, running "middleware" in an onRequest hook. */
function middie(seen: string[]): FastifyPluginCallback {
  const plugin: FastifyPluginCallback = (instance, _opts, done) => {
    instance.addHook('onRequest', (req, _reply, next) => {
      seen.push(`${req.url} ${(req.raw as IncomingMessage & { meshlet?: unknown }).meshlet === undefined ? 'unjudged' : 'judged'}`);
      next();
    });
    done();
  };
  Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: '@fastify/middie', [Symbol.for('plugin-meta')]: { name: '@fastify/middie' } });
  return plugin;
}

async function run(options: boolean, protect: boolean): Promise<{ statuses: number[]; seen: string[]; warnings: string[] }> {
  const warnings: string[] = [];
  const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: denyAdmin as never, probePaths: ['/healthz'], logger: { warn: (m) => warnings.push(m) } });
  const app = Fastify(options ? { ...mesh.fastifyOptions() } : {});
  const seen: string[] = [];
  // What NestJS's FastifyAdapter does as it makes the instance: @fastify/middie (here a stand-in of
  // that name), whose onRequest hook runs Nest's middleware, registered before the app can register the mesh.
  await app.register(middie(seen));
  await app.register(mesh.fastify() as never);
  app.get('/admin', async () => 'ADMIN');
  app.get('/x', async () => 'x');
  app.get('/healthz', async () => 'ok');
  if (protect) mesh.protect(app.server);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  try {
    const statuses: number[] = [];
    // A health probe first: let through unjudged on any server, it says nothing about earlier hooks.
    for (const path of ['/healthz', '/x', '/admin', '/public/../admin', '/x']) statuses.push((await fetch(base + path)).status);
    return { statuses, seen, warnings: warnings.filter((w) => w.includes('@fastify/middie')) };
  } finally {
    await app.close();
    await mesh.close();
  }
}

describe('onRequest hooks added before mesh.fastify()', () => {
  for (const options of [true, false]) {
    const how = options ? 'with mesh.fastifyOptions()' : 'on Fastify\'s own server';
    it(`${how}: mesh.protect(fastify.server) judges every request before them, and nothing is warned`, async () => {
      const r = await run(options, true);
      // fetch resolves /public/../admin to /admin before sending.
      assert.deepEqual(r.statuses, [200, 200, 403, 403, 200]);
      // A refused request never reaches the earlier hook; an admitted one reaches it judged.
      assert.deepEqual(r.seen, ['/healthz unjudged', '/x judged', '/x judged']);
      assert.deepEqual(r.warnings, []);
    });
    it(`${how}, not protected: the plugin still refuses, and warns once that earlier hooks see unjudged requests`, async () => {
      const r = await run(options, false);
      assert.deepEqual(r.statuses, [200, 200, 403, 403, 200]);
      assert.deepEqual(r.seen, ['/healthz unjudged', '/x unjudged', '/admin unjudged', '/admin unjudged', '/x unjudged']);
      assert.equal(r.warnings.length, 1);
      assert.match(r.warnings[0] ?? '', /mesh\.protect\(fastify\.server\)/);
    });
  }
});

describe('mesh.fastify() registered before @fastify/middie', () => {
  it('warns about nothing', async () => {
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: denyAdmin as never, logger: { warn: (m) => warnings.push(m) } });
    const app = Fastify({ ...mesh.fastifyOptions() });
    await app.register(mesh.fastify() as never);
    await app.register(middie([]));
    app.get('/x', async () => 'x');
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/x`)).status, 200);
      assert.deepEqual(warnings.filter((w) => w.includes('@fastify/middie')), []);
    } finally {
      await app.close();
      await mesh.close();
    }
  });
});
