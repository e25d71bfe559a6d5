/**
 * The control plane's MeshConfig is kept in a mesh's last-known-good cache with the config: a
 * mesh restarted while the control plane is down starts from the cache under the MeshConfig it
 * had (REGISTRY_ONLY still refuses a host outside the registry, the pushed retry policy still
 * retries), as istiod's proxies keep what was built with their last mesh config. A MeshConfig
 * changed live is written too; a cache written before MeshConfigs were kept still loads; a cache
 * whose MeshConfig is malformed or invalid is not used (fail closed).
 * Real control plane, real meshes, real upstreams, Node's own fetch on `mesh.dispatcher`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMesh, type Mesh, type MeshOptions } from '../../src/index.ts';
import { serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, shortJitter, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

const REVIEWS = 'reviews.default.svc.cluster.local';
const POLICY = { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' }, defaultHttpRetryPolicy: { attempts: 2, retryOn: '503' } };

/** An upstream that answers 503 to every odd request and 200 to every even one. */
async function flaky(): Promise<Upstream> {
  const u = await startUpstream('flaky', (_req, res, hit) => {
    res.statusCode = hit % 2 === 1 ? 503 : 200;
    res.end(hit % 2 === 1 ? 'down' : 'up');
  });
  open.push(u);
  return u;
}

async function outsideHost(): Promise<Upstream> {
  const u = await startUpstream('outside');
  open.push(u);
  return u;
}

async function cacheDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'meshlet-mc-cache-'));
  open.push({ close: () => rm(d, { recursive: true, force: true }) });
  return d;
}

async function controlPlane(up: Upstream, meshConfig: Record<string, unknown> | undefined): Promise<TestControlPlane> {
  const t = await startTestControlPlane({ se: [serviceEntry('reviews', REVIEWS, 9080, [{ port: up.port }])] }, { meshConfig });
  open.push({ close: () => t.close() });
  return t;
}

async function fedMesh(t: TestControlPlane, token: string, o: Partial<MeshOptions>): Promise<Mesh> {
  const mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, logger: quietLogger, random: shortJitter(3), startupTimeoutMs: 3000, ...o });
  open.unshift(mesh);
  return mesh;
}

/** Node's own fetch through the mesh's dispatcher. */
async function nodeFetch(mesh: Mesh, url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url, { dispatcher: mesh.dispatcher } as RequestInit);
  return { status: r.status, body: await r.text() };
}

describe("the control plane's MeshConfig in the last-known-good cache", () => {
  it('a mesh restarted while the control plane is down starts from the cache under the MeshConfig it had: REGISTRY_ONLY and the retry policy still apply', async () => {
    const up = await flaky();
    const outside = await outsideHost();
    const dir = await cacheDir();
    const t = await controlPlane(up, POLICY);
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const first = await fedMesh(t, token, { cacheDir: dir });
    assert.equal(first.configSource, 'control-plane');
    assert.equal((await nodeFetch(first, `http://127.0.0.1:${outside.port}/`)).status, 502, 'REGISTRY_ONLY, live');
    await first.close(); // flushes the cache
    const cached = JSON.parse(await readFile(join(dir, 'default.productpage.json'), 'utf8')) as { meshConfig?: { version: string; meshConfig: unknown; source?: string } };
    assert.deepEqual(cached.meshConfig?.meshConfig, POLICY);
    assert.equal(cached.meshConfig?.source, 'test-mesh.yaml');

    await t.cp.close(); // the control plane is down
    const warnings: string[] = [];
    const mesh = await fedMesh(t, token, { cacheDir: dir, logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    assert.equal(mesh.configSource, 'cache');
    const refused = await nodeFetch(mesh, `http://127.0.0.1:${outside.port}/`);
    assert.equal(refused.status, 502, `REGISTRY_ONLY from the cached MeshConfig refuses a host outside the registry; got ${refused.status} ${refused.body}`);
    assert.equal(outside.hits, 0);
    const retried = await nodeFetch(mesh, `http://${REVIEWS}:9080/`);
    assert.equal(retried.status, 200, 'retried on 503 under the cached retry policy');
    assert.equal(up.seen.at(-1)?.headers['x-envoy-attempt-count'], '2');
    assert.match(mesh.explain({ url: `http://127.0.0.1:${outside.port}/` }).toString(), /outboundTrafficPolicy: REGISTRY_ONLY \(the control plane's MeshConfig test-mesh\.yaml \(cached in .*default\.productpage\.json\)\)/);
    assert.deepEqual(
      warnings.filter((w) => /not applied|ignoring/.test(w)),
      [],
      'the cached MeshConfig is applied without complaint',
    );

    // The control plane comes back with the same MeshConfig (same version): it now says it came from the control plane.
    await t.restart();
    await until(() => mesh.configSource === 'control-plane', 'live from the control plane again', 20_000);
    const origin = () => mesh.snapshot.meshSettings?.origin?.outboundTrafficPolicy ?? '';
    await until(() => !origin().includes('cached in'), 'the origin label no longer the cache', 20_000);
    assert.match(origin(), /^the control plane's MeshConfig test-mesh\.yaml \(http:\/\/127\.0\.0\.1:\d+\)$/);
    assert.match(mesh.explain({ url: `http://127.0.0.1:${outside.port}/` }).toString(), /outboundTrafficPolicy: REGISTRY_ONLY \(the control plane's MeshConfig test-mesh\.yaml \(http:\/\/127\.0\.0\.1:\d+\)\)/);
  });

  it('a MeshConfig changed while the mesh runs (same config) is written to the cache, and a restart from the cache runs under it', async () => {
    const up = await flaky();
    const outside = await outsideHost();
    const dir = await cacheDir();
    const t = await controlPlane(up, { connectTimeout: '2s' });
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const first = await fedMesh(t, token, { cacheDir: dir });
    assert.equal((await nodeFetch(first, `http://127.0.0.1:${outside.port}/`)).status, 200, 'ALLOW_ANY at first');
    const file = join(dir, 'default.productpage.json');
    const before = first.snapshot;
    t.cp.setMeshConfig({ connectTimeout: '2s', outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, 'test-mesh.yaml');
    await until(() => first.snapshot !== before, 'compiled again for the new MeshConfig');
    await first.close();
    const cached = JSON.parse(await readFile(file, 'utf8')) as { configVersion: string; meshConfig?: { meshConfig: unknown } };
    assert.deepEqual(cached.meshConfig?.meshConfig, { connectTimeout: '2s', outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } });
    assert.equal(cached.configVersion, first.configVersion, 'the same config, with the new MeshConfig');

    await t.cp.close();
    const mesh = await fedMesh(t, token, { cacheDir: dir });
    assert.equal(mesh.configSource, 'cache');
    assert.equal((await nodeFetch(mesh, `http://127.0.0.1:${outside.port}/`)).status, 502);
    assert.equal(mesh.snapshot.meshSettings?.connectTimeoutMs, 2000);
  });

  it('a cache written before MeshConfigs were kept still loads (the mesh has its own settings); a malformed MeshConfig in it makes the cache unusable', async () => {
    const up = await flaky();
    const outside = await outsideHost();
    const dir = await cacheDir();
    const t = await controlPlane(up, POLICY);
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const first = await fedMesh(t, token, { cacheDir: dir });
    await first.close();
    await t.cp.close();
    const file = join(dir, 'default.productpage.json');
    const written = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;

    // As an older meshlet wrote it: no meshConfig.
    const { meshConfig, ...old } = written;
    assert.notEqual(meshConfig, undefined);
    await writeFile(file, JSON.stringify(old));
    const mesh = await fedMesh(t, token, { cacheDir: dir });
    assert.equal(mesh.configSource, 'cache');
    assert.equal(mesh.configVersion, written.configVersion);
    assert.equal((await nodeFetch(mesh, `http://127.0.0.1:${outside.port}/`)).status, 200, 'no MeshConfig cached: its own ALLOW_ANY');
    await mesh.close();

    // A malformed one: the whole cache is refused (fail closed), naming what is wrong.
    for (const [bad, why] of [
      [{ version: 7, meshConfig: {} }, /meshConfig: version and a meshConfig object are required/],
      [{ version: 'v', meshConfig: { connectTimeout: 'soon' } }, /MeshConfig cached with it \(version v\) is not valid/],
    ] as const) {
      await writeFile(file, JSON.stringify({ ...old, meshConfig: bad }));
      const warnings: string[] = [];
      await assert.rejects(
        createMesh({ service: 'productpage', controlPlane: t.cp.url, token, cacheDir: dir, startupTimeoutMs: 300, random: shortJitter(3), logger: { warn: (m: string) => warnings.push(m), info: () => undefined } }),
        (e: Error & { code?: string }) => e.code === 'MESHLET_ERR_CONTROL_PLANE',
      );
      assert.match(warnings.join('\n'), why);
    }
  });
});
