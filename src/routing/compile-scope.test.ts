/**
 * Which VirtualServices reach a workload, as istiod indexes them (push_context.go
 * `initVirtualServices`, `getGatewayNames`, `VirtualServicesForGateway`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from './compile.ts';
import { NO_ROUTE } from './route-table.ts';
import { meshVirtualServices } from './virtual-services.ts';

const NET = 'networking.istio.io/v1';
const se = (name: string, ns: string) =>
  doc(NET, 'ServiceEntry', name, `hosts: [${name}.${ns}.svc.cluster.local]\nlocation: MESH_INTERNAL\nresolution: STATIC\nports: [{number: 9080, name: http, protocol: HTTP}]\nendpoints: [{address: 10.0.0.1}]`, ns);

function compile(docs: readonly string[], wl: WorkloadInfo = { service: 'productpage', labels: { app: 'productpage' } }): Snapshot {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, wl);
}

/** The name of the route `authority` takes. */
function routeName(s: Snapshot, authority: string, path = '/'): string | undefined {
  const d = s.routes.route({ method: 'GET', scheme: 'http', authority, path, headers: {} }, 0);
  if (d === undefined || d === NO_ROUTE) return String(d);
  return d.route.name;
}

describe('VirtualServices a sidecar routes with', () => {
  it('a VirtualService bound to gateways only is not applied, even with a match block naming mesh (getGatewayNames)', () => {
    const vs = doc(NET, 'VirtualService', 'r', 'hosts: [reviews]\ngateways: [istio-system/gw]\nhttp:\n- name: meshrule\n  match: [{gateways: [mesh]}]\n  route: [{destination: {host: reviews}}]\n- name: gwrule\n  route: [{destination: {host: reviews}}]');
    assert.equal(routeName(compile([se('reviews', 'default'), vs]), 'reviews:9080'), 'default');
    // With mesh among its gateways, the match block applies.
    const both = vs.replace('gateways: [istio-system/gw]', 'gateways: [istio-system/gw, mesh]');
    assert.equal(routeName(compile([se('reviews', 'default'), both]), 'reviews:9080'), 'r.meshrule');
  });
});

describe('VirtualServices by exportTo, in istiod\'s order: TestVirtualServiceWithExportTo (mesh gateway rows)', () => {
  const vs = (name: string, ns: string, spec: string) => doc(NET, 'VirtualService', name, `${spec}\nhttp: [{route: [{destination: {host: x.example.com}}]}]`, ns);
  const { resources, errors } = validateYaml(
    [
      vs('rule1', 'test1', 'hosts: [rule1.com]\nexportTo: [".", ns1]'),
      vs('rule2', 'test2', 'hosts: [rule2.com]\nexportTo: [test2, ns1, test1]'),
      // Istio's test has exportTo [test1, test2, "*"], which validation rejects ("*" alone).
      vs('rule3', 'test3', 'hosts: [rule3.com]\ngateways: [mesh]\nexportTo: ["*"]'),
      vs('rule2gw', 'test2', 'hosts: [rule2gw.com]\ngateways: [default/gateway, mesh]\nexportTo: [test2, ns1, test1]'),
      vs('rule3gw', 'test3', 'hosts: [rule3gw.com]\ngateways: [default/gateway]\nexportTo: ["*"]'),
      vs('zzz', 'zzz', 'hosts: [rootns.com]'),
    ].join('---\n'),
  );
  assert.deepEqual(errors, []);
  const rows: [string, string[]][] = [
    ['test1', ['rule1.com', 'rule2.com', 'rule2gw.com', 'rule3.com', 'rootns.com']],
    ['test2', ['rule2.com', 'rule2gw.com', 'rule3.com', 'rootns.com']],
    ['ns1', ['rule1.com', 'rule2.com', 'rule2gw.com', 'rule3.com', 'rootns.com']],
    ['random', ['rule3.com', 'rootns.com']],
  ];
  for (const [ns, want] of rows) {
    it(`a workload of ${ns}: ${want.join(', ')}`, () => {
      assert.deepEqual(
        meshVirtualServices(resources, ns).flatMap((e) => e.hosts),
        want,
      );
    });
  }
});
