/**
 * The control plane's MeshConfig in a fed mesh, the cases a review found wrong: a mesh with
 * options that are not plain data (an OpenTelemetry MeterProvider) follows a changed MeshConfig.
 * Real control plane, real meshes, real upstreams.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { createMesh, type Mesh, type MeshOptions } from '../../src/index.ts';
import { call, startFlakyUpstream, serviceEntry, startUpstream, type Upstream } from '../helpers/upstreams.ts';
import { scriptedControlPlane, shortJitter, sse, startTestControlPlane, type TestControlPlane, until } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

async function flaky(): Promise<Upstream & { reset(): void }> {
  const u = await startFlakyUpstream();
  open.push(u);
  return u;
}

async function controlPlane(files: Record<string, object[]>, meshConfig: Record<string, unknown> | undefined): Promise<TestControlPlane> {
  const t = await startTestControlPlane(files, { meshConfig });
  open.push({ close: () => t.close() });
  return t;
}

async function fedMesh(t: TestControlPlane, o: Partial<MeshOptions> = {}): Promise<Mesh> {
  const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
  const mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, random: shortJitter(7), ...o });
  open.unshift(mesh);
  return mesh;
}

const RETRY_503 = { defaultHttpRetryPolicy: { attempts: 2, retryOn: '503' } };

describe("the control plane's MeshConfig in a fed mesh (review)", () => {
  it('a mesh given a MeterProvider (telemetry.metrics.meterProvider) follows a changed MeshConfig: no "malformed" warning, the new retry policy applies', async () => {
    const up = await flaky();
    const t = await controlPlane({ se: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])] }, RETRY_503);
    // An SDK MeterProvider with a reader: its objects refer to each other (not JSON).
    const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 3_600_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    open.push({ close: () => meterProvider.shutdown() });
    const warnings: string[] = [];
    const mesh = await fedMesh(t, { telemetry: { metrics: { meterProvider } }, logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    assert.equal((await call(mesh, 'http://reviews:9080/')).status, 200, 'retried under the pushed policy');
    const before = mesh.snapshot;
    t.cp.setMeshConfig({ accessLogFile: '/dev/stdout' }, 'test-mesh.yaml');
    await until(() => mesh.snapshot !== before || warnings.length > 0, 'the new MeshConfig taken (or a warning)', 20_000);
    assert.ok(!warnings.some((w) => /malformed|circular/i.test(w)), warnings.join('\n'));
    await until(() => mesh.snapshot !== before, 'compiled again without the pushed retry policy', 20_000);
    up.reset();
    assert.equal((await call(mesh, 'http://reviews:9080/')).status, 503, 'no retry on 503 once the MeshConfig drops the policy');
    assert.equal(up.seen.length, 1);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0] ?? '', /changes accessLog\*\/enableTracing\/defaultConfig\.tracing, which this mesh reads when it starts/);
  });
});

describe('a live connectTimeout change and the PassthroughCluster agent (review)', () => {
  it('a call in flight on the old agent finishes whole; repeated swaps leave no connection of an old agent open', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first-');
      if (req.url === '/slow') void released.then(() => res.end('last'));
      else res.end('quick');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    open.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
    const port = (server.address() as AddressInfo).port;
    const connections = () => new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    const t = await controlPlane({}, { connectTimeout: '5s' });
    const mesh = await fedMesh(t, { logger: { warn: () => undefined, info: () => undefined } });
    const res = await fetch(`http://127.0.0.1:${port}/slow`, { dispatcher: mesh.dispatcher } as RequestInit);
    assert.equal(res.status, 200);
    const reader = res.body?.getReader();
    assert.ok(reader !== undefined);
    const first = await reader.read();
    assert.equal(Buffer.from(first.value ?? []).toString(), 'first-');
    for (const ms of [4000, 3000, 2000, 1000]) {
      const before = mesh.snapshot;
      t.cp.setMeshConfig({ connectTimeout: `${ms}ms` }, 'test-mesh.yaml');
      await until(() => mesh.snapshot !== before, `connectTimeout ${ms}ms compiled in`, 20_000);
      assert.equal(mesh.outbound.connectTimeoutMs, ms);
    }
    release();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
    assert.equal(rest, 'last', 'the call on the old agent drained, not aborted');
    // A call on the agent in use now: one connection, the old agents' are closed.
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`, { dispatcher: mesh.dispatcher } as RequestInit)).text(), 'first-quick');
    for (let i = 0; i < 200 && (await connections()) !== 1; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await connections(), 1, 'only the current agent keeps a connection');
  });
});

describe("the root namespace a control plane's MeshConfig gives its meshes (review)", () => {
  const rootSidecar = { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'istio-system' }, spec: { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } } };

  it('is the one the control plane runs with: a MeshConfig rootNamespace the control plane does not use (startControlPlane without the rootNamespace option) does not turn its root namespace’s mesh-wide Sidecar off in the meshes', async () => {
    const outside = await startUpstream('outside');
    open.push(outside);
    // The control plane runs with istio-system (its rootNamespace option is unset) and sends the meshes istio-system's resources as mesh-wide.
    const t = await controlPlane({ sidecar: [rootSidecar] }, { rootNamespace: 'elsewhere' });
    const mesh = await fedMesh(t, { logger: { warn: () => undefined, info: () => undefined } });
    const r = await call(mesh, `http://127.0.0.1:${outside.port}/`);
    assert.equal(r.status, 502, 'the root namespace’s Sidecar (REGISTRY_ONLY) applies: the call is refused');
    assert.match(mesh.explain({ url: `http://127.0.0.1:${outside.port}/` }).toString(), /outboundTrafficPolicy: REGISTRY_ONLY \(Sidecar istio-system\/default\)/);
  });

  it('a MeshConfig changed while running to another rootNamespace does not hand it to a mesh that starts then, nor warn a running mesh of a change', async () => {
    const outside = await startUpstream('outside');
    open.push(outside);
    const t = await controlPlane({ sidecar: [rootSidecar] }, { connectTimeout: '5s' });
    const warnings: string[] = [];
    const running = await fedMesh(t, { logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    const before = running.snapshot;
    t.cp.setMeshConfig({ connectTimeout: '4s', rootNamespace: 'elsewhere' }, 'test-mesh.yaml');
    await until(() => running.snapshot !== before, 'the new connect timeout compiled in', 20_000);
    // The control plane's own root namespace (istio-system, its default) is what is pushed: no change to warn of.
    assert.deepEqual(warnings, []);
    const mesh = await fedMesh(t, { logger: { warn: () => undefined, info: () => undefined } });
    assert.equal((await call(mesh, `http://127.0.0.1:${outside.port}/`)).status, 502);
  });
});

/** What startControlPlane({ meshConfig }) rejects with (a control plane that starts is closed, and the test fails). */
async function refused(meshConfig: Record<string, unknown>): Promise<Error> {
  let t: TestControlPlane;
  try {
    t = await startTestControlPlane({}, { meshConfig });
  } catch (err) {
    return err as Error;
  }
  await t.close();
  assert.fail(`the control plane started with ${JSON.stringify(meshConfig)}`);
}

describe('an invalid MeshConfig (review)', () => {
  it('startControlPlane({ meshConfig }) refuses one istiod would not load, naming the field; setMeshConfig() refuses one and keeps pushing the one before', async () => {
    const tooLong = await refused({ connectTimeout: 'soon' });
    assert.equal(tooLong.name, 'InvalidArgumentError');
    assert.match(tooLong.message, /^startControlPlane: `meshConfig\.connectTimeout` must be a duration/);
    assert.match(String(await refused({ localityLbSetting: { distribute: [{ from: 'a/*', to: { 'b/*': 50 } }] } })), /^InvalidArgumentError: startControlPlane: .*localityLbSetting.*100/);
    const t = await controlPlane({}, RETRY_503);
    const before = t.cp.status().meshConfig;
    assert.throws(() => t.cp.setMeshConfig({ ...RETRY_503, defaultHttpRetryPolicy: { attempts: 'two' } }), /^InvalidArgumentError: ControlPlane\.setMeshConfig: `meshConfig\.defaultHttpRetryPolicy` is invalid: .*attempts/);
    assert.deepEqual(t.cp.status().meshConfig, before, 'the MeshConfig before stays');
    // Its MeshNetworks is named as setMeshConfig's, not as startControlPlane's.
    assert.throws(() => t.cp.setMeshConfig(RETRY_503, undefined, { networks: { west: { gateways: [{ address: '192.0.2.9', port: 'x' }] } } } as never), /^InvalidArgumentError: ControlPlane\.setMeshConfig: `meshNetworks` is invalid: .*port/);
    assert.deepEqual(t.cp.status().meshConfig, before, 'the MeshConfig before stays');
  });

  it('a mesh refuses an invalid one a control plane still pushes (another implementation, a newer version), naming its field; the settings in use stay', async () => {
    const up = await flaky();
    let stream: ServerResponse | undefined;
    const cp = await scriptedControlPlane((res) => {
      stream = res;
      sse(res, 'mesh-config', { version: 'm1', meshConfig: RETRY_503 });
      sse(res, 'config', { version: 'v1', resources: [serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }])] }, 'v1/');
      sse(res, 'endpoints', { version: 'e1', workloads: [] }, 'v1/e1');
    });
    open.push(cp);
    const warnings: string[] = [];
    const mesh = await createMesh({ service: 'productpage', controlPlane: cp.url, token: 't', identity: 'none', drainMs: 0, logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    open.unshift(mesh);
    assert.equal((await call(mesh, 'http://reviews:9080/')).status, 200, 'retried under the pushed policy');
    stream?.write(`event: mesh-config\ndata: ${JSON.stringify({ version: 'm2', meshConfig: { connectTimeout: 'soon' } })}\n\n`);
    await until(() => warnings.length > 0, 'a warning for the invalid MeshConfig');
    assert.match(warnings[0] ?? '', /the control plane's MeshConfig \(http:\/\/127\.0\.0\.1:\d+\) version m2 is not applied, the settings in use stay: `meshConfig\.connectTimeout` must be a duration/);
    up.reset();
    assert.equal((await call(mesh, 'http://reviews:9080/')).status, 200, 'still retried');
  });
});

describe('a control plane that sends no MeshConfig after one that did (review)', () => {
  it('an older control plane (no mesh-config event) takes back what the one before pushed, as a control plane without --mesh-config does', async () => {
    const up = await flaky();
    const se = serviceEntry('reviews', 'reviews.default.svc.cluster.local', 9080, [{ port: up.port }]);
    let streams = 0;
    let first: ServerResponse | undefined;
    const cp = await scriptedControlPlane(
      (res, n) => {
        streams = n;
        // The first stream is a control plane that pushes a MeshConfig; the next one an older one, which sends none.
        if (n === 1) {
          first = res;
          sse(res, 'mesh-config', { version: 'm1', meshConfig: RETRY_503 });
        }
        sse(res, 'config', { version: 'v1', resources: [se] }, 'v1/');
        sse(res, 'endpoints', { version: 'e1', workloads: [] }, 'v1/e1');
      },
      { server: (n) => (n === 1 ? 'new' : 'old') },
    );
    open.push(cp);
    const mesh = await createMesh({ service: 'productpage', controlPlane: cp.url, token: 't', identity: 'none', drainMs: 0, random: shortJitter(3), logger: { warn: () => undefined, info: () => undefined } });
    open.unshift(mesh);
    assert.equal((await call(mesh, 'http://reviews:9080/')).status, 200, 'retried under the pushed policy');
    const before = mesh.snapshot;
    first?.destroy();
    await until(() => streams >= 2 && mesh.snapshot !== before, 'compiled again without the pushed MeshConfig', 20_000);
    up.reset();
    assert.equal((await call(mesh, 'http://reviews:9080/')).status, 503, 'Istio’s default retry policy again (no retry on 503)');
    assert.equal(up.seen.length, 1);
  });
});
