/**
 * Registration through a WorkloadGroup against the real control plane: the WorkloadEntry a
 * workload gets is made from the group's template, as istiod's auto-registration does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IssueList } from '../../../src/config/issues.ts';
import { checkDocuments } from '../../../src/config/load-config.ts';
import { parseText } from '../../../src/config/load.ts';
import { isRelevant } from '../../../src/control-plane-server/filter.ts';
import { api, SERVICES_YAML, startTestServer, type TestServer } from './helpers.ts';

const GROUPS = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews, namespace: default}
spec:
  metadata:
    labels: {team: books, version: from-metadata}
    annotations: {owner: books-team}
  template:
    labels: {version: v1, tier: backend}
    ports: {http: 9080, grpc: 9090}
    serviceAccount: bookinfo-reviews
    network: net-a
    locality: us-east/us-east-1a
    weight: 2
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews-canary, namespace: default}
spec:
  template:
    labels: {version: v2}
    ports: {http: 9080}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: no-ports, namespace: default}
spec:
  template: {labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings-group, namespace: default}
spec:
  template: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews-canary, namespace: shop}
spec:
  template: {labels: {version: shop}}
`;

describe('registration through a WorkloadGroup (/v1/workloads)', () => {
  let s: TestServer;
  let reviews: string;
  let details: string;
  before(async () => {
    s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'groups.yaml': GROUPS });
    reviews = await s.cp.mintToken({ service: 'reviews', namespace: 'default', serviceAccount: 'bookinfo-reviews' });
    details = await s.cp.mintToken({ service: 'details', namespace: 'default' });
  });
  after(() => s.close());

  const register = (token: string, body: Record<string, unknown>) => api(s.url, 'POST', '/v1/workloads', { token, body });

  it('uses the group named like the service by default: template < group metadata < the workload, as istiod merges them', async () => {
    const r = await register(reviews, { address: '10.0.0.7', ports: { http: 19081 }, labels: { version: 'v9' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.name, /^reviews-10-0-0-7-19081-[0-9a-f]{10}$/);
    assert.deepEqual(r.body.workload.spec, {
      address: '10.0.0.7',
      ports: { http: 19081, grpc: 9090 },
      labels: { version: 'v9', tier: 'backend', team: 'books', app: 'reviews' },
      network: 'net-a',
      locality: 'us-east/us-east-1a',
      weight: 2,
      serviceAccount: 'bookinfo-reviews',
    });
    assert.deepEqual(r.body.workload.metadata.labels, { version: 'v9', tier: 'backend', team: 'books', app: 'reviews' });
    assert.deepEqual(r.body.workload.metadata.annotations, { 'istio.io/autoRegistrationGroup': 'reviews', owner: 'books-team' });
  });

  it("takes the workload's own locality, network and weight over the template's", async () => {
    const r = await register(reviews, { address: '10.0.0.8', ports: { http: 19082 }, locality: 'eu/west', network: 'net-b', weight: 5 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.workload.spec.locality, 'eu/west');
    assert.equal(r.body.workload.spec.network, 'net-b');
    assert.equal(r.body.workload.spec.weight, 5);
    assert.equal(r.body.workload.spec.labels.version, 'from-metadata', "the group's metadata labels beat the template's");
  });

  it('uses the group the registration names, and the template ports when it names none', async () => {
    const r = await register(reviews, { address: '10.0.0.9', group: 'reviews-canary' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.name, /^reviews-canary-10-0-0-9-9080-[0-9a-f]{10}$/);
    assert.deepEqual(r.body.workload.spec, { address: '10.0.0.9', ports: { http: 9080 }, labels: { version: 'v2', app: 'reviews' }, serviceAccount: 'bookinfo-reviews' }, "a group whose template names no service account: the token's");
    assert.deepEqual(r.body.workload.metadata.annotations, { 'istio.io/autoRegistrationGroup': 'reviews-canary' });
  });

  it('refuses a group that does not exist (404), naming it; groups are looked up in the workload’s namespace', async () => {
    const r = await register(reviews, { address: '10.0.0.9', ports: { http: 1 }, group: 'reviews-v7' });
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'NOT_FOUND');
    assert.match(r.body.error.message, /WorkloadGroup default\/reviews-v7 does not exist/);
    const shop = await s.cp.mintToken({ service: 'reviews', namespace: 'shop' });
    const inShop = await register(shop, { address: '10.0.0.9', ports: { http: 1 }, group: 'reviews-canary' });
    assert.equal(inShop.status, 200);
    assert.equal(inShop.body.workload.spec.labels.version, 'shop');
  });

  it('refuses a registration with no ports when the template has none either (400)', async () => {
    const r = await register(reviews, { address: '10.0.0.9', group: 'no-ports' });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /neither the registration nor WorkloadGroup default\/no-ports's template names any/);
  });

  it('refuses a group that would make the workload another service (403)', async () => {
    const r = await register(reviews, { address: '10.0.0.9', ports: { http: 1 }, group: 'ratings-group' });
    assert.equal(r.status, 403);
    assert.match(r.body.error.message, /WorkloadGroup default\/ratings-group gives its workloads label app=ratings, but the workload is service "reviews"/);
  });

  it('registers as before when no group is named and none is named like the service', async () => {
    const r = await register(details, { address: '10.0.0.10', ports: { http: 9080 } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.workload.spec, { address: '10.0.0.10', ports: { http: 9080 }, labels: { app: 'details' } });
    assert.equal(r.body.workload.metadata.annotations, undefined);
  });

  it('serves WorkloadGroups through the config API (kind "wg")', async () => {
    const got = await api(s.url, 'GET', '/v1/resources?kind=wg&namespace=default', { token: s.admin });
    assert.equal(got.status, 200);
    assert.deepEqual(got.body.resources.map((r: { metadata: { name: string } }) => r.metadata.name).sort(), ['no-ports', 'ratings-group', 'reviews', 'reviews-canary']);
  });
});

describe('what meshes receive: Services by their exportTo annotation, no WorkloadGroups', () => {
  const yaml = `${GROUPS}---
apiVersion: v1
kind: Service
metadata: {name: public, namespace: shop}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: private, namespace: shop, annotations: {networking.istio.io/exportTo: "."}}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: to-prod, namespace: shop, annotations: {networking.istio.io/exportTo: "prod, dev"}}
spec: {ports: [{port: 80}]}
`;
  const issues = new IssueList();
  const { resources } = checkDocuments(parseText(yaml, 'f.yaml', issues), { analysis: 'off' }, issues);
  const seen = (ns: string) => resources.filter((r) => isRelevant(r, { namespace: ns, labels: {} })).map((r) => `${r.kind} ${r.metadata.name}`).sort();
  const rows: [string, string[]][] = [
    ['shop', ['Service private', 'Service public']],
    ['prod', ['Service public', 'Service to-prod']],
    ['dev', ['Service public', 'Service to-prod']],
    ['default', ['Service public']],
  ];
  for (const [ns, want] of rows) it(`namespace ${ns}`, () => assert.deepEqual(seen(ns), want));
});
