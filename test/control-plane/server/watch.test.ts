import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, reviewsVs, SERVICES_YAML, startTestServer, type TestServer, until, watch } from './helpers.ts';

/** A Kubernetes Service selecting the registered ratings instances. */
const RATINGS_SERVICE = `apiVersion: v1
kind: Service
metadata: {name: ratings-pods, namespace: default}
spec: {selector: {app: ratings}, ports: [{port: 9080, name: http}]}
`;

describe('GET /v1/watch', () => {
  let s: TestServer;
  let token: string;
  const query = 'service=reviews&namespace=default&labels=version=v1';
  before(async () => {
    s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'ratings.yaml': RATINGS_SERVICE, 'reviews.yaml': reviewsVs('1s') }, { heartbeatMs: 40, serverId: 'cp-test' });
    token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
  });
  after(() => s.close());

  it('writes hello, the MeshConfig and the trust bundle (no ids), then config and endpoints with eventId ids', async () => {
    const w = await watch(s.url, query, { token });
    assert.equal(w.status, 200);
    const hello = await w.next();
    assert.equal(hello.event, 'hello');
    assert.equal(hello.id, undefined);
    assert.equal(hello.data.server, 'cp-test');
    assert.equal(hello.data.heartbeatMs, 40);
    assert.match(hello.data.connection, /^cp-test-/);
    const status = s.cp.status();
    assert.equal(hello.data.configVersion, status.configVersion);
    // Before the config, so that the first config is compiled with it; `{}` without --mesh-config.
    const meshConfig = await w.next();
    assert.equal(meshConfig.event, 'mesh-config');
    assert.equal(meshConfig.id, undefined, 'not config: no event id, not ACKed');
    assert.deepEqual(meshConfig.data.meshConfig, {});
    assert.match(meshConfig.data.version, /^[0-9a-f]{16}$/);
    assert.equal(status.meshConfig, undefined, 'none given: the status shows none');
    const bundle = await w.next();
    assert.equal(bundle.event, 'trust-bundle');
    assert.equal(bundle.id, undefined, 'not config: no event id, not ACKed');
    assert.equal(bundle.data.version, s.cp.ca.bundle.version);
    assert.deepEqual(bundle.data.roots, s.cp.ca.bundle.roots);
    const config = await w.next();
    assert.equal(config.event, 'config');
    assert.equal(config.data.version, status.configVersion);
    assert.deepEqual(config.data.resources.map((r: { kind: string }) => r.kind).sort(), ['Service', 'ServiceEntry', 'VirtualService']);
    assert.equal(config.data.resources[0].source, undefined, 'bookkeeping fields are not sent');
    assert.equal(config.id, `${status.configVersion}/`);
    const endpoints = await w.next();
    assert.equal(endpoints.event, 'endpoints');
    assert.deepEqual(endpoints.data.workloads, []);
    // Endpoints versions are per namespace view (what the workload may see), announced in hello.
    assert.equal(endpoints.data.version, hello.data.endpointsVersion);
    assert.equal(endpoints.id, `${status.configVersion}/${hello.data.endpointsVersion}`);
    w.close();
  });

  it('Last-Event-ID with the current versions gets hello (and the MeshConfig and trust bundle) only; with an old config version, config only', async () => {
    const first = await watch(s.url, query, { token });
    const { configVersion, endpointsVersion } = (await first.next('hello')).data;
    first.close();
    const w = await watch(s.url, query, { token, lastEventId: `${configVersion}/${endpointsVersion}` });
    await w.next('hello');
    await until(() => w.pings >= 2, 2000, 'two pings');
    assert.deepEqual(
      w.events.map((e) => e.event),
      ['hello', 'mesh-config', 'trust-bundle'],
    );
    w.close();
    const w2 = await watch(s.url, query, { token, lastEventId: `stale/${endpointsVersion}` });
    await w2.next('hello');
    await w2.next('trust-bundle');
    const c = await w2.next();
    assert.equal(c.event, 'config');
    await until(() => w2.pings >= 1, 2000, 'a ping');
    assert.deepEqual(
      w2.events.map((e) => e.event),
      ['hello', 'mesh-config', 'trust-bundle', 'config'],
    );
    w2.close();
  });

  it('pushes a file change; rejects a bad one (visible in /status) and keeps serving the old version', async () => {
    const w = await watch(s.url, query, { token });
    const first = await w.next('config');
    writeFileSync(join(s.configDir, 'reviews.yaml'), reviewsVs('2s'));
    const changed = await w.next('config', 3000);
    assert.notEqual(changed.data.version, first.data.version);
    const vs = changed.data.resources.find((r: { kind: string }) => r.kind === 'VirtualService');
    assert.equal(vs.spec.http[0].timeout, '2s');
    assert.equal(s.cp.status().configVersion, changed.data.version);

    writeFileSync(join(s.configDir, 'reviews.yaml'), reviewsVs('not-a-duration'));
    const doc = await until(() => {
      const d = s.cp.status();
      return d.rejections.length > 0 ? d : undefined;
    });
    assert.match(doc.rejections[0]!.origin, /file change \(reviews\.yaml\)/);
    assert.match(doc.rejections[0]!.reasons.join('\n'), /reviews\.yaml: VirtualService default\/reviews: spec\.http\[0\]\.timeout: invalid duration "not-a-duration"/);
    assert.equal(doc.source.healthy, false);
    assert.equal(doc.configVersion, changed.data.version, 'the last good version is still served');
    assert.ok(s.logs.some((l) => l.startsWith('warn rejected file change')));
    // No config event for the rejected change; a new stream still gets the good version.
    assert.deepEqual(
      w.events.filter((e) => e.event === 'config').map((e) => e.data.version),
      [first.data.version, changed.data.version],
    );
    const w2 = await watch(s.url, query, { token });
    assert.equal((await w2.next('config')).data.version, changed.data.version);
    // Fixing the file makes the source healthy again.
    writeFileSync(join(s.configDir, 'reviews.yaml'), reviewsVs('1s'));
    const fixed = await w.next('config', 3000);
    assert.equal(fixed.data.version, first.data.version);
    assert.equal(s.cp.status().source.healthy, true);
    w.close();
    w2.close();
  });

  it('pushes a registration at once as endpoints, with the event id carrying both versions', async () => {
    const w = await watch(s.url, query, { token });
    await w.next('endpoints');
    const ratings = await s.cp.mintToken({ service: 'ratings', namespace: 'default' });
    const reg = await api(s.url, 'POST', '/v1/workloads', { token: ratings, body: { address: '10.1.2.3', ports: { http: 9080 }, labels: { version: 'v2' } } });
    assert.equal(reg.status, 200);
    // The server has no periodic endpoints push (only heartbeats), so this event is the
    // registration's own: no elapsed-time bound needed to tell it was pushed at once.
    const e = await w.next('endpoints');
    assert.equal(e.data.workloads.length, 1);
    assert.equal(e.data.workloads[0].metadata.name, reg.body.name);
    const { configVersion } = s.cp.status();
    assert.equal(e.id, `${configVersion}/${e.data.version}`);
    await api(s.url, 'DELETE', `/v1/workloads/default/${reg.body.name}`, { token: ratings });
    const gone = await w.next('endpoints', 1000);
    assert.deepEqual(gone.data.workloads, []);
    w.close();
  });

  it('one shared heartbeat writes ": ping" to every stream', async () => {
    const a = await watch(s.url, query, { token });
    const b = await watch(s.url, query, { token });
    await until(() => a.pings >= 2 && b.pings >= 2, 2000, 'pings on both streams');
    a.close();
    b.close();
  });

  it('rejects a malformed labels query with 400 INVALID', async () => {
    const r = await api(s.url, 'GET', '/v1/watch?service=reviews&namespace=default&labels=novalue', { token });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID');
    assert.match(r.body.error.message, /expected key=value/);
  });
});

describe('close', () => {
  it('ends every watch stream so clients reconnect elsewhere', async () => {
    const s = await startTestServer();
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const w = await watch(s.url, 'service=reviews&namespace=default', { token });
    await w.next('endpoints');
    let ended = false;
    void w.ended.then(() => {
      ended = true;
    });
    await s.close();
    await until(() => ended, 2000, 'stream end');
  });
});
