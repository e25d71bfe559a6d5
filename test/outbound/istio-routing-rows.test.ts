/**
 * Rows of Istio's traffic tests (tests/integration/pilot/common/routing.go, `TrafficTestCase`
 * names quoted) and of Envoy's router behaviour, run through what users call — `mesh.fetch`,
 * Node's global `fetch` with `dispatcher: mesh.dispatcher`, and `undici.request` — against a real
 * upstream on 127.0.0.1 that echoes what it received.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const SVC = 'svc.default.svc.cluster.local';

describe('Istio routing.go traffic rows', () => {
  let up: Upstream;
  before(async () => {
    up = await startUpstream('u');
  });
  after(async () => {
    await up.close();
  });

  /** Calls http://svc`path` through a mesh whose VirtualService has `http`; returns the status and what the upstream saw. */
  async function row(http: unknown[], path = '/', init: RequestInit = {}) {
    const mesh: Mesh = await createMesh({ service: 'client', random: seededRandom(3), config: [serviceEntry('svc', SVC, 80, [{ port: up.port }]), virtualService('svc', ['svc'], http)] });
    try {
      const before = up.seen.length;
      const res = await mesh.fetch(`http://svc${path}`, init);
      await res.arrayBuffer();
      return { status: res.status, seen: up.seen[before], headers: res.headers };
    } finally {
      await mesh.close();
    }
  }
  const dest = { destination: { host: 'svc' } };

  test('"added header": headers.request.add reaches the upstream', async () => {
    const r = await row([{ route: [dest], headers: { request: { add: { 'istio-custom-header': 'user-defined-value' } } } }]);
    assert.equal(r.status, 200);
    assert.equal(r.seen?.headers['istio-custom-header'], 'user-defined-value');
  });

  test('"set header": headers.request.set reaches the upstream', async () => {
    const r = await row([{ route: [dest], headers: { request: { set: { 'x-custom': 'some-value' } } } }]);
    assert.equal(r.seen?.headers['x-custom'], 'some-value');
  });

  test('"set authority header": set :authority is the Host sent', async () => {
    const r = await row([{ route: [dest], headers: { request: { set: { ':authority': 'my-custom-authority' } } } }]);
    assert.equal(r.seen?.headers.host, 'my-custom-authority');
  });

  test('"set host header in destination" and "set authority header in destination"', async () => {
    for (const name of ['Host', ':authority']) {
      const r = await row([{ route: [{ ...dest, headers: { request: { set: { [name]: 'my-custom-authority' } } } }] }]);
      assert.equal(r.seen?.headers.host, 'my-custom-authority', name);
    }
  });

  test('"set host header in route and destination": the route\'s wins', async () => {
    const r = await row([{ route: [{ ...dest, headers: { request: { set: { Host: 'dest-authority' } } } }], headers: { request: { set: { ':authority': 'route-authority' } } } }]);
    assert.equal(r.seen?.headers.host, 'route-authority');
  });

  test('"set host header in route and multi destination": the route\'s wins', async () => {
    const http = [{ route: [{ ...dest, weight: 50, headers: { request: { set: { Host: 'dest-authority' } } } }, { ...dest, weight: 50 }], headers: { request: { set: { ':authority': 'route-authority' } } } }];
    for (let i = 0; i < 4; i++) assert.equal((await row(http)).seen?.headers.host, 'route-authority');
  });

  test('"set host header multi destination": the destination\'s', async () => {
    const d = { ...dest, weight: 50, headers: { request: { set: { Host: 'dest-authority' } } } };
    const r = await row([{ route: [d, d] }]);
    assert.equal(r.seen?.headers.host, 'dest-authority');
  });

  test('"weird header matches": a header name with every token character', async () => {
    const name = "a!#$%&'*+-.^_`|~z";
    const http = [{ match: [{ headers: { [name]: { exact: 'why' } } }], route: [dest] }];
    assert.equal((await row(http)).status, 404);
    assert.equal((await row(http, '/', { headers: { [name]: 'why' } })).status, 200);
  });

  test('"pseudo header matches": headers {":method": {exact: GET}}', async () => {
    const http = [{ match: [{ headers: { ':method': { exact: 'GET' } } }], route: [dest] }];
    assert.equal((await row(http, '/', { method: 'POST', body: 'x' })).status, 404);
    assert.equal((await row(http)).status, 200);
  });

  test('"rewrite uri": an exact match is replaced whole, the query kept, the fragment never sent', async () => {
    const r = await row([{ match: [{ uri: { exact: '/foo' } }], rewrite: { uri: '/new/path' }, route: [dest] }], '/foo?key=value#hash');
    assert.equal(r.seen?.url, '/new/path?key=value');
  });

  test('a rewrite that leaves the path as it was still sends x-envoy-original-path (Envoy finalizePathHeader)', async () => {
    const prefix = await row([{ match: [{ uri: { prefix: '/same' } }], rewrite: { uri: '/same' }, route: [dest] }], '/same/x?q=1');
    assert.equal(prefix.seen?.url, '/same/x?q=1');
    assert.equal(prefix.seen?.headers['x-envoy-original-path'], '/same/x?q=1');
    const regex = await row([{ rewrite: { uriRegexRewrite: { match: '^/nomatch$', rewrite: '/other' } }, route: [dest] }], '/kept');
    assert.equal(regex.seen?.url, '/kept');
    assert.equal(regex.seen?.headers['x-envoy-original-path'], '/kept');
  });

  test('"rewrite authority"', async () => {
    const r = await row([{ match: [{ uri: { exact: '/foo' } }], rewrite: { authority: 'new-authority' }, route: [dest] }], '/foo');
    assert.equal(r.seen?.headers.host, 'new-authority');
  });

  test('"catch all route short circuit the other routes": uri regex .* is a catch-all', async () => {
    const r = await row([{ match: [{ uri: { regex: '.*' } }], route: [dest], fault: { abort: { percentage: { value: 100 }, httpStatus: 418 } } }, { route: [dest] }]);
    assert.equal(r.status, 418);
  });

  /** The three calls of the withoutHeaders rows: end-user jason, end-user `second`, no end-user. */
  async function withoutRows(m: unknown, second = ''): Promise<number[]> {
    const http = [{ match: [{ withoutHeaders: { 'end-user': m } }], route: [dest], fault: { abort: { percentage: { value: 100 }, httpStatus: 403 } } }, { route: [dest] }];
    return [(await row(http, '/', { headers: { 'end-user': 'jason' } })).status, (await row(http, '/', { headers: { 'end-user': second } })).status, (await row(http)).status];
  }

  test('"without headers": exact jason', async () => {
    assert.deepEqual(await withoutRows({ exact: 'jason' }, 'not-jason'), [200, 403, 403]);
  });

  test('"without headers regex convert to present_match": regex "*" is presence', async () => {
    assert.deepEqual(await withoutRows({ regex: '*' }), [200, 200, 403]);
  });

  test('"without headers regex match any string": regex .* with a missing header read as empty', async () => {
    assert.deepEqual(await withoutRows({ regex: '.*' }), [200, 200, 200]);
  });

  test('an empty redirect authority or rewrite authority is none (route.go sets host_redirect/host_rewrite_literal only when not empty)', async () => {
    const redirect = await row([{ redirect: { uri: '/new', authority: '' } }], '/old', { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), 'http://svc/new');
    const rewrite = await row([{ rewrite: { uri: '/', authority: '' }, route: [dest] }]);
    assert.equal(rewrite.seen?.headers.host, 'svc');
  });

  test('x-envoy-fault-* request headers are not honoured: istiod never configures header_abort/header_delay (fault_filter_test HeaderAbort* rows need them)', async () => {
    const r = await row([{ route: [dest], fault: { abort: { percentage: { value: 0 }, httpStatus: 503 } } }], '/', {
      headers: { 'x-envoy-fault-abort-request': '500', 'x-envoy-fault-abort-request-percentage': '100', 'x-envoy-fault-delay-request': '60000' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-meshlet-response-flags'), null);
  });

  test('"fault abort": httpStatus 418 at 100%', async () => {
    const r = await row([{ route: [dest], fault: { abort: { percentage: { value: 100 }, httpStatus: 418 } } }]);
    assert.equal(r.status, 418);
    assert.equal(r.headers.get('x-meshlet-response-flags'), 'FI');
  });
});

describe('Envoy router rows through fetch, fetch with mesh.dispatcher and undici.request', () => {
  let up: Upstream;
  let mesh: Mesh;
  before(async () => {
    up = await startUpstream('u');
    mesh = await createMesh({
      service: 'client',
      config: [
        serviceEntry('svc', SVC, 80, [{ port: up.port }]),
        virtualService('svc', ['svc'], [
          // Envoy matches the query as sent (QueryParamsMulti::parseQueryString, decode_params=false).
          { match: [{ queryParams: { q: { exact: 'a%20b' } } }], directResponse: { status: 201 } },
          { match: [{ queryParams: { q: { exact: 'a b' } } }], directResponse: { status: 202 } },
          // regex_rewrite is RE2::GlobalReplace: \0 the whole match, $ literal.
          { match: [{ uri: { prefix: '/re/' } }], rewrite: { uriRegexRewrite: { match: '^/re/([a-z]+)$', rewrite: '/$1/\\1\\0' } }, route: [{ destination: { host: 'svc' } }] },
          { route: [{ destination: { host: 'svc' } }] },
        ]),
      ],
    });
  });
  after(async () => {
    await mesh.close();
    await up.close();
  });

  const callers: [string, (url: string) => Promise<{ status: number }>][] = [
    ['mesh.fetch', async (u) => { const r = await mesh.fetch(u); await r.arrayBuffer(); return r; }],
    ['fetch + mesh.dispatcher', async (u) => { const r = await fetch(u, { dispatcher: mesh.dispatcher } as RequestInit); await r.arrayBuffer(); return r; }],
    ['undici.request', async (u) => { const r = await request(u, { dispatcher: mesh.dispatcher }); await r.body.dump(); return { status: r.statusCode }; }],
  ];
  for (const [name, call] of callers) {
    test(`${name}: queryParams exact matches the encoded text as sent, not the decoded one`, async () => {
      assert.equal((await call('http://svc/?q=a%20b')).status, 201);
      assert.equal((await call('http://svc/?q=a+b')).status, 200);
    });
    test(`${name}: uriRegexRewrite with $ literal and \\0`, async () => {
      const before = up.seen.length;
      assert.equal((await call('http://svc/re/abc?x=1')).status, 200);
      assert.equal(up.seen[before]?.url, '/$1/abc/re/abc?x=1');
    });
  }
});
