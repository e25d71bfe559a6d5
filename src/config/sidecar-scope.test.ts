/**
 * The Sidecar's selection and egress scope, row by row against istiod
 * (pilot/pkg/model/sidecar_test.go and push_context.go at 86c9f01f): rows named after Istio's
 * cite the test they translate; hosts are FQDNs (meshlet resolves short names as Kubernetes DNS does).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { resolveHost } from './hosts.ts';
import { ServiceRegistry } from './registry.ts';
import type { AnyResource, Resource } from './resource.ts';
import { buildSidecarScope, destinationsOf, whyOutOfScope, egressExcludes, egressMatches, egressMatchesVirtualService, importsPort, listenerFor, parseEgressHosts, selectSidecar, type SidecarScope } from './sidecar-scope.ts';

const NET = 'networking.istio.io/v1';

function load(docs: readonly string[]): AnyResource[] {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return [...resources];
}

const sidecar = (name: string, ns: string, spec: string, created?: string) => {
  const d = doc(NET, 'Sidecar', name, spec, ns);
  return created === undefined ? d : d.replace(`  namespace: ${ns}\n`, `  namespace: ${ns}\n  creationTimestamp: "${created}"\n`);
};
const se = (name: string, ns: string, host: string, ports: readonly number[], extra = '') =>
  doc(NET, 'ServiceEntry', name, `hosts: [${host}]\nlocation: MESH_INTERNAL\nresolution: STATIC\n${ports.length === 0 ? '' : `ports:\n${ports.map((p) => `- {number: ${p}, name: p${p}, protocol: HTTP}`).join('\n')}\n`}endpoints:\n- {address: 10.0.0.1}\n${extra}`, ns);

function scopeOf(docs: readonly string[], namespace: string, labels: Record<string, string> = {}): SidecarScope {
  const resources = load(docs);
  const sc = selectSidecar(resources, namespace, labels);
  assert.ok(sc !== undefined, 'a Sidecar applies');
  const registry = new ServiceRegistry(resources);
  const vss = resources
    .filter((r): r is Resource<'VirtualService'> => r.kind === 'VirtualService')
    .map((vs) => ({ vs, hosts: (vs.spec.hosts ?? []).map((h) => resolveHost(h, vs.metadata.namespace)) }));
  return buildSidecarScope(sc, namespace, registry, vss);
}

/** The scope's services as `namespace/host:ports` (ports `*` when every port). */
function services(scope: SidecarScope): string[] {
  return [...scope.services.values()].map((s) => `${s.service.namespace}/${s.service.hostname}:${s.ports === undefined ? '*' : [...s.ports].sort().join(',')}`).sort();
}

describe('selectSidecar (push_context.go getSidecarScope)', () => {
  const nsDefault = sidecar('ns-default', 'shop', 'egress:\n- hosts: ["./*"]', '2024-01-02T00:00:00Z');
  const forV2 = sidecar('for-v2', 'shop', 'workloadSelector: {labels: {version: v2}}\negress:\n- hosts: ["*/*"]', '2024-01-03T00:00:00Z');
  const forV2Older = sidecar('for-v2-older', 'shop', 'workloadSelector: {labels: {version: v2}}\negress:\n- hosts: ["*/*"]', '2024-01-01T00:00:00Z');
  const forApp = sidecar('for-app', 'shop', 'workloadSelector: {labels: {app: web}}\negress:\n- hosts: ["*/*"]', '2024-01-01T12:00:00Z');
  const root = sidecar('mesh-default', 'istio-system', 'egress:\n- hosts: ["istio-system/*"]');
  const rootSelecting = sidecar('root-selecting', 'istio-system', 'workloadSelector: {labels: {app: web}}\negress:\n- hosts: ["*/*"]', '2023-01-01T00:00:00Z');
  const rows: { name: string; docs: string[]; ns: string; labels: Record<string, string>; want: string | undefined }[] = [
    { name: 'no Sidecar: none (the default scope)', docs: [], ns: 'shop', labels: {}, want: undefined },
    { name: 'the namespace default applies to a workload no selector matches', docs: [nsDefault, forV2], ns: 'shop', labels: { version: 'v1' }, want: 'ns-default' },
    { name: 'a matching workloadSelector beats the namespace default (even when younger)', docs: [nsDefault, forV2], ns: 'shop', labels: { version: 'v2' }, want: 'for-v2' },
    { name: 'two matching selectors: the oldest wins', docs: [forV2, forApp, forV2Older], ns: 'shop', labels: { app: 'web', version: 'v2' }, want: 'for-v2-older' },
    {
      name: 'created the same second: by name, not file order (configCompareByCreationTime)',
      docs: [sidecar('b', 'shop', 'workloadSelector: {labels: {app: web}}\negress:\n- hosts: ["*/*"]', '2024-01-01T00:00:00Z'), sidecar('a', 'shop', 'workloadSelector: {labels: {app: web}}\negress:\n- hosts: ["./*"]', '2024-01-01T00:00:00Z')],
      ns: 'shop',
      labels: { app: 'web' },
      want: 'a',
    },
    { name: 'only selecting Sidecars that do not match: the root namespace default', docs: [forV2, root], ns: 'shop', labels: {}, want: 'mesh-default' },
    { name: "the root namespace's default when the namespace has none", docs: [root, sidecar('other', 'other', 'egress:\n- hosts: ["./*"]')], ns: 'shop', labels: {}, want: 'mesh-default' },
    { name: "the namespace's default beats the root namespace's", docs: [root, nsDefault], ns: 'shop', labels: {}, want: 'ns-default' },
    { name: "a root-namespace Sidecar with a selector does not apply to other namespaces", docs: [rootSelecting], ns: 'shop', labels: { app: 'web' }, want: undefined },
    { name: 'another namespace’s Sidecar never applies', docs: [sidecar('other', 'other', 'egress:\n- hosts: ["./*"]')], ns: 'shop', labels: {}, want: undefined },
  ];
  for (const r of rows) {
    it(r.name, () => {
      assert.equal(selectSidecar(load(r.docs), r.ns, r.labels)?.metadata.name, r.want);
    });
  }
  it('a custom root namespace', () => {
    const resources = load([sidecar('mesh-default', 'mesh-root', 'egress:\n- hosts: ["./*"]')]);
    assert.equal(selectSidecar(resources, 'shop', {}), undefined);
    assert.equal(selectSidecar(resources, 'shop', {}, 'mesh-root')?.metadata.name, 'mesh-default');
  });
});

describe('egress hosts (sidecar.go hostClassification)', () => {
  const hosts = parseEgressHosts(['./*', 'istio-system/*.example.com', '*/api.ext.com', '~shop/secret.shop.svc.cluster.local', '~/*.internal', 'no-slash', 'a/b/c', 'Other/API.Example.Org'], 'shop');
  it('`.` is the namespace the scope is for; `*` any; `~` excludes (`~/` in any namespace); malformed entries are skipped', () => {
    assert.deepEqual([...hosts.keys()].sort(), ['*', 'Other', 'istio-system', 'shop']);
    assert.deepEqual(hosts.get('shop')?.all, ['*']);
    assert.deepEqual(hosts.get('shop')?.excluded, ['secret.shop.svc.cluster.local']);
    assert.deepEqual(hosts.get('*')?.excluded, ['*.internal']);
    assert.ok(hosts.get('Other')?.exact.has('api.example.org'), 'dnsNames are lower-cased');
  });
  const rows: [string, string, boolean][] = [
    ['shop', 'reviews.shop.svc.cluster.local', true],
    ['istio-system', 'a.example.com', true],
    ['istio-system', 'a.b.example.com', true],
    ['istio-system', 'example.com', false],
    ['*', 'api.ext.com', true],
    ['*', 'other.ext.com', false],
  ];
  for (const [ns, host, want] of rows) {
    it(`${ns}: ${host} → ${want}`, () => assert.equal(egressMatches(hosts.get(ns) as never, host), want));
  }
  it('VirtualService hosts match either way (VSMatches: `*.com` is selected by an import of `a.com`)', () => {
    const set = parseEgressHosts(['ns/a.com'], 'x').get('ns');
    assert.ok(set !== undefined);
    assert.equal(egressMatches(set, '*.com'), false);
    assert.equal(egressMatchesVirtualService(set, '*.com'), true);
    assert.equal(egressMatchesVirtualService(set, 'b.com'), false);
  });
  it('exclusions cover wildcards', () => {
    assert.equal(egressExcludes(hosts.get('*'), 'db.internal'), true);
    assert.equal(egressExcludes(hosts.get('*'), 'db.external'), false);
    assert.equal(egressExcludes(undefined, 'db.internal'), false);
  });
});

describe('the scope of a Sidecar (sidecar_test.go TestCreateSidecarScope, TestIstioEgressListenerWrapper)', () => {
  const BAR = 'bar.foo.svc.cluster.local';
  it('sidecar-with-egress-port-trims-service-non-matching-ports: a listener on 8000 imports only port 8000', () => {
    const scope = scopeOf([sidecar('s', 'not-default', 'egress:\n- port: {number: 8000, protocol: HTTP, name: uds}\n  hosts: ["foo/*"]'), se('bar', 'foo', BAR, [8000, 7000])], 'not-default');
    assert.deepEqual(services(scope), [`foo/${BAR}:8000`]);
    assert.equal(listenerFor(scope, 8000)?.port, 8000);
    assert.equal(listenerFor(scope, 7000), undefined, 'no listener serves 7000');
  });
  it('a Unix socket listener (port 0) is matched by its bind only, not as the catch-all; its services join the scope on every port', () => {
    const scope = scopeOf([sidecar('s', 'shop', 'egress:\n- port: {number: 0, protocol: HTTP, name: uds}\n  bind: unix:///var/run/app/egress.sock\n  hosts: ["*/*"]\n- hosts: ["./*"]'), se('a', 'shop', 'a.shop.svc.cluster.local', [9080]), se('r', 'other', 'r.other.svc.cluster.local', [9080, 80])], 'shop');
    assert.equal(scope.listeners[0]?.socket, true);
    assert.equal(scope.listeners[0]?.matchPort, false, 'needsPortMatch: a port-0 listener imports every port');
    assert.equal(listenerFor(scope, 9080), scope.listeners[1], 'the catch-all serves the IP ports');
    assert.equal(listenerFor(scope, undefined), scope.listeners[1]);
    assert.deepEqual(services(scope), ['other/r.other.svc.cluster.local:*', 'shop/a.shop.svc.cluster.local:*']);
    const only = scopeOf([sidecar('s', 'shop', 'egress:\n- port: {number: 0, protocol: HTTP, name: uds}\n  bind: unix:///var/run/app/egress.sock\n  hosts: ["*/*"]'), se('a', 'shop', 'a.shop.svc.cluster.local', [9080])], 'shop');
    assert.equal(listenerFor(only, 9080), undefined, 'no listener serves an IP port');
  });
  it('sidecar-with-egress-port-trims-and-merges-service-ports: two listeners merge the ports of one service', () => {
    const scope = scopeOf(
      [
        sidecar('s', 'not-default', 'egress:\n- port: {number: 8000, protocol: HTTP, name: a}\n  hosts: ["foo/*"]\n- port: {number: 7000, protocol: HTTP, name: b}\n  hosts: ["foo/*"]'),
        se('bar', 'foo', BAR, [8000, 7000]),
        se('barprime', 'foo', 'barprime.foo.svc.cluster.local', [8000]),
        se('foo', 'foo', 'foo.foo.svc.cluster.local', [8000, 7000, 9000]),
      ],
      'not-default',
    );
    assert.deepEqual(services(scope), [`foo/${BAR}:7000,8000`, 'foo/barprime.foo.svc.cluster.local:8000', 'foo/foo.foo.svc.cluster.local:7000,8000']);
  });
  it('sidecar-with-egress-port-match-with-services-with-and-without-port: a service without ports is not imported by a port listener', () => {
    const scope = scopeOf([sidecar('s', 'not-default', 'egress:\n- port: {number: 8000, protocol: HTTP, name: uds}\n  hosts: ["foo/*"]'), se('bar', 'foo', BAR, [8000]), doc(NET, 'ServiceEntry', 'barprime', 'hosts: [barprime.foo.svc.cluster.local]\nlocation: MESH_EXTERNAL\nresolution: DNS\nports:\n- {number: 9999, name: tcp, protocol: TCP}', 'foo')], 'not-default');
    assert.deepEqual(services(scope), [`foo/${BAR}:8000`]);
  });
  it('a port-less (catch-all) listener imports every port; no egress at all is `*/*`', () => {
    const scope = scopeOf([sidecar('s', 'shop', 'outboundTrafficPolicy: {mode: REGISTRY_ONLY}'), se('bar', 'foo', BAR, [8000, 7000])], 'shop');
    assert.deepEqual(services(scope), [`foo/${BAR}:*`]);
    const s = scope.services.get(BAR);
    assert.ok(s !== undefined && importsPort(s, 7000) && importsPort(s, 8000));
  });
  const exclusionRows: { name: string; hosts: string; want: string[] }[] = [
    { name: '*/* excludes whole namespace b via ~b/*', hosts: '["*/*", "~b/*"]', want: ['a/alt.a.svc.cluster.local:*', 'a/host.a.svc.cluster.local:*'] },
    { name: '*/* excludes exact host (all ports) from all namespaces via ~/host', hosts: '["*/*", "~/host.a.svc.cluster.local"]', want: ['a/alt.a.svc.cluster.local:*', 'b/host.b.svc.cluster.local:*'] },
    { name: 'ns-scoped exclusion does not affect other namespace', hosts: '["*/*", "~a/*"]', want: ['b/host.b.svc.cluster.local:*'] },
  ];
  for (const r of exclusionRows) {
    it(`TestIstioEgressListenerWrapper ${r.name}`, () => {
      const scope = scopeOf([sidecar('s', 'a', `egress:\n- hosts: ${r.hosts}`), se('host', 'a', 'host.a.svc.cluster.local', [8000]), se('alt', 'a', 'alt.a.svc.cluster.local', [8000]), se('host', 'b', 'host.b.svc.cluster.local', [8000])], 'a');
      assert.deepEqual(services(scope), r.want);
    });
  }

  // virtualServices1: VirtualService virtualbar (namespace foo) routes to baz (ns3) and mirrors to foo (ns1).
  const virtualbar = (http: string) => doc(NET, 'VirtualService', 'virtualbar', `hosts: [virtualbar]\nhttp:\n${http}`, 'foo');
  const mirrorAndRoute = virtualbar('- route: [{destination: {host: baz.svc.cluster.local}}]\n  mirror: {host: foo.svc.cluster.local}');
  const importVirtualbar = sidecar('s', 'mynamespace', 'egress:\n- hosts: ["foo/virtualbar.foo.svc.cluster.local"]');
  it('virtual-service: the services a selected VirtualService routes and mirrors to are in scope', () => {
    const scope = scopeOf([importVirtualbar, mirrorAndRoute, se('foo', 'ns1', 'foo.svc.cluster.local', [7443]), se('baz', 'ns3', 'baz.svc.cluster.local', [7443]), se('other', 'ns3', 'other.svc.cluster.local', [7443])], 'mynamespace');
    assert.deepEqual(services(scope), ['ns1/foo.svc.cluster.local:*', 'ns3/baz.svc.cluster.local:*']);
    assert.deepEqual(scope.listeners[0]?.virtualServices.map((e) => e.vs.metadata.name), ['virtualbar']);
    assert.equal(scope.listeners[0]?.services.size, 0, 'the listener itself imports no service: its hosts name only the VirtualService');
  });
  it('virtual-service-prefer-config-namespace: a destination declared in the workload’s namespace is that one', () => {
    const scope = scopeOf([importVirtualbar, mirrorAndRoute, se('foo', 'ns1', 'foo.svc.cluster.local', [7443]), se('foo', 'mynamespace', 'foo.svc.cluster.local', [8000]), se('baz', 'ns3', 'baz.svc.cluster.local', [7443])], 'mynamespace');
    assert.deepEqual(services(scope), ['mynamespace/foo.svc.cluster.local:*', 'ns3/baz.svc.cluster.local:*']);
  });
  it('virtual-service-destinations-matching-http-virtual-service-ports: only the ports the routes name', () => {
    const vs = virtualbar('- route: [{destination: {host: baz.svc.cluster.local, port: {number: 7000}}}]\n  mirror: {host: foo.svc.cluster.local, port: {number: 7000}}');
    const scope = scopeOf([importVirtualbar, vs, se('foo', 'ns1', 'foo.svc.cluster.local', [8000, 7000]), se('baz', 'ns3', 'baz.svc.cluster.local', [8000, 7000])], 'mynamespace');
    assert.deepEqual(services(scope), ['ns1/foo.svc.cluster.local:7000', 'ns3/baz.svc.cluster.local:7000']);
  });
  it('a VirtualService outside the egress hosts adds nothing', () => {
    const scope = scopeOf([sidecar('s', 'mynamespace', 'egress:\n- hosts: ["./*"]'), mirrorAndRoute, se('foo', 'ns1', 'foo.svc.cluster.local', [7443]), se('baz', 'ns3', 'baz.svc.cluster.local', [7443])], 'mynamespace');
    assert.deepEqual(services(scope), []);
    assert.deepEqual(scope.listeners[0]?.virtualServices, []);
  });
  it('a Sidecar of the root namespace applies with `.` meaning the workload’s namespace (convertToSidecarScope per namespace)', () => {
    const scope = scopeOf([sidecar('mesh-default', 'istio-system', 'egress:\n- hosts: ["./*"]'), se('a', 'shop', 'a.shop.svc.cluster.local', [80]), se('b', 'istio-system', 'b.istio-system.svc.cluster.local', [80])], 'shop');
    assert.deepEqual(services(scope), ['shop/a.shop.svc.cluster.local:*']);
  });
  it('one declaration per host: the workload’s namespace wins over an older one elsewhere', () => {
    const scope = scopeOf([sidecar('s', 'shop', 'egress:\n- hosts: ["*/api.ext.com"]'), se('old', 'ext', 'api.ext.com', [443]), se('mine', 'shop', 'api.ext.com', [80])], 'shop');
    assert.deepEqual(services(scope), ['shop/api.ext.com:*']);
  });
  it('services not exported to the namespace stay out', () => {
    const hidden = se('hidden', 'other', 'hidden.other.svc.cluster.local', [80], 'exportTo: ["."]');
    assert.deepEqual(services(scopeOf([sidecar('s', 'shop', 'egress:\n- hosts: ["*/*"]'), hidden], 'shop')), []);
  });
});

describe('destinationsOf (push_context.go virtualServiceDestinationsFilteredBySourceNamespace)', () => {
  it('routes, mirrors, tcp and tls destinations, with their ports (0: none named); rules for other source namespaces are left out', () => {
    const [vs] = load([
      doc(
        NET,
        'VirtualService',
        'v',
        'hosts: [v]\nhttp:\n- match: [{sourceNamespace: other}]\n  route: [{destination: {host: skipped}}]\n- match: [{sourceNamespace: other}, {sourceNamespace: shop}]\n  route: [{destination: {host: a, port: {number: 80}}}]\n  mirrors: [{destination: {host: m}}]\ntcp:\n- route: [{destination: {host: t.example.com, port: {number: 5432}}}]',
        'foo',
      ),
    ]) as [Resource<'VirtualService'>];
    const d = destinationsOf(vs.spec, 'foo', 'shop');
    assert.deepEqual(
      [...d].map(([h, p]) => `${h}:${[...p].join(',')}`),
      ['a.foo.svc.cluster.local:80', 'm.foo.svc.cluster.local:0', 't.example.com:5432'],
    );
  });
});

describe('whyOutOfScope (what explain says)', () => {
  const docs = [
    sidecar('s', 'shop', 'egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ["other/*"]\n- hosts: ["./*"]'),
    se('a', 'shop', 'a.shop.svc.cluster.local', [9080, 80]),
    se('r', 'other', 'r.other.svc.cluster.local', [9080, 80]),
    doc(NET, 'VirtualService', 'via', 'hosts: [via]\nhttp:\n- route: [{destination: {host: t.far.svc.cluster.local}}]', 'shop'),
    se('t', 'far', 't.far.svc.cluster.local', [80]),
  ];
  const scope = scopeOf(docs, 'shop');
  const registry = new ServiceRegistry(load(docs));
  const rows: [string, number, string | undefined][] = [
    ['a', 80, undefined],
    ['r.other', 9080, undefined],
    ['r.other', 80, 'r.other.svc.cluster.local (namespace other) is not in the egress hosts of Sidecar shop/s (./*); its listener for port 9080 imports it'],
    ['a.shop', 9080, "a.shop.svc.cluster.local (namespace shop) is not in the egress hosts of Sidecar shop/s's listener for port 9080 (other/*); its listener for other ports imports it"],
    ['t.far', 80, 't.far.svc.cluster.local (namespace far) is not in the egress hosts of Sidecar shop/s (./*); only the VirtualServices that route to it reach it'],
    ['nowhere.example', 80, 'nowhere.example is not in the registry (no visible ServiceEntry or Service)'],
  ];
  for (const [host, port, want] of rows) it(`${host}:${port}`, () => assert.equal(whyOutOfScope(scope, registry, host, port), want));
  it('a port no listener serves', () => {
    const portOnly = scopeOf([sidecar('p', 'shop', 'egress:\n- port: {number: 9080, protocol: HTTP, name: http}\n  hosts: ["./*"]'), se('a', 'shop', 'a.shop.svc.cluster.local', [9080, 80])], 'shop');
    assert.equal(whyOutOfScope(portOnly, registry, 'a', 80), 'Sidecar shop/p has no egress listener for port 80 (its listeners: 9080)');
  });
});
