/**
 * A mesh with an identity registers as accepting mTLS, so callers use mTLS. Registering a port that
 * no mesh server listens on (the app's own http.createServer) is warned about, naming the fix; with
 * `security.istio.io/tlsMode: disabled` the registration is plaintext and callers reach it.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { startTestControlPlane, type TestControlPlane, until } from '../client-helpers.ts';

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
});

const REVIEWS = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { hosts: ['reviews.example'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], workloadSelector: { labels: { app: 'reviews' } } },
};

describe('registering a port the mesh does not serve', () => {
  it('warns naming the port and the fix; tlsMode disabled registers it as plaintext, and callers reach it', async () => {
    const t: TestControlPlane = await startTestControlPlane({ mesh: [REVIEWS] }, { certTtlMs: 3_600_000 });
    opened.push(t);
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), error: () => undefined };
    const server: Mesh = await createMesh({ service: 'reviews', labels: { app: 'reviews' }, controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'reviews', namespace: 'default' }), drainMs: 0, logger });
    opened.push(server);
    const plain = createServer((_req, res) => res.end('plain'));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    opened.push({ close: () => new Promise<void>((r) => plain.close(() => r())) });
    const port = (plain.address() as AddressInfo).port;

    const meshServer = server.createServer((_req, res) => res.end('mesh'));
    await new Promise<void>((r) => meshServer.listen(0, '127.0.0.1', r));
    const served = await server.register({ ports: { http: (meshServer.address() as AddressInfo).port }, address: '127.0.0.1' });
    await served.close();
    assert.deepEqual(warnings.filter((w) => w.includes('mesh.register')), [], 'a port a mesh server listens on is not warned about');

    const wrong = await server.register({ ports: { http: port }, address: '127.0.0.1' });
    const warned = warnings.filter((w) => w.includes('mesh.register'));
    assert.equal(warned.length, 1);
    assert.match(warned[0] as string, new RegExp(`port http=${port} is not served by a server from mesh.createServer .* register with labels \\{ 'security.istio.io/tlsMode': 'disabled' \\}`));
    await wrong.close();

    const reg = await server.register({ ports: { http: port }, address: '127.0.0.1', labels: { app: 'reviews', 'security.istio.io/tlsMode': 'disabled' } });
    opened.push({ close: () => reg.close() });
    assert.equal(warnings.filter((w) => w.includes('mesh.register')).length, 1, 'an explicit tlsMode label is not warned about');
    const client: Mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'productpage', namespace: 'default' }), drainMs: 0, logger });
    opened.push(client);
    assert.ok(client.credentials.current !== undefined, 'the caller has a certificate (it would use mTLS to a labelled endpoint)');
    await until(() => (client.explain({ url: 'http://reviews.example:9080/' }).targets[0]?.endpoints ?? []).length === 1, 'the endpoint');
    const r = await client.fetch('http://reviews.example:9080/');
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'plain');
  });

  it('counts a port a mesh server was asked to listen on but has not bound yet (listen() then register() at once, as the README writes it)', async () => {
    const t: TestControlPlane = await startTestControlPlane({ mesh: [REVIEWS] }, { certTtlMs: 3_600_000 });
    opened.push(t);
    const warnings: string[] = [];
    const logger = { warn: (m: string) => warnings.push(m), error: () => undefined };
    const mesh: Mesh = await createMesh({ service: 'reviews', labels: { app: 'reviews' }, controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'reviews', namespace: 'default' }), drainMs: 0, logger });
    opened.push(mesh);
    // A port that was free a moment ago: listen() is not awaited, so it is not bound when register() checks.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const meshServer = mesh.createServer((_req, res) => res.end('mesh'));
    const bound = new Promise<void>((r) => {
      meshServer.once('listening', r);
      meshServer.once('error', () => r());
    });
    meshServer.listen(port, '127.0.0.1');
    const reg = await mesh.register({ ports: { http: port }, address: '127.0.0.1' });
    await bound;
    await reg.close();
    assert.deepEqual(warnings.filter((w) => w.includes('mesh.register')), []);
  });
});
