/**
 * Two meshes in one process judging requests on one connection (a BFF that mounts the handlers of
 * two workloads on one server): each mesh applies its own PeerAuthentication and counts a client
 * certificate as a peer only by its own checks (its trust domain). What one mesh accepted or
 * verified on a socket is not taken as said by another: mesh A's PERMISSIVE server letting a
 * plaintext connection in does not make mesh B's STRICT hold, and an identity of A's trust domain
 * is not B's peer.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { authorizationPolicy, peerAuthentication, plainGet, tlsConnection } from './mtls-helpers.ts';

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  cleanupPki();
});

async function mesh(service: string, mode: 'STRICT' | 'PERMISSIVE', trustDomain?: string): Promise<Mesh> {
  const m = await createMesh({ service, namespace: 'foo', ...(trustDomain === undefined ? {} : { trustDomain }), config: [peerAuthentication('default', 'istio-system', { mtls: { mode } })] as never, logger: { warn: () => {} } });
  closers.push(() => m.close());
  return m;
}

/** `app` on an HTTPS server with `cred` that asks for client certificates, and a connection to it presenting bar/sleep's. */
async function connectWithCert(ca: ReturnType<typeof makeCa>, cred: ReturnType<typeof workloadCredentials>, app: express.Express): Promise<Awaited<ReturnType<typeof tlsConnection>>> {
  const server = createHttpsServer({ key: cred.privateKey, cert: cred.certChain, ca: ca.rootPem, requestCert: true, rejectUnauthorized: false }, app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  const port = (server.address() as AddressInfo).port;
  const leaf = issueLeaf(ca, { uris: [spiffe('bar', 'sleep')] });
  return tlsConnection(port, { key: leaf.keyPem, cert: leaf.certPem, ca: ca.rootPem });
}

const peerOf = (req: unknown): string => (req as { meshlet?: { peer?: { principal: string } } }).meshlet?.peer?.principal ?? 'none';

describe('two meshes on one connection', { skip: skipWithout('openssl') }, () => {
  it("mesh B's STRICT refuses a plaintext request that mesh A's PERMISSIVE server let in", async () => {
    const a = await mesh('alpha', 'PERMISSIVE');
    const b = await mesh('beta', 'STRICT');
    const app = express();
    const forB = express.Router();
    forB.use(b.express());
    forB.get('/', (_req, res) => {
      res.send('b served');
    });
    app.use('/b', forB);
    app.use(a.express());
    app.get('/a', (_req, res) => {
      res.send('a served');
    });
    const server = a.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as AddressInfo).port;
    const ra = await plainGet(port, '/a');
    assert.deepEqual({ status: (ra as { status: number }).status, body: (ra as { body: string }).body }, { status: 200, body: 'a served' });
    const rb = await plainGet(port, '/b');
    assert.ok('refused' in rb, `B's STRICT holds on A's server: ${JSON.stringify(rb)}`);
  });

  it("mesh B's STRICT refusal on mesh A's server says it is another mesh's server (not 'a server the mesh did not make: use mesh.createServer')", async () => {
    const warnings: string[] = [];
    const a = await mesh('alpha', 'PERMISSIVE');
    const b = await createMesh({ service: 'beta', namespace: 'foo', config: [peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } })] as never, logger: { warn: (m: string) => warnings.push(m) } });
    closers.push(() => b.close());
    const app = express();
    app.get('/b', b.express(), (_req, res) => {
      res.send('b served');
    });
    const server = a.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(r)));
    const rb = await plainGet((server.address() as AddressInfo).port, '/b');
    assert.ok('refused' in rb, JSON.stringify(rb));
    const said = warnings.filter((w) => w.includes('STRICT'));
    assert.equal(said.length, 1, JSON.stringify(warnings));
    assert.match(said[0] as string, /workload foo\/beta .*served by another mesh's server/);
    assert.doesNotMatch(said[0] as string, /did not make/);
  });

  it("mesh B's AuthorizationPolicy applies to a request mesh A's middleware admitted first; B's context carries only what B verified", async () => {
    const ca = makeCa();
    const a = await mesh('alpha', 'PERMISSIVE');
    const b = await createMesh({ service: 'beta', namespace: 'foo', trustDomain: 'other.example', logger: { warn: () => {} }, config: [authorizationPolicy('deny-admin', 'foo', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/b/admin'] } }] }] })] as never });
    closers.push(() => b.close());
    const cred = workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'alpha' });
    const app = express();
    app.use(a.express());
    app.get('/b/*rest', b.express(), (req, res) => {
      res.send(`b peer=${peerOf(req)} ctx=${b.context().peer?.principal ?? 'none'}`);
    });
    const conn = await connectWithCert(ca, cred, app);
    try {
      assert.equal((await conn.get('/b/admin')).status, 403, "B's DENY policy");
      assert.deepEqual(await conn.get('/b/x'), { status: 200, body: 'b peer=none ctx=none' });
    } finally {
      conn.close();
    }
  });
  it("Fastify: mesh B's plugin judges a request mesh A's plugin admitted (B's DENY applies on B's routes)", async () => {
    const a = await mesh('alpha', 'PERMISSIVE');
    const b = await createMesh({ service: 'beta', namespace: 'foo', logger: { warn: () => {} }, config: [authorizationPolicy('deny-admin', 'foo', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/b/admin'] } }] }] })] as never });
    closers.push(() => b.close());
    const app = Fastify({ ...a.fastifyOptions() });
    await app.register(a.fastify() as never);
    await app.register(async (scope) => {
      await scope.register(b.fastify() as never);
      scope.get('/b/*', async () => 'b served');
    });
    app.get('/a', async () => 'a served');
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    const port = (app.server.address() as AddressInfo).port;
    const ra = await plainGet(port, '/a');
    assert.equal((ra as { body: string }).body, 'a served');
    assert.equal((await plainGet(port, '/b/x') as { body: string }).body, 'b served');
    assert.equal((await plainGet(port, '/b/admin') as { status: number }).status, 403, "B's DENY policy");
  });

  it("a peer verified by mesh A (its trust domain) is not mesh B's peer on the same connection", async () => {
    const ca = makeCa();
    const a = await mesh('alpha', 'STRICT');
    const b = await mesh('beta', 'STRICT', 'other.example');
    const cred = workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'alpha' });
    const app = express();
    app.get('/a', a.handler((req, res) => res.end(`a peer=${peerOf(req)}`)));
    app.get('/b', b.handler((req, res) => res.end(`b peer=${peerOf(req)}`)));
    const conn = await connectWithCert(ca, cred, app);
    try {
      assert.deepEqual(await conn.get('/a'), { status: 200, body: 'a peer=spiffe://cluster.local/ns/bar/sa/sleep' });
      const rb = await conn.get('/b').catch((e: Error) => ({ refused: e.message }));
      assert.ok('refused' in rb || rb.status >= 400, `B counts no identity of cluster.local: ${JSON.stringify(rb)}`);
    } finally {
      conn.close();
    }
  });
});
