import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const findings = (yaml: string): string[] => analysisFindings(yaml, 'IST0112');

// Bookinfo's reviews (one port) and httpbin from the Istio tasks (two ports).
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
metadata: {name: httpbin}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
  endpoints: [{address: 10.0.0.5, labels: {app: httpbin, version: v1}}]
`;

function vs(name: string, http: string): string {
  return `${SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}}
spec:
  hosts: [${name}]
  http:
${http}`;
}

describe('IST0112 destination port required', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'a route to a two-port service without a port',
      yaml: vs('httpbin', `  - route:
    - destination: {host: httpbin}`),
      expect: ['error spec.http[0].route[0].destination.port: destination httpbin.default.svc.cluster.local exposes several ports (8000, 8080) but names none; set destination.port (otherwise the port the request was sent to is used, which the destination may not have)'],
    },
    {
      name: 'a mirror to a two-port service without a port',
      yaml: vs('reviews', `  - route:
    - destination: {host: reviews}
    mirror: {host: httpbin}`),
      expect: ['error spec.http[0].mirror.port: destination httpbin.default.svc.cluster.local exposes several ports (8000, 8080) but names none; set destination.port (otherwise the port the request was sent to is used, which the destination may not have)'],
    },
    {
      name: 'the same route naming port 8000: clean',
      yaml: vs('httpbin', `  - route:
    - destination: {host: httpbin, port: {number: 8000}}`),
      expect: [],
    },
    {
      name: 'a single-port Bookinfo service without a port: clean',
      yaml: vs('reviews', `  - route:
    - destination: {host: reviews}`),
      expect: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(findings(c.yaml), c.expect);
    });
  }
});
