/**
 * mesh.register(): instances registered through the control plane are load-balanced by other
 * meshes (ServiceEntry with a workloadSelector), deregistered on close (before the drain), and
 * an instance whose lease is not renewed disappears while renewed ones stay.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { MemoryRegistry } from '../../src/control-plane-server/memory-registry.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane, until, waitFor } from './client-helpers.ts';

const reviewsEntry = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: {
    hosts: ['reviews.example'],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }],
    workloadSelector: { labels: { app: 'reviews' } },
  },
};

let t: TestControlPlane;
const ups: Upstream[] = [];
// The server's leases run on this clock (only the lease test moves it); the meshes renew on real time.
const clock = new ManualClock();
const registry = new MemoryRegistry({ clock });
before(async () => {
  t = await startTestControlPlane({ reviews: [reviewsEntry] }, { registry });
  for (const n of ['r1', 'r2', 'r3']) ups.push(await startUpstream(n));
});
after(async () => {
  await t.close();
  await registry.close();
  for (const u of ups) await u.close();
});

function endpoints(mesh: Mesh): string[] {
  return (mesh.explain({ url: 'http://reviews.example:9080/' }).targets[0]?.endpoints ?? []).map((e) => e.endpoint).sort();
}

async function hits(mesh: Mesh, n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await mesh.fetch('http://reviews.example:9080/');
    const body = await res.text();
    out[body] = (out[body] ?? 0) + 1;
  }
  return out;
}

test('two meshes register as reviews; a third load-balances across both; close() deregisters before draining', async () => {
  const [r1, r2] = ups as [Upstream, Upstream];
  const reviewsToken = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const productpage = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, logger: quietLogger });
  // The instances are plain HTTP upstreams, not servers the meshes made: no identity, so they are not registered as accepting mTLS.
  const m1 = await createMesh({ service: 'reviews', labels: { version: 'v1' }, controlPlane: t.cp.url, token: reviewsToken, drainMs: 300, identity: 'none', logger: quietLogger });
  // m2 gives its named ports to createMesh: register() takes them.
  const m2 = await createMesh({ service: 'reviews', labels: { version: 'v2' }, controlPlane: t.cp.url, token: reviewsToken, drainMs: 50, identity: 'none', logger: quietLogger, ports: { http: r2.port } });
  try {
    assert.deepEqual(endpoints(productpage), []);
    assert.equal((await productpage.fetch('http://reviews.example:9080/')).status, 503);
    const reg1 = await m1.register({ ports: { http: r1.port }, address: '127.0.0.1' });
    const reg2 = await m2.register({ address: '127.0.0.1' });
    assert.equal(reg1.namespace, 'default');
    assert.notEqual(reg1.name, reg2.name);
    const both = [`127.0.0.1:${r1.port}`, `127.0.0.1:${r2.port}`].sort();
    await until(() => endpoints(productpage).join() === both.join(), 'productpage sees both instances');
    const counts = await hits(productpage, 40);
    assert.ok((counts.r1 ?? 0) >= 8 && (counts.r2 ?? 0) >= 8, `both instances serve: ${JSON.stringify(counts)}`);
    assert.equal((counts.r1 ?? 0) + (counts.r2 ?? 0), 40);

    // close(): deregister first; other meshes learn it while m1 still drains.
    let closed = false;
    const gone = waitFor(productpage, 'config', () => endpoints(productpage).length === 1);
    const closing = m1.close().then(() => {
      closed = true;
    });
    await gone;
    assert.equal(closed, false, 'm1 is still draining when the others have stopped routing to it');
    await closing;
    assert.deepEqual(await hits(productpage, 10), { r2: 10 });
    assert.equal(t.cp.status().registered, 1);
  } finally {
    await m1.close();
    await m2.close();
    await productpage.close();
  }
  assert.equal(t.cp.status().registered, 0, 'mesh.close() deregistered m2');
});

test('an instance whose lease is not renewed expires; a renewed one with the same short lease stays', async () => {
  const [, r2, r3] = ups as [Upstream, Upstream, Upstream];
  const reviewsToken = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const productpage = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, logger: quietLogger });
  const renewing = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token: reviewsToken, drainMs: 0, identity: 'none', logger: quietLogger });
  try {
    const reg = await renewing.register({ ports: { http: r2.port }, address: '127.0.0.1', leaseMs: 1000 });
    assert.equal(reg.leaseMs, 1000);
    // A registration that is never renewed (its process stopped without deregistering).
    const res = await request(`${t.cp.url}/v1/workloads`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reviewsToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ address: '127.0.0.1', ports: { http: r3.port }, leaseMs: 1000 }),
    });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    const both = [`127.0.0.1:${r2.port}`, `127.0.0.1:${r3.port}`].sort();
    await until(() => endpoints(productpage).join() === both.join(), 'productpage sees both');
    // Both leases end at +1000 on the server's clock. Time moves only here, so a loaded machine
    // delaying the renewals (every third of the lease, real time) cannot end the renewed one.
    const ends = () => registry.list().map((rec) => `${(rec.entry.spec as { ports: { http: number } }).ports.http}@${rec.expiresAt - start}`).sort();
    const start = clock.now();
    assert.deepEqual(ends(), [`${r2.port}@1000`, `${r3.port}@1000`].sort());
    clock.advance(600);
    await until(() => ends().includes(`${r2.port}@1600`), 'the mesh renews its registration', 10_000);
    const one = waitFor(productpage, 'config', () => endpoints(productpage).length === 1, 10_000);
    clock.advance(400);
    await one;
    assert.deepEqual(endpoints(productpage), [`127.0.0.1:${r2.port}`]);
    assert.deepEqual(ends(), [`${r2.port}@1600`]);
    assert.ok(t.cp.status().registered === 1);
    // And the renewed one outlives several leases.
    for (let i = 1; i <= 3; i++) {
      const end = clock.now() + 1000;
      await until(() => registry.list()[0]?.expiresAt === end, `renewal ${i}`, 10_000);
      clock.advance(900);
    }
    assert.deepEqual(ends(), [`${r2.port}@3800`]);
    assert.deepEqual(await hits(productpage, 5), { r2: 5 });
  } finally {
    await renewing.close();
    await productpage.close();
  }
});

test("a mesh with an identity registers with security.istio.io/tlsMode: istio (auto-mTLS reads it); identity 'none' does not", async () => {
  const [r1, r2] = ups as [Upstream, Upstream];
  const reviewsToken = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const productpage = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, logger: quietLogger });
  const withId = await createMesh({ service: 'reviews', labels: { version: 'v1' }, controlPlane: t.cp.url, token: reviewsToken, drainMs: 0, logger: quietLogger });
  const without = await createMesh({ service: 'reviews', workloadName: 'reviews-v2', labels: { version: 'v2' }, controlPlane: t.cp.url, token: reviewsToken, drainMs: 0, identity: 'none', logger: quietLogger });
  try {
    await withId.register({ ports: { http: r1.port }, address: '127.0.0.1' });
    await without.register({ ports: { http: r2.port }, address: '127.0.0.1' });
    await until(() => endpoints(productpage).length === 2, 'productpage sees both instances');
    const labels = Object.fromEntries((productpage.explain({ url: 'http://reviews.example:9080/' }).targets[0]?.endpoints ?? []).map((e) => [e.endpoint, e.labels]));
    assert.equal(labels[`127.0.0.1:${r1.port}`]?.['security.istio.io/tlsMode'], 'istio');
    assert.equal(labels[`127.0.0.1:${r2.port}`]?.['security.istio.io/tlsMode'], undefined);
    // Istio's workload name travels as service.istio.io/workload-name (clients' metrics name destination_workload from it).
    assert.equal(labels[`127.0.0.1:${r1.port}`]?.['service.istio.io/workload-name'], 'reviews');
    assert.equal(labels[`127.0.0.1:${r2.port}`]?.['service.istio.io/workload-name'], 'reviews-v2');
  } finally {
    await withId.close();
    await without.close();
    await productpage.close();
  }
});
