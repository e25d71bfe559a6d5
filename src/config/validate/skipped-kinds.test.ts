import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateYaml } from '../../../test/helpers/config.ts';

/** A Service without a selector for an address outside the cluster, with its hand-made Endpoints, as `kubectl get svc,endpoints -o yaml` lists them. */
const LEGACY = `apiVersion: v1
kind: Service
metadata: {name: legacy-api, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy-api, namespace: default}
subsets:
- addresses: [{ip: 10.1.2.3}]
  ports: [{name: http, port: 8080}]
`;

const SLICE = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: legacy-api-x7k2p
  namespace: default
  labels: {kubernetes.io/service-name: legacy-api}
addressType: IPv4
endpoints: [{addresses: [10.1.2.3]}]
ports: [{name: http, port: 8080}]
`;

describe('a Service whose endpoints are hand-made Endpoints or EndpointSlices', () => {
  it('is warned about: meshlet does not read them, so calls find no endpoint (503 UH)', () => {
    const { warnings, errors } = validateYaml(LEGACY);
    assert.deepEqual(errors, []);
    assert.deepEqual(warnings, [
      'test.yaml: Service default/legacy-api has no selector: Kubernetes gives it the endpoints of Endpoints default/legacy-api (test.yaml line 7), which meshlet does not read, so calls to it find no endpoint (503 UH); declare the addresses as WorkloadEntries and give the Service a selector that picks them, or use a ServiceEntry with endpoints (line 1)',
    ]);
  });

  it('an EndpointSlice is matched by its kubernetes.io/service-name label', () => {
    const { warnings } = validateYaml(`${LEGACY.split('---')[0]}---\n${SLICE}`);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /Service default\/legacy-api has no selector: Kubernetes gives it the endpoints of EndpointSlice default\/legacy-api-x7k2p \(test\.yaml line 7\)/);
  });

  it('not when the Service has a selector, is ExternalName, or the Endpoints are of another Service or namespace', () => {
    const withSelector = LEGACY.replace('spec:\n  ports', 'spec:\n  selector: {app: legacy}\n  ports');
    assert.deepEqual(validateYaml(withSelector).warnings, []);
    assert.deepEqual(validateYaml(LEGACY.replace('spec:\n  ports', 'spec:\n  type: ExternalName\n  externalName: legacy.example.com\n  ports')).warnings, []);
    assert.deepEqual(validateYaml(LEGACY.replace('kind: Endpoints\nmetadata: {name: legacy-api, namespace: default}', 'kind: Endpoints\nmetadata: {name: legacy-api, namespace: other}')).warnings, []);
    assert.deepEqual(validateYaml(LEGACY.split('---')[0] ?? '').warnings, [], 'a selector-less Service alone is not a mistake (workloads may be registered)');
  });
});
