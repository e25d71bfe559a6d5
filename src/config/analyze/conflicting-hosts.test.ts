import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const findings = (yaml: string): string[] => analysisFindings(yaml, 'IST0109', true);

const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {app: reviews, version: v1}}]
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

interface VsOptions {
  namespace?: string;
  created?: string;
  hosts?: string;
  extra?: string;
}

/** A VirtualService sending everything for `hosts` to reviews. */
function vs(name: string, o: VsOptions = {}): string {
  const created = o.created === undefined ? '' : `, creationTimestamp: "${o.created}"`;
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${o.namespace ?? 'default'}${created}}
spec:
  hosts: ${o.hosts ?? '[reviews]'}${o.extra ?? ''}
  http:
  - route:
    - destination: {host: reviews.default.svc.cluster.local}`;
}

function config(...docs: string[]): string {
  return [SERVICES, ...docs].join('\n---\n');
}

const ADVICE = '. Istio calls this undefined behaviour; merge them into one VirtualService';

describe('IST0109 conflicting mesh VirtualService hosts', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'one VirtualService per host (Bookinfo): clean',
      yaml: config(vs('reviews'), vs('ratings', { hosts: '[ratings]' })),
      expect: [],
    },
    {
      name: 'a newer VirtualService for reviews: the older one wins, whatever the file order; both are told, as errors',
      yaml: config(vs('reviews', { created: '2025-06-01T00:00:00Z' }), vs('reviews-old', { created: '2025-01-01T00:00:00Z' })),
      expect: [
        `error VirtualService default/reviews-old spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (newer: it is ignored for that host)${ADVICE}`,
        `error VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-old (older: this one is ignored for that host)${ADVICE}`,
      ],
    },
    {
      name: 'without timestamps, file order decides; a short name and an FQDN are the same host',
      yaml: config(vs('reviews'), vs('reviews-canary', { hosts: '[ratings, reviews.default.svc.cluster.local]' })),
      expect: [
        `error VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-canary (newer: it is ignored for that host)${ADVICE}`,
        `error VirtualService default/reviews-canary spec.hosts[1]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (older: this one is ignored for that host)${ADVICE}`,
      ],
    },
    {
      name: 'gateways: [mesh] is bound to the mesh too',
      yaml: config(vs('reviews'), vs('reviews-mesh', { extra: '\n  gateways: [mesh]' })),
      expect: [
        `error VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-mesh (newer: it is ignored for that host)${ADVICE}`,
        `error VirtualService default/reviews-mesh spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (older: this one is ignored for that host)${ADVICE}`,
      ],
    },
    {
      name: 'overlapping exportTo: the conflict is limited to the shared namespace',
      yaml: config(
        vs('reviews', { extra: '\n  exportTo: [".", frontend]' }),
        vs('reviews-frontend', { namespace: 'frontend', hosts: '[reviews.default.svc.cluster.local]', extra: '\n  exportTo: ["."]' }),
      ),
      expect: [
        `error VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService frontend/reviews-frontend (exported more narrowly: this one is ignored for that host in namespace frontend)${ADVICE}`,
        `error VirtualService frontend/reviews-frontend spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (exported more widely: it is ignored for that host in namespace frontend)${ADVICE}`,
      ],
    },
    {
      name: 'the newer one exported to its own namespace only wins over an older public one where it is exported (istiod lists private, exported by name, then public)',
      yaml: config(
        vs('reviews'),
        vs('reviews-frontend', { namespace: 'frontend', hosts: '[reviews.default.svc.cluster.local]', extra: '\n  exportTo: [".", shop]' }),
      ),
      expect: [
        `error VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService frontend/reviews-frontend (exported more narrowly: this one is ignored for that host in namespaces frontend, shop)${ADVICE}`,
        `error VirtualService frontend/reviews-frontend spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (exported more widely: it is ignored for that host in namespaces frontend, shop)${ADVICE}`,
      ],
    },
    {
      name: 'three claims: one finding per VirtualService, naming each other one and which of the two is used',
      yaml: config(vs('reviews'), vs('reviews-b', { hosts: '[ratings, reviews]' }), vs('reviews-c')),
      expect: [
        'error VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-b (newer: it is ignored for that host); ' +
          `host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-c (newer: it is ignored for that host)${ADVICE}`,
        `error VirtualService default/reviews-b spec.hosts[1]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (older: this one is ignored for that host); ` +
          `host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-c (newer: it is ignored for that host)${ADVICE}`,
        'error VirtualService default/reviews-c spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (older: this one is ignored for that host); ' +
          `host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-b (older: this one is ignored for that host)${ADVICE}`,
      ],
    },
    {
      name: 'each VirtualService exported to its own namespace only: clean',
      yaml: config(
        vs('reviews', { extra: '\n  exportTo: ["."]' }),
        vs('reviews-frontend', { namespace: 'frontend', hosts: '[reviews.default.svc.cluster.local]', extra: '\n  exportTo: ["."]' }),
      ),
      expect: [],
    },
    {
      name: 'one bound to an ingress gateway only (bookinfo-gateway): clean',
      yaml: config(vs('reviews'), vs('bookinfo', { hosts: '[reviews]', extra: '\n  gateways: [bookinfo-gateway]' })),
      expect: [],
    },
    {
      name: 'a wildcard host next to an exact one, both exported everywhere: clean (the exact host is more specific)',
      yaml: config(vs('reviews'), vs('default-routes', { hosts: '["*.default.svc.cluster.local"]' })),
      expect: [],
    },
    {
      name: 'overlapping wildcards, one exported to its namespace and one everywhere: a conflict, as Istio reports it',
      yaml: config(
        vs('productpage-d', { namespace: 'foo', hosts: '["*.productpage.d"]', extra: '\n  exportTo: ["."]' }),
        vs('productpage-d', { namespace: 'bar', hosts: '["*.d"]', extra: '\n  exportTo: ["*"]' }),
      ),
      expect: [
        `error VirtualService foo/productpage-d spec.hosts[0]: host *.productpage.d overlaps host *.d of VirtualService bar/productpage-d: for hosts both match, the more specific one is used in namespace foo${ADVICE}`,
        `error VirtualService bar/productpage-d spec.hosts[0]: host *.d overlaps host *.productpage.d of VirtualService foo/productpage-d: for hosts both match, the more specific one is used in namespace foo${ADVICE}`,
      ],
    },
    {
      name: 'the same wildcard in two namespaces, both exported everywhere: a conflict',
      yaml: config(vs('productpage', { namespace: 'foo', hosts: '["*.productpage"]' }), vs('productpage', { namespace: 'bar', hosts: '["*.productpage"]' })),
      expect: [
        `error VirtualService foo/productpage spec.hosts[0]: host *.productpage is also claimed by VirtualService bar/productpage (newer: it is ignored for that host)${ADVICE}`,
        `error VirtualService bar/productpage spec.hosts[0]: host *.productpage is also claimed by VirtualService foo/productpage (older: this one is ignored for that host)${ADVICE}`,
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(findings(c.yaml), c.expect);
    });
  }
});
