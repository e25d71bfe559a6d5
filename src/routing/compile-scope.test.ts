/**
 * Which VirtualServices reach a workload, as istiod indexes them (push_context.go
 * `initVirtualServices`, `getGatewayNames`, `VirtualServicesForGateway`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from './compile.ts';
import { NO_ROUTE } from './route-table.ts';

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
