import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { summaryLine } from '../../../src/control-plane-server/status.ts';
import { api, startTestServer, type TestServer, until, watch } from './helpers.ts';

describe('POST /v1/ack and GET /status', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('records ACK and NACK per connection; the summary counts connected workloads at the current version', async () => {
    const reviews = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const ratings = await s.cp.mintToken({ service: 'ratings', namespace: 'default' });
    const a = await watch(s.url, 'service=reviews&namespace=default&labels=version=v1', { token: reviews });
    const b = await watch(s.url, 'service=ratings&namespace=default', { token: ratings });
    const helloA = await a.next('hello');
    const helloB = await b.next('hello');
    const cfg = await a.next('config');
    const eps = await a.next('endpoints');
    await b.next('endpoints');
    const version = cfg.data.version as string;

    let doc = (await api(s.url, 'GET', '/status', { token: s.admin })).body;
    assert.equal(doc.summary, `0/2 workloads at config version ${version}`);

    const ack = (body: object, token: string) => api(s.url, 'POST', '/v1/ack', { token, body });
    assert.equal((await ack({ connection: helloA.data.connection, kind: 'config', version, status: 'ACK' }, reviews)).status, 200);
    assert.equal((await ack({ connection: helloA.data.connection, kind: 'endpoints', version: eps.data.version, status: 'ACK' }, reviews)).status, 200);
    const nack = await ack({ connection: helloB.data.connection, kind: 'config', version, status: 'NACK', reasons: ['VirtualService default/x: bad'] }, ratings);
    assert.equal(nack.status, 200);

    doc = (await api(s.url, 'GET', '/status', { token: s.admin })).body;
    assert.equal(doc.summary, `1/2 workloads at config version ${version}`);
    const wa = doc.workloads.find((w: { service: string }) => w.service === 'reviews');
    assert.equal(wa.acked.config.version, version);
    assert.equal(wa.acked.endpoints.version, eps.data.version);
    assert.equal(wa.sent.config, version);
    assert.deepEqual(wa.labels, { app: 'reviews' }, 'the labels the token proves, not the query’s');
    const wb = doc.workloads.find((w: { service: string }) => w.service === 'ratings');
    assert.deepEqual(wb.nacked.reasons, ['VirtualService default/x: bad']);
    assert.equal(wb.nacked.version, version);
    assert.equal(wb.acked.config, undefined);

    // Another workload cannot ACK for this connection; unknown connections are 404.
    assert.equal((await ack({ connection: helloA.data.connection, kind: 'config', version, status: 'NACK' }, ratings)).status, 403);
    assert.equal((await ack({ connection: 'nope', kind: 'config', version, status: 'ACK' }, reviews)).status, 404);
    assert.equal((await ack({ connection: helloA.data.connection, kind: 'bogus', version, status: 'ACK' }, reviews)).status, 400);

    // A disconnected workload stays listed, with disconnectedAt, and leaves the summary.
    b.close();
    doc = await until(async () => {
      const d = (await api(s.url, 'GET', '/status', { token: s.admin })).body;
      return d.workloads.some((w: { disconnectedAt?: string }) => w.disconnectedAt !== undefined) ? d : undefined;
    });
    assert.equal(doc.summary, `1/1 workloads at config version ${version}`);
    assert.equal(doc.workloads.length, 2);
    assert.equal(doc.source.kind, 'file');
    assert.equal(doc.source.healthy, true);
    a.close();
  });

  it('summaryLine ignores disconnected workloads', () => {
    const w = (v: string | undefined, gone = false) => ({
      connection: 'c',
      service: 's',
      namespace: 'n',
      labels: {},
      peer: 'p',
      connectedAt: '',
      sent: {},
      acked: v === undefined ? {} : { config: { version: v, at: '' } },
      ...(gone ? { disconnectedAt: 'x' } : {}),
    });
    assert.equal(summaryLine([w('v1'), w('v0'), w(undefined), w('v1', true)], 'v1'), '1/3 workloads at config version v1');
  });
});
