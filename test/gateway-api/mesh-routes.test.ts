/**
 * HTTPRoutes attached to a Service (Gateway API mesh routing, GAMMA), through real calls: the
 * VirtualServices istiod generates for them route as istiod's Envoy config does — weighted
 * backends (Istio's traffic-shifting task, Gateway API tab), header matches (request routing),
 * path-separated prefixes, URLRewrite (a ReplacePrefixMatch of `/` drops the prefix), header
 * filters, redirects, 500 for a missing backend or no backend of weight > 0, and consumer
 * routes (another namespace's route applies to that namespace's workloads only).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const service = (name: string, selector: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { ports: [{ name: 'http', port: 9080 }], selector },
});
const workloadEntry = (name: string, labels: Record<string, string>, port: number) => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'WorkloadEntry',
  metadata: { name, namespace: 'default' },
  spec: { address: '127.0.0.1', ports: { http: port }, labels },
});
const httpRoute = (name: string, namespace: string, rules: unknown[], port?: number) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews', namespace: 'default', ...(port === undefined ? {} : { port }) }], rules },
});
const backend = (name: string, extra: object = {}) => ({ name, namespace: 'default', port: 9080, ...extra });

describe('HTTPRoute with a Service parent, through real calls', () => {
  const ups: Record<string, Upstream> = {};
  let mesh: Mesh;
  let other: Mesh;

  before(async () => {
    for (const n of ['v1', 'v2']) ups[n] = await startUpstream(n);
    const config = [
      service('reviews', { app: 'reviews' }),
      service('reviews-v1', { app: 'reviews', version: 'v1' }),
      service('reviews-v2', { app: 'reviews', version: 'v2' }),
      workloadEntry('reviews-1', { app: 'reviews', version: 'v1' }, (ups.v1 as Upstream).port),
      workloadEntry('reviews-2', { app: 'reviews', version: 'v2' }, (ups.v2 as Upstream).port),
      httpRoute('reviews', 'default', [
        { matches: [{ headers: [{ name: 'end-user', value: 'jason' }] }], backendRefs: [backend('reviews-v2')] },
        { matches: [{ path: { type: 'PathPrefix', value: '/strip/' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }], backendRefs: [backend('reviews-v1')] },
        { matches: [{ path: { type: 'Exact', value: '/full' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/replaced' } } }], backendRefs: [backend('reviews-v1')] },
        {
          matches: [{ path: { value: '/api' } }],
          filters: [
            { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-set', value: 'yes' }] } },
            { type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'x-resp', value: 'added' }] } },
          ],
          backendRefs: [backend('reviews-v2')],
        },
        { matches: [{ path: { type: 'PathPrefix', value: '/missing' } }], backendRefs: [backend('reviews-v9')] },
        { matches: [{ path: { type: 'PathPrefix', value: '/zero' } }], backendRefs: [backend('reviews-v1', { weight: 0 })] },
        { matches: [{ path: { type: 'PathPrefix', value: '/old' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, statusCode: 302 } }] },
        { backendRefs: [backend('reviews-v1', { weight: 90 }), backend('reviews-v2', { weight: 10 })] },
      ]),
      // A consumer route in another namespace: only that namespace's workloads take it.
      httpRoute('reviews-consumer', 'other', [{ backendRefs: [backend('reviews-v2')] }]),
    ];
    mesh = await createMesh({ service: 'productpage', random: seededRandom(7), config });
    other = await createMesh({ service: 'client', namespace: 'other', random: seededRandom(7), config });
  });

  after(async () => {
    await mesh.close();
    await other.close();
    for (const u of Object.values(ups)) await u.close();
  });

  async function get(m: Mesh, path: string, headers: Record<string, string> = {}) {
    const res = await request(`http://${m === other ? 'reviews.default' : 'reviews'}:9080${path}`, { dispatcher: m.dispatcher, headers });
    const body = await res.body.text();
    return { status: res.statusCode, body, headers: res.headers };
  }

  it('splits by the backendRefs weights (90/10)', async () => {
    const counts: Record<string, number> = { v1: 0, v2: 0 };
    for (let i = 0; i < 400; i++) {
      const r = await get(mesh, '/reviews/1');
      counts[r.body] = (counts[r.body] ?? 0) + 1;
    }
    assert.ok((counts.v1 as number) > 330 && (counts.v1 as number) < 390, JSON.stringify(counts));
    assert.equal((counts.v1 as number) + (counts.v2 as number), 400);
  });

  it('routes a header match (the request-routing task: end-user jason to v2)', async () => {
    for (let i = 0; i < 20; i++) assert.equal((await get(mesh, '/reviews/1', { 'end-user': 'jason' })).body, 'v2');
  });

  it('matches a PathPrefix on whole path segments (/api, /api/x; not /apix) and applies header filters', async () => {
    const seen = (ups.v2 as Upstream).seen;
    const a = await get(mesh, '/api/x');
    assert.equal(a.body, 'v2');
    assert.equal(seen.at(-1)?.headers['x-set'], 'yes');
    assert.equal(a.headers['x-resp'], 'added');
    assert.equal((await get(mesh, '/api')).headers['x-resp'], 'added');
    assert.equal((await get(mesh, '/apix')).headers['x-resp'], undefined);
  });

  it('rewrites: ReplacePrefixMatch "/" drops the prefix, ReplaceFullPath replaces the path', async () => {
    const seen = (ups.v1 as Upstream).seen;
    await get(mesh, '/strip/a/b?q=1');
    assert.equal(seen.at(-1)?.url, '/a/b?q=1');
    await get(mesh, '/strip');
    assert.equal(seen.at(-1)?.url, '/');
    await get(mesh, '/full?q=1');
    assert.equal(seen.at(-1)?.url, '/replaced?q=1');
  });

  it('answers 500 for a backend that does not exist and for a rule whose backends all weigh 0', async () => {
    const missing = await get(mesh, '/missing');
    assert.equal(missing.status, 500);
    assert.equal(missing.headers['x-meshlet-response-flags'], 'NC');
    assert.equal((await get(mesh, '/zero')).status, 500);
  });

  it('redirects with the configured status and prefix', async () => {
    const r = await get(mesh, '/old/page');
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, 'http://reviews:9080/new/page');
  });

  it('a consumer route applies to its own namespace only, and overrides the producer route there', async () => {
    for (let i = 0; i < 10; i++) assert.equal((await get(other, '/reviews/1')).body, 'v2');
    let v1 = 0;
    for (let i = 0; i < 40; i++) if ((await get(mesh, '/reviews/1')).body === 'v1') v1++;
    assert.ok(v1 > 25, `producer route kept in default: ${v1}/40 to v1`);
  });
});

describe('HTTPRoutes attached to two ports of one Service', () => {
  it('each port is routed by its own route (the first VirtualService for the host makes no route on the other port, so the next one routes it)', async () => {
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    const port = (name: string, n: number) => ({ name, port: n });
    const svc = (name: string, ports: object[]) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { selector: { app: name }, ports } });
    const route = (name: string, parentPort: number, backendName: string) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name, namespace: 'default' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: parentPort }], rules: [{ backendRefs: [{ name: backendName, port: 9080 }] }] },
    });
    const mesh = await createMesh({
      service: 'web',
      config: [
        svc('echo', [port('http', 9080), port('http-alt', 9081)]),
        svc('a', [port('http', 9080)]),
        svc('b', [port('http', 9080)]),
        workloadEntry('a', { app: 'a' }, a.port),
        workloadEntry('b', { app: 'b' }, b.port),
        route('on-9080', 9080, 'a'),
        route('on-9081', 9081, 'b'),
      ],
    });
    try {
      const body = async (url: string) => (await request(url, { dispatcher: mesh.dispatcher })).body.text();
      assert.equal(await body('http://echo:9080/'), 'a');
      assert.equal(await body('http://echo:9081/'), 'b');
    } finally {
      await mesh.close();
      await a.close();
      await b.close();
    }
  });
});
