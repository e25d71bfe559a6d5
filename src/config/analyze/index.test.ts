import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { validateYaml } from '../../../test/helpers/config.ts';
import { IssueList } from '../issues.ts';
import { ANALYZERS, analyze } from './index.ts';

const BOOKINFO = new URL('../../../examples/bookinfo/', import.meta.url);

function example(file: string): string {
  return readFileSync(new URL(file, BOOKINFO), 'utf8');
}

/** The level each code is reported at: istioctl analyze's (pkg/config/analysis/msg/messages.yaml); MESHLET0102 is meshlet's own. */
const LEVELS: Readonly<Record<string, string>> = {
  IST0101: 'error',
  IST0109: 'error',
  IST0110: 'error',
  IST0111: 'error',
  IST0112: 'error',
  IST0118: 'info',
  IST0128: 'warning',
  IST0129: 'warning',
  IST0130: 'warning',
  IST0131: 'info',
  IST0149: 'error',
  IST0150: 'warning',
  IST0173: 'error',
  IST0174: 'warning',
  IST0177: 'warning',
  MESHLET0102: 'warning',
  MESHLET0104: 'warning',
};

// One config with one mistake per code, Bookinfo style.
const BROKEN = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9443, name: https, protocol: HTTPS}]
  endpoints:
  - {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 9443}
      tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}
---
apiVersion: v1
kind: Service
metadata: {name: details}
spec:
  selector: {app: details}
  ports: [{name: web, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: payments}
spec:
  type: ExternalName
  externalName: payments.example.com
  ports: [{name: tcp, port: 443}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-https}
spec:
  hosts: [api.example.com]
  ports: [{number: 8443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-http}
spec:
  hosts: [api.example.com]
  ports: [{number: 8443, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v4}
  - route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
  - route:
    - destination: {host: ratings, port: {number: 9080}}
  - match:
    - uri: {prefix: /api}
    delegate: {name: reviews-api}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-ingress}
spec:
  hosts: [reviews.example.com]
  gateways: [istio-system/ingressgateway]
  http:
  - match:
    - headers: {"@request.auth.claims.groups": {exact: group1}}
    route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default-1}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default-2}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-vm}
spec: {address: 10.0.0.9, labels: {app: ratings, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings}
spec: {workloadSelector: {labels: {app: ratings}}, egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings-v1}
spec: {workloadSelector: {labels: {version: v1}}, egress: [{hosts: ["./*"]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-canary}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-partial, namespace: frontend}
spec:
  hosts: [reviews.default]
  exportTo: ["."]
  http:
  - route:
    - destination: {host: reviews.default.svc.cluster.local, subset: v1}
`;

describe('analyze', () => {
  it('finds nothing in the Bookinfo example config', () => {
    const text = ['bookinfo.yaml', 'workloads.yaml', 'destination-rule-all.yaml', 'virtual-service-reviews-test-v2.yaml', 'virtual-service-ratings-test-abort.yaml'].map(example).join('\n---\n');
    const { resources, issues, errors, warnings } = validateYaml(text);
    assert.deepEqual([errors, warnings], [[], []]);
    assert.equal(resources.length, 16);
    const validation = issues.all.length; // the notices for bookinfo.yaml's ServiceAccounts and Deployments
    analyze(resources, issues);
    assert.deepEqual(issues.all.slice(validation).map(String), []);
  });

  it('finds nothing in no config', () => {
    const issues = new IssueList();
    analyze([], issues);
    assert.deepEqual(issues.all, []);
  });

  it('reports every code at its level, with file, resource and line', () => {
    const { resources, issues, errors } = validateYaml(BROKEN, 'broken.yaml');
    assert.deepEqual(errors, []);
    const before = issues.all.length;
    analyze(resources, issues);
    const found = issues.all.slice(before);
    assert.deepEqual([...new Set(found.map((i) => i.code))].sort(), Object.keys(LEVELS).sort());
    for (const i of found) {
      assert.equal(i.level, LEVELS[i.code], `${i.code}: ${i}`);
      assert.equal(i.file, 'broken.yaml');
      assert.ok(i.resource !== undefined && i.line !== undefined, String(i));
    }
  });

  it('lists each code under exactly one analyzer', () => {
    const codes = ANALYZERS.flatMap((a) => a.codes);
    assert.equal(new Set(codes).size, codes.length);
    assert.deepEqual([...codes].sort(), Object.keys(LEVELS).sort());
    for (const a of ANALYZERS) assert.ok(a.name !== '' && a.description !== '');
  });
});
