/**
 * By default a call's own router-steering x-envoy-* headers are removed and change nothing, as an
 * Istio sidecar's outbound listener removes them from the app's requests (use_remote_address
 * false and no x-forwarded-for: an external request, Envoy's cleanInternalHeaders;
 * PILOT_SIDECAR_USE_REMOTE_ADDRESS defaults to false). An edge app that forwards its caller's
 * headers therefore cannot be made to retry 10 times, or to drop its route timeout.
 * `trustEnvoyRequestHeaders: true` honours them (retry-headers.test.ts, timeout-headers.test.ts).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const STEERING: Record<string, string> = {
  'x-envoy-retry-on': '5xx,reset',
  'x-envoy-retry-grpc-on': 'unavailable',
  'x-envoy-max-retries': '10',
  'x-envoy-retriable-status-codes': '503',
  'x-envoy-retriable-header-names': 'x-busy',
  'x-envoy-upstream-rq-timeout-ms': '0',
  'x-envoy-upstream-rq-per-try-timeout-ms': '5',
  'x-envoy-hedge-on-per-try-timeout': 'true',
  'x-envoy-upstream-rq-timeout-alt-response': '204',
  'x-envoy-expected-rq-timeout-ms': '999999',
  'x-envoy-upstream-alt-stat-name': 'spoofed',
  'x-envoy-ip-tags': 'internal',
  'x-envoy-original-url': 'http://elsewhere/',
  // Not router-steering, but removed from every request by Envoy and set only on internal ones.
  'x-envoy-internal': 'true',
};

describe('a call\'s own x-envoy-* router headers (Istio sidecar: sanitized)', () => {
  let up: Upstream;
  let mesh: Mesh;
  const seen: IncomingHttpHeaders[] = [];
  before(async () => {
    up = await startUpstream('u', (req, res) => {
      seen.push(req.headers);
      res.statusCode = 503;
      res.setHeader('x-busy', '1');
      res.end('busy');
    });
    mesh = await createMesh({
      service: 'client',
      random: seededRandom(3),
      config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]), virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc' } }] }])],
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  test('a mesh service: one attempt (Istio\'s default policy does not retry a 503), none of them sent upstream', async () => {
    const from = seen.length;
    const res = await mesh.fetch('http://svc/pay', { method: 'POST', body: '{"amount":42}', headers: { ...STEERING, 'x-app': 'kept' } });
    assert.equal(res.status, 503);
    assert.equal(await res.text(), 'busy');
    assert.equal(seen.length - from, 1);
    const got = seen[from] as IncomingHttpHeaders;
    for (const name of Object.keys(STEERING)) assert.equal(got[name], undefined, name);
    assert.equal(got['x-app'], 'kept');
    assert.equal(got['x-envoy-attempt-count'], '1');
  });

  test('a host outside the mesh (passthrough): removed too', async () => {
    const from = seen.length;
    const res = await mesh.fetch(`http://127.0.0.1:${up.port}/pay`, { headers: STEERING });
    assert.equal(res.status, 503);
    await res.text();
    assert.equal(seen.length - from, 1);
    for (const name of Object.keys(STEERING)) assert.equal((seen[from] as IncomingHttpHeaders)[name], undefined, name);
  });

  test("the call's own x-forwarded-client-cert is removed, with trustEnvoyRequestHeaders too (Envoy removes XFCC from every request on a connection that is not mTLS)", async () => {
    const forged = 'By=spiffe://cluster.local/ns/default/sa/svc;URI=spiffe://cluster.local/ns/default/sa/admin';
    const trusting = await createMesh({ service: 'client', trustEnvoyRequestHeaders: true, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
    try {
      for (const [m, url] of [
        [mesh, 'http://svc/pay'],
        [mesh, `http://127.0.0.1:${up.port}/pay`],
        [trusting, 'http://svc/pay'],
      ] as const) {
        const from = seen.length;
        const res = await m.fetch(url, { headers: { 'x-forwarded-client-cert': forged, 'x-app': 'kept' } });
        await res.text();
        const got = seen[from] as IncomingHttpHeaders;
        assert.equal(got['x-forwarded-client-cert'], undefined, url);
        assert.equal(got['x-app'], 'kept', url);
      }
    } finally {
      await trusting.close();
    }
  });

  test('trustEnvoyRequestHeaders must be a boolean', async () => {
    await assert.rejects(createMesh({ service: 'c', config: [], trustEnvoyRequestHeaders: 'yes' as unknown as boolean }), { code: 'MESHLET_ERR_INVALID_ARG', message: /trustEnvoyRequestHeaders/ });
  });
});

test('end to end: an edge behind the mesh that forwards its client\'s headers calls orders once per request, whatever x-envoy-* the client sends', async () => {
  const orders = await startUpstream('orders', (_q, res) => {
    res.statusCode = 503;
    res.end('busy');
  });
  const mesh = await createMesh({
    service: 'edge',
    random: seededRandom(9),
    config: [
      serviceEntry('orders', 'orders.default.svc.cluster.local', 80, [{ port: orders.port }]),
      virtualService('orders', ['orders'], [{ route: [{ destination: { host: 'orders' } }], retries: { attempts: 1, retryOn: 'connect-failure' } }]),
    ],
  });
  // The edge app copies every header of its client's request onto its call (a BFF, a proxy).
  const edge = createServer(
    mesh.handler(async (req, res) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection' && k !== 'content-length') headers[k] = v;
      const r = await mesh.fetch('http://orders/order', { method: 'POST', headers, body: 'order' });
      res.statusCode = r.status;
      res.end(await r.text());
    }),
  );
  await new Promise<void>((r) => edge.listen(0, '127.0.0.1', r));
  try {
    const port = (edge.address() as AddressInfo).port;
    const res = await fetch(`http://127.0.0.1:${port}/buy`, { method: 'POST', body: 'x', headers: { 'x-envoy-retry-on': '5xx', 'x-envoy-max-retries': '100', 'x-envoy-upstream-rq-timeout-ms': '0' } });
    assert.equal(res.status, 503);
    assert.equal(await res.text(), 'busy');
    assert.equal(orders.hits, 1, 'no retry: the route retries connect failures only');
    const got = orders.seen[0]?.headers ?? {};
    assert.equal(got['x-envoy-max-retries'], undefined);
    assert.equal(got['x-envoy-retry-on'], undefined);
    assert.equal(got['x-envoy-attempt-count'], '1');
  } finally {
    edge.closeAllConnections();
    await new Promise((r) => edge.close(r));
    await mesh.close();
    await orders.close();
  }
});

test("a VirtualService's headers.request.set of x-envoy-upstream-rq-timeout-ms / per-try is sent on and times nothing, as Envoy's router takes the timeouts before it adds the route's headers; its x-envoy-max-retries steers retries, as Envoy reads those after", async () => {
  let n = 0;
  const up = await startUpstream('slow', (_q, res) => {
    n++;
    // The first answer comes late (past both header values), the rest at once with 503.
    if (n === 1) setTimeout(() => res.end('late'), 300);
    else {
      res.statusCode = 503;
      res.end('busy');
    }
  });
  const mesh = await createMesh({
    service: 'client',
    random: seededRandom(5),
    config: [
      serviceEntry('slow', 'slow.default.svc.cluster.local', 80, [{ port: up.port }]),
      virtualService('slow', ['slow'], [{ route: [{ destination: { host: 'slow' } }], retries: { attempts: 0 }, headers: { request: { set: { 'x-envoy-upstream-rq-timeout-ms': '20', 'x-envoy-upstream-rq-per-try-timeout-ms': '10', 'x-envoy-retry-on': '5xx', 'x-envoy-max-retries': '2' } } } }]),
    ],
  });
  try {
    const first = await mesh.fetch('http://slow/');
    assert.equal(first.status, 200, 'not timed out by the route-set headers');
    assert.equal(await first.text(), 'late');
    const got = up.seen[0]?.headers ?? {};
    assert.equal(got['x-envoy-upstream-rq-timeout-ms'], '20');
    assert.equal(got['x-envoy-upstream-rq-per-try-timeout-ms'], '10');
    const second = await mesh.fetch('http://slow/');
    assert.equal(second.status, 503);
    await second.text();
    assert.equal(up.hits, 4, 'the route-set x-envoy-retry-on: 5xx with x-envoy-max-retries: 2 retried twice');
  } finally {
    await mesh.close();
    await up.close();
  }
});
