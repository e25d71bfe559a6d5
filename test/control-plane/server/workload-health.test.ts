/**
 * Health-checked registrations (istiod's auto-registration with a WorkloadGroup probe): the entry
 * of a workload registering through a group with a `probe` gets
 * `proxy.istio.io/health-checks-enabled: "true"` and the answer carries the probe; the owner (or
 * an admin) reports transitions with `PUT /v1/workloads/<ns>/<name>/health`, which writes the
 * `Healthy` condition as istiod does, pushes it to watchers, and survives a restart — in file
 * mode and across etcd replicas.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openEtcd, type EtcdStores } from '../../../src/control-plane-server/etcd/index.ts';
import { type ControlPlane, startControlPlane } from '../../../src/control-plane-server/server.ts';
import { healthCondition } from '../../../src/control-plane-server/workload-group.ts';
import type { WireResource } from '../../../src/control-plane/protocol.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { api, memoryLogger, SERVICES_YAML, startTestServer, type TestServer, tempDir, until, watch } from './helpers.ts';

const quietLog = { warn: () => undefined, info: () => undefined };

const GROUPS = `apiVersion: v1
kind: Service
metadata: {name: reviews-vm, namespace: default}
spec: {selector: {app: reviews}, ports: [{port: 9080, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews, namespace: default}
spec:
  metadata:
    annotations: {proxy.istio.io/health-checks-enabled: "false"}
  template: {ports: {http: 9080}}
  probe:
    periodSeconds: 5
    httpGet: {path: /ready, port: 9080}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings, namespace: default}
spec:
  template: {ports: {http: 9080}}
`;

const HC = 'proxy.istio.io/health-checks-enabled';
type Cond = { type: string; status: string; lastProbeTime: string; lastTransitionTime: string; message?: string };
const healthyOf = (w: WireResource): Cond | undefined => (w.status as { conditions?: Cond[] } | undefined)?.conditions?.find((c) => c.type === 'Healthy');

describe('health-checked registrations (file mode)', () => {
  let s: TestServer;
  let reviews: string;
  let ratings: string;
  before(async () => {
    s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'groups.yaml': GROUPS });
    reviews = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    ratings = await s.cp.mintToken({ service: 'ratings', namespace: 'default' });
  });
  after(() => s.close());

  it('a group with a probe: the entry is health-checked (over the group annotations, as istiod) and the answer carries the probe; without one, neither', async () => {
    const r = await api(s.url, 'POST', '/v1/workloads', { token: reviews, body: { healthChecks: true, address: '10.1.0.1' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.workload.metadata.annotations[HC], 'true');
    assert.deepEqual(r.body.probe, { periodSeconds: 5, httpGet: { path: '/ready', port: 9080 } });
    assert.equal(r.body.workload.status, undefined, 'no Healthy condition until the probe reports');
    const plain = await api(s.url, 'POST', '/v1/workloads', { token: ratings, body: { healthChecks: true, address: '10.1.0.2' } });
    assert.equal(plain.status, 200);
    assert.equal(plain.body.workload.metadata.annotations[HC], undefined);
    assert.equal(plain.body.probe, undefined);
  });

  it('a client that does not say it runs the probe (no "healthChecks": true) gets an entry that is not health-checked, as istiod without a readinessProbe in the proxy config', async () => {
    // It would never report health: a health-checked entry would never be an endpoint.
    const r = await api(s.url, 'POST', '/v1/workloads', { token: reviews, body: { address: '10.1.0.9' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.workload.metadata.annotations[HC], 'false', "the group's own annotation stays (istiod copies it)");
    assert.equal(r.body.probe, undefined, 'no probe to run');
    const off = await api(s.url, 'POST', '/v1/workloads', { token: reviews, body: { address: '10.1.0.10', healthChecks: false } });
    assert.equal(off.body.workload.metadata.annotations[HC], 'false');
    const bad = await api(s.url, 'POST', '/v1/workloads', { token: reviews, body: { address: '10.1.0.11', healthChecks: 'yes' } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /healthChecks must be true or false, got "yes"/);
    const plain = await api(s.url, 'POST', '/v1/workloads', { token: ratings, body: { address: '10.1.0.12' } });
    const refused = await api(s.url, 'PUT', `/v1/workloads/default/${plain.body.name}/health`, { token: ratings, body: { healthy: false, message: 'x' } });
    assert.equal(refused.status, 409, 'health of an entry without the annotation is refused (istiod: IsEligibleForHealthStatusUpdates)');
    assert.match(refused.body.error.message, /is not health-checked \(no proxy\.istio\.io\/health-checks-enabled annotation/);
    const listed = (await api(s.url, 'GET', '/v1/workloads', { token: ratings })).body.workloads.find((x: { name: string }) => x.name === plain.body.name);
    assert.equal(healthyOf(listed.workload), undefined, 'no condition written');
    const big = await api(s.url, 'PUT', `/v1/workloads/default/${r.body.name}/health`, { token: reviews, body: { healthy: false, message: 'x'.repeat(20_000) } });
    assert.equal(big.status, 413, 'a health report body is small');
  });

  it('a report sets the Healthy condition as istiod writes it, and watchers get the entry with it', async () => {
    const productpage = await s.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const w = await watch(s.url, 'service=productpage&namespace=default&features=endpoints-delta', { token: productpage });
    try {
      await w.next('endpoints');
      const reg = await api(s.url, 'POST', '/v1/workloads', { token: reviews, body: { healthChecks: true, address: '10.1.0.3' } });
      const path = `/v1/workloads/default/${reg.body.name}/health`;
      await w.next('endpoints-delta');
      const registryVersion = (await api(s.url, 'GET', '/v1/workloads', { token: s.admin })).body.version;
      const before = Date.now();
      const down = await api(s.url, 'PUT', path, { token: reviews, body: { healthy: false, message: 'Get "http://10.1.0.3:9080/ready": connection refused' } });
      assert.equal(down.status, 200, JSON.stringify(down.body));
      const cond = healthyOf(down.body.workload)!;
      assert.deepEqual({ ...cond, lastProbeTime: '', lastTransitionTime: '' }, { type: 'Healthy', status: 'False', message: 'Get "http://10.1.0.3:9080/ready": connection refused', lastProbeTime: '', lastTransitionTime: '' });
      assert.equal(cond.lastProbeTime, cond.lastTransitionTime);
      assert.ok(Date.parse(cond.lastProbeTime) >= before - 1000 && Date.parse(cond.lastProbeTime) <= Date.now() + 1000);
      assert.notEqual((await api(s.url, 'GET', '/v1/workloads', { token: s.admin })).body.version, registryVersion, "the registry's version covers the status");
      const pushed = await w.next('endpoints-delta');
      assert.deepEqual(pushed.data.workloads.map((x: WireResource) => healthyOf(x)?.status), ['False']);
      const up = await api(s.url, 'PUT', path, { token: reviews, body: { healthy: true, message: 'ignored' } });
      assert.equal(up.status, 200);
      assert.deepEqual(Object.keys(healthyOf(up.body.workload)!).sort(), ['lastProbeTime', 'lastTransitionTime', 'status', 'type'], 'no message when healthy');
      assert.equal((up.body.workload.status.conditions as Cond[]).length, 1, 'the condition is replaced, not added');
      const again = await w.next('endpoints-delta');
      assert.deepEqual(again.data.workloads.map((x: WireResource) => healthyOf(x)?.status), ['True']);
      // The workload's own listing shows it too.
      const mine = await api(s.url, 'GET', '/v1/workloads', { token: reviews });
      assert.equal(healthyOf(mine.body.workloads.find((x: { name: string }) => x.name === reg.body.name).workload)?.status, 'True');
    } finally {
      w.close();
    }
  });

  it('only the owner or an admin reports; a gone record is 404; a bad body is 400', async () => {
    const reg = await api(s.url, 'POST', '/v1/workloads', { token: reviews, body: { healthChecks: true, address: '10.1.0.4' } });
    const path = `/v1/workloads/default/${reg.body.name}/health`;
    const other = await api(s.url, 'PUT', path, { token: ratings, body: { healthy: true } });
    assert.equal(other.status, 403);
    assert.match(other.body.error.message, /report health: workload default\/reviews-10-1-0-4-\S+ is registered by service default\/reviews, not default\/ratings/);
    const otherNs = await api(s.url, 'PUT', path, { token: await s.cp.mintToken({ service: 'reviews', namespace: 'shop' }), body: { healthy: true } });
    assert.equal(otherNs.status, 403);
    assert.equal((await api(s.url, 'PUT', path, { token: s.admin, body: { healthy: true } })).status, 200);
    const bad = await api(s.url, 'PUT', path, { token: reviews, body: { healthy: 'yes' } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /"healthy" must be true or false/);
    assert.equal((await api(s.url, 'PUT', path, { body: { healthy: true } })).status, 401);
    assert.equal((await api(s.url, 'DELETE', `/v1/workloads/default/${reg.body.name}`, { token: reviews })).status, 200);
    const gone = await api(s.url, 'PUT', path, { token: reviews, body: { healthy: true } });
    assert.equal(gone.status, 404);
    assert.match(gone.body.error.message, /is not registered .*register again/);
  });
});

describe('health survives a restart (file mode)', () => {
  it('a restarted control plane serves the entry with the Healthy condition it had', async () => {
    const s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'groups.yaml': GROUPS });
    let second: Awaited<ReturnType<typeof startControlPlane>> | undefined;
    try {
      const reviews = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
      const reg = await api(s.url, 'POST', '/v1/workloads', { token: reviews, body: { healthChecks: true, address: '10.1.0.5', leaseMs: 60_000 } });
      const up = await api(s.url, 'PUT', `/v1/workloads/default/${reg.body.name}/health`, { token: reviews, body: { healthy: true } });
      assert.equal(up.status, 200);
      await s.cp.close();
      second = await startControlPlane({ configDir: s.configDir, dataDir: s.dataDir, host: '127.0.0.1', port: 0, logger: memoryLogger() });
      const list = await api(second.url, 'GET', '/v1/workloads', { token: await second.mintToken({ admin: true }) });
      const rec = list.body.workloads.find((x: { name: string }) => x.name === reg.body.name);
      assert.deepEqual(healthyOf(rec.workload), healthyOf(up.body.workload));
    } finally {
      await second?.close();
      await s.close();
    }
  });
});

describe('health across etcd replicas', { skip: skipWithout('etcd') }, () => {
  let etcd: EtcdServer;
  let a: EtcdStores;
  let b: EtcdStores;
  before(async () => {
    etcd = await startEtcd();
    a = await openEtcd(etcd.endpoints, { prefix: '/wh' });
    b = await openEtcd(etcd.endpoints, { prefix: '/wh' });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await etcd?.stop();
  });

  it('a report on one replica reaches the other as a change of the record, on the same lease; only the owner may report', async () => {
    const entry: WireResource = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: 'reviews-1', namespace: 'default', annotations: { [HC]: 'true' } },
      spec: { address: '10.2.0.1', ports: { http: 9080 }, labels: { app: 'reviews' } },
    };
    const rec = await a.registry.register(entry, 'reviews', 30_000);
    await until(() => b.registry.list().length === 1);
    const changes: string[] = [];
    b.registry.onChange((c) => changes.push(c.kind === 'delta' ? c.upserted.map((r) => healthyOf(r.entry)?.status ?? '-').join() : 'reset'));
    const before = b.registry.version();
    const cond = healthCondition(false, 'connection refused', new Date());
    const out = await a.registry.health('default', 'reviews-1', cond, 'reviews');
    assert.deepEqual(healthyOf(out!.entry), cond);
    await until(() => healthyOf(b.registry.list()[0]!.entry)?.status === 'False');
    assert.deepEqual(changes, ['False']);
    assert.notEqual(b.registry.version(), before);
    assert.equal(b.registry.version(), a.registry.version());
    await assert.rejects(b.registry.health('default', 'reviews-1', healthCondition(true, undefined, new Date()), 'ratings'), /report health: .* registered by service default\/reviews, not default\/ratings/);
    // The record keeps its lease: a renewal still works, and deregistering removes it.
    assert.ok(await b.registry.renew('default', 'reviews-1', 'reviews'));
    assert.equal(rec.leaseMs, 30_000);
    assert.equal(await b.registry.health('default', 'nope', cond), undefined);
    assert.equal(await a.registry.deregister('default', 'reviews-1', 'reviews'), true);
  });
});

describe('health through control-plane replicas over etcd', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let dir: { dir: string; cleanup: () => void };
  const stores: EtcdStores[] = [];
  const replicas: ControlPlane[] = [];
  before(async () => {
    etcd = await startEtcd();
    dir = tempDir();
    for (const name of ['a', 'b']) {
      const s = await openEtcd(etcd.endpoints, { prefix: '/whr', logger: quietLog });
      stores.push(s);
      replicas.push(await startControlPlane({ ...s, dataDir: join(dir.dir, name), host: '127.0.0.1', port: 0, logger: quietLog }));
    }
  });
  after(async () => {
    for (const r of replicas) await r.close();
    for (const s of stores) await s.close();
    await etcd?.stop();
    dir?.cleanup();
  });

  it('registered through one replica, reported through the other: both push the entry with its condition', async () => {
    const [a, b] = replicas as [ControlPlane, ControlPlane];
    const admin = await b.mintToken({ admin: true });
    for (const doc of GROUPS.split('---')) {
      const r = await api(b.url, 'POST', '/v1/resources', { token: admin, text: doc, headers: { 'content-type': 'application/yaml' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const reviews = await a.mintToken({ service: 'reviews', namespace: 'default' });
    const productpage = await a.mintToken({ service: 'productpage', namespace: 'default' });
    const wa = await watch(a.url, 'service=productpage&namespace=default', { token: productpage });
    const wb = await watch(b.url, 'service=productpage&namespace=default', { token: productpage });
    try {
      await until(() => a.status().configVersion === b.status().configVersion && a.status().configVersion !== '');
      const reg = await api(a.url, 'POST', '/v1/workloads', { token: reviews, body: { healthChecks: true, address: '10.3.0.1' } });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      assert.equal(reg.body.workload.metadata.annotations[HC], 'true');
      const report = await api(b.url, 'PUT', `/v1/workloads/default/${reg.body.name}/health`, { token: reviews, body: { healthy: true } });
      assert.equal(report.status, 200, JSON.stringify(report.body));
      for (const w of [wa, wb]) {
        await until(() => w.events.some((e) => e.event === 'endpoints' && (e.data.workloads as WireResource[]).some((x) => healthyOf(x)?.status === 'True')), 5000, 'the healthy entry pushed');
      }
    } finally {
      wa.close();
      wb.close();
    }
  });
});

