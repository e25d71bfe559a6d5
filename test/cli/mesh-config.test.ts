/**
 * `--mesh-config <file>` on `meshlet explain` (calls and --inbound) and `meshlet routes`: the
 * settings of Istio's MeshConfig (the istio ConfigMap, or its data.mesh) apply as
 * createMesh({ meshConfig }) applies them, flags winning; a bad file is a usage mistake naming it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { meshlet } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-meshconfig-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const CONFIG = file(
  'mesh.yaml',
  `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, locality: us-east/a/1}
  - {address: 10.0.0.2, locality: us-west/b/1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api.internal
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  action: ALLOW
  rules: [{from: [{source: {principals: [corp.example/ns/foo/sa/sleep]}}]}]
`,
);

// As `kubectl get configmap istio -n istio-system -o yaml` prints it.
const CONFIGMAP = file(
  'istio.yaml',
  `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    trustDomain: corp.example
    localityLbSetting:
      enabled: true
      failover: [{from: us-east, to: us-west}]
`,
);

describe('meshlet routes --mesh-config', () => {
  it("plans locality failover from the MeshConfig's localityLbSetting for clusters whose DestinationRule sets none", () => {
    const args = ['routes', CONFIG, '--service', 'client', '--locality', 'us-east/a/1', '-o', 'json'];
    const plan = (r: { stdout: string }) => JSON.parse(r.stdout).clusters.find((c: { name: string }) => c.name === 'outbound|8080||api.internal').localityPlan;
    const r = meshlet([...args, '--mesh-config', CONFIGMAP]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(plan(r), 'locality failover from us-east/a/1 (us-east→us-west): P0 1, P1 1');
    assert.doesNotMatch(plan(meshlet(args)) ?? '', /us-east→us-west/, 'without the file, the failover rule is not known');
  });
});

describe('--mesh-config defaultHttpRetryPolicy', () => {
  const RETRY = file('retry.yaml', 'defaultHttpRetryPolicy:\n  attempts: 5\n  retryOn: 5xx\n');

  it('meshlet routes shows it as the policy of routes without retries', () => {
    const json = meshlet(['routes', CONFIG, '--service', 'client', '--mesh-config', RETRY, '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const route = JSON.parse(json.stdout).virtualHosts.find((v: { name: string }) => v.name.startsWith('api.internal')).routes[0];
    assert.deepEqual([route.retries.attempts, route.retries.retryOn, route.retries.meshDefault, route.retries.istioDefault], [5, ['5xx'], true, false]);
    const text = meshlet(['routes', CONFIG, '--service', 'client', '--mesh-config', RETRY]);
    assert.match(text.stdout, /retries 5× on 5xx \(mesh defaultHttpRetryPolicy\)/);
    assert.match(meshlet(['routes', CONFIG, '--service', 'client']).stdout, /retries 2× on .* \(Istio default\)/);
  });

  it('meshlet explain shows it for the call', () => {
    const r = meshlet(['explain', CONFIG, '--service', 'client', '--mesh-config', RETRY, 'http://api.internal:8080/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Retries: +retries 5× on 5xx \(mesh defaultHttpRetryPolicy\)/);
  });

  it('refuses one createMesh refuses (exit 2, naming the setting)', () => {
    const bad = file('bad-retry.yaml', 'defaultHttpRetryPolicy: {attempts: 1.5}\n');
    const r = meshlet(['routes', CONFIG, '--service', 'client', '--mesh-config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--mesh-config .*bad-retry\.yaml: `meshConfig\.defaultHttpRetryPolicy` is invalid: meshConfig\.defaultHttpRetryPolicy\.attempts: /);
  });

  // istiod validates no defaultHttpRetryPolicy and converts it as it stands (retry.ConvertPolicy).
  it('warns about what only a VirtualService\'s validation refuses, and shows it as istiod runs it', () => {
    const odd = file('odd-retry.yaml', 'defaultHttpRetryPolicy: {retryOn: 5xx}\n');
    const r = meshlet(['routes', CONFIG, '--service', 'client', '--mesh-config', odd]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /retries off \(mesh defaultHttpRetryPolicy\)/);
    assert.match(r.stderr, /odd-retry\.yaml: meshConfig\.defaultHttpRetryPolicy: attempts is required when retryOn is set .*turns retries off/);
  });
});

describe('meshlet explain --mesh-config', () => {
  it("balances a call by the MeshConfig's localityLbSetting", () => {
    const r = meshlet(['explain', CONFIG, '--service', 'client', '--locality', 'us-east/a/1', '--mesh-config', CONFIGMAP, 'http://api.internal:8080/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /load balancing: +LEAST_REQUEST \(P2C\) over 2 hosts, locality failover from us-east\/a\/1 \(us-east→us-west\): P0 1, P1 1/);
  });

  it("judges --inbound principals in the MeshConfig's trust domain (--trust-domain still wins)", () => {
    const base = ['explain', CONFIG, '--service', 'httpbin', '-n', 'foo', '--inbound', '--source-namespace', 'foo', '--source-sa', 'sleep', '-o', 'json', '/'];
    const allowed = (r: { stdout: string; stderr: string }) => (JSON.parse(r.stdout) as { refusedBy: unknown }).refusedBy === null;
    const withFile = meshlet([...base.slice(0, -1), '--mesh-config', CONFIGMAP, '/']);
    assert.equal(withFile.code, 0, withFile.stderr);
    assert.equal(allowed(withFile), true, withFile.stdout);
    assert.equal(allowed(meshlet(base)), false, 'cluster.local/ns/foo/sa/sleep is not the policy principal');
    assert.equal(allowed(meshlet([...base.slice(0, -1), '--mesh-config', CONFIGMAP, '--trust-domain', 'cluster.local', '/'])), false);
  });

  it('refuses a file that is missing or has a bad setting, naming it (exit 2)', () => {
    const missing = meshlet(['explain', CONFIG, '--service', 'client', '--mesh-config', join(dir, 'nope.yaml'), 'http://api.internal:8080/']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /meshlet explain: --mesh-config .*nope\.yaml: no such file/);
    const bad = file('bad.yaml', 'outboundTrafficPolicy: {mode: SOMETIMES}\n');
    const r = meshlet(['routes', CONFIG, '--service', 'client', '--mesh-config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /meshlet routes: --mesh-config .*bad\.yaml: `meshConfig\.outboundTrafficPolicy\.mode` must be one of ALLOW_ANY, REGISTRY_ONLY, got "SOMETIMES"/);
  });
});

describe('--mesh-config checks what createMesh checks', () => {
  it("refuses an invalid localityLbSetting in routes, explain and explain --inbound alike (exit 2, naming the file)", () => {
    const bad = file('bad-locality.yaml', 'localityLbSetting:\n  distribute: [{from: us-east/*, to: {us-west/*: 150}}]\n');
    for (const args of [
      ['routes', CONFIG, '--service', 'client'],
      ['explain', CONFIG, '--service', 'client', 'http://api.internal:8080/'],
      ['explain', CONFIG, '--service', 'httpbin', '-n', 'foo', '--inbound', '/'],
    ]) {
      const r = meshlet([...args.slice(0, 2), '--mesh-config', bad, ...args.slice(2)]);
      assert.equal(r.code, 2, `${args[0]} ${args.includes('--inbound') ? '--inbound' : ''}: ${r.stderr}`);
      assert.match(r.stderr, /--mesh-config .*bad-locality\.yaml: localityLbSetting\.distribute\[0\]\.to\["us-west\/\*"\]: must be <= 100/);
    }
  });

  it('names the extension providers istiod only warns about (ValidateMeshConfig), with createMesh\'s words, and leaves them out: a name used twice (of any kind), an unknown kind, a setting Istio refuses', () => {
    const bad = file(
      'bad-providers.yaml',
      [
        'extensionProviders:',
        '- name: logs',
        '  envoyFileAccessLog: {path: /dev/stdout}',
        '- name: logs',
        '  envoyExtAuthzHttp: {service: authz.foo.svc.cluster.local, port: 8000}',
        '- name: typo',
        '  envoyExtAuthzHtp: {service: a, port: 80}',
        '- name: otel',
        '  envoyOtelAls: {service: "otel:4317", port: 4317}',
        '',
      ].join('\n'),
    );
    const r = meshlet(['explain', CONFIG, '--service', 'httpbin', '-n', 'foo', '--mesh-config', bad, '--inbound', '/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /--mesh-config .*bad-providers\.yaml: extensionProviders\[1\]: provider name "logs" is used twice — istiod only warns about it; this provider is not used/);
    assert.match(r.stderr, /--mesh-config .*bad-providers\.yaml: extensionProviders\[2\] \(typo\): unknown provider kind "envoyExtAuthzHtp" \(did you mean "envoyExtAuthzHttp"\?\).* — istiod only warns about it/);
    assert.match(r.stderr, /--mesh-config .*bad-providers\.yaml: extensionProviders\[3\] \(otel\)\.envoyOtelAls: .* — istiod only warns about it/);
    assert.doesNotMatch(r.stderr, /createMesh/);
  });

  it('says which MeshConfig settings meshlet does not apply, on stderr', () => {
    const other = file('other.yaml', 'defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n');
    const r = meshlet(['routes', CONFIG, '--service', 'client', '--mesh-config', other]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /meshlet routes: --mesh-config .*other\.yaml: meshConfig settings meshlet has no option for \(not applied\): defaultConfig\.discoveryAddress/);
  });
});
