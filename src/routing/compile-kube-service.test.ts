import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { ServiceRegistry } from '../config/registry.ts';
import type { AnyResource, Resource } from '../config/resource.ts';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from './compile.ts';
import { NO_ROUTE, type RouteDecision } from './route-table.ts';

const NET = 'networking.istio.io/v1';
const FQDN = 'reviews.default.svc.cluster.local';

function load(docs: readonly string[]): AnyResource[] {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return resources;
}

function compile(docs: readonly string[], wl: WorkloadInfo = { service: 'productpage' }, extra: Resource<'WorkloadEntry'>[] = []): Snapshot {
  return compileSnapshot(load(docs), wl, { extraWorkloads: extra });
}

function decide(s: Snapshot, authority: string, path = '/'): RouteDecision {
  const d = s.routes.route({ method: 'GET', scheme: 'http', authority, path, headers: {} }, 0);
  if (d === undefined || d === NO_ROUTE) assert.fail(`no decision for ${authority}${path}: ${String(d)}`);
  return d;
}

function endpoints(s: Snapshot, authority: string): string[] {
  const t = decide(s, authority).target;
  if (t?.cluster === undefined) assert.fail(`missing cluster: ${t?.missing}`);
  return t.cluster.endpoints.map((e) => e.key);
}

const svc = (name: string, spec: string, ns = 'default') => doc('v1', 'Service', name, spec, ns);
const we = (name: string, spec: string, ns = 'default') => doc(NET, 'WorkloadEntry', name, spec, ns);

const REVIEWS = svc('reviews', 'ports:\n- {name: http, port: 9080}\nselector: {app: reviews}');
const V1 = we('reviews-v1', 'address: 10.0.0.1\nlabels: {app: reviews, version: v1}');
const V2 = we('reviews-v2', 'address: 10.0.0.2\nlabels: {app: reviews, version: v2}\nports: {http: 19082}');

describe('Kubernetes Service in the registry', () => {
  it('is <name>.<ns>.svc.cluster.local, MESH_INTERNAL, with Istio protocols per port', () => {
    const reg = new ServiceRegistry(
      load([svc('api', 'ports:\n- {name: http-web, port: 80}\n- {name: grpc, port: 90}\n- {name: admin, port: 91, appProtocol: http2}\n- {name: web, port: 92}\n- {name: dns, port: 53, protocol: UDP}\n- {name: db, port: 3306}', 'shop')]),
    );
    const s = reg.lookup('api.shop.svc.cluster.local');
    assert.ok(s);
    assert.equal(s.location, 'MESH_INTERNAL');
    assert.equal(s.origin, 'Service shop/api');
    assert.deepEqual(s.ports.map((p) => [p.number, p.name, p.protocol]), [
      [80, 'http-web', 'HTTP'],
      [90, 'grpc', 'GRPC'],
      [91, 'admin', 'HTTP2'],
      [92, 'web', undefined],
      [53, 'dns', 'UDP'],
      [3306, 'db', 'TCP'],
    ]);
  });

  it('selects WorkloadEntries of its namespace by label; an empty or absent selector selects nothing', () => {
    const other = we('reviews-other-ns', 'address: 10.9.0.1\nlabels: {app: reviews}', 'shop');
    const dns = we('reviews-dns', 'address: vm.example.com\nlabels: {app: reviews}');
    const reg = new ServiceRegistry(load([REVIEWS, V1, V2, other, dns, svc('bare', 'ports: [{port: 80}]'), svc('empty', 'ports: [{port: 80}]\nselector: {}')]));
    assert.deepEqual(reg.lookup(FQDN)?.workloads.map((w) => w.origin), ['WorkloadEntry default/reviews-v1', 'WorkloadEntry default/reviews-v2']);
    assert.deepEqual(reg.lookup('bare.default.svc.cluster.local')?.workloads, []);
    assert.deepEqual(reg.lookup('empty.default.svc.cluster.local')?.workloads, []);
  });

  it('selects registered workloads (extraWorkloads) too', () => {
    const registered = load([we('reviews-10-0-0-7-9080', 'address: 10.0.0.7\nports: {http: 9080}\nlabels: {app: reviews, version: v3}')]) as Resource<'WorkloadEntry'>[];
    const s = compile([REVIEWS], { service: 'productpage' }, registered);
    assert.deepEqual(endpoints(s, 'reviews:9080'), ['10.0.0.7:9080']);
  });

  const portRows: { name: string; port: string; entry: string; want: string[] }[] = [
    { name: 'no targetPort: the workload port of the service port name, else the port', port: '{name: http, port: 9080}', entry: 'ports: {http: 8080}', want: ['10.0.0.1:8080'] },
    { name: 'no targetPort and no named workload port: the service port', port: '{name: http, port: 9080}', entry: 'ports: {grpc: 7070}', want: ['10.0.0.1:9080'] },
    { name: 'numeric targetPort: the workload port of the service port name wins', port: '{name: http, port: 80, targetPort: 8081}', entry: 'ports: {http: 8080}', want: ['10.0.0.1:8080'] },
    { name: 'numeric targetPort without a named workload port', port: '{name: http, port: 80, targetPort: 8081}', entry: 'ports: {}', want: ['10.0.0.1:8081'] },
    { name: 'named targetPort: the workload port of that name', port: '{name: http, port: 80, targetPort: web}', entry: 'ports: {web: 8443, http: 8080}', want: ['10.0.0.1:8443'] },
    { name: 'named targetPort the workload lacks: not an endpoint', port: '{name: http, port: 80, targetPort: web}', entry: 'ports: {http: 8080}', want: [] },
  ];
  for (const r of portRows) {
    it(`endpoint port — ${r.name}`, () => {
      const s = compile([svc('reviews', `ports: [${r.port}]\nselector: {app: reviews}`), we('r', `address: 10.0.0.1\nlabels: {app: reviews}\n${r.entry}`)]);
      assert.deepEqual(endpoints(s, 'reviews'), r.want);
    });
  }

  it('routes an auto-detected port as HTTP (Istio sniffs it; HTTP traffic gets the HTTP routes)', () => {
    const s = compile([svc('reviews', 'ports: [{name: web, port: 9080}]\nselector: {app: reviews}'), V1]);
    assert.deepEqual(endpoints(s, 'reviews:9080'), ['10.0.0.1:9080']);
    assert.equal(decide(s, 'reviews:9080').target?.cluster?.protocol, '');
  });

  it('gives TCP, TLS and UDP ports no HTTP route', () => {
    const s = compile([svc('db', 'ports: [{name: tcp-db, port: 5432}]\nselector: {app: db}')]);
    assert.equal(s.routes.virtualHost('db:5432'), undefined);
  });

  it('is visible as its networking.istio.io/exportTo annotation says', () => {
    const hidden = 'apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: default\n  annotations: {networking.istio.io/exportTo: "."}\nspec:\n  ports: [{name: http, port: 9080}]\n  selector: {app: reviews}\n';
    const shared = hidden.replace('"."', '"., shop"');
    assert.deepEqual(endpoints(compile([hidden, V1]), 'reviews'), ['10.0.0.1:9080']);
    assert.equal(compile([hidden, V1], { service: 'web', namespace: 'shop' }).routes.virtualHost('reviews.default:9080'), undefined);
    assert.equal(compile([hidden.replace('"."', '"~"'), V1]).routes.virtualHost('reviews:9080'), undefined);
    assert.deepEqual(endpoints(compile([shared, V1], { service: 'web', namespace: 'shop' }), 'reviews.default:9080'), ['10.0.0.1:9080']);
  });

  it('wins over an older ServiceEntry of the same host in its namespace (no squatting), as in Istio', () => {
    const at = (yaml: string, ts: string) => yaml.replace('metadata:\n', `metadata:\n  creationTimestamp: "${ts}"\n`);
    const squat = doc(NET, 'ServiceEntry', 'squat', `hosts: [${FQDN}]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports: [{number: 9080, name: http, protocol: HTTP}]\nendpoints: [{address: 10.6.6.6}]`);
    const older = at(squat, '2020-01-01T00:00:00Z');
    const newer = at(REVIEWS, '2024-01-01T00:00:00Z');
    const s = compile([older, newer, V1]);
    assert.deepEqual(s.registry.byHost.get(FQDN)?.map((x) => x.origin), ['Service default/reviews', 'ServiceEntry default/squat']);
    assert.deepEqual(endpoints(s, 'reviews'), ['10.0.0.1:9080']);
    // Under a Sidecar too: its listener keeps the Kubernetes Service, whichever was listed first.
    const scoped = compile([older, newer, V1, doc(NET, 'Sidecar', 'default', 'egress:\n- hosts: ["./*"]')]);
    assert.deepEqual(endpoints(scoped, 'reviews'), ['10.0.0.1:9080']);
    // Between ServiceEntries (or Services) the oldest still wins.
    const second = at(squat.replace('name: squat', 'name: squat2').replace('10.6.6.6', '10.7.7.7'), '2021-01-01T00:00:00Z');
    assert.deepEqual(compile([second, older]).registry.byHost.get(FQDN)?.map((x) => x.origin), ['ServiceEntry default/squat', 'ServiceEntry default/squat2']);
  });

  it('applies DestinationRule subsets to the selected WorkloadEntries', () => {
    const dr = doc(NET, 'DestinationRule', 'reviews', 'host: reviews\nsubsets:\n- {name: v2, labels: {version: v2}}');
    const vs = doc(NET, 'VirtualService', 'reviews', 'hosts: [reviews]\nhttp:\n- route: [{destination: {host: reviews, subset: v2}}]');
    assert.deepEqual(endpoints(compile([REVIEWS, V1, V2, dr, vs]), 'reviews'), ['10.0.0.2:19082']);
  });
});

describe('headless and ExternalName Services', () => {
  it('headless (clusterIP: None): passthrough to the named address, reached by its subdomains too', () => {
    const s = compile([svc('web', 'clusterIP: None\nports: [{name: http, port: 80}]\nselector: {app: web}'), we('web-0', 'address: 10.0.0.5\nlabels: {app: web}')]);
    const service = s.registry.lookup('web.default.svc.cluster.local');
    assert.equal(service?.resolution, 'NONE');
    assert.equal(service?.workloads.length, 1);
    assert.deepEqual(endpoints(s, 'web'), []);
    for (const authority of ['web', 'web-0.web', 'web-0.web.default.svc.cluster.local', 'web-0.web.default:80']) {
      assert.equal(decide(s, authority).target?.cluster?.name, 'outbound|80||web.default.svc.cluster.local', authority);
    }
    assert.equal(s.routes.virtualHost('web-0.web:81'), undefined);
  });

  it('headless without ports: no route, so calls pass through as with Istio (no listener)', () => {
    const s = compile([svc('db', 'clusterIP: None\nselector: {app: db}'), we('db-0', 'address: 10.0.0.6\nlabels: {app: db}')]);
    assert.equal(s.registry.lookup('db.default.svc.cluster.local')?.workloads.length, 1);
    assert.equal(s.routes.route({ method: 'GET', scheme: 'http', authority: 'db:5432', path: '/', headers: {} }, 0), undefined);
  });

  it('ExternalName to a service in the registry is an alias: its names route to that service', () => {
    const alias = svc('reviews-alias', 'type: ExternalName\nexternalName: reviews.default.svc.cluster.local', 'shop');
    const s = compile([REVIEWS, V1, alias], { service: 'web', namespace: 'shop' });
    assert.equal(s.registry.lookup('reviews-alias.shop.svc.cluster.local'), undefined);
    assert.deepEqual(s.registry.lookup(FQDN)?.aliases, [{ hostname: 'reviews-alias.shop.svc.cluster.local', namespace: 'shop' }]);
    for (const authority of ['reviews-alias', 'reviews-alias.shop:9080', 'reviews-alias.shop.svc.cluster.local']) {
      assert.equal(decide(s, authority).target?.cluster?.name, `outbound|9080||${FQDN}`, authority);
    }
  });

  it('ExternalName chains resolve to the last host; a loop resolves to nothing', () => {
    const a = svc('a', 'type: ExternalName\nexternalName: b.default.svc.cluster.local');
    const b = svc('b', 'type: ExternalName\nexternalName: reviews.default.svc.cluster.local');
    const s = compile([REVIEWS, V1, a, b]);
    assert.deepEqual(s.registry.lookup(FQDN)?.aliases.map((x) => x.hostname).sort(), ['a.default.svc.cluster.local', 'b.default.svc.cluster.local']);
    assert.deepEqual(endpoints(s, 'a'), ['10.0.0.1:9080']);
    const loop = compile([svc('x', 'type: ExternalName\nexternalName: y.default.svc.cluster.local\nports: [{port: 80}]'), svc('y', 'type: ExternalName\nexternalName: x.default.svc.cluster.local\nports: [{port: 80}]')]);
    assert.deepEqual(loop.registry.services, []);
  });

  it('ExternalName to a host outside the registry: a DNS service to the external name on its ports', () => {
    const s = compile([svc('payments', 'type: ExternalName\nexternalName: api.payments.example.com.\nports: [{name: https, port: 443}, {name: http, port: 80, targetPort: 8080}]')]);
    const service = s.registry.lookup('payments.default.svc.cluster.local');
    assert.equal(service?.resolution, 'DNS');
    assert.equal(service?.location, 'MESH_EXTERNAL');
    assert.deepEqual(endpoints(s, 'payments:80'), ['api.payments.example.com:80']);
    assert.deepEqual(endpoints(s, 'payments:443'), ['api.payments.example.com:443']);
  });

  it('ExternalName outside the registry without ports is left out (calls pass through)', () => {
    const s = compile([svc('payments', 'type: ExternalName\nexternalName: api.payments.example.com')]);
    assert.deepEqual(s.registry.services, []);
    assert.equal(s.routes.route({ method: 'GET', scheme: 'http', authority: 'payments', path: '/', headers: {} }, 0), undefined);
  });
});
