/**
 * A VirtualService and an HTTPRoute for the same Service: which one a workload routes with, as
 * istiod orders them (model/virtualservice.go `SelectVirtualServices` with
 * PILOT_UNIFIED_SIDECAR_SCOPE, route.go's producer/consumer rule): within an export class a
 * Gateway API route of the workload's own namespace comes first; otherwise the oldest wins; a
 * route in a third namespace (neither the Service's nor the workload's) does not apply at all.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateDocuments } from '../../src/config/validate/index.ts';
import { meshVirtualServices, VirtualServiceIndex } from '../../src/routing/virtual-services.ts';

const HOST = 'reviews.default.svc.cluster.local';

function resources(routeNamespace: string, vsExportTo?: string[]) {
  const docs = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] } },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'default', creationTimestamp: '2024-01-01T00:00:00Z' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }], ...(vsExportTo === undefined ? {} : { exportTo: vsExportTo }) },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'reviews', namespace: routeNamespace, creationTimestamp: '2025-01-01T00:00:00Z' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews', namespace: 'default' }], rules: [{ backendRefs: [{ name: 'reviews', namespace: 'default', port: 9080 }] }] },
    },
  ];
  const { resources: out, issues } = validateDocuments(docs.map((value) => ({ value, source: { file: 'test' } })));
  assert.deepEqual(issues.ofLevel('error').map(String), []);
  return out;
}

function winner(routeNamespace: string, workloadNamespace: string, vsExportTo?: string[]): string | undefined {
  const index = new VirtualServiceIndex(meshVirtualServices(resources(routeNamespace, vsExportTo), workloadNamespace));
  return index.find(HOST)?.metadata.name;
}

describe('a VirtualService and an HTTPRoute for the same host', () => {
  it('in the workload namespace, the HTTPRoute wins over an older public VirtualService', () => {
    assert.equal(winner('default', 'default'), 'default~reviews.default.svc.cluster.local');
  });
  it('a private VirtualService (exportTo ".") still comes first: its export class is ahead', () => {
    assert.equal(winner('default', 'default', ['.']), 'reviews');
  });
  it('for another namespace, the producer route and the VirtualService are ordered by age: the older VirtualService wins', () => {
    assert.equal(winner('default', 'shop'), 'reviews');
  });
  it("a consumer route wins in its own namespace, and does not apply in the Service's", () => {
    assert.equal(winner('shop', 'shop'), 'shop~reviews.default.svc.cluster.local');
    assert.equal(winner('shop', 'default'), 'reviews');
  });
  it('a route in a third namespace does not apply', () => {
    const vss = meshVirtualServices(resources('shop'), 'web');
    assert.deepEqual(vss.map((e) => e.vs.metadata.name), ['reviews']);
  });
});
