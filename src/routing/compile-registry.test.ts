import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from './compile.ts';
import { NO_ROUTE, type RouteDecision } from './route-table.ts';

const NET = 'networking.istio.io/v1';
const FQDN = 'reviews.default.svc.cluster.local';
const SHOP_FQDN = 'reviews.shop.svc.cluster.local';

function compile(docs: readonly string[], wl: WorkloadInfo = { service: 'productpage' }): Snapshot {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, wl);
}

function decide(s: Snapshot, authority: string, path = '/'): RouteDecision {
  const d = s.routes.route({ method: 'GET', scheme: 'http', authority, path, headers: {} }, 0);
  if (d === undefined || d === NO_ROUTE) assert.fail(`no decision for ${authority}${path}: ${String(d)}`);
  return d;
}

/** Endpoint keys of the cluster a request goes to. */
function endpoints(s: Snapshot, authority: string, path = '/'): string[] {
  const t = decide(s, authority, path).target;
  if (t?.cluster === undefined) assert.fail(`missing cluster: ${t?.missing}`);
  return t.cluster.endpoints.map((e) => e.key);
}

const se = (name: string, ns: string, body: string) => doc(NET, 'ServiceEntry', name, `location: MESH_INTERNAL\nresolution: STATIC\n${body}`, ns);
const REVIEWS = se('reviews', 'default', `hosts: [${FQDN}]\nports:\n- {number: 9080, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.0.0.1, labels: {version: v1}}\n- {address: 10.0.0.2, labels: {version: v2}}`);
const SHOP_REVIEWS = se('reviews', 'shop', `hosts: [${SHOP_FQDN}]\nports:\n- {number: 9080, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.1.0.1}`);
const SUBSETS = doc(NET, 'DestinationRule', 'reviews', 'host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v2, labels: {version: v2}}');
const shop: WorkloadInfo = { service: 'web', namespace: 'shop' };

describe('exportTo (§1.1, §1.3)', () => {
  const toV2 = (exportTo: string) => doc(NET, 'VirtualService', 'reviews', `hosts: [reviews]\nexportTo: ${exportTo}\nhttp:\n- route: [{destination: {host: reviews, subset: v2}}]`);
  const rows: { name: string; exportTo: string; wl: WorkloadInfo; authority: string; route: string }[] = [
    { name: 'VirtualService exportTo "." applies in its namespace', exportTo: '["."]', wl: { service: 'productpage' }, authority: 'reviews', route: 'reviews.0' },
    { name: 'VirtualService exportTo "." is hidden from other namespaces (default route instead)', exportTo: '["."]', wl: shop, authority: 'reviews.default', route: 'default' },
    { name: 'VirtualService exportTo "*" is seen everywhere', exportTo: '["*"]', wl: shop, authority: 'reviews.default', route: 'reviews.0' },
    { name: 'VirtualService exported to the client namespace by name', exportTo: '[shop]', wl: shop, authority: 'reviews.default', route: 'reviews.0' },
    { name: 'VirtualService exported to another namespace by name', exportTo: '[other]', wl: shop, authority: 'reviews.default', route: 'default' },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const s = compile([REVIEWS, SUBSETS, toV2(r.exportTo)], r.wl);
      assert.equal(decide(s, r.authority).route.name, r.route);
    });
  }

  it('two VirtualServices for one host: one exported to its own namespace only beats a public one, whatever their age (istiod lists private, then exported to the namespace, then public)', () => {
    const created = (y: string, t: string) => y.replace('metadata:\n', `metadata:\n  creationTimestamp: "${t}"\n`);
    const vs = (name: string, ns: string, exportTo: string, t: string) => created(doc(NET, 'VirtualService', name, `hosts: [${FQDN}]\n${exportTo}http:\n- name: r\n  route: [{destination: {host: ${FQDN}}}]`, ns), t);
    const pub = vs('pub', 'other', '', '2020-01-01T00:00:00Z');
    const toShop = vs('to-shop', 'other', 'exportTo: [shop]\n', '2021-01-01T00:00:00Z');
    const priv = vs('priv', 'default', 'exportTo: ["."]\n', '2022-01-01T00:00:00Z');
    assert.equal(decide(compile([REVIEWS, pub, priv]), 'reviews').route.name, 'priv.r');
    assert.equal(decide(compile([REVIEWS, pub, toShop], shop), 'reviews.default').route.name, 'to-shop.r', 'exported to the namespace by name beats public');
    assert.equal(decide(compile([REVIEWS, pub, priv, toShop], shop), 'reviews.default').route.name, 'to-shop.r', 'private to another namespace: not seen');
    // Wildcard hosts follow the same order among equally specific ones.
    const wild = (name: string, ns: string, exportTo: string, t: string) => created(doc(NET, 'VirtualService', name, `hosts: ["*.example.com"]\n${exportTo}http:\n- name: r\n  route: [{destination: {host: ${FQDN}}}]`, ns), t);
    // (On port 80: a host without a service is routed there only, where some HTTP service has port 80.)
    const web = se('web', 'default', 'hosts: [web.default.svc.cluster.local]\nports: [{number: 80, name: http, protocol: HTTP}]\nendpoints: [{address: 10.0.9.1}]');
    assert.equal(decide(compile([REVIEWS, web, wild('pub', 'other', '', '2020-01-01T00:00:00Z'), wild('priv', 'default', 'exportTo: ["."]\n', '2022-01-01T00:00:00Z')]), 'api.example.com').route.name, 'priv.r');
    // Created the same second: by name, then namespace (istiod's configCompareByCreationTime), not file order.
    assert.equal(decide(compile([REVIEWS, vs('b', 'other', '', '2020-01-01T00:00:00Z'), vs('a', 'other', '', '2020-01-01T00:00:00Z')]), 'reviews').route.name, 'a.r');
    assert.equal(decide(compile([REVIEWS, vs('a', 'zz', '', '2020-01-01T00:00:00Z'), vs('a', 'other', '', '2020-01-01T00:00:00Z')]), 'reviews').route.virtualService, 'VirtualService other/a');
    // Within a class the oldest wins.
    assert.equal(decide(compile([REVIEWS, vs('young', 'other', '', '2021-01-01T00:00:00Z'), pub]), 'reviews').route.name, 'pub.r');
  });

  it('one host declared in several namespaces: the workload’s namespace’s, else a Kubernetes Service, else the oldest — the same with no Sidecar as with one importing everything (istiod’s default scope is `*/*`)', () => {
    const at = (y: string, t: string) => y.replace('metadata:\n', `metadata:\n  creationTimestamp: "${t}"\n`);
    const api = (name: string, ns: string, addr: string, t: string) => at(se(name, ns, `hosts: [api.example.com]\nports:\n- {number: 80, name: http, protocol: HTTP}\nendpoints:\n- {address: ${addr}}`), t);
    const old = api('old', 'other', '10.0.0.1', '2020-01-01T00:00:00Z');
    const mine = api('mine', 'default', '10.0.0.2', '2021-01-01T00:00:00Z');
    const everything = doc(NET, 'Sidecar', 's', 'egress:\n- hosts: ["*/*"]');
    assert.deepEqual(endpoints(compile([old, mine]), 'api.example.com'), ['10.0.0.2:80']);
    assert.deepEqual(endpoints(compile([old, mine, everything]), 'api.example.com'), ['10.0.0.2:80']);
    // A route's destination resolves the same way.
    const vs = doc(NET, 'VirtualService', 'via', 'hosts: [via.example.com]\nhttp:\n- route: [{destination: {host: api.example.com}}]');
    assert.deepEqual(endpoints(compile([old, mine, vs]), 'via.example.com'), ['10.0.0.2:80']);
    // From a third namespace: the oldest.
    assert.deepEqual(endpoints(compile([old, mine], shop), 'api.example.com'), ['10.0.0.1:80']);
    // A Kubernetes Service beats an older ServiceEntry of another namespace.
    const kube = at('apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: shop\nspec:\n  ports: [{name: http, port: 9080}]\n  selector: {app: reviews}\n', '2022-01-01T00:00:00Z');
    const squat = at(se('squat', 'other', `hosts: [${SHOP_FQDN}]\nports:\n- {number: 9080, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.6.6.6}`), '2020-01-01T00:00:00Z');
    assert.equal(decide(compile([squat, kube]), 'reviews.shop:9080').target?.cluster?.service.resource.kind, 'Service');
  });

  it('ServiceEntry exportTo "." hides the service from other namespaces', () => {
    const hiddenShop = se('reviews', 'shop', `hosts: [${SHOP_FQDN}]\nexportTo: ["."]\nports:\n- {number: 9080, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.1.0.1}`);
    const fromDefault = compile([REVIEWS, hiddenShop]);
    assert.equal(fromDefault.routes.virtualHost('reviews.shop'), undefined);
    assert.equal(fromDefault.routes.route({ method: 'GET', scheme: 'http', authority: 'reviews.shop:9080', path: '/', headers: {} }, 0), undefined);
    assert.deepEqual(endpoints(compile([REVIEWS, hiddenShop], shop), 'reviews'), ['10.1.0.1:9080']);
  });

  it('a route to a hidden ServiceEntry has a missing cluster', () => {
    const hiddenShop = se('reviews', 'shop', `hosts: [${SHOP_FQDN}]\nexportTo: ["."]\nports:\n- {number: 9080, name: http, protocol: HTTP}\nendpoints:\n- {address: 10.1.0.1}`);
    const vs = doc(NET, 'VirtualService', 'reviews', `hosts: [reviews]\nhttp:\n- route: [{destination: {host: ${SHOP_FQDN}}}]`);
    const t = decide(compile([REVIEWS, hiddenShop, vs]), 'reviews').target;
    assert.equal(t?.cluster, undefined);
    assert.match(t?.missing ?? '', /not in the registry/);
  });
});

describe('short names resolve against the config’s namespace (§6.19)', () => {
  it('a VirtualService in shop for host "reviews" routes reviews.shop, not reviews.default', () => {
    const vsInShop = doc(NET, 'VirtualService', 'r', 'hosts: [reviews]\nhttp:\n- directResponse: {status: 418}', 'shop');
    const s = compile([REVIEWS, SHOP_REVIEWS, vsInShop]);
    assert.equal(decide(s, 'reviews').route.name, 'default');
    assert.equal(decide(s, 'reviews.shop').route.name, 'r.0');
    assert.equal(decide(s, 'reviews.shop').route.directResponse?.status, 418);
  });

  it('a short destination host resolves against the VirtualService’s namespace', () => {
    const vsInShop = doc(NET, 'VirtualService', 'r', `hosts: [${FQDN}]\nhttp:\n- route: [{destination: {host: reviews}}]`, 'shop');
    const t = decide(compile([REVIEWS, SHOP_REVIEWS, vsInShop]), 'reviews').target;
    assert.equal(t?.host, SHOP_FQDN);
    assert.equal(t?.cluster?.name, `outbound|9080||${SHOP_FQDN}`);
  });

  it('a VirtualService may name the service by FQDN or by namespace-qualified name', () => {
    const byFqdn = doc(NET, 'VirtualService', 'r', `hosts: [${FQDN}]\nhttp:\n- route: [{destination: {host: ${FQDN}, subset: v2}}]`, 'shop');
    assert.deepEqual(endpoints(compile([REVIEWS, SUBSETS, byFqdn]), 'reviews'), ['10.0.0.2:9080']);
  });
});

describe('which VirtualService applies (§1.1)', () => {
  const vs = (name: string, spec: string) => doc(NET, 'VirtualService', name, spec);
  const status = (s: Snapshot, authority: string): number | string => {
    const d = s.routes.route({ method: 'GET', scheme: 'http', authority, path: '/', headers: {} }, 0);
    return d === undefined ? 'not in the mesh' : d === NO_ROUTE ? 'NO_ROUTE' : (d.route.directResponse?.status ?? d.route.name);
  };
  const rows: { name: string; docs: string[]; authority: string; want: number | string }[] = [
    { name: 'a wildcard host covers the service', docs: [vs('wild', 'hosts: ["*.default.svc.cluster.local"]\nhttp:\n- directResponse: {status: 201}')], authority: 'reviews', want: 201 },
    {
      name: 'an exact host beats a wildcard host',
      docs: [vs('wild', 'hosts: ["*.default.svc.cluster.local"]\nhttp:\n- directResponse: {status: 201}'), vs('exact', 'hosts: [reviews]\nhttp:\n- directResponse: {status: 202}')],
      authority: 'reviews',
      want: 202,
    },
    { name: 'gateways without "mesh": ignored by sidecars', docs: [vs('gw', 'hosts: [reviews]\ngateways: [ingress]\nhttp:\n- directResponse: {status: 201}')], authority: 'reviews', want: 'default' },
    { name: 'gateways with "mesh": applies', docs: [vs('gw', 'hosts: [reviews]\ngateways: [ingress, mesh]\nhttp:\n- directResponse: {status: 201}')], authority: 'reviews', want: 201 },
    {
      name: 'a per-match gateways list without "mesh" drops the block',
      docs: [vs('gw', 'hosts: [reviews]\nhttp:\n- match: [{gateways: [ingress]}]\n  directResponse: {status: 201}\n- directResponse: {status: 202}')],
      authority: 'reviews',
      want: 202,
    },
  ];
  for (const r of rows) {
    it(`${r.name} → ${r.want}`, () => {
      const { resources, errors } = validateYaml([REVIEWS, ...r.docs].join('---\n'));
      assert.deepEqual(errors, []);
      assert.equal(status(compileSnapshot(resources, { service: 'productpage' }), r.authority), r.want);
    });
  }

  const byPort = vs('api', 'hosts: [api.example.com]\nhttp:\n- match: [{port: 8080}]\n  directResponse: {status: 200}\n- match: [{port: 9090}]\n  directResponse: {status: 201}');
  it('match.port on a service host: each port gets only its rule', () => {
    const ext = doc(NET, 'ServiceEntry', 'api', 'hosts: [api.example.com]\nresolution: DNS\nports:\n- {number: 8080, name: http, protocol: HTTP}\n- {number: 9090, name: http-2, protocol: HTTP}');
    const s = compile([ext, byPort]);
    assert.equal(status(s, 'api.example.com:8080'), 200);
    assert.equal(status(s, 'api.example.com:9090'), 201);
  });

  it('match.port on a VirtualService host with no service: routed on no port but 80, even where a service has that port (istiod keeps such a VirtualService on port 80 only: selectVirtualServices)', () => {
    assert.equal(status(compile([byPort]), 'api.example.com:8080'), 'not in the mesh', 'no service on 8080: no route table there');
    const other = se('other', 'default', 'hosts: [other.example.com]\nendpoints: [{address: 10.0.9.2}]\nports:\n- {number: 8080, name: http, protocol: HTTP}\n- {number: 80, name: http-80, protocol: HTTP}');
    const s = compile([other, byPort]);
    assert.equal(status(s, 'api.example.com:8080'), 'not in the mesh', 'a port-8080 route table without the VirtualService');
    assert.equal(status(s, 'api.example.com:9090'), 'not in the mesh');
    assert.equal(status(s, 'api.example.com'), 'not in the mesh', 'on port 80 neither rule matches: no route, so no virtual host');
    // A VirtualService naming a service of the port too is kept there, with its other hosts.
    const withService = vs('api', 'hosts: [api.example.com, other.example.com]\nhttp:\n- match: [{port: 8080}]\n  directResponse: {status: 200}\n- match: [{port: 9090}]\n  directResponse: {status: 201}');
    assert.equal(status(compile([other, withService]), 'api.example.com:8080'), 200);
    assert.equal(status(compile([other, withService]), 'api.example.com:9090'), 'not in the mesh');
  });
});

describe('endpoint ports (§1.3)', () => {
  const multi = se(
    'multi',
    'default',
    `hosts: [multi.default.svc.cluster.local]
ports:
- {number: 9080, name: http, protocol: HTTP, targetPort: 8080}
- {number: 9090, name: admin, protocol: HTTP}
endpoints:
- {address: 10.0.5.1, ports: {http: 18080, admin: 19090}}
- {address: 10.0.5.2, ports: {admin: 29090}}
- {address: 10.0.5.3}`,
  );
  const s = compile([multi]);
  const rows: { port: number; want: string[]; why: string }[] = [
    { port: 9080, want: ['10.0.5.1:18080', '10.0.5.2:8080', '10.0.5.3:8080'], why: 'by port name, else targetPort' },
    { port: 9090, want: ['10.0.5.1:19090', '10.0.5.2:29090', '10.0.5.3:9090'], why: 'by port name, else the port number' },
  ];
  for (const r of rows) {
    it(`service port ${r.port}: ${r.why}`, () => {
      assert.deepEqual(endpoints(s, `multi:${r.port}`), r.want);
      assert.equal(decide(s, `multi:${r.port}`).target?.cluster?.name, `outbound|${r.port}||multi.default.svc.cluster.local`);
    });
  }

  it('a destination port picks the service port, and the cluster uses its endpoints', () => {
    const vs = doc(NET, 'VirtualService', 'multi', 'hosts: [multi]\nhttp:\n- route: [{destination: {host: multi, port: {number: 9090}}}]');
    const t = compile([multi, vs]);
    assert.deepEqual(endpoints(t, 'multi:9080'), ['10.0.5.1:19090', '10.0.5.2:29090', '10.0.5.3:9090']);
    assert.equal(decide(t, 'multi:9080').target?.port, 9090);
  });

  it('a destination port the service does not have is missing', () => {
    const vs = doc(NET, 'VirtualService', 'multi', 'hosts: [multi]\nhttp:\n- route: [{destination: {host: multi, port: {number: 7000}}}]');
    const t = decide(compile([multi, vs]), 'multi:9080').target;
    assert.equal(t?.cluster, undefined);
    assert.match(t?.missing ?? '', /port 7000/);
  });
});

describe('WorkloadEntry selected by ServiceEntry.workloadSelector (§1.3)', () => {
  const svc = se(
    'reviews',
    'default',
    `hosts: [${FQDN}]\nports:\n- {number: 9080, name: http, protocol: HTTP}\nworkloadSelector: {labels: {app: reviews}}`,
  );
  const we = (name: string, ns: string, spec: string) => doc(NET, 'WorkloadEntry', name, spec, ns);
  const entries = [
    we('r1', 'default', 'address: 10.2.0.1\nports: {http: 19080}\nlabels: {app: reviews, version: v1}'),
    we('r2', 'default', 'address: 10.2.0.2\nlabels: {app: reviews, version: v2}'),
    we('other', 'default', 'address: 10.2.0.3\nlabels: {app: ratings, version: v1}'),
    we('elsewhere', 'shop', 'address: 10.2.0.4\nlabels: {app: reviews, version: v1}'),
  ];

  it('selects matching entries in the same namespace only', () => {
    const s = compile([svc, ...entries]);
    assert.deepEqual(endpoints(s, 'reviews'), ['10.2.0.1:19080', '10.2.0.2:9080']);
    const origins = decide(s, 'reviews').target?.cluster?.endpoints.map((e) => e.origin);
    assert.deepEqual(origins, ['WorkloadEntry default/r1', 'WorkloadEntry default/r2']);
  });

  it('subsets select among the entries by label', () => {
    const vs = doc(NET, 'VirtualService', 'reviews', 'hosts: [reviews]\nhttp:\n- route: [{destination: {host: reviews, subset: v1}}]');
    assert.deepEqual(endpoints(compile([svc, SUBSETS, vs, ...entries]), 'reviews'), ['10.2.0.1:19080']);
  });

  it('selects nothing when no entry matches', () => {
    assert.deepEqual(endpoints(compile([svc, ...entries.slice(2)]), 'reviews'), []);
  });

  it('extra WorkloadEntries passed to compileSnapshot are selected too', () => {
    const { resources } = validateYaml([svc, entries[0] as string].join('---\n'));
    const extra = validateYaml(we('registered', 'default', 'address: 10.2.0.9\nlabels: {app: reviews}')).resources.filter((r) => r.kind === 'WorkloadEntry');
    const s = compileSnapshot(resources, { service: 'productpage' }, { extraWorkloads: extra });
    assert.deepEqual(endpoints(s, 'reviews'), ['10.2.0.1:19080', '10.2.0.9:9080']);
  });
});

describe('ServiceEntry resolution DNS with a workloadSelector (Istio: the selected workloads are the endpoints)', () => {
  const dnsSelected = doc(NET, 'ServiceEntry', 'api', 'hosts: [api.example.com]\nlocation: MESH_EXTERNAL\nresolution: DNS\nports: [{number: 80, name: http, protocol: HTTP}]\nworkloadSelector: {labels: {app: api}}');
  const workload = (name: string, address: string, app: string) => doc(NET, 'WorkloadEntry', name, `address: ${address}\nlabels: {app: ${app}}`);

  it('uses the selected WorkloadEntries', () => {
    const s = compile([dnsSelected, workload('a', 'api-1.internal', 'api'), workload('b', '10.0.0.9', 'api'), workload('c', '10.0.0.10', 'other')]);
    assert.deepEqual(endpoints(s, 'api.example.com').sort(), ['10.0.0.9:80', 'api-1.internal:80']);
  });

  it('with nothing selected, has no endpoints (the host is the endpoint only without a selector)', () => {
    const s = compile([dnsSelected]);
    assert.deepEqual(endpoints(s, 'api.example.com'), []);
  });
});
