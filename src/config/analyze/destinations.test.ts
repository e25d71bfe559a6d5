import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings, validateYaml } from '../../../test/helpers/config.ts';
import { analyze } from './index.ts';

const findings = analysisFindings;

// Bookinfo's reviews and ratings as ServiceEntries, plus the egress task's *.wikipedia.org.
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
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wikipedia}
spec:
  hosts: ["*.wikipedia.org"]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: NONE
`;

// From samples/bookinfo/networking/destination-rule-all.yaml (reviews and ratings).
const DESTINATION_RULES = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
`;

/** A `reviews` VirtualService like virtual-service-reviews-test-v2.yaml, with the given rules. */
function reviewsVs(http: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]${extra}
  http:
${http}`;
}

const TEST_V2 = reviewsVs(`  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}`);

function config(...docs: string[]): string {
  return [SERVICES, DESTINATION_RULES, ...docs].join('\n---\n');
}

describe('IST0101 ReferencedResourceNotFound', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'Bookinfo reviews-test-v2 with destination-rule-all: clean',
      yaml: config(TEST_V2),
      expect: [],
    },
    {
      name: 'a route to a subset no DestinationRule defines (v4)',
      yaml: config(reviewsVs(`  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v4}`)),
      expect: ['error spec.http[1].route[0].destination.subset: referenced subset "v4" of host reviews.default.svc.cluster.local is not defined by any DestinationRule'],
    },
    {
      name: 'subsets before any DestinationRule was applied',
      yaml: [SERVICES, TEST_V2].join('\n---\n'),
      expect: [
        'error spec.http[0].route[0].destination.subset: referenced subset "v2" of host reviews.default.svc.cluster.local is not defined by any DestinationRule',
        'error spec.http[1].route[0].destination.subset: referenced subset "v1" of host reviews.default.svc.cluster.local is not defined by any DestinationRule',
      ],
    },
    {
      name: 'a misspelt route host',
      yaml: config(reviewsVs(`  - route:
    - destination: {host: reviewz, subset: v1}`)),
      expect: [
        'error spec.http[0].route[0].destination.host: referenced host "reviewz" (reviewz.default.svc.cluster.local) not found: no ServiceEntry or Service declares it',
        'error spec.http[0].route[0].destination.subset: referenced subset "v1" of host reviewz.default.svc.cluster.local is not defined by any DestinationRule',
      ],
    },
    {
      name: 'a mirror host and a mirrors[] host that do not exist',
      yaml: config(reviewsVs(`  - route:
    - destination: {host: reviews, subset: v1}
    mirror: {host: reviews-shadow.default.svc.cluster.local}
  - route:
    - destination: {host: reviews, subset: v1}
    mirrors:
    - destination: {host: reviews-canary}`)),
      expect: [
        'error spec.http[0].mirror.host: referenced mirror host "reviews-shadow.default.svc.cluster.local" not found: no ServiceEntry or Service declares it',
        'error spec.http[1].mirrors[0].destination.host: referenced mirror host "reviews-canary" (reviews-canary.default.svc.cluster.local) not found: no ServiceEntry or Service declares it',
      ],
    },
    {
      name: 'a port the service does not declare',
      yaml: config(reviewsVs(`  - route:
    - destination: {host: reviews, subset: v1, port: {number: 9090}}`)),
      expect: ['error spec.http[0].route[0].destination.port.number: referenced port 9090 of host reviews.default.svc.cluster.local not found: ServiceEntry default/reviews declares port 9080'],
    },
    {
      name: 'a host whose ServiceEntry is exported to its own namespace only',
      yaml: config(
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: backend}
spec:
  hosts: [payments.backend.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  exportTo: ["."]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.1.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payments}
spec:
  hosts: [payments.backend.svc.cluster.local]
  exportTo: ["."]
  http:
  - route:
    - destination: {host: payments.backend.svc.cluster.local}`,
      ),
      expect: ['error spec.http[0].route[0].destination.host: referenced host "payments.backend.svc.cluster.local" not found: ServiceEntry backend/payments declares it but is not exported to namespace default (this VirtualService\'s exportTo)'],
    },
    {
      name: 'a host exported only to another namespace than the VirtualService: not found (Istio: istio-system/cross-namespace-details)',
      yaml: config(
        `apiVersion: v1
kind: Service
metadata: {name: details, namespace: default, annotations: {networking.istio.io/exportTo: banana}}
spec:
  ports: [{port: 9080, name: http}]
  selector: {app: details}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cross-namespace-details, namespace: istio-system}
spec:
  hosts: [details]
  http:
  - route:
    - destination: {host: details.default.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: banana-details, namespace: banana}
spec:
  hosts: [details]
  http:
  - route:
    - destination: {host: details.default.svc.cluster.local}`,
      ),
      expect: ['error spec.http[0].route[0].destination.host: referenced host "details.default.svc.cluster.local" not found: Service default/details declares it but is not exported to namespace istio-system'],
    },
    {
      name: "a VirtualService exported where its destination is not: not found, although its own namespace sees it (Istio: hello/hello-export-to-bogus)",
      yaml: config(
        `apiVersion: v1
kind: Service
metadata: {name: hello, namespace: hello, annotations: {networking.istio.io/exportTo: "hello1,hello2,."}}
spec:
  ports: [{port: 9080, name: http}]
  selector: {app: hello}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello-export-to-bogus, namespace: hello}
spec:
  hosts: [hello]
  exportTo: [bogus]
  http:
  - route:
    - destination: {host: hello.hello.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello-2, namespace: hello}
spec:
  hosts: [hello-2]
  exportTo: [hello1, bogus]
  http:
  - route:
    - destination: {host: hello.hello.svc.cluster.local}`,
      ),
      expect: ['error spec.http[0].route[0].destination.host: referenced host "hello.hello.svc.cluster.local" not found: Service hello/hello declares it but is not exported to namespace bogus (this VirtualService\'s exportTo)'],
    },
    {
      name: 'a subset defined in the service namespace, but a DestinationRule in the client namespace wins',
      yaml: config(
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-tls, namespace: frontend}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: frontend}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.default.svc.cluster.local, subset: v2}`,
      ),
      expect: [
        'error spec.http[0].route[0].destination.subset: referenced subset "v2" of host reviews.default.svc.cluster.local is defined by DestinationRule default/reviews, but workloads in namespace frontend use DestinationRule frontend/reviews-tls, which does not define it',
      ],
    },
    {
      name: 'a subset defined only by a DestinationRule hidden from the VirtualService namespace',
      yaml: [
        SERVICES,
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  exportTo: ["."]
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: frontend}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.default.svc.cluster.local, subset: v2}`,
      ].join('\n---\n'),
      expect: ['error spec.http[0].route[0].destination.subset: referenced subset "v2" of host reviews.default.svc.cluster.local is defined by DestinationRule default/reviews, which is not exported to namespace frontend'],
    },
    {
      name: 'a subset of the service namespace rule, hidden by a workloadSelector rule of the VirtualService namespace',
      yaml: [
        SERVICES,
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-lb, namespace: frontend}
spec:
  host: reviews.default.svc.cluster.local
  workloadSelector: {matchLabels: {app: productpage}}
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: frontend}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.default.svc.cluster.local, subset: v2}`,
      ].join('\n---\n'),
      expect: [
        'error spec.http[0].route[0].destination.subset: referenced subset "v2" of host reviews.default.svc.cluster.local is defined by DestinationRule default/reviews, but DestinationRule frontend/reviews-lb (with a workloadSelector) in namespace frontend is where istiod stops looking for that host: the workloads it selects use it, which does not define the subset, and the others get no DestinationRule',
      ],
    },
    {
      name: 'FQDN hosts and a wildcard DestinationRule defining the subset: clean',
      yaml: [
        SERVICES,
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all-versions}
spec:
  host: "*.default.svc.cluster.local"
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: ratings.default.svc.cluster.local, subset: v1}`,
      ].join('\n---\n'),
      expect: [],
    },
    {
      name: 'a host covered by a wildcard ServiceEntry (egress task): clean',
      yaml: config(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wikipedia}
spec:
  hosts: [en.wikipedia.org]
  http:
  - route:
    - destination: {host: en.wikipedia.org, port: {number: 443}}`),
      expect: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(findings(c.yaml, 'IST0101'), c.expect);
    });
  }

  it('points at the line of the subset', () => {
    const { resources, issues } = validateYaml(config(reviewsVs(`  - route:
    - destination: {host: reviews, subset: v4}`)), 'reviews.yaml');
    analyze(resources, issues);
    const found = issues.all.find((i) => i.code === 'IST0101');
    assert.ok(found !== undefined);
    assert.equal(found.file, 'reviews.yaml');
    assert.equal(found.resource, 'VirtualService default/reviews');
    assert.equal(typeof found.line, 'number');
    assert.match(String(found), /^reviews\.yaml: VirtualService default\/reviews: spec\.http\[0\]\.route\[0\]\.destination\.subset: referenced subset "v4"/);
  });
});
