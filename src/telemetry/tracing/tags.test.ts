import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Attributes } from '@opentelemetry/api';
import { canonicalRevision, canonicalService, compileTags, headerTags, hostPortOfCluster, httpUrl, isError, istioTags } from './tags.ts';

const w = (labels: Record<string, string>) => ({ service: 'reviews', namespace: 'bookinfo', labels, serviceAccount: 'default' });

describe('Istio tags', () => {
  const rows: [Record<string, string>, string, string][] = [
    [{}, 'reviews', 'latest'],
    [{ app: 'reviews-app', version: 'v2' }, 'reviews-app', 'v2'],
    [{ app: 'a', 'app.kubernetes.io/name': 'k8s-name', 'app.kubernetes.io/version': '1.2' }, 'k8s-name', '1.2'],
    [{ app: 'a', 'service.istio.io/canonical-name': 'canon', 'service.istio.io/canonical-revision': 'r7', version: 'v1' }, 'canon', 'r7'],
  ];
  for (const [labels, service, revision] of rows) {
    it(JSON.stringify(labels), () => {
      assert.equal(canonicalService(w(labels)), service);
      assert.equal(canonicalRevision(w(labels)), revision);
    });
  }
  it('all five', () => {
    assert.deepEqual(istioTags(w({ app: 'r' }), 'mesh1', 'c1'), { 'istio.canonical_revision': 'latest', 'istio.canonical_service': 'r', 'istio.mesh_id': 'mesh1', 'istio.namespace': 'bookinfo', 'istio.cluster_id': 'c1' });
  });
});

describe('custom tags', () => {
  const c = compileTags(
    {
      lit: { literal: { value: 'x' } },
      empty: { literal: { value: '' } },
      env: { environment: { name: 'A' } },
      envEmpty: { environment: { name: 'E' } },
      envDefault: { environment: { name: 'MISSING', defaultValue: 'd' } },
      envNone: { environment: { name: 'MISSING' } },
      hdr: { header: { name: 'X-Tenant' } },
      hdrDefault: { header: { name: 'x-missing', defaultValue: 'none' } },
      hdrNone: { header: { name: 'x-missing' } },
      fmt: { formatter: { value: '%REQ(x)%' } },
    },
    { A: 'a-value', E: '' },
  );
  it('literal and environment tags are fixed when compiled; empty values are left out, as Envoy does', () => {
    assert.deepEqual(c.fixed, { env: 'a-value', envDefault: 'd', lit: 'x' });
  });
  it('header tags per request, lower-cased names, defaults', () => {
    const into: Attributes = {};
    headerTags(c, { 'x-tenant': 't1' }, into);
    assert.deepEqual(into, { hdr: 't1', hdrDefault: 'none' });
  });
});

describe('tag helpers', () => {
  it('http.url cuts the path at 256 characters', () => {
    assert.equal(httpUrl('http', 'h:1', `/${'a'.repeat(300)}`), `http://h:1/${'a'.repeat(255)}`);
  });
  const errors: [number, number, boolean][] = [
    [200, -1, false],
    [404, -1, false],
    [503, -1, true],
    [0, -1, true],
    [200, 0, false],
    [200, 5, false],
    [200, 14, true],
    [200, 4, true],
    [200, 12, false],
  ];
  for (const [status, grpc, want] of errors) it(`error for ${status}/${grpc}: ${want}`, () => assert.equal(isError(status, grpc), want));
  it('host:port of a cluster name', () => {
    assert.equal(hostPortOfCluster('outbound|9080|v1|reviews.default.svc.cluster.local'), 'reviews.default.svc.cluster.local:9080');
    assert.equal(hostPortOfCluster('PassthroughCluster'), undefined);
    assert.equal(hostPortOfCluster(undefined), undefined);
  });
});
