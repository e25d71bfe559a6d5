import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const REVIEWS = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: backend}
spec:
  hosts: [reviews.backend.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
`;
const vs = (hosts: string, extra = '') => `${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: frontend}
spec:
  hosts: ${hosts}${extra}
  http:
  - route: [{destination: {host: reviews.backend.svc.cluster.local}}]
`;

describe('MESHLET0104: VirtualService hosts written <name>.<namespace>', () => {
  it('reviews.backend and reviews.backend.svc are not the service reviews.backend.svc.cluster.local', () => {
    assert.deepEqual(analysisFindings(vs('[reviews.backend, Reviews.Backend.svc]'), 'MESHLET0104', true), [
      'warning VirtualService frontend/r spec.hosts[0]: host "reviews.backend" is not service reviews.backend.svc.cluster.local: Istio expands only names without a dot, so istiod (and meshlet, as istiod) routes this host only on port 80 (or beside a service another host of this VirtualService names) and calls to reviews.backend:<service port> take reviews.backend.svc.cluster.local\'s own routes. Write reviews.backend.svc.cluster.local',
      'warning VirtualService frontend/r spec.hosts[1]: host "Reviews.Backend.svc" is not service reviews.backend.svc.cluster.local: Istio expands only names without a dot, so istiod (and meshlet, as istiod) routes this host only on port 80 (or beside a service another host of this VirtualService names) and calls to reviews.backend.svc:<service port> take reviews.backend.svc.cluster.local\'s own routes. Write reviews.backend.svc.cluster.local',
    ]);
  });

  it('says nothing of full names, short names, hosts no service looks like, hosts a service has, and gateway-only VirtualServices', () => {
    assert.deepEqual(analysisFindings(vs('[reviews.backend.svc.cluster.local, reviews, ratings.backend, "*.other"]'), 'MESHLET0104'), []);
    const twoLabel = REVIEWS.replace('reviews.backend.svc.cluster.local', 'reviews.backend');
    assert.deepEqual(analysisFindings(`${twoLabel}---\n${vs('[reviews.backend]').split('---\n')[1]}`, 'MESHLET0104'), []);
    assert.deepEqual(analysisFindings(vs('[reviews.backend]', '\n  gateways: [istio-system/gw]'), 'MESHLET0104'), []);
  });
});
