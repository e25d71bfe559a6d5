import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';
import type { WorkloadGroupSpec } from '../types/networking.ts';

const wg = (spec: string) => doc('networking.istio.io/v1', 'WorkloadGroup', 'reviews', spec);

// Istio's CRD test data, pkg/config/validation/testdata/crds/workloadgroup-valid.yaml (Istio 86c9f01f).
const ISTIO_VALID = `apiVersion: networking.istio.io/v1alpha3
kind: WorkloadGroup
metadata:
  name: full
spec:
  metadata:
    labels:
      foo: bar
    annotations:
      foo: bar
  probe:
    failureThreshold: 2
    initialDelaySeconds: 1
    periodSeconds: 1
    successThreshold: 1
    timeoutSeconds: 1
    httpGet:
      port: 8080
      host: "bar"
      scheme: HTTPS
      path: /bar
      httpHeaders:
        - name: foo
          value: bar
  template:
    serviceAccount: sa
    network: net
    labels:
      app: app
    ports:
      "http": 1
    weight: 2
    locality: foo/bar/baz
---
apiVersion: networking.istio.io/v1alpha3
kind: WorkloadGroup
metadata:
  name: tcp-probe
spec:
  probe:
    tcpSocket:
      port: 8080
  template:
    serviceAccount: sa
    network: net
`;

describe('WorkloadGroup: valid groups', () => {
  it("accepts Istio's CRD test data (workloadgroup-valid.yaml), probes without a warning (registering meshes run them)", () => {
    const { errors, warnings, resources } = validateYaml(ISTIO_VALID);
    assert.deepEqual(errors, []);
    assert.deepEqual(resources.map((r) => r.ref), ['WorkloadGroup default/full', 'WorkloadGroup default/tcp-probe']);
    assert.deepEqual(warnings, []);
    const spec = resources[0]?.spec as WorkloadGroupSpec;
    assert.deepEqual(spec.template, { serviceAccount: 'sa', network: 'net', labels: { app: 'app' }, ports: { http: 1 }, weight: 2, locality: 'foo/bar/baz' });
    assert.deepEqual(spec.metadata, { labels: { foo: 'bar' }, annotations: { foo: 'bar' } });
  });

  // Istio's TestValidateWorkloadGroup rows that are valid.
  const cases: { name: string; spec: string }[] = [
    { name: 'valid (an empty template)', spec: 'template: {}' },
    { name: 'probe http valid', spec: 'template: {}\nprobe: {httpGet: {port: 5}}' },
    { name: 'probe tcp valid', spec: 'template: {}\nprobe: {tcpSocket: {port: 5}}' },
    { name: 'probe exec valid', spec: 'template: {}\nprobe: {exec: {command: [foo, bar]}}' },
    { name: 'a template with an address (replaced by the registering workload)', spec: 'template: {address: 10.0.0.1, ports: {http: 9080}}' },
    { name: 'a unix template address without ports', spec: 'template: {address: "unix:///var/run/sock"}' },
  ];
  for (const c of cases) {
    it(`accepts ${c.name}`, () => {
      const { errors, resources } = validateYaml(wg(c.spec));
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
    });
  }
});

describe('WorkloadGroup: rejected groups', () => {
  const cases: { name: string; spec: string | undefined; error: RegExp }[] = [
    // Istio's CRD test data (workloadgroup-invalid.yaml).
    { name: 'no-spec', spec: undefined, error: /spec\.template: is required/ },
    { name: 'tcp-probe-invalid (port 65536)', spec: 'probe: {tcpSocket: {port: 65536}}\ntemplate: {serviceAccount: sa, network: net}', error: /spec\.probe\.tcpSocket\.port: must be <= 65535/ },
    { name: 'http-probe-invalid (header name "**")', spec: 'probe:\n  httpGet:\n    httpHeaders: [{name: "**"}]\n    port: 80\ntemplate: {}', error: /spec\.probe\.httpGet\.httpHeaders\[0\]\.name: header name "\*\*" is not a valid header name/ },
    // Istio's TestValidateWorkloadGroup rows that are invalid.
    { name: 'invalid (label ".": "~")', spec: 'template: {}\nmetadata: {labels: {".": "~"}}', error: /spec\.metadata\.labels\["\."\]: invalid label key/ },
    { name: 'probe missing method', spec: 'template: {}\nprobe: {}', error: /spec\.probe: one of httpGet, tcpSocket or exec is required/ },
    { name: 'probe http empty', spec: 'template: {}\nprobe: {httpGet: {}}', error: /spec\.probe\.httpGet\.port: is required/ },
    { name: 'probe tcp invalid', spec: 'template: {}\nprobe: {tcpSocket: {}}', error: /spec\.probe\.tcpSocket\.port: is required/ },
    { name: 'probe exec invalid', spec: 'template: {}\nprobe: {exec: {}}', error: /spec\.probe\.exec\.command: is required/ },
    // The rest of the validation and CRD rules.
    { name: 'no template', spec: 'metadata: {labels: {app: reviews}}', error: /spec\.template: is required/ },
    { name: 'an http probe with a bad scheme', spec: 'template: {}\nprobe: {httpGet: {port: 80, scheme: FTP}}', error: /spec\.probe\.httpGet\.scheme: must be one of "HTTPS", "HTTP"/ },
    { name: 'a header name with "_" (Istio\'s webhook allows only letters, digits and "-")', spec: 'template: {}\nprobe: {httpGet: {port: 80, httpHeaders: [{name: x_y}]}}', error: /header name "x_y" is not a valid header name/ },
    { name: 'a negative periodSeconds', spec: 'template: {}\nprobe: {periodSeconds: -1, tcpSocket: {port: 80}}', error: /spec\.probe\.periodSeconds: must be >= 0/ },
    { name: 'two probe methods', spec: 'template: {}\nprobe: {tcpSocket: {port: 80}, exec: {command: [a]}}', error: /spec\.probe: only one of httpGet, tcpSocket, exec may be set/ },
    { name: 'a grpc probe (Istio\'s webhook refuses it)', spec: 'template: {}\nprobe: {grpc: {port: 80}}', error: /spec\.probe\.grpc: is not accepted by Istio's validation/ },
    { name: 'an empty exec command', spec: 'template: {}\nprobe: {exec: {command: [""]}}', error: /spec\.probe\.exec\.command\[0\]: must not be empty/ },
    { name: 'a template port name with "_"', spec: 'template: {ports: {http_web: 80}}', error: /spec\.template\.ports\.http_web: port name "http_web" must be valid/ },
    { name: 'a template port 0', spec: 'template: {ports: {http: 0}}', error: /spec\.template\.ports\.http: must be >= 1/ },
    { name: 'ports with a unix address', spec: 'template: {address: "unix:///var/run/sock", ports: {http: 80}}', error: /spec\.template\.ports: must be unset for a unix:\/\/ address/ },
    { name: 'a relative unix address', spec: 'template: {address: "unix://var/sock"}', error: /spec\.template\.address: .*must be absolute/ },
    { name: 'a bad template label', spec: 'template: {labels: {app: "a b"}}', error: /spec\.template\.labels\.app: invalid label value/ },
    { name: 'a bad locality', spec: 'template: {locality: a/b/c/d}', error: /spec\.template\.locality: locality "a\/b\/c\/d" has more than three parts/ },
    { name: 'a weight above uint32', spec: 'template: {weight: 4294967296}', error: /spec\.template\.weight: must be <= 4294967295/ },
    { name: 'a long service account', spec: `template: {serviceAccount: ${'a'.repeat(254)}}`, error: /spec\.template\.serviceAccount: must be at most 253 characters/ },
    { name: 'an unknown template field', spec: 'template: {adress: 10.0.0.1}', error: /spec\.template\.adress: unknown field "adress" \(did you mean "address"\?\)/ },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      const yaml = c.spec === undefined ? 'apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: no-spec}\n' : wg(c.spec);
      const { errors, resources } = validateYaml(yaml);
      assert.equal(resources.length, 0, 'the WorkloadGroup must be rejected');
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }
});
