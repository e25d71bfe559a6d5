/**
 * What one workload token can cost the control plane (issue 11, point 9): watch streams and
 * registrations per workload identity, the size of NACKs, and the bytes a registration pushes to
 * each watcher (a delta, not the whole list again). Also: a workload is sent only the registered
 * workloads a service visible to it selects.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, SERVICES_YAML, startTestServer, type TestServer, until, watch, type WatchStream } from './helpers.ts';

/** Services selecting registered instances: ratings (visible everywhere) and a private one of namespace vault. */
const SELECTING = `apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec: {selector: {app: ratings}, ports: [{port: 9080, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secret, namespace: vault}
spec: {hosts: [secret.vault.svc.cluster.local], exportTo: ['.'], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, workloadSelector: {labels: {app: secret}}}
`;

describe('per-workload limits', { timeout: 60_000 }, () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer(
      { 'services.yaml': SERVICES_YAML, 'selecting.yaml': SELECTING },
      { limits: { maxWatchesPerWorkload: 2, maxRegistrationsPerWorkload: 3, maxNackReasons: 5, maxNackBytes: 1024 } },
    );
  });
  after(() => s.close());

  it('a workload may hold maxWatchesPerWorkload streams; one more is 429 LIMIT_EXCEEDED; closing one frees its place', async () => {
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const a = await watch(s.url, 'service=reviews&namespace=default', { token });
    const b = await watch(s.url, 'service=reviews&namespace=default', { token });
    await a.next('hello');
    await b.next('hello');
    const third = await api(s.url, 'GET', '/v1/watch?service=reviews&namespace=default', { token });
    assert.equal(third.status, 429);
    assert.equal(third.body.error.code, 'LIMIT_EXCEEDED');
    assert.match(third.body.error.message, /workload default\/reviews already has 2 watch streams open on this server, the limit \(maxWatchesPerWorkload, --max-watches-per-workload\)/);
    // Another workload is not affected.
    const other = await watch(s.url, 'service=ratings&namespace=default', { token: await s.cp.mintToken({ service: 'ratings', namespace: 'default' }) });
    assert.equal(other.status, 200);
    other.close();
    a.close();
    await until(() => s.cp.status().workloads.filter((w) => w.service === 'reviews' && w.disconnectedAt === undefined).length === 1, 3000, 'the close to be seen');
    const again = await watch(s.url, 'service=reviews&namespace=default', { token });
    assert.equal(again.status, 200);
    again.close();
    b.close();
  });

  it('a workload may own maxRegistrationsPerWorkload records; one more is 429; re-registering one it has is fine', async () => {
    const token = await s.cp.mintToken({ service: 'details', namespace: 'default' });
    const reg = (n: number) => api(s.url, 'POST', '/v1/workloads', { token, body: { address: `10.20.0.${n}`, ports: { http: 9080 } } });
    for (const n of [1, 2, 3]) assert.equal((await reg(n)).status, 200);
    const fourth = await reg(4);
    assert.equal(fourth.status, 429);
    assert.equal(fourth.body.error.code, 'LIMIT_EXCEEDED');
    assert.match(fourth.body.error.message, /workload default\/details already has 3 registered instances, the limit \(maxRegistrationsPerWorkload, --max-registrations-per-workload\)/);
    assert.equal((await reg(2)).status, 200, 'the same instance again replaces its record');
    const other = await api(s.url, 'POST', '/v1/workloads', { token: await s.cp.mintToken({ service: 'productpage', namespace: 'default' }), body: { address: '10.20.0.9', ports: { http: 9080 } } });
    assert.equal(other.status, 200);
  });

  it('a NACK may carry maxNackReasons reasons of maxNackBytes together (413 beyond); the status keeps what was accepted', async () => {
    const token = await s.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const w = await watch(s.url, 'service=productpage&namespace=default', { token });
    const { connection } = (await w.next('hello')).data;
    const nack = (reasons: string[]) => api(s.url, 'POST', '/v1/ack', { token, body: { connection, kind: 'config', version: 'v', status: 'NACK', reasons } });
    const many = await nack(['a', 'b', 'c', 'd', 'e', 'f']);
    assert.equal(many.status, 413);
    assert.equal(many.body.error.code, 'TOO_LARGE');
    assert.match(many.body.error.message, /6 reasons, more than the 5 one NACK may carry \(maxNackReasons\)/);
    const big = await nack(['x'.repeat(1025)]);
    assert.equal(big.status, 413);
    assert.match(big.body.error.message, /the reasons are 1025 bytes, more than the 1024 one NACK may carry \(maxNackBytes\)/);
    // A body far over the bound is refused before it is read whole.
    const huge = await nack(['y'.repeat(4 * 1024 * 1024)]);
    assert.equal(huge.status, 413);
    assert.equal((await nack(['fine'])).status, 200);
    const doc = (await api(s.url, 'GET', '/status', { token: s.admin })).body;
    const mine = doc.workloads.find((x: { connection: string }) => x.connection === connection);
    assert.deepEqual(mine.nacked.reasons, ['fine']);
    w.close();
  });
});

describe('endpoints: what each workload sees, and deltas', { timeout: 60_000 }, () => {
  let s: TestServer;
  let ratings: string;
  before(async () => {
    s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'selecting.yaml': SELECTING });
    ratings = await s.cp.mintToken({ service: 'ratings', namespace: 'default' });
  });
  after(() => s.close());

  const deltaQuery = (service: string, ns: string) => `service=${service}&namespace=${ns}&features=endpoints-delta`;
  const bytesOf = (w: WatchStream, event: string) => w.events.filter((e) => e.event === event).reduce((n, e) => n + JSON.stringify(e.data).length, 0);

  it('a registration reaches each watcher as one small delta: bytes grow linearly with registrations, not with their square', async () => {
    const token = await s.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const delta = await watch(s.url, deltaQuery('productpage', 'default'), { token });
    const full = await watch(s.url, 'service=productpage&namespace=default', { token });
    const first = await delta.next('endpoints');
    await full.next('endpoints');
    const n = 60;
    const names: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await api(s.url, 'POST', '/v1/workloads', { token: ratings, body: { address: `10.30.${i >> 8}.${i & 255}`, ports: { http: 9080 } } });
      assert.equal(r.status, 200);
      names.push(r.body.name);
    }
    await until(() => delta.events.filter((e) => e.event === 'endpoints-delta').length === n, 5000, `${n} deltas`);
    await until(() => full.events.filter((e) => e.event === 'endpoints').length === n + 1, 5000, `${n} full events for the client without deltas`);
    const deltas = delta.events.filter((e) => e.event === 'endpoints-delta');
    // Each delta carries the one new entry and chains onto the version before it.
    let base = first.data.version;
    for (const [i, d] of deltas.entries()) {
      assert.equal(d.data.base, base);
      assert.deepEqual(d.data.workloads.map((w: { metadata: { name: string } }) => w.metadata.name), [names[i]]);
      assert.deepEqual(d.data.removed, []);
      assert.equal(d.id, `${s.cp.status().configVersion}/${d.data.version}`);
      base = d.data.version;
    }
    const perDelta = bytesOf(delta, 'endpoints-delta') / n;
    assert.ok(perDelta < 1024, `a delta is one entry (${perDelta} bytes on average)`);
    // The client without deltas still works, at the old price: the whole list each time.
    const last = full.events.filter((e) => e.event === 'endpoints').at(-1)!;
    assert.equal(last.data.version, base, 'both kinds of client end at the same version');
    assert.equal(last.data.workloads.length, n);
    assert.ok(bytesOf(full, 'endpoints') > (n * perDelta * n) / 4, 'full events grow with the square of the registrations');
    // A deregistration is a delta that names what went away.
    await api(s.url, 'DELETE', `/v1/workloads/default/${names[0]}`, { token: ratings });
    await until(() => delta.events.filter((e) => e.event === 'endpoints-delta').length === n + 1, 2000, 'the removal delta');
    const removal = delta.events.filter((e) => e.event === 'endpoints-delta').at(-1)!;
    assert.equal(removal.data.base, base);
    assert.deepEqual(removal.data.removed, [{ namespace: 'default', name: names[0] }]);
    assert.deepEqual(removal.data.workloads, []);
    delta.close();
    full.close();
  });

  it('a watcher is sent only the registered workloads a service visible to it selects, and nothing for the others', async () => {
    const vaultToken = await s.cp.mintToken({ service: 'secret', namespace: 'vault' });
    const inVault = await watch(s.url, deltaQuery('vault-client', 'vault'), { token: s.admin });
    const outside = await watch(s.url, deltaQuery('productpage', 'default'), { token: await s.cp.mintToken({ service: 'productpage', namespace: 'default' }) });
    await inVault.next('endpoints');
    const outsideFirst = await outside.next('endpoints');
    const secret = await api(s.url, 'POST', '/v1/workloads', { token: vaultToken, body: { address: '10.40.0.1', ports: { http: 80 } } });
    assert.equal(secret.status, 200);
    const seen = await inVault.next('endpoints-delta', 2000);
    assert.deepEqual(seen.data.workloads.map((w: { metadata: { name: string } }) => w.metadata.name), [secret.body.name]);
    // An unselected registration (no service selects app=loner) reaches nobody.
    const loner = await api(s.url, 'POST', '/v1/workloads', { token: await s.cp.mintToken({ service: 'loner', namespace: 'vault' }), body: { address: '10.40.0.2', ports: { http: 80 } } });
    assert.equal(loner.status, 200);
    // A ratings registration does reach the outside watcher: proof that it is live and was sent nothing of vault.
    const r = await api(s.url, 'POST', '/v1/workloads', { token: ratings, body: { address: '10.40.0.3', ports: { http: 9080 } } });
    const next = await outside.next('endpoints-delta', 2000);
    assert.equal(next.data.base, outsideFirst.data.version, 'the vault registrations did not change its view');
    assert.deepEqual(next.data.workloads.map((w: { metadata: { name: string } }) => w.metadata.name), [r.body.name]);
    const text = JSON.stringify(outside.events);
    assert.ok(!text.includes('10.40.0.1') && !text.includes('10.40.0.2'));
    assert.ok(!JSON.stringify(inVault.events).includes('10.40.0.2'));
    inVault.close();
    outside.close();
  });
});
