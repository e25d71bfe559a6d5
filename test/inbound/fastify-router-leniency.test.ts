/**
 * Fastify's router options that route two spellings of a path alike (`ignoreTrailingSlash`,
 * `ignoreDuplicateSlashes`) against an exact DENY: the route a policy denies is never reached,
 * whichever way the app wires the mesh — with `mesh.fastifyOptions()` (find-my-way drops a
 * trailing slash of what rewriteUrl returns once more), without it (the router merges `//admin`
 * into `/admin` after the mesh judged `//admin`), or with the server protected
 * (`mesh.protect(fastify.server)` judges the target before Fastify's router reads it).
 */
import assert from 'node:assert/strict';
import { type AddressInfo, connect } from 'node:net';
import { after, describe, it } from 'node:test';
import Fastify from 'fastify';
import { createMesh, type Mesh } from '../../src/index.ts';

/** One request's status line and body, sent as raw bytes (nothing rewrites the target on the way). */
function get(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (out += d));
    s.on('error', reject);
    s.on('close', () => {
      const end = out.indexOf('\r\n\r\n');
      resolve({ status: Number(out.split(' ')[1]), body: end === -1 ? '' : out.slice(end + 4) });
    });
    s.write(`GET ${target} HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n`);
  });
}

const denyExact = [
  { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny-admin', namespace: 'foo' }, spec: { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] } },
];

const BOTH = { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true };
const setups = [
  { name: 'mesh.fastifyOptions(), ignoreTrailingSlash only', options: true, router: { ignoreTrailingSlash: true }, protect: false },
  { name: 'without mesh.fastifyOptions(), both options', options: false, router: BOTH, protect: false },
  { name: 'without mesh.fastifyOptions(), both options, mesh.protect(fastify.server)', options: false, router: BOTH, protect: true },
  { name: 'mesh.fastifyOptions(), both options, mesh.protect(fastify.server)', options: true, router: BOTH, protect: true },
] as const;

describe("Fastify's ignoreTrailingSlash / ignoreDuplicateSlashes never route a request to a route the policy denies", () => {
  const closers: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  for (const setup of setups) {
    it(setup.name, async () => {
      const mesh: Mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: denyExact as never, logger: { warn: () => {} } });
      closers.push(() => mesh.close());
      const app = Fastify({ ...(setup.options ? mesh.fastifyOptions() : {}), routerOptions: setup.router });
      await app.register(mesh.fastify() as never);
      app.get('/admin', async () => 'ADMIN');
      app.get('/*', async () => 'other');
      if (setup.protect) mesh.protect(app.server);
      await app.listen({ port: 0, host: '127.0.0.1' });
      closers.push(() => app.close());
      const port = (app.server.address() as AddressInfo).port;
      // The controls: the policy denies the route, and lets the rest through.
      assert.equal((await get(port, '/admin')).status, 403);
      assert.deepEqual(await get(port, '/x'), { status: 200, body: 'other' });
      for (const target of ['/admin/', '/admin//', '/admin///', '//admin', '//admin//', '///admin']) {
        const r = await get(port, target);
        // Denied (403), refused as routed on another path than the one judged (400), or served by
        // another route (a router that keeps `//admin` apart from `/admin`) — never the denied one.
        assert.ok(r.status === 403 || r.status === 400 || (r.status === 200 && r.body === 'other'), `${target} reached ${r.status} ${r.body}`);
      }
    });
  }
});

describe('a rewriteUrl of the app\'s own under mesh.protect(fastify.server)', () => {
  it('is the app\'s: the target as received is judged, and the rewritten path is served (no router leniency to refuse)', async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: denyExact as never, logger: { warn: () => {} } });
    const app = Fastify({ rewriteUrl: (req) => (req.url ?? '/').replace(/^\/v2\//, '/') });
    await app.register(mesh.fastify() as never);
    app.get('/admin', async () => 'ADMIN');
    app.get('/x', async () => 'x');
    mesh.protect(app.server);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    try {
      assert.deepEqual(await get(port, '/v2/x'), { status: 200, body: 'x' });
      assert.equal((await get(port, '/admin')).status, 403);
    } finally {
      await app.close();
      await mesh.close();
    }
  });
});

describe("Fastify's caseSensitive: false (routing looser than any policy path) is warned about when the plugin registers", () => {
  it('warns for caseSensitive: false, top-level or in routerOptions, and routes /ADMIN to /admin as warned; says nothing for the default', async () => {
    for (const [opts, warned] of [
      [{}, false],
      [{ routerOptions: { caseSensitive: false } }, true],
    ] as const) {
      const warnings: string[] = [];
      const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: denyExact as never, logger: { warn: (m) => warnings.push(m) } });
      const app = Fastify({ ...mesh.fastifyOptions(), ...opts });
      await app.register(mesh.fastify() as never);
      app.get('/admin', async () => 'ADMIN');
      await app.listen({ port: 0, host: '127.0.0.1' });
      const port = (app.server.address() as AddressInfo).port;
      const r = await get(port, '/ADMIN');
      await app.close();
      await mesh.close();
      const ours = warnings.filter((w) => w.includes('caseSensitive: false'));
      assert.equal(ours.length, warned ? 1 : 0, JSON.stringify(warnings));
      // What the warning is about: the looser router takes /ADMIN to the denied route (a sidecar has the same gap).
      assert.equal(r.body === 'ADMIN', warned, `${JSON.stringify(opts)}: ${r.status} ${r.body}`);
    }
  });
});
