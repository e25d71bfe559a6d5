/**
 * `meshlet apply` of Istio's unchanged Bookinfo manifest through the config API: its Services are
 * applied, its ServiceAccounts and Deployments skipped with one notice per kind (as when loading
 * files), and a body of only skipped kinds is refused with the notices.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { api, startTestServer, type TestServer } from './helpers.ts';

const BOOKINFO = readFileSync(new URL('../../fixtures/istio/bookinfo/platform/kube/bookinfo.yaml', import.meta.url), 'utf8');

describe('/v1/resources: Kubernetes manifests', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({});
  });
  after(() => s.close());
  const post = (text: string) => api(s.url, 'POST', '/v1/resources', { token: s.admin, text, headers: { 'content-type': 'application/yaml' } });

  it("applies Bookinfo's Services and skips the rest with one notice per kind", async () => {
    const r = await post(BOOKINFO);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.applied.map((a: { ref: string }) => a.ref), ['Service default/details', 'Service default/ratings', 'Service default/reviews', 'Service default/productpage']);
    assert.equal(r.body.warnings.length, 2, r.body.warnings.join('\n'));
    assert.match(r.body.warnings[0], /^request: skipped 4 ServiceAccount \(v1\): default\/bookinfo-details, /);
    assert.match(r.body.warnings[1], /^request: skipped 6 Deployment \(apps\/v1\): default\/details-v1, /);
    const svc = await api(s.url, 'GET', '/v1/resources?kind=svc', { token: s.admin });
    assert.deepEqual(svc.body.resources.map((x: { metadata: { name: string } }) => x.metadata.name).sort(), ['details', 'productpage', 'ratings', 'reviews']);
  });

  it('refuses a body in which nothing is of a kind meshlet applies, saying why', async () => {
    const r = await post('apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n');
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /nothing to apply: every resource is of a kind meshlet does not apply/);
    assert.match(r.body.error.issues[0], /skipped 1 Deployment \(apps\/v1\): default\/web; workloads run outside meshlet/);
  });

  it('still refuses a typo of a kind meshlet applies', async () => {
    const r = await post('apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: web}\nspec: {}\n');
    assert.equal(r.status, 400);
    assert.deepEqual(r.body.error.issues, [
      'request line 1: VirtualServce web: unknown kind "VirtualServce" in networking.istio.io (did you mean "VirtualService"?); meshlet reads VirtualService, DestinationRule, ServiceEntry, WorkloadEntry, WorkloadGroup, EnvoyFilter, Sidecar from networking.istio.io',
    ]);
  });
});
