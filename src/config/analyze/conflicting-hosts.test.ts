import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const findings = (yaml: string): string[] => analysisFindings(yaml, 'MESHLET0101', true);

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

describe('MESHLET0101 conflicting mesh VirtualService hosts', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'one VirtualService per host (Bookinfo): clean',
      yaml: config(vs('reviews'), vs('ratings', { hosts: '[ratings]' })),
      expect: [],
    },
    {
      name: 'a newer VirtualService for reviews: the older one wins, whatever the file order',
      yaml: config(vs('reviews', { created: '2025-06-01T00:00:00Z' }), vs('reviews-old', { created: '2025-01-01T00:00:00Z' })),
      expect: [
        'warning VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-old (first wins; this one is ignored for that host)',
        'warning VirtualService default/reviews-old spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews, which is ignored for that host (first wins: this one)',
      ],
    },
    {
      name: 'without timestamps, file order decides; a short name and an FQDN are the same host',
      yaml: config(vs('reviews'), vs('reviews-canary', { hosts: '[ratings, reviews.default.svc.cluster.local]' })),
      expect: [
        'warning VirtualService default/reviews-canary spec.hosts[1]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (first wins; this one is ignored for that host)',
        'warning VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-canary, which is ignored for that host (first wins: this one)',
      ],
    },
    {
      name: 'gateways: [mesh] is bound to the mesh too',
      yaml: config(vs('reviews'), vs('reviews-mesh', { extra: '\n  gateways: [mesh]' })),
      expect: [
        'warning VirtualService default/reviews-mesh spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (first wins; this one is ignored for that host)',
        'warning VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-mesh, which is ignored for that host (first wins: this one)',
      ],
    },
    {
      name: 'overlapping exportTo: the conflict is limited to the shared namespace',
      yaml: config(
        vs('reviews', { extra: '\n  exportTo: [".", frontend]' }),
        vs('reviews-frontend', { namespace: 'frontend', hosts: '[reviews.default.svc.cluster.local]', extra: '\n  exportTo: ["."]' }),
      ),
      expect: [
        'warning VirtualService frontend/reviews-frontend spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (first wins; this one is ignored for that host in namespace frontend)',
        'warning VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService frontend/reviews-frontend, which is ignored for that host in namespace frontend (first wins: this one)',
      ],
    },
    {
      name: 'three claims: the oldest is told about both later ones, each later one names the oldest',
      yaml: config(vs('reviews'), vs('reviews-b', { hosts: '[ratings, reviews]' }), vs('reviews-c')),
      expect: [
        'warning VirtualService default/reviews-b spec.hosts[1]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (first wins; this one is ignored for that host)',
        'warning VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-b, which is ignored for that host (first wins: this one)',
        'warning VirtualService default/reviews-c spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews (first wins; this one is ignored for that host)',
        'warning VirtualService default/reviews spec.hosts[0]: host reviews.default.svc.cluster.local is also claimed by VirtualService default/reviews-c, which is ignored for that host (first wins: this one)',
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
      name: 'a wildcard host next to an exact one: clean (the exact host is more specific)',
      yaml: config(vs('reviews'), vs('default-routes', { hosts: '["*.default.svc.cluster.local"]' })),
      expect: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(findings(c.yaml), c.expect);
    });
  }
});
