import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const findings = analysisFindings;

// Bookinfo's reviews (three versions) and ratings (v1 only) as ServiceEntries.
const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {app: reviews, version: v1}}
  - {address: 10.0.0.2, labels: {app: reviews, version: v2}}
  - {address: 10.0.0.3, labels: {app: reviews, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.4, labels: {app: ratings, version: v1}}]
`;

function dr(name: string, spec: string, namespace = 'default'): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: ${namespace}}
spec:
${spec}`;
}

function config(...docs: string[]): string {
  return [SERVICES, ...docs].join('\n---\n');
}

// From samples/bookinfo/networking/destination-rule-all.yaml.
const REVIEWS_ALL = dr('reviews', `  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}`);
const RATINGS_ALL = dr('ratings', `  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v2-mysql, labels: {version: v2-mysql}}`);

describe('IST0174 DestinationRule host matches no service', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    { name: 'Bookinfo reviews: clean', yaml: config(REVIEWS_ALL), expect: [] },
    {
      name: 'a misspelt short host',
      yaml: config(dr('reviews', '  host: reviewz\n  subsets: [{name: v1, labels: {version: v1}}]')),
      expect: ['warning spec.host: host "reviewz" (reviewz.default.svc.cluster.local) matches no service: no ServiceEntry declares a matching host'],
    },
    {
      name: 'a short host written in the wrong namespace',
      yaml: config(dr('reviews', '  host: reviews', 'bookinfo')),
      expect: ['warning spec.host: host "reviews" (reviews.bookinfo.svc.cluster.local) matches no service: no ServiceEntry declares a matching host'],
    },
    {
      name: 'an external wildcard host without a ServiceEntry',
      yaml: config(dr('wikipedia', '  host: "*.wikipedia.org"\n  trafficPolicy: {tls: {mode: SIMPLE}}')),
      expect: ['warning spec.host: host "*.wikipedia.org" matches no service: no ServiceEntry declares a matching host'],
    },
    {
      name: 'a namespace-wide wildcard host: clean',
      yaml: config(dr('default-mtls', '  host: "*.default.svc.cluster.local"\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}')),
      expect: [],
    },
    {
      name: 'an exact host under a wildcard ServiceEntry: clean',
      yaml: config(
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wikipedia}
spec:
  hosts: ["*.wikipedia.org"]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: NONE`,
        dr('en-wikipedia', '  host: en.wikipedia.org\n  trafficPolicy: {tls: {mode: SIMPLE}}'),
      ),
      expect: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(findings(c.yaml, 'IST0174'), c.expect);
    });
  }
});

describe('IST0173 DestinationRule subset selects no endpoints', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    { name: 'Bookinfo reviews v1, v2, v3 against three versions: clean', yaml: config(REVIEWS_ALL), expect: [] },
    {
      name: 'ratings subsets for versions that are not deployed',
      yaml: config(RATINGS_ALL),
      expect: [
        'error spec.subsets[1].labels: subset "v2" selects no endpoints of ratings.default.svc.cluster.local: none has labels version=v2 (endpoints have version=v1); requests routed to it get 503 no healthy upstream',
        'error spec.subsets[2].labels: subset "v2-mysql" selects no endpoints of ratings.default.svc.cluster.local: none has labels version=v2-mysql (endpoints have version=v1); requests routed to it get 503 no healthy upstream',
      ],
    },
    {
      name: 'a label key no endpoint carries',
      yaml: config(dr('reviews', '  host: reviews\n  subsets: [{name: canary, labels: {track: canary}}]')),
      expect: ['error spec.subsets[0].labels: subset "canary" selects no endpoints of reviews.default.svc.cluster.local: none has labels track=canary (no endpoint has label track); requests routed to it get 503 no healthy upstream'],
    },
    {
      name: 'VM workloads selected by a ServiceEntry (WorkloadEntry task): v2 has no VM',
      yaml: [
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details-vm}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: details}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-vm-1}
spec:
  address: 10.0.2.1
  labels: {app: details, version: v1}`,
        dr('details', '  host: details\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}'),
      ].join('\n---\n'),
      expect: ['error spec.subsets[1].labels: subset "v2" selects no endpoints of details.default.svc.cluster.local: none has labels version=v2 (endpoints have version=v1); requests routed to it get 503 no healthy upstream'],
    },
    {
      // Istio's DestinationRuleSubsetsWithTopologyLabels row, with its Pod (on a node in us-west-1/us-west-1a) as a WorkloadEntry.
      name: 'topology labels from the locality select endpoints (Istio: DestinationRuleSubsetsWithTopologyLabels): clean',
      yaml: [
        `apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec:
  ports: [{name: http, port: 8000}]
  selector: {app: httpbin}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-pod}
spec:
  address: 10.0.4.1
  labels: {app: httpbin, version: v1}
  locality: us-west-1/us-west-1a`,
        dr(
          'subsets-with-topology-labels',
          '  host: httpbin.default.svc.cluster.local\n  subsets:\n  - {name: region-us-west, labels: {topology.kubernetes.io/region: us-west-1}}\n  - {name: zone-us-west-1a, labels: {topology.kubernetes.io/zone: us-west-1a}}\n  - {name: app-v1, labels: {version: v1}}\n  - {name: mixed-labels, labels: {version: v1, topology.kubernetes.io/region: us-west-1}}',
        ),
      ].join('\n---\n'),
      expect: [],
    },
    {
      // Istio's DestinationRuleEmptyTopologyLabels row: a node without a region gives the Pod no region label, and "" matches nothing.
      name: 'an empty topology label value selects nothing (Istio: DestinationRuleEmptyTopologyLabels)',
      yaml: [
        `apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec:
  ports: [{name: http, port: 8000}]
  selector: {app: httpbin}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-pod}
spec:
  address: 10.0.4.1
  labels: {app: httpbin, version: v1}`,
        dr('empty-topology-labels', '  host: httpbin.default.svc.cluster.local\n  subsets:\n  - {name: empty-region, labels: {topology.kubernetes.io/region: ""}}\n  - {name: app-v1, labels: {version: v1}}'),
      ].join('\n---\n'),
      expect: [
        'error spec.subsets[0].labels: subset "empty-region" selects no endpoints of httpbin.default.svc.cluster.local: none has labels topology.kubernetes.io/region= (no endpoint has label topology.kubernetes.io/region); requests routed to it get 503 no healthy upstream',
      ],
    },
    {
      name: 'a subset without labels: clean',
      yaml: config(dr('ratings', '  host: ratings\n  subsets: [{name: all}]')),
      expect: [],
    },
    {
      name: 'a DNS ServiceEntry without endpoints (httpbin.org egress): not checked',
      yaml: [
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin-ext}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS`,
        dr('httpbin-ext', '  host: httpbin.org\n  subsets: [{name: v1, labels: {version: v1}}]'),
      ].join('\n---\n'),
      expect: [],
    },
    {
      name: 'a resolution NONE ServiceEntry (traffic goes to the original address): not checked',
      yaml: [
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy}
spec:
  hosts: [legacy.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
  workloadSelector: {labels: {app: legacy}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: legacy-1}
spec:
  address: 10.0.3.1
  labels: {app: legacy, version: v1}`,
        dr('legacy', '  host: legacy.example.com\n  subsets: [{name: v2, labels: {version: v2}}]'),
      ].join('\n---\n'),
      expect: [],
    },
    {
      name: 'a STATIC ServiceEntry whose workloads register at run time: not checked',
      yaml: [
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: orders}
spec:
  hosts: [orders.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: orders}}`,
        dr('orders', '  host: orders\n  subsets: [{name: v1, labels: {version: v1}}]'),
      ].join('\n---\n'),
      expect: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(findings(c.yaml, 'IST0173'), c.expect);
    });
  }
});
