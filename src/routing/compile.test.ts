import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { doc } from '../../test/helpers/config.ts';
import { compile, DETAILS, decide, NET, RATINGS, REVIEWS, req, SUBSETS, se, subsetOf, to, vs } from '../../test/helpers/route-decisions.ts';
import type { Snapshot, WorkloadInfo } from './compile.ts';
import type { RequestHead } from './request-head.ts';
import { NO_ROUTE, toDraw } from './route-table.ts';

const REVIEWS_FQDN = 'reviews.default.svc.cluster.local';


/** The share of requests each subset gets, over draws spread evenly across [0, 1). */
function shares(s: Snapshot, h: RequestHead, n = 20_000): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const sub = subsetOf(s, h, toDraw(i / n));
    out.set(sub, (out.get(sub) ?? 0) + 1 / n);
  }
  return out;
}



const SHOP_REVIEWS = se('reviews', 'shop', 'reviews.shop.svc.cluster.local', '- {number: 9080, name: http, protocol: HTTP}', '- {address: 10.1.0.1, labels: {version: v1}}');

describe('compileSnapshot: addressing a service (§6.19)', () => {
  const snap = compile([REVIEWS, SHOP_REVIEWS, RATINGS]);
  const rows: { authority: string; host: string | undefined }[] = [
    { authority: 'reviews', host: REVIEWS_FQDN },
    { authority: 'reviews:9080', host: REVIEWS_FQDN },
    { authority: 'reviews.default', host: REVIEWS_FQDN },
    { authority: 'reviews.default:9080', host: REVIEWS_FQDN },
    { authority: 'reviews.default.svc', host: REVIEWS_FQDN },
    { authority: 'reviews.default.svc.cluster.local', host: REVIEWS_FQDN },
    { authority: 'reviews.default.svc.cluster.local:9080', host: REVIEWS_FQDN },
    { authority: 'reviews.default.svc.cluster.local.', host: REVIEWS_FQDN },
    { authority: 'reviews.default.svc.cluster.local.:9080', host: REVIEWS_FQDN },
    // Istio adds the absolute form of the FQDN only (GenerateAltVirtualHosts), and Envoy matches
    // domains as written (no strip_trailing_host_dot): a short name with a trailing dot is no domain.
    { authority: 'reviews.', host: undefined },
    { authority: 'reviews.:9080', host: undefined },
    { authority: 'reviews.default.', host: undefined },
    { authority: 'reviews.default.svc.:9080', host: undefined },
    { authority: 'Reviews.Default:9080', host: REVIEWS_FQDN },
    { authority: 'reviews.shop', host: 'reviews.shop.svc.cluster.local' },
    { authority: 'reviews.shop:9080', host: 'reviews.shop.svc.cluster.local' },
    { authority: 'reviews.shop.svc.cluster.local:9080', host: 'reviews.shop.svc.cluster.local' },
    { authority: 'ratings', host: 'ratings.default.svc.cluster.local' },
    { authority: 'unknown', host: undefined },
    { authority: 'unknown:9080', host: undefined },
    { authority: 'reviews.other', host: undefined },
    { authority: 'example.com', host: undefined },
  ];
  for (const r of rows) {
    it(`${r.authority} → ${r.host ?? 'not in the mesh'}`, () => {
      assert.equal(snap.routes.virtualHost(r.authority)?.host, r.host);
      const d = snap.routes.route(req(r.authority), 0);
      if (r.host === undefined) assert.equal(d, undefined);
      else assert.ok(d !== undefined && d !== NO_ROUTE && d.target?.host === r.host);
    });
  }

  it('a workload in another namespace uses its own short names', () => {
    const shop = compile([REVIEWS, SHOP_REVIEWS], { service: 'web', namespace: 'shop' });
    assert.equal(shop.routes.virtualHost('reviews')?.host, 'reviews.shop.svc.cluster.local');
    assert.equal(shop.routes.virtualHost('reviews.default')?.host, REVIEWS_FQDN);
  });

  it('a short name never reaches a service in another namespace', () => {
    const only = compile([SHOP_REVIEWS]);
    assert.equal(only.routes.virtualHost('reviews'), undefined);
    assert.equal(only.routes.route(req('reviews:9080'), 0), undefined);
    assert.equal(only.routes.virtualHost('reviews.shop')?.host, 'reviews.shop.svc.cluster.local');
  });

  it('a VirtualService for the literal host reviews.default is not the service reviews.default.svc.cluster.local (istiod expands no dotted name): with no Sidecar it takes that name on port 80 only, as under a */* Sidecar', () => {
    const literal = vs('literal', `hosts: [reviews.default]\nhttp:\n- route: [{destination: {host: ratings}}]`);
    // No HTTP service on port 80: istiod builds no port-80 route table and drops the VirtualService on 9080 (selectVirtualServices), so every name stays the service's.
    const none = compile([REVIEWS, RATINGS, literal]);
    assert.equal(decide(none, req('reviews.default:9080')).target?.host, REVIEWS_FQDN);
    assert.equal(decide(none, req('reviews.default')).target?.host, REVIEWS_FQDN);
    // With a port-80 route table (some HTTP service on 80), the VirtualService takes the name there: a portless call is a port-80 call.
    const web = se('web', 'default', 'web.default.svc.cluster.local', '- {number: 80, name: http, protocol: HTTP}', '- {address: 10.0.9.1}');
    const s = compile([REVIEWS, RATINGS, web, literal]);
    assert.equal(decide(s, req('reviews.default')).target?.host, 'ratings.default.svc.cluster.local');
    assert.equal(decide(s, req('reviews.default:80')).target?.host, 'ratings.default.svc.cluster.local');
    assert.equal(decide(s, req('reviews.default:9080')).target?.host, REVIEWS_FQDN, 'the service port keeps the service routes');
    assert.equal(decide(s, req('reviews:9080')).target?.host, REVIEWS_FQDN);
    assert.equal(decide(s, req('reviews.default.svc:9080')).target?.host, REVIEWS_FQDN);
  });

  it('a known host where no rule matches gives NO_ROUTE', () => {
    const s = compile([REVIEWS, SUBSETS('reviews'), vs('reviews', `hosts: [reviews]\nhttp:\n- match: [{headers: {end-user: {exact: jason}}}]\n  route: [${to('v2')}]`)]);
    assert.equal(s.routes.route(req('reviews'), 0), NO_ROUTE);
    assert.equal(subsetOf(s, req('reviews', '/', { 'end-user': 'jason' })), 'v2');
  });
});

describe('compileSnapshot: rule order (§6.1)', () => {
  const snap = compile([
    REVIEWS,
    SUBSETS('reviews'),
    vs(
      'reviews',
      `hosts: [reviews]
http:
- name: a
  match: [{uri: {prefix: /a}}]
  route: [${to('v1')}]
- name: ab
  match: [{uri: {prefix: /a/b}}]
  route: [${to('v2')}]
- name: or
  match: [{headers: {end-user: {exact: jason}}}, {uri: {prefix: /beta}}, {queryParams: {canary: {exact: ""}}}]
  route: [${to('v3')}]
- match: [{method: {exact: POST}}]
  route: [${to('v2')}]`,
    ),
  ]);
  const rows: { name: string; h: RequestHead; want: string }[] = [
    { name: 'the first matching rule wins over a more specific later one', h: req('reviews', '/a/b'), want: 'v1' },
    { name: 'a later rule applies when earlier ones do not match', h: { ...req('reviews', '/x'), method: 'POST' }, want: 'v2' },
    { name: 'OR: first block (header)', h: req('reviews', '/x', { 'end-user': 'jason' }), want: 'v3' },
    { name: 'OR: second block (uri)', h: req('reviews', '/beta/1'), want: 'v3' },
    { name: 'OR: third block (query ?canary)', h: req('reviews', '/x?canary'), want: 'v3' },
    { name: 'OR: an earlier rule still wins', h: req('reviews', '/a?canary', { 'end-user': 'jason' }), want: 'v1' },
    { name: 'no rule matches', h: req('reviews', '/x'), want: 'NO_ROUTE' },
  ];
  for (const r of rows) it(`${r.name} → ${r.want}`, () => assert.equal(subsetOf(snap, r.h), r.want));

  it('names routes vsName.ruleName, or vsName.index', () => {
    const names = snap.routes.virtualHost('reviews')?.routes.map((r) => r.name);
    assert.deepEqual(names, ['reviews.a', 'reviews.ab', 'reviews.or', 'reviews.3']);
  });
});

describe('compileSnapshot: catch-all cut-off (§6.1)', () => {
  const cases: { name: string; catchAll: string; indexes: number[]; b: string }[] = [
    { name: 'a rule without match', catchAll: `- route: [${to('v2')}]`, indexes: [0, 1], b: 'v2' },
    { name: 'match uri prefix /', catchAll: `- match: [{uri: {prefix: /}}]\n  route: [${to('v2')}]`, indexes: [0, 1], b: 'v2' },
    { name: 'match uri regex .*', catchAll: `- match: [{uri: {regex: ".*"}}]\n  route: [${to('v2')}]`, indexes: [0, 1], b: 'v2' },
    { name: 'one catch-all block among ORed blocks', catchAll: `- match: [{headers: {x: {exact: "1"}}}, {uri: {prefix: /}}]\n  route: [${to('v2')}]`, indexes: [0, 1], b: 'v2' },
    { name: 'prefix / with a header is not a catch-all', catchAll: `- match: [{uri: {prefix: /}, headers: {x: {exact: "1"}}}]\n  route: [${to('v2')}]`, indexes: [0, 1, 2], b: 'v3' },
  ];
  for (const c of cases) {
    it(`${c.name}: later rules ${c.indexes.length === 2 ? 'are not compiled' : 'stay'}`, () => {
      const s = compile([
        REVIEWS,
        SUBSETS('reviews'),
        vs('reviews', `hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /a}}]\n  route: [${to('v1')}]\n${c.catchAll}\n- match: [{uri: {prefix: /b}}]\n  route: [${to('v3')}]`),
      ]);
      assert.deepEqual(s.routes.virtualHost('reviews')?.routes.map((r) => r.index), c.indexes);
      assert.equal(subsetOf(s, req('reviews', '/a')), 'v1');
      assert.equal(subsetOf(s, req('reviews', '/b')), c.b);
    });
  }
});

describe('compileSnapshot: weighted destinations (§1.1, §6.3)', () => {
  const cases: { name: string; route: string; subsets: string[]; cumulative: number[]; shares: number[] }[] = [
    {
      name: '20/80',
      route: `- {destination: {host: reviews, subset: v1}, weight: 20}\n  - {destination: {host: reviews, subset: v3}, weight: 80}`,
      subsets: ['v1', 'v3'],
      cumulative: [20, 100],
      shares: [0.2, 0.8],
    },
    {
      name: 'weights need not add up to 100 (3/1)',
      route: `- {destination: {host: reviews, subset: v1}, weight: 3}\n  - {destination: {host: reviews, subset: v2}, weight: 1}`,
      subsets: ['v1', 'v2'],
      cumulative: [3, 4],
      shares: [0.75, 0.25],
    },
    {
      name: 'three ways 10/30/60',
      route: `- {destination: {host: reviews, subset: v1}, weight: 10}\n  - {destination: {host: reviews, subset: v2}, weight: 30}\n  - {destination: {host: reviews, subset: v3}, weight: 60}`,
      subsets: ['v1', 'v2', 'v3'],
      cumulative: [10, 40, 100],
      shares: [0.1, 0.3, 0.6],
    },
    {
      name: 'a weight-0 destination is dropped',
      route: `- {destination: {host: reviews, subset: v1}, weight: 50}\n  - {destination: {host: reviews, subset: v2}, weight: 0}\n  - {destination: {host: reviews, subset: v3}, weight: 50}`,
      subsets: ['v1', 'v3'],
      cumulative: [50, 100],
      shares: [0.5, 0.5],
    },
    {
      name: 'a tiny weight still gets its share (1/999)',
      route: `- {destination: {host: reviews, subset: v1}, weight: 1}\n  - {destination: {host: reviews, subset: v2}, weight: 999}`,
      subsets: ['v1', 'v2'],
      cumulative: [1, 1000],
      shares: [0.001, 0.999],
    },
    { name: 'a single destination without weight gets 100', route: `- ${to('v2')}`, subsets: ['v2'], cumulative: [100], shares: [1] },
    { name: 'a single destination with weight 30 gets 100', route: `- {destination: {host: reviews, subset: v2}, weight: 30}`, subsets: ['v2'], cumulative: [100], shares: [1] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const s = compile([REVIEWS, SUBSETS('reviews'), vs('reviews', `hosts: [reviews]\nhttp:\n- route:\n  ${c.route}`)]);
      const route = s.routes.virtualHost('reviews')?.routes[0];
      assert.ok(route);
      assert.deepEqual(route.targets.map((t) => t.subset), c.subsets);
      assert.deepEqual([...route.cumulativeWeights], c.cumulative);
      if (c.subsets.length === 1) assert.equal(route.targets[0]?.weight, 100);
      // Draws spread evenly over [0, 1): each target gets its weight's share (within 0.5 percentage points).
      const got = shares(s, req('reviews'));
      assert.deepEqual([...got.keys()].sort(), [...c.subsets].sort(), 'only the listed destinations are picked');
      c.subsets.forEach((sub, i) => {
        const want = c.shares[i] as number;
        const share = got.get(sub) ?? 0;
        assert.ok(Math.abs(share - want) <= 0.005, `${sub}: share ${share}, want ${want}`);
      });
    });
  }

  it('Bookinfo: jason gets v2, everyone else 80/20 v1/v3', () => {
    const dir = new URL('../../examples/bookinfo/', import.meta.url);
    const files = ['bookinfo.yaml', 'workloads.yaml', 'destination-rule-all.yaml', 'virtual-service-reviews-test-v2.yaml'];
    const s = compile(files.map((f) => readFileSync(new URL(f, dir), 'utf8')));
    const jason = decide(s, req('reviews:9080', '/reviews/0', { 'end-user': 'jason' }), toDraw(0.99));
    assert.equal(jason.target?.subset, 'v2');
    assert.deepEqual(jason.target?.cluster?.endpoints.map((e) => e.key), ['127.0.0.1:19082']);
    assert.deepEqual([...shares(s, req('reviews:9080', '/reviews/0', { 'end-user': 'jason' })).keys()], ['v2']);
    const others = shares(s, req('reviews:9080', '/reviews/0', { 'end-user': 'Jason' }));
    assert.equal(Math.round((others.get('v1') ?? 0) * 100), 80);
    assert.equal(Math.round((others.get('v3') ?? 0) * 100), 20);
  });
});

describe('compileSnapshot: subsets and clusters (§6.4)', () => {
  const snap = compile([
    REVIEWS,
    RATINGS,
    doc(NET, 'DestinationRule', 'reviews', 'host: reviews\nsubsets:\n- {name: v2, labels: {version: v2}}\n- {name: none, labels: {version: v9}}'),
    vs(
      'reviews',
      `hosts: [reviews]
http:
- match: [{uri: {prefix: /v2}}]
  route: [${to('v2')}]
- match: [{uri: {prefix: /none}}]
  route: [${to('none')}]
- match: [{uri: {prefix: /missing}}]
  route: [${to('v7')}]
- match: [{uri: {prefix: /nodr}}]
  route: [${to('v1', 'ratings')}]
- match: [{uri: {prefix: /ghost}}]
  route: [{destination: {host: ghost}}]
- route: [{destination: {host: reviews}}]`,
    ),
  ]);
  const rows: { path: string; cluster: string | undefined; endpoints?: string[]; missing?: RegExp }[] = [
    { path: '/v2', cluster: `outbound|9080|v2|${REVIEWS_FQDN}`, endpoints: ['10.0.0.2:9080'] },
    { path: '/none', cluster: `outbound|9080|none|${REVIEWS_FQDN}`, endpoints: [] },
    { path: '/', cluster: `outbound|9080||${REVIEWS_FQDN}`, endpoints: ['10.0.0.1:9080', '10.0.0.2:9080', '10.0.0.3:9080'] },
    { path: '/missing', cluster: undefined, missing: /subset "v7" is not defined/ },
    { path: '/nodr', cluster: undefined, missing: /subset "v1" is not defined.*no DestinationRule/ },
    { path: '/ghost', cluster: undefined, missing: /ghost\.default\.svc\.cluster\.local is not in the registry/ },
  ];
  for (const r of rows) {
    it(`${r.path} → ${r.cluster ?? 'missing cluster'}`, () => {
      const t = decide(snap, req('reviews', r.path)).target;
      assert.ok(t);
      assert.equal(t.cluster?.name, r.cluster);
      if (r.endpoints !== undefined) assert.deepEqual(t.cluster?.endpoints.map((e) => e.key), r.endpoints);
      if (r.missing !== undefined) assert.match(t.missing ?? '', r.missing);
      else assert.equal(t.missing, undefined);
    });
  }

  it('lists every reachable cluster once', () => {
    assert.ok(snap.clusters.has(`outbound|9080|v2|${REVIEWS_FQDN}`));
    assert.ok(snap.clusters.has(`outbound|9080||ratings.default.svc.cluster.local`));
    assert.equal([...snap.clusters.keys()].some((k) => k.includes('|v7|')), false);
  });
});

describe('compileSnapshot: selectors decided per workload (§1.1, §6.1)', () => {
  const resources = [
    REVIEWS,
    SUBSETS('reviews'),
    DETAILS,
    SUBSETS('details'),
    vs(
      'reviews',
      `hosts: [reviews]
http:
- match: [{sourceLabels: {app: productpage, version: v2}}]
  route: [${to('v2')}]
- match: [{sourceNamespace: shop, headers: {end-user: {exact: jason}}}]
  route: [${to('v3')}]
- route: [${to('v1')}]`,
    ),
    vs('details', `hosts: [details]\nhttp:\n- match: [{port: 9090}]\n  route: [${to('v2', 'details')}]\n- route: [${to('v1', 'details')}]`),
  ];
  const jason = { 'end-user': 'jason' };
  const rows: { wl: WorkloadInfo; authority: string; headers?: Record<string, string>; want: string }[] = [
    { wl: { service: 'productpage', labels: { app: 'productpage', version: 'v2' } }, authority: 'reviews', want: 'v2' },
    { wl: { service: 'productpage', labels: { app: 'productpage', version: 'v2', extra: 'x' } }, authority: 'reviews', want: 'v2' },
    { wl: { service: 'productpage', labels: { app: 'productpage', version: 'v1' } }, authority: 'reviews', want: 'v1' },
    { wl: { service: 'productpage', labels: { app: 'productpage' } }, authority: 'reviews', want: 'v1' },
    { wl: { service: 'productpage' }, authority: 'reviews', headers: jason, want: 'v1' },
    { wl: { service: 'web', namespace: 'shop' }, authority: 'reviews.default', headers: jason, want: 'v3' },
    { wl: { service: 'web', namespace: 'shop' }, authority: 'reviews.default', want: 'v1' },
    { wl: { service: 'productpage' }, authority: 'details:9090', want: 'v2' },
    { wl: { service: 'productpage' }, authority: 'details:9080', want: 'v1' },
  ];
  for (const r of rows) {
    it(`${JSON.stringify(r.wl)} ${r.authority} ${r.headers ? 'jason ' : ''}→ ${r.want}`, () => {
      const s = compile(resources, r.wl);
      assert.equal(subsetOf(s, req(r.authority, '/', r.headers)), r.want);
    });
  }

  it('a rule whose port differs is not compiled for that port', () => {
    const s = compile(resources);
    assert.deepEqual(s.routes.virtualHost('details:9080')?.routes.map((r) => r.index), [1]);
    assert.deepEqual(s.routes.virtualHost('details:9090')?.routes.map((r) => r.index), [0]);
  });

  it('a sourceLabels rule is not compiled for a workload it does not select', () => {
    const s = compile(resources, { service: 'productpage', labels: { app: 'productpage', version: 'v1' } });
    assert.deepEqual(s.routes.virtualHost('reviews')?.routes.map((r) => r.index), [2]);
  });
});

describe('compileSnapshot: the default route of a service without a VirtualService', () => {
  /** A route's data, without what names it or ties it to its snapshot (functions, decisions). */
  const shape = (r: object) => JSON.parse(JSON.stringify({ ...r, name: undefined, envoyName: undefined, virtualService: undefined, decisions: undefined }));
  it('is what an explicit catch-all route to the service port compiles to (every field)', () => {
    const plain = compile([DETAILS, SUBSETS('details.default.svc.cluster.local')]);
    const explicit = compile([
      DETAILS,
      SUBSETS('details.default.svc.cluster.local'),
      vs('details', 'hosts: [details]\nhttp:\n- route:\n  - {destination: {host: details, port: {number: 9090}}}'),
    ]);
    const a = plain.routes.virtualHosts.find((v) => v.name === 'details.default.svc.cluster.local:9090')?.routes[0];
    const b = explicit.routes.virtualHosts.find((v) => v.name === 'details.default.svc.cluster.local:9090')?.routes[0];
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(a.name, 'default');
    assert.equal(b.name, 'details.0');
    assert.deepEqual([a.envoyName, b.envoyName], ['default', ''], 'Envoy route names as istiod gives them: `default`, and an unnamed rule’s empty name');
    assert.deepEqual(shape({ ...a, retry: undefined }), shape({ ...b, retry: undefined }));
    // The same default policy, but istiod converts the default route's without the hash policy
    // (BuildDefaultHTTPOutboundRoute: retry.ConvertPolicy(…, false)): under consistent hashing its
    // previous-hosts predicate stays, where a VirtualService rule's is left out.
    assert.deepEqual({ ...a.retry, retryIgnorePreviousHostsSet: false }, { ...b.retry });
    assert.equal(a.retry.retryIgnorePreviousHostsSet, true);
    assert.equal(b.retry.retryIgnorePreviousHostsSet, false);
    assert.equal(a.targets[0]?.cluster?.name, 'outbound|9090||details.default.svc.cluster.local');
    assert.deepEqual(shape(a.targets[0]?.cluster ?? {}), shape(b.targets[0]?.cluster ?? {}));
    assert.deepEqual(a.decisions.map((d) => [d.route, d.target]), [[a, a.targets[0]]]);
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.targets) && Object.isFrozen(a.decisions) && Object.isFrozen(a.targets[0]));
    assert.equal(String(a).replace('default', 'details.0'), String(b));
  });
});
