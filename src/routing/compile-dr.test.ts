import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import type { TrafficPolicy } from '../config/types/networking.ts';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from './compile.ts';
import { NO_ROUTE, type Cluster, type RouteTarget } from './route-table.ts';

const NET = 'networking.istio.io/v1';
const FQDN = 'reviews.default.svc.cluster.local';

function compile(docs: readonly string[], wl: WorkloadInfo = { service: 'productpage', labels: { app: 'productpage' } }): Snapshot {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, wl);
}

/** The target for `authority` + `path` (the VirtualService below sends /vN to subset vN, / to the whole service). */
function target(s: Snapshot, authority: string, path = '/'): RouteTarget {
  const d = s.routes.route({ method: 'GET', scheme: 'http', authority, path, headers: {} }, 0);
  if (d === undefined || d === NO_ROUTE || d.target === undefined) assert.fail(`no target for ${authority}${path}`);
  return d.target;
}

function cluster(s: Snapshot, authority: string, path = '/'): Cluster {
  const t = target(s, authority, path);
  if (t.cluster === undefined) assert.fail(`missing cluster for ${authority}${path}: ${t.missing}`);
  return t.cluster;
}

/** The policy blocks that matter here, with undefined blocks left out. */
function blocks(p: TrafficPolicy): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const) if (p[k] !== undefined) out[k] = p[k];
  return out;
}

const REVIEWS = doc(
  NET,
  'ServiceEntry',
  'reviews',
  `hosts: [${FQDN}]
location: MESH_INTERNAL
resolution: STATIC
ports:
- {number: 9080, name: http, protocol: HTTP}
- {number: 9090, name: http-admin, protocol: HTTP}
endpoints:
- {address: 10.0.0.1, labels: {version: v1}}
- {address: 10.0.0.2, labels: {version: v2}}`,
);
/** Routes /v1 and /v2 to the subsets, everything else to the whole service; on both ports. */
const VS = doc(
  NET,
  'VirtualService',
  'reviews',
  `hosts: [reviews]
http:
- match: [{uri: {prefix: /v1}}]
  route: [{destination: {host: reviews, subset: v1}}]
- match: [{uri: {prefix: /v2}}]
  route: [{destination: {host: reviews, subset: v2}}]
- route: [{destination: {host: reviews}}]`,
);
const dr = (name: string, spec: string, ns = 'default', meta = '') => doc(NET, 'DestinationRule', name, spec, ns).replace(`  namespace: ${ns}\n`, `  namespace: ${ns}\n${meta}`);

describe('DestinationRule merge: several rules for one host (§1.2, §6.4)', () => {
  const a = dr('a', 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}\nsubsets:\n- {name: v1, labels: {version: v1}}');
  const b = dr('b', `host: ${FQDN}\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}\nsubsets:\n- {name: v1, labels: {version: v2}}\n- {name: v2, labels: {version: v2}}`);

  it('concatenates subsets; a duplicate name keeps the first', () => {
    const s = compile([REVIEWS, VS, a, b]);
    assert.deepEqual(cluster(s, 'reviews:9080', '/v1').endpoints.map((e) => e.address), ['10.0.0.1']);
    assert.deepEqual(cluster(s, 'reviews:9080', '/v2').endpoints.map((e) => e.address), ['10.0.0.2']);
    assert.deepEqual(cluster(s, 'reviews:9080', '/v1').destinationRule?.rules.map((r) => r.ref), ['DestinationRule default/a', 'DestinationRule default/b']);
  });

  it('the first rule’s trafficPolicy wins as a whole (no field merge)', () => {
    const s = compile([REVIEWS, VS, a, b]);
    for (const path of ['/', '/v1', '/v2']) {
      assert.deepEqual(blocks(cluster(s, 'reviews:9080', path).policy), { connectionPool: { tcp: { maxConnections: 10 } } }, path);
    }
  });

  it('“first” is the oldest by creationTimestamp, not file order', () => {
    const older = dr('b', `host: ${FQDN}\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}\nsubsets:\n- {name: v1, labels: {version: v2}}`, 'default', '  creationTimestamp: "2020-01-01T00:00:00Z"\n');
    const newer = dr('a', 'host: reviews\ntrafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}\nsubsets:\n- {name: v1, labels: {version: v1}}', 'default', '  creationTimestamp: "2024-01-01T00:00:00Z"\n');
    const s = compile([REVIEWS, VS, newer, older]);
    assert.deepEqual(blocks(cluster(s, 'reviews:9080').policy), { outlierDetection: { consecutive5xxErrors: 3 } });
    assert.deepEqual(cluster(s, 'reviews:9080', '/v1').endpoints.map((e) => e.address), ['10.0.0.2']);
  });

  it('a later rule’s policy is used when the earlier rules have none', () => {
    const s = compile([REVIEWS, VS, dr('a', 'host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}'), b]);
    assert.deepEqual(blocks(cluster(s, 'reviews:9080').policy), { outlierDetection: { consecutive5xxErrors: 3 } });
  });
});

describe('DestinationRule policy: block by block (§1.2, §6.14)', () => {
  const host = `host: reviews
trafficPolicy:
  loadBalancer: {simple: ROUND_ROBIN}
  connectionPool: {tcp: {maxConnections: 100}, http: {http2MaxRequests: 50}}
  outlierDetection: {consecutive5xxErrors: 7, interval: 5s}
  portLevelSettings:
  - port: {number: 9090}
    connectionPool: {tcp: {maxConnections: 5}}`;
  const s = compile([
    REVIEWS,
    VS,
    dr(
      'reviews',
      `${host}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy:
    connectionPool: {http: {http1MaxPendingRequests: 5}}
- name: v2
  labels: {version: v2}
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    portLevelSettings:
    - port: {number: 9090}
      outlierDetection: {consecutive5xxErrors: 1}`,
    ),
  ]);
  const HOST_LB = { simple: 'ROUND_ROBIN' };
  const HOST_CP = { tcp: { maxConnections: 100 }, http: { http2MaxRequests: 50 } };
  const HOST_OD = { consecutive5xxErrors: 7, interval: '5s' };
  const rows: { name: string; authority: string; path: string; want: Record<string, unknown> }[] = [
    { name: 'DR policy on a port without port-level settings', authority: 'reviews:9080', path: '/', want: { loadBalancer: HOST_LB, connectionPool: HOST_CP, outlierDetection: HOST_OD } },
    {
      name: 'subset connectionPool replaces the whole host connectionPool; host outlierDetection and loadBalancer kept',
      authority: 'reviews:9080',
      path: '/v1',
      want: { loadBalancer: HOST_LB, connectionPool: { http: { http1MaxPendingRequests: 5 } }, outlierDetection: HOST_OD },
    },
    { name: 'subset loadBalancer replaces the host loadBalancer', authority: 'reviews:9080', path: '/v2', want: { loadBalancer: { simple: 'LEAST_REQUEST' }, connectionPool: HOST_CP, outlierDetection: HOST_OD } },
    { name: 'DR port-level settings replace the four core blocks and do not inherit', authority: 'reviews:9090', path: '/', want: { connectionPool: { tcp: { maxConnections: 5 } } } },
    {
      name: 'subset block over DR port-level settings (subset > DR-port)',
      authority: 'reviews:9090',
      path: '/v1',
      want: { connectionPool: { http: { http1MaxPendingRequests: 5 } } },
    },
    { name: 'subset port-level settings replace all four core blocks (subset-port > subset)', authority: 'reviews:9090', path: '/v2', want: { outlierDetection: { consecutive5xxErrors: 1 } } },
  ];
  for (const r of rows) {
    it(`${r.name} (${r.authority}${r.path})`, () => {
      const c = cluster(s, r.authority, r.path);
      assert.equal(c.port, Number(r.authority.split(':')[1]));
      assert.deepEqual(blocks(c.policy), r.want);
    });
  }

  it('DR-port settings combine with a subset block the port settings omit', () => {
    const t = compile([
      REVIEWS,
      VS,
      dr('reviews', `${host}\nsubsets:\n- {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}\n- {name: v1, labels: {version: v1}}`),
    ]);
    assert.deepEqual(blocks(cluster(t, 'reviews:9090', '/v2').policy), { connectionPool: { tcp: { maxConnections: 5 } }, loadBalancer: { simple: 'RANDOM' } });
    assert.deepEqual(blocks(cluster(t, 'reviews:9090', '/v1').policy), { connectionPool: { tcp: { maxConnections: 5 } } });
  });

  it('a subset with no policy uses the host policy; no DR gives an empty policy', () => {
    const t = compile([REVIEWS, VS, dr('reviews', `${host}\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v2, labels: {version: v2}}`)]);
    assert.deepEqual(blocks(cluster(t, 'reviews:9080', '/v1').policy), { loadBalancer: HOST_LB, connectionPool: HOST_CP, outlierDetection: HOST_OD });
    assert.deepEqual(blocks(cluster(compile([REVIEWS]), 'reviews:9080').policy), {});
    assert.equal(cluster(compile([REVIEWS]), 'reviews:9080').destinationRule, undefined);
  });
});

describe('DestinationRule lookup: namespace precedence, selector, exportTo (§1.2)', () => {
  // Each rule defines one subset, named after where it lives, so the subset that exists shows which rule applies.
  const inDefault = dr('in-default', 'host: reviews\nsubsets:\n- {name: from-default, labels: {version: v1}}');
  const inShop = dr('in-shop', `host: ${FQDN}\nsubsets:\n- {name: from-shop, labels: {version: v2}}`, 'shop');
  const inRoot = dr('in-root', `host: ${FQDN}\nsubsets:\n- {name: from-root, labels: {version: v1}}`, 'istio-system');
  const selected = dr('selected', `host: reviews\nworkloadSelector: {matchLabels: {app: productpage}}\nsubsets:\n- {name: from-selector, labels: {version: v2}}`);
  const shopSelected = dr('shop-selected', `host: ${FQDN}\nworkloadSelector: {matchLabels: {app: productpage}}\nsubsets:\n- {name: from-shop-selector, labels: {version: v2}}`, 'shop');
  const hidden = dr('hidden', 'host: reviews\nexportTo: ["."]\nsubsets:\n- {name: from-hidden, labels: {version: v1}}');
  const ALL = ['from-default', 'from-shop', 'from-root', 'from-selector', 'from-shop-selector', 'from-hidden'];
  /** A VirtualService (visible everywhere) that sends /<subset> to each subset name. */
  const vsAll = doc(NET, 'VirtualService', 'reviews', `hosts: [reviews]\nhttp:\n${ALL.map((n) => `- match: [{uri: {exact: /${n}}}]\n  route: [{destination: {host: reviews, subset: ${n}}}]`).join('\n')}`);
  const pp: WorkloadInfo = { service: 'productpage', labels: { app: 'productpage' } };
  const shopPp: WorkloadInfo = { service: 'productpage', namespace: 'shop', labels: { app: 'productpage' } };
  const rows: { name: string; docs: string[]; wl: WorkloadInfo; present: string[] }[] = [
    { name: 'the service namespace rule applies to its own clients', docs: [inDefault, inShop], wl: pp, present: ['from-default'] },
    { name: 'a rule in the client namespace beats one in the service namespace', docs: [inDefault, inShop], wl: shopPp, present: ['from-shop'] },
    { name: 'the root namespace rule applies when no other does', docs: [inRoot], wl: shopPp, present: ['from-root'] },
    { name: 'the service namespace beats the root namespace', docs: [inRoot, inDefault], wl: shopPp, present: ['from-default'] },
    { name: 'a workloadSelector rule applies to the selected workload', docs: [inDefault, selected], wl: pp, present: ['from-selector'] },
    { name: 'a workloadSelector rule does not apply to other workloads', docs: [inDefault, selected], wl: { service: 'ratings', labels: { app: 'ratings' } }, present: ['from-default'] },
    { name: 'a workloadSelector rule does not apply to workloads in other namespaces', docs: [selected], wl: shopPp, present: [] },
    { name: 'a workloadSelector rule in the client namespace applies', docs: [inDefault, shopSelected], wl: shopPp, present: ['from-shop-selector'] },
    { name: 'a workloadSelector rule takes the subsets of the namespace rule exported to "." (istiod merges them)', docs: [hidden, selected], wl: pp, present: ['from-selector', 'from-hidden'] },
    { name: 'a workloadSelector rule selecting other workloads hides the root namespace rule from the rest', docs: [selected, inRoot], wl: { service: 'ratings', labels: { app: 'ratings' } }, present: [] },
    { name: 'exportTo "." hides a rule from other namespaces', docs: [hidden], wl: shopPp, present: [] },
    { name: 'exportTo "." keeps a rule visible in its own namespace', docs: [hidden], wl: pp, present: ['from-hidden'] },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const s = compile([REVIEWS, vsAll, ...r.docs], r.wl);
      const authority = (r.wl.namespace ?? 'default') === 'default' ? 'reviews' : 'reviews.default';
      const present = ALL.filter((n) => target(s, `${authority}:9080`, `/${n}`).cluster !== undefined);
      assert.deepEqual(present, r.present);
      for (const n of ALL.filter((x) => !r.present.includes(x))) assert.match(target(s, `${authority}:9080`, `/${n}`).missing ?? '', new RegExp(`subset "${n}" is not defined`));
    });
  }

  it('the root namespace is MeshConfig rootNamespace: with another one set, its rules apply mesh-wide and istio-system is an ordinary namespace', () => {
    const inMeshRoot = dr('in-mesh-root', `host: ${FQDN}\nsubsets:\n- {name: from-shop, labels: {version: v2}}`, 'mesh-root');
    const { resources, errors } = validateYaml([REVIEWS, vsAll, inRoot, inMeshRoot].join('---\n'));
    assert.deepEqual(errors, []);
    const present = (rootNamespace: string | undefined) => {
      const s = compileSnapshot(resources, shopPp, rootNamespace === undefined ? {} : { rootNamespace });
      return ALL.filter((n) => target(s, 'reviews.default:9080', `/${n}`).cluster !== undefined);
    };
    assert.deepEqual(present(undefined), ['from-root']);
    assert.deepEqual(present('mesh-root'), ['from-shop']);
  });

  it('within a namespace the most specific host wins: exact beats wildcard, in any order', () => {
    const wild = dr('wild', 'host: "*.default.svc.cluster.local"\nsubsets:\n- {name: from-default, labels: {version: v2}}');
    for (const docs of [[wild], [wild, inDefault], [inDefault, wild]]) {
      const s = compile([REVIEWS, vsAll, ...docs]);
      const c = cluster(s, 'reviews:9080', '/from-default');
      const expected = docs.length === 1 ? 'DestinationRule default/wild' : 'DestinationRule default/in-default';
      assert.deepEqual(c.destinationRule?.rules.map((r) => r.ref), [expected]);
    }
  });

  it('a short host in a rule resolves against the rule’s namespace (§6.19)', () => {
    const shortInShop = dr('short', 'host: reviews\nsubsets:\n- {name: from-shop, labels: {version: v2}}', 'shop');
    const s = compile([REVIEWS, vsAll, shortInShop], shopPp);
    assert.equal(target(s, 'reviews.default:9080', '/from-shop').cluster, undefined);
  });
});
