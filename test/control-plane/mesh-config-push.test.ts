/**
 * The control plane's MeshConfig (`startControlPlane({ meshConfig })`, `meshlet control-plane
 * --mesh-config`) reaches the meshes it feeds: `defaultHttpRetryPolicy`, `outboundTrafficPolicy`
 * and `connectTimeout` apply to the first config and change live (a restart with another
 * MeshConfig, a change while running); the mesh's own options win field by field; a start-time
 * setting that changes later is named in a warning; an invalid one is refused with its field.
 * Real control plane, real meshes, real upstreams whose behaviour shows the setting.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh, type MeshOptions } from '../../src/index.ts';
import { blackhole, endsAtConnectTimeout } from '../helpers/blackhole.ts';
import { call, startFlakyUpstream, destinationRule, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { quietLogger, shortJitter, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

async function flaky(): Promise<Upstream & { reset(): void }> {
  const u = await startFlakyUpstream();
  open.push(u);
  return u;
}

async function controlPlane(files: Record<string, object[]>, meshConfig: Record<string, unknown> | undefined, heartbeatMs?: number): Promise<TestControlPlane> {
  const t = await startTestControlPlane(files, { meshConfig, ...(heartbeatMs === undefined ? {} : { heartbeatMs }) });
  open.push({ close: () => t.close() });
  return t;
}

async function fedMesh(t: TestControlPlane, o: Partial<MeshOptions> = {}): Promise<Mesh> {
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, logger: quietLogger, random: shortJitter(7), ...o });
  open.unshift(mesh);
  return mesh;
}

const RETRY_503 = { defaultHttpRetryPolicy: { attempts: 2, retryOn: '503' } };

describe('the control plane pushes its MeshConfig to the meshes it feeds', () => {
  it('defaultHttpRetryPolicy: a 503-then-200 upstream is retried under the pushed policy, and not once a restarted control plane drops it', async () => {
    const up = await flaky();
    const t = await controlPlane({ se: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])] }, RETRY_503);
    const mesh = await fedMesh(t);
    const r = await call(mesh, 'http://reviews:9080/');
    assert.equal(r.status, 200, 'retried on 503 under the pushed policy');
    assert.deepEqual(up.seen.map((s) => s.headers['x-envoy-attempt-count']), ['1', '2']);
    const route = mesh.snapshot.routes.virtualHost('reviews:9080')?.routes[0];
    assert.equal(route?.retry.meshDefault, true);
    assert.match(mesh.snapshot.meshSettings?.origin?.defaultHttpRetryPolicy ?? '', /^the control plane's MeshConfig test-mesh\.yaml \(http:\/\/127\.0\.0\.1:\d+\)$/);
    assert.match(mesh.explain({ url: 'http://reviews:9080/' }).toString(), /retries 2× on 503 \(mesh defaultHttpRetryPolicy, from the control plane's MeshConfig test-mesh\.yaml \(http:/);
    assert.deepEqual(t.cp.status().meshConfig, { version: t.cp.status().meshConfig?.version, source: 'test-mesh.yaml', settings: ['defaultHttpRetryPolicy'] });

    // The control plane restarts with a MeshConfig without it: Istio's default policy (no 503) again, same config version.
    const before = mesh.snapshot;
    await t.cp.close();
    await t.restart({ meshConfig: { connectTimeout: '3s' } });
    await until(() => mesh.snapshot !== before, 'the config compiled again for the new MeshConfig', 20_000);
    assert.equal(mesh.snapshot.version, before.version, 'the same config and endpoints versions');
    up.reset();
    const r2 = await call(mesh, 'http://reviews:9080/');
    assert.equal(r2.status, 503);
    assert.deepEqual(up.seen.map((s) => s.headers['x-envoy-attempt-count']), ['1']);
    assert.equal(mesh.snapshot.routes.virtualHost('reviews:9080')?.routes[0]?.retry.meshDefault, undefined);
    assert.equal(mesh.snapshot.meshSettings?.connectTimeoutMs, 3000);
  });

  it("the mesh's own options win field by field: its defaultHttpRetryPolicy and its meshConfig's outboundTrafficPolicy over the pushed ones", async () => {
    const up = await flaky();
    const outside = await startUpstream('outside');
    open.push(outside);
    const t = await controlPlane({ se: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])] }, { ...RETRY_503, outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } });
    const fed = await fedMesh(t);
    const own = await fedMesh(t, { defaultHttpRetryPolicy: { attempts: 0 }, meshConfig: { outboundTrafficPolicy: { mode: 'ALLOW_ANY' } } });
    // REGISTRY_ONLY from the control plane: a host outside the registry is refused (502, as Istio's BlackHoleCluster).
    const refused = await call(fed, `http://127.0.0.1:${outside.port}/`);
    assert.equal(refused.status, 502);
    assert.match(fed.explain({ url: `http://127.0.0.1:${outside.port}/` }).toString(), /outboundTrafficPolicy: REGISTRY_ONLY \(the control plane's MeshConfig test-mesh\.yaml/);
    const passed = await call(own, `http://127.0.0.1:${outside.port}/`);
    assert.equal(passed.status, 200, "the mesh's own meshConfig (ALLOW_ANY) wins");
    assert.equal(passed.upstream, 'outside');
    // Its own defaultHttpRetryPolicy (no retries) wins over the pushed one.
    const r = await call(own, 'http://reviews:9080/');
    assert.equal(r.status, 503);
    assert.equal(up.seen.length, 1);
    assert.equal(own.snapshot.meshSettings?.origin?.defaultHttpRetryPolicy, undefined);
  });

  it('connectTimeout: the pushed one times a cluster’s TLS connect on the mesh clock, and a change while running applies to new connections', async () => {
    const h = await blackhole();
    open.push(h);
    const host = 'slow.default.svc.cluster.local';
    const files = {
      se: [serviceEntry('slow', host, 80, [{ port: h.port }])],
      dr: [destinationRule('slow', host, { trafficPolicy: { tls: { mode: 'SIMPLE', sni: 'slow.example' } } })],
    };
    // A long heartbeat: the manual clock's jumps must not look like a dead stream.
    const t = await controlPlane(files, { connectTimeout: '1500ms', defaultHttpRetryPolicy: { attempts: 0 } }, 60_000);
    const clock = new ManualClock(1_000_000);
    const mesh = await fedMesh(t, { clock });
    assert.match(mesh.explain({ url: `http://${host}/` }).toString(), /connect timeout 1\.5s \(the control plane's MeshConfig test-mesh\.yaml/);
    const r = await endsAtConnectTimeout(h, clock, 1500, () => call(mesh, `http://${host}/`));
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'UF');
    const before = mesh.snapshot;
    t.cp.setMeshConfig({ connectTimeout: '700ms', defaultHttpRetryPolicy: { attempts: 0 } }, 'test-mesh.yaml');
    await until(() => mesh.snapshot !== before, 'the new connect timeout compiled in');
    h.sockets.length = 0;
    const r2 = await endsAtConnectTimeout(h, clock, 700, () => call(mesh, `http://${host}/`));
    assert.equal(r2.flags, 'UF');
  });

  it('connectTimeout: a change while running reaches the PassthroughCluster too (ALLOW_ANY calls to hosts outside the mesh), as explain shows it', async () => {
    const h = await blackhole();
    open.push(h);
    const t = await controlPlane({}, { connectTimeout: '1500ms' }, 60_000);
    const clock = new ManualClock(1_000_000);
    const mesh = await fedMesh(t, { clock });
    const url = `https://127.0.0.1:${h.port}/`;
    assert.match(mesh.explain({ url }).toString(), /PassthroughCluster[\s\S]*connect timeout 1\.5s/);
    const r = await endsAtConnectTimeout(h, clock, 1500, () => call(mesh, url));
    assert.equal(r.flags, 'UF');
    const before = mesh.snapshot;
    t.cp.setMeshConfig({ connectTimeout: '700ms' }, 'test-mesh.yaml');
    await until(() => mesh.snapshot !== before, 'the new connect timeout compiled in');
    assert.match(mesh.explain({ url }).toString(), /PassthroughCluster[\s\S]*connect timeout 700ms/);
    h.sockets.length = 0;
    const r2 = await endsAtConnectTimeout(h, clock, 700, () => call(mesh, url));
    assert.equal(r2.flags, 'UF');
  });

  it('a start-time setting (accessLogFile) pushed before the first config applies from the start', async () => {
    const up = await flaky();
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-pushed-log-'));
    open.push({ close: () => rmSync(dir, { recursive: true, force: true }) });
    const file = join(dir, 'access.log');
    const t = await controlPlane({ se: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])] }, { accessLogFile: file, accessLogEncoding: 'JSON' });
    const mesh = await fedMesh(t);
    await call(mesh, 'http://reviews:9080/logged');
    const logged = () => (existsSync(file) ? readFileSync(file, 'utf8') : '');
    await until(() => logged().includes('/logged'), 'the access log line in the pushed accessLogFile');
    assert.equal((JSON.parse(logged().trim().split('\n')[0] ?? '{}') as { path?: string }).path, '/logged');
  });

  it('a start-time setting changed later is named once in a warning; setMeshConfig() refuses an invalid MeshConfig naming its field', async () => {
    const up = await flaky();
    const t = await controlPlane({ se: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])] }, { ...RETRY_503, enableTracing: false });
    const warnings: string[] = [];
    const mesh = await fedMesh(t, { logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    assert.equal(warnings.length, 0, warnings.join('\n'));
    const before = mesh.snapshot;
    // The control plane refuses an invalid one (a mesh's own refusal: mesh-config-push-review.test.ts).
    assert.throws(() => t.cp.setMeshConfig({ ...RETRY_503, enableTracing: false, connectTimeout: 'soon' }), /`meshConfig\.connectTimeout` must be a duration/);
    t.cp.setMeshConfig({ enableTracing: true, accessLogFile: '/dev/stdout' });
    await until(() => mesh.snapshot !== before, 'compiled again without the retry policy');
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0] ?? '', /changes accessLog\*\/enableTracing\/defaultConfig\.tracing, which this mesh reads when it starts: they apply at its next start/);
    assert.equal(mesh.snapshot.routes.virtualHost('reviews:9080')?.routes[0]?.retry.meshDefault, undefined);
  });
});
