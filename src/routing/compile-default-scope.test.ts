/**
 * A workload no Sidecar applies to routes as istiod's default scope does (a Sidecar importing
 * `*` from every namespace: push_context.go `getSidecarScope`, sidecar.go
 * `initSidecarScopeInternalIndexes`), by the same code as under such a Sidecar. The rows are
 * Istio's `TestSidecarOutboundHTTPRouteConfig` (pilot/pkg/networking/core/httproute_test.go,
 * "no sidecar config …"), with its services and VirtualServices as resources, for a workload of
 * `not-default`: each route port's virtual hosts (meshlet names them `host:port`; istiod's
 * catch-all `block_all`/`allow_any` is meshlet's outbound traffic policy, not a virtual host).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { compileSnapshot, type Snapshot } from './compile.ts';
import { NO_ROUTE } from './route-table.ts';

const NET = 'networking.istio.io/v1';
/** `buildHTTPService(host, visibility, ip, namespace, ports…)`: an HTTP ServiceEntry. */
const svc = (host: string, ns: string, ports: readonly number[], exportTo = '"*"', resolution = 'STATIC') =>
  doc(
    NET,
    'ServiceEntry',
    host.replace(/\./g, '-').toLowerCase(),
    `hosts: [${host}]\nexportTo: [${exportTo}]\nlocation: MESH_INTERNAL\nresolution: ${resolution}\nports:\n${ports.map((p) => `- {number: ${p}, name: http-${p}, protocol: HTTP}`).join('\n')}${resolution === 'NONE' ? '' : '\nendpoints: [{address: 10.0.0.1}]'}`,
    ns,
  );
const SERVICES = [
  svc('bookinfo.com', 'default', [9999, 70]),
  svc('private.com', 'default', [9999, 80], '"."'),
  svc('test.com', 'not-default', [8080]),
  svc('test-private.com', 'not-default', [80, 70], '"."'),
  svc('test-private-2.com', 'not-default', [60], '"."'),
  svc('test-headless.com', 'not-default', [8888], '"*"', 'NONE'),
  svc('service-a.default.svc.cluster.local', 'default', [7777]),
];
const vs = (name: string, hosts: string, dest: string) => doc(NET, 'VirtualService', name, `hosts: ${hosts}\nhttp:\n- route: [{destination: ${dest}}]`, 'not-default');
const VS1 = vs('acme2-v1', '[test-private-2.com]', '{host: example.org, port: {number: 61}}');
const VS2 = vs('acme-v2', '[test-private-2.com]', '{host: test.org, port: {number: 62}}');
const WILDCARD_VS2 = vs('acme-v2', '["*-private-2.COM"]', '{host: test.org, port: {number: 62}}');
const VS3 = vs('acme-v3', '[test-private-3.com]', '{host: test.org, port: {number: 63}}');
const VS4 = vs('acme-v4', '[test-headless.com, example.com]', '{host: test.org, port: {number: 64}}');

function compile(extra: readonly string[]): Snapshot {
  const { resources, errors } = validateYaml([...SERVICES, ...extra].join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, { service: 'app', namespace: 'not-default' });
}
/** The virtual hosts of route port `port`, by name. */
const onPort = (s: Snapshot, port: number) =>
  s.routes.virtualHosts
    .filter((v) => v.port === port)
    .map((v) => v.name)
    .sort();

describe("no Sidecar: istiod's default scope (TestSidecarOutboundHTTPRouteConfig, no sidecar config rows)", () => {
  const rows: { name: string; port: number; vss: readonly string[]; want: readonly string[] }[] = [
    { name: 'import public service from other namespaces: 9999', port: 9999, vss: [], want: ['bookinfo.com:9999'] },
    { name: 'import public service from other namespaces: 8080', port: 8080, vss: [], want: ['test.com:8080'] },
    { name: 'import public services from other namespaces: 80', port: 80, vss: [], want: ['test-private.com:80'] },
    { name: 'import public services from other namespaces: 70', port: 70, vss: [], want: ['bookinfo.com:70', 'test-private.com:70'] },
    { name: 'with virtual services with duplicate entries', port: 60, vss: [VS1, VS2], want: ['test-private-2.com:60'] },
    { name: 'with virtual services with wildcard', port: 60, vss: [WILDCARD_VS2], want: ['test-private-2.com:60'] },
    { name: 'with virtual services with no service in registry (port 80)', port: 80, vss: [VS3], want: ['test-private-3.com:80', 'test-private.com:80'] },
    { name: 'import headless service from other namespaces: 8888', port: 8888, vss: [], want: ['test-headless.com:8888'] },
    { name: 'with virtual services - import headless service from other namespaces: 8888', port: 8888, vss: [VS4], want: ['example.com:8888', 'test-headless.com:8888'] },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const s = compile(r.vss);
      assert.deepEqual(onPort(s, r.port), r.want);
      assert.equal(s.sidecar, undefined, 'no Sidecar applies: the mesh’s outboundTrafficPolicy');
    });
  }

  it('duplicate entries: the older VirtualService routes the host (acme2-v1 listed first)', () => {
    const d = compile([VS1, VS2]).routes.route({ method: 'GET', scheme: 'http', authority: 'test-private-2.com:60', path: '/', headers: {} }, 0);
    assert.ok(d !== undefined && d !== NO_ROUTE);
    assert.equal(d.route.virtualService, 'VirtualService not-default/acme2-v1');
  });

  it('a VirtualService host with no service is routed on no other port (test-private-3.com:70 and :60 stay outside the mesh)', () => {
    const s = compile([VS3]);
    for (const port of [70, 60, 8080, 9999]) assert.equal(s.routes.virtualHost(`test-private-3.com:${port}`), undefined, `port ${port}`);
    assert.equal(s.routes.virtualHost('test-private-3.com')?.name, 'test-private-3.com:80');
  });

  it('a wildcard VirtualService host matching a service of the port gets no virtual host of its own there; on port 80, where it matches none, it does', () => {
    const s = compile([WILDCARD_VS2]);
    assert.equal(s.routes.virtualHost('other-private-2.com:60'), undefined);
    assert.equal(s.routes.virtualHost('test-private-2.com:60')?.routes[0]?.virtualService, 'VirtualService not-default/acme-v2');
    assert.equal(s.routes.virtualHost('other-private-2.com')?.name, '*-private-2.com:80');
  });

  it("VirtualService hosts `<name>.<namespace>` beside the service they name (TestSidecarOutboundHTTPRouteConfig 'virtual service hosts with subsets and with existing service'): routed on the service's port", () => {
    const vs7 = doc(
      NET,
      'VirtualService',
      'vs7',
      'hosts: [service-a.default.svc.cluster.local, service-a.v2, service-a.v3]\nhttp:\n- match: [{headers: {":authority": {exact: service-a.v2}}}]\n  route: [{destination: {host: service-a.default.svc.cluster.local, subset: v2}}]\n- match: [{headers: {":authority": {exact: service-a.v3}}}]\n  route: [{destination: {host: service-a.default.svc.cluster.local, subset: v3}}]',
      'not-default',
    );
    const s = compile([vs7]);
    assert.deepEqual(onPort(s, 7777), ['service-a.default.svc.cluster.local:7777', 'service-a.v2:7777', 'service-a.v3:7777']);
    assert.equal(s.routes.virtualHost('service-a.v2:8080'), undefined);
  });
});
