/**
 * `meshlet apply` of the same manifest twice answers `unchanged`, as `kubectl apply` does, whatever
 * the order of the keys in it (Istio's own samples put `fault` before `route`, and a
 * ServiceEntry's `resolution` after `ports`), and a resource that a config file defines, applied
 * again as that file has it, is `unchanged`, not a conflict.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, SERVICES_YAML, startTestServer, type TestServer } from './helpers.ts';

// Istio's samples/bookinfo/networking/virtual-service-ratings-test-delay.yaml (fault before route).
const RATINGS_DELAY = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    fault:
      delay:
        percentage:
          value: 100.0
        fixedDelay: 7s
    route:
    - destination:
        host: ratings
        subset: v1
  - route:
    - destination:
        host: ratings
        subset: v1
`;

// Istio's samples/bookinfo/networking/egress-rule-google-apis.yaml, first document.
const GOOGLEAPIS = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: googleapis
spec:
  hosts:
  - www.googleapis.com
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
`;

describe('/v1/resources: applying the same manifest again', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'delay.yaml': RATINGS_DELAY.replace('name: ratings\n', 'name: ratings-file\n') });
  });
  after(() => s.close());
  const post = (text: string) => api(s.url, 'POST', '/v1/resources', { token: s.admin, text, headers: { 'content-type': 'application/yaml' } });

  it('is unchanged the second time, whatever the order of its keys', async () => {
    const first = await post(`${RATINGS_DELAY}---\n${GOOGLEAPIS}`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(
      first.body.applied.map((a: { action: string }) => a.action),
      ['created', 'created'],
    );
    const again = await post(`${RATINGS_DELAY}---\n${GOOGLEAPIS}`);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual(again.body.applied, [
      { ref: 'VirtualService default/ratings', action: 'unchanged' },
      { ref: 'ServiceEntry default/googleapis', action: 'unchanged' },
    ]);
    assert.equal(again.body.version, first.body.version);
  });

  it("a health-checked WorkloadEntry's Healthy condition is content: a status change is configured, with a new version", async () => {
    const entry = (healthy: string) =>
      `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm-1, annotations: {proxy.istio.io/health-checks-enabled: "true"}}\nspec: {address: 10.9.0.1, labels: {app: vm}}\nstatus:\n  conditions: [{type: Healthy, status: "${healthy}"}]\n`;
    const first = await post(entry('False'));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const same = await post(entry('False'));
    assert.deepEqual(same.body.applied, [{ ref: 'WorkloadEntry default/vm-1', action: 'unchanged' }]);
    const healthy = await post(entry('True'));
    assert.deepEqual(healthy.body.applied, [{ ref: 'WorkloadEntry default/vm-1', action: 'configured' }]);
    assert.notEqual(healthy.body.version, first.body.version);
  });

  it('a resource of a config file, applied as the file has it, is unchanged (not a conflict)', async () => {
    const r = await post(RATINGS_DELAY.replace('name: ratings\n', 'name: ratings-file\n'));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.applied, [{ ref: 'VirtualService default/ratings-file', action: 'unchanged' }]);
  });
});
