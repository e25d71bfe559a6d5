import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

/** A Sidecar in `namespace` with the selector labels (none: namespace-wide). */
function sidecar(name: string, o: { namespace?: string; labels?: string } = {}): string {
  const selector = o.labels === undefined ? '' : `\n  workloadSelector: {labels: ${o.labels}}`;
  return `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ${name}, namespace: ${o.namespace ?? 'default'}}
spec:${selector}
  egress: [{hosts: ["./*"]}]`;
}

function workloadEntry(name: string, labels: string, namespace = 'default'): string {
  return `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ${name}, namespace: ${namespace}}
spec: {address: 10.0.0.1, labels: ${labels}}`;
}

const all = (...docs: string[]) => docs.join('\n---\n');

describe('IST0111 several Sidecars without a workload selector in one namespace', () => {
  const findings = (yaml: string) => analysisFindings(yaml, 'IST0111', true);
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'two in ns2 (Istio: has-conflict-1, has-conflict-2): each told, naming both',
      yaml: all(sidecar('no-selector', { namespace: 'ns1' }), sidecar('has-selector', { namespace: 'ns1', labels: '{app: foo}' }), sidecar('has-conflict-1', { namespace: 'ns2' }), sidecar('has-conflict-2', { namespace: 'ns2' })),
      expect: [
        'error Sidecar ns2/has-conflict-1 spec: the Sidecars ns2/has-conflict-1, ns2/has-conflict-2 have no workload selector: more than one in namespace ns2 leaves undefined which applies to its workloads; give all but one a workloadSelector',
        'error Sidecar ns2/has-conflict-2 spec: the Sidecars ns2/has-conflict-1, ns2/has-conflict-2 have no workload selector: more than one in namespace ns2 leaves undefined which applies to its workloads; give all but one a workloadSelector',
      ],
    },
    {
      name: 'a selector without labels counts as none (told at the selector)',
      yaml: all(sidecar('a'), `${sidecar('b')}\n  workloadSelector: {}`),
      expect: [
        'error Sidecar default/a spec: the Sidecars default/a, default/b have no workload selector: more than one in namespace default leaves undefined which applies to its workloads; give all but one a workloadSelector',
        'error Sidecar default/b spec.workloadSelector: the Sidecars default/a, default/b have no workload selector: more than one in namespace default leaves undefined which applies to its workloads; give all but one a workloadSelector',
      ],
    },
    { name: 'one per namespace, the same name in two: clean', yaml: all(sidecar('default', { namespace: 'ns1' }), sidecar('default', { namespace: 'ns2' })), expect: [] },
    { name: 'one namespace-wide and one with a selector: clean', yaml: all(sidecar('a'), sidecar('b', { labels: '{app: b}' })), expect: [] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(findings(c.yaml), c.expect));
});

describe('IST0110 a workload selected by several Sidecars', () => {
  const findings = (yaml: string) => analysisFindings(yaml, 'IST0110', true);
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'the same selector twice (Istio: dupe-1, dupe-2)',
      yaml: all(workloadEntry('reviews', '{app: reviews}'), sidecar('dupe-1', { labels: '{app: reviews}' }), sidecar('dupe-2', { labels: '{app: reviews}' })),
      expect: [
        'error Sidecar default/dupe-1 spec.workloadSelector.labels: selects the same workloads as default/dupe-2 (WorkloadEntry default/reviews): which Sidecar applies to them is undefined; make the selectors disjoint',
        'error Sidecar default/dupe-2 spec.workloadSelector.labels: selects the same workloads as default/dupe-1 (WorkloadEntry default/reviews): which Sidecar applies to them is undefined; make the selectors disjoint',
      ],
    },
    {
      name: 'different labels of one workload (Istio: overlap-1, overlap-2), each Sidecar told once for two workloads',
      yaml: all(
        workloadEntry('ratings-1', '{app: ratings-app, myapp: ratings-myapp}'),
        workloadEntry('ratings-2', '{app: ratings-app, myapp: ratings-myapp}'),
        sidecar('overlap-1', { labels: '{app: ratings-app}' }),
        sidecar('overlap-2', { labels: '{myapp: ratings-myapp}' }),
      ),
      expect: [
        'error Sidecar default/overlap-1 spec.workloadSelector.labels: selects the same workloads as default/overlap-2 (WorkloadEntry default/ratings-1, default/ratings-2): which Sidecar applies to them is undefined; make the selectors disjoint',
        'error Sidecar default/overlap-2 spec.workloadSelector.labels: selects the same workloads as default/overlap-1 (WorkloadEntry default/ratings-1, default/ratings-2): which Sidecar applies to them is undefined; make the selectors disjoint',
      ],
    },
    {
      name: 'a workload in another namespace: clean (a Sidecar selects in its own namespace only)',
      yaml: all(workloadEntry('reviews', '{app: reviews}', 'other'), sidecar('dupe-1', { labels: '{app: reviews}' }), sidecar('dupe-2', { labels: '{app: reviews}' })),
      expect: [],
    },
    {
      name: 'the same selector twice and no workload in config: clean (Istio too reports it only for a Pod that exists)',
      yaml: all(sidecar('dupe-1', { labels: '{app: reviews}' }), sidecar('dupe-2', { labels: '{app: reviews}' })),
      expect: [],
    },
    {
      name: 'disjoint selectors: clean',
      yaml: all(workloadEntry('a', '{app: a}'), workloadEntry('b', '{app: b}'), sidecar('a', { labels: '{app: a}' }), sidecar('b', { labels: '{app: b}' })),
      expect: [],
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(findings(c.yaml), c.expect));

  it('reports no IST0101 for a selector that matches no WorkloadEntry (the selected workloads are mostly meshlet processes, which config does not list)', () => {
    const yaml = all(workloadEntry('reviews', '{app: reviews}'), sidecar('productpage', { labels: '{app: productpage}' }));
    assert.deepEqual(analysisFindings(yaml, 'IST0101'), []);
  });
});
