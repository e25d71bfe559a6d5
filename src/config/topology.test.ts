import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../test/helpers/config.ts';
import { endpointsFor, ServiceRegistry } from './registry.ts';
import { augmentLabels, workloadLocality } from './topology.ts';

const R = 'topology.kubernetes.io/region';
const Z = 'topology.kubernetes.io/zone';
const S = 'topology.istio.io/subzone';
const C = 'topology.istio.io/cluster';
const N = 'topology.istio.io/network';

describe('augmentLabels (Istio AugmentLabels)', () => {
  const rows: { name: string; labels: Record<string, string>; locality: string; network: string; want: Record<string, string> }[] = [
    { name: 'no locality, no network: only the cluster', labels: { app: 'a' }, locality: '', network: '', want: { app: 'a', [C]: 'Kubernetes' } },
    { name: 'region only', labels: {}, locality: 'us-east', network: '', want: { [R]: 'us-east', [C]: 'Kubernetes' } },
    { name: 'region and zone', labels: {}, locality: 'us-east/us-east-1a', network: '', want: { [R]: 'us-east', [Z]: 'us-east-1a', [C]: 'Kubernetes' } },
    { name: 'region, zone and subzone', labels: {}, locality: 'r/z/s', network: '', want: { [R]: 'r', [Z]: 'z', [S]: 's', [C]: 'Kubernetes' } },
    { name: 'parts beyond the third are ignored', labels: {}, locality: 'r/z/s/x', network: '', want: { [R]: 'r', [Z]: 'z', [S]: 's', [C]: 'Kubernetes' } },
    { name: 'an empty zone is not added', labels: {}, locality: 'r//s', network: '', want: { [R]: 'r', [S]: 's', [C]: 'Kubernetes' } },
    { name: 'the locality replaces a region label', labels: { [R]: 'old' }, locality: 'new', network: '', want: { [R]: 'new', [C]: 'Kubernetes' } },
    { name: 'the network is added', labels: {}, locality: '', network: 'net-1', want: { [C]: 'Kubernetes', [N]: 'net-1' } },
    { name: 'a network label is kept', labels: { [N]: 'mine' }, locality: '', network: 'net-1', want: { [N]: 'mine', [C]: 'Kubernetes' } },
  ];
  for (const r of rows) {
    it(r.name, () => {
      assert.deepEqual({ ...augmentLabels(r.labels, r.locality, r.network) }, r.want);
    });
  }

  it('does not change its input', () => {
    const labels = { app: 'a' };
    augmentLabels(labels, 'r/z', 'n');
    assert.deepEqual(labels, { app: 'a' });
  });
});

describe('workloadLocality', () => {
  const rows: { locality: string | undefined; labels: Record<string, string>; want: string }[] = [
    { locality: 'r/z/s', labels: { 'topology.istio.io/locality': 'x.y' }, want: 'r/z/s' },
    { locality: undefined, labels: { 'topology.istio.io/locality': 'us-east.zone-a.rack-1' }, want: 'us-east/zone-a/rack-1' },
    { locality: '', labels: { 'istio-locality': 'eu.west' }, want: 'eu/west' },
    { locality: undefined, labels: { 'topology.istio.io/locality': 'a/b', 'istio-locality': 'c.d' }, want: 'a/b' },
    { locality: undefined, labels: {}, want: '' },
  ];
  for (const r of rows) {
    it(`${r.locality ?? '(unset)'} ${JSON.stringify(r.labels)} → "${r.want}"`, () => {
      assert.equal(workloadLocality(r.locality, r.labels), r.want);
    });
  }
});

describe('endpoints carry the topology labels', () => {
  it('for ServiceEntry endpoints, selected WorkloadEntries and Services alike', () => {
    const { resources, errors } = validateYaml(
      [
        doc('networking.istio.io/v1', 'ServiceEntry', 'api', 'hosts: [api.example.com]\nresolution: STATIC\nports: [{number: 80, name: http, protocol: HTTP}]\nendpoints:\n- {address: 10.0.0.1, locality: us-east/a, network: n1}'),
        doc('v1', 'Service', 'reviews', 'ports: [{name: http, port: 9080}]\nselector: {app: reviews}'),
        doc('networking.istio.io/v1', 'WorkloadEntry', 'r1', 'address: 10.0.0.2\nlabels: {app: reviews, topology.istio.io/locality: eu-west.b.rack-2}'),
      ].join('---\n'),
    );
    assert.deepEqual(errors, []);
    const reg = new ServiceRegistry(resources);
    const api = reg.lookup('api.example.com');
    const reviews = reg.lookup('reviews.default.svc.cluster.local');
    assert.ok(api && reviews);
    const [a] = endpointsFor(api, api.ports[0]!);
    assert.deepEqual({ ...a?.labels }, { [R]: 'us-east', [Z]: 'a', [C]: 'Kubernetes', [N]: 'n1' });
    const [r] = endpointsFor(reviews, reviews.ports[0]!);
    assert.equal(r?.locality, 'eu-west/b/rack-2');
    assert.deepEqual({ ...r?.labels }, { app: 'reviews', 'topology.istio.io/locality': 'eu-west.b.rack-2', [R]: 'eu-west', [Z]: 'b', [S]: 'rack-2', [C]: 'Kubernetes' });
  });
});

describe("endpoints carry istiod's workload name (destination_workload when the answer has no peer metadata)", () => {
  it("a WorkloadEntry's name, its service.istio.io/workload-name label, its WorkloadGroup; a ServiceEntry's <name>-<index>; a DNS host's ServiceEntry", () => {
    const we = (name: string, address: string, extra = '') => doc('networking.istio.io/v1', 'WorkloadEntry', name, `address: ${address}\nlabels: {app: reviews${extra}}`);
    const { resources, errors } = validateYaml(
      [
        doc('v1', 'Service', 'reviews', 'ports: [{name: http, port: 9080}]\nselector: {app: reviews}'),
        we('reviews-v1', '10.0.0.1'),
        we('reviews-v2-abc', '10.0.0.2', ', service.istio.io/workload-name: reviews-v2'),
        'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: reviews-vm-10.0.0.3\n  namespace: default\n  annotations: {istio.io/autoRegistrationGroup: reviews-vms}\nspec:\n  address: 10.0.0.3\n  labels: {app: reviews, service.istio.io/workload-name: ignored}\n',
        doc('networking.istio.io/v1', 'ServiceEntry', 'api', 'hosts: [api.example.com]\nresolution: STATIC\nports: [{number: 80, name: http, protocol: HTTP}]\nendpoints:\n- {address: 10.0.1.1}\n- {address: 10.0.1.2, labels: {service.istio.io/workload-name: api-b}}'),
        doc('networking.istio.io/v1', 'ServiceEntry', 'ext', 'hosts: [ext.example.com]\nresolution: DNS\nports: [{number: 443, name: https, protocol: TLS}]'),
      ].join('---\n'),
    );
    assert.deepEqual(errors, []);
    const reg = new ServiceRegistry(resources);
    const names = (host: string) => {
      const s = reg.lookup(host);
      assert.ok(s, host);
      return Object.fromEntries(endpointsFor(s, s.ports[0]!).map((e) => [e.address, e.workloadName]));
    };
    assert.deepEqual(names('reviews.default.svc.cluster.local'), { '10.0.0.1': 'reviews-v1', '10.0.0.2': 'reviews-v2', '10.0.0.3': 'reviews-vms' });
    assert.deepEqual(names('api.example.com'), { '10.0.1.1': 'api-0', '10.0.1.2': 'api-b' });
    assert.deepEqual(names('ext.example.com'), { 'ext.example.com': 'ext' });
  });
});
