import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateYaml } from '../../../test/helpers/config.ts';

/** Istio's `istio` ConfigMap as istiod's chart renders it (istio-discovery templates/configmap.yaml), with a few settings. */
const ISTIO_CM = `# Source: istiod/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
  labels: {istio.io/rev: default, release: istio}
data:
  meshNetworks: |-
    networks: {}
  mesh: |-
    accessLogFile: /dev/stdout
    defaultConfig:
      discoveryAddress: istiod.istio-system.svc:15012
      proxyMetadata: {}
    enablePrometheusMerge: true
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
    rootNamespace: istio-system
    trustDomain: cluster.local
`;

describe("Istio's MeshConfig ConfigMap in a manifest", () => {
  it('is skipped, with a warning naming each setting and the option that takes it (REGISTRY_ONLY is not dropped silently)', () => {
    const { issues, errors } = validateYaml(ISTIO_CM, 'istio.yaml');
    assert.deepEqual(errors, []);
    const lines = issues.all.map(String);
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0] ?? '', /skipped 1 ConfigMap \(v1\): istio-system\/istio; meshlet does not use it/);
    const w = issues.ofLevel('warning').map(String);
    assert.equal(w.length, 1);
    assert.match(w[0] ?? '', /^istio\.yaml: ConfigMap istio-system\/istio is Istio's MeshConfig \(data\.mesh\); meshlet does not read MeshConfig from config files; /);
    assert.match(w[0] ?? '', /outboundTrafficPolicy\.mode: REGISTRY_ONLY → createMesh\(\{ outboundTrafficPolicy \}\)/);
    assert.match(w[0] ?? '', /accessLogFile: \/dev\/stdout → createMesh\(\{ telemetry: \{ accessLog: \{ file \} \} \}\)/);
    assert.match(w[0] ?? '', /already meshlet's defaults: rootNamespace: istio-system, trustDomain: cluster\.local/);
    assert.match(w[0] ?? '', /no meshlet option \(not applied\): defaultConfig\.discoveryAddress, defaultConfig\.proxyMetadata, enablePrometheusMerge \(line 2\)$/);
  });

  it('defaultHttpRetryPolicy is named with the option that takes it', () => {
    const cm = ISTIO_CM.replace('    rootNamespace', '    defaultHttpRetryPolicy:\n      attempts: 3\n    rootNamespace');
    const w = validateYaml(cm).issues.ofLevel('warning').map(String);
    assert.match(w[0] ?? '', /defaultHttpRetryPolicy: \{"attempts":3\} → createMesh\(\{ defaultHttpRetryPolicy \}\)/);
    assert.doesNotMatch(w[0] ?? '', /not applied\):.*defaultHttpRetryPolicy/);
  });

  it('an info when it sets only what meshlet does by default; a revision ConfigMap (istio-canary) counts too', () => {
    const { issues } = validateYaml(ISTIO_CM.replace('name: istio\n', 'name: istio-canary\n').replace(/ {4}accessLogFile.*\n/, '').replace('REGISTRY_ONLY', 'ALLOW_ANY').replace(/ {4}defaultConfig:\n.*\n.*\n/, '').replace(/ {4}enablePrometheusMerge.*\n/, ''));
    assert.deepEqual(issues.ofLevel('warning').map(String), []);
    const notes = issues.all.map(String);
    assert.match(notes[1] ?? '', /ConfigMap istio-system\/istio-canary is Istio's MeshConfig .*already meshlet's defaults: outboundTrafficPolicy\.mode: ALLOW_ANY, rootNamespace: istio-system, trustDomain: cluster\.local \(line 2\)$/);
  });

  it('exportTo defaults other than "*" are a warning even alone: meshlet does not narrow visibility by them', () => {
    const cm = ISTIO_CM.replace(/ {4}accessLogFile.*\n/, '').replace('REGISTRY_ONLY', 'ALLOW_ANY').replace(/ {4}defaultConfig:\n.*\n.*\n/, '').replace(/ {4}enablePrometheusMerge.*\n/, '');
    const narrowed = cm.replace('    rootNamespace', '    defaultServiceExportTo: ["."]\n    defaultVirtualServiceExportTo: ["*"]\n    defaultDestinationRuleExportTo: [".", "istio-system"]\n    rootNamespace');
    const w = validateYaml(narrowed).issues.ofLevel('warning').map(String);
    assert.equal(w.length, 1);
    assert.match(w[0] ?? '', /already meshlet's defaults: outboundTrafficPolicy\.mode: ALLOW_ANY, defaultVirtualServiceExportTo: \["\*"\], rootNamespace/);
    assert.match(w[0] ?? '', /meshlet does not apply these visibility settings: a resource without exportTo is visible in every namespace, where istiod would narrow it: defaultServiceExportTo: \["\."\] \(write exportTo on each ServiceEntry and the networking\.istio\.io\/exportTo annotation on each Service\); defaultDestinationRuleExportTo: \["\.","istio-system"\] \(write exportTo on each DestinationRule\)/);
    assert.doesNotMatch(w[0] ?? '', /no meshlet option/);
    const sev = validateYaml(cm.replace('    rootNamespace', '    serviceEntryVisibility:\n      applyToSidecars: true\n      rules: [{namespaceSelector: {matchLabels: {team: a}}, visibility: NAMESPACE}]\n    rootNamespace')).issues.ofLevel('warning').map(String);
    assert.match(sev[0] ?? '', /meshlet does not apply these visibility settings: .*serviceEntryVisibility: .* \(write exportTo on each ServiceEntry of the namespaces it narrows\)/);
    // Istio's default, written out: an info as before.
    assert.deepEqual(validateYaml(cm.replace('    rootNamespace', '    defaultServiceExportTo: ["*"]\n    rootNamespace')).issues.ofLevel('warning').map(String), []);
  });

  it('other ConfigMaps (istio-ca-root-cert, one without data.mesh) get only the skipped-kind notice', () => {
    const { issues } = validateYaml('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-ca-root-cert}\ndata: {root-cert.pem: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {mesh: "trustDomain: x"}\n');
    assert.deepEqual(issues.all.map(String), ['test.yaml: skipped 2 ConfigMap (v1): default/istio-ca-root-cert, default/app; meshlet does not use it (line 1)']);
  });

  it('a data.meshNetworks naming networks is a setting createMesh takes (meshNetworks); an empty one is said nothing of', () => {
    const cm = ISTIO_CM.replace(/ {4}accessLogFile.*\n/, '').replace('REGISTRY_ONLY', 'ALLOW_ANY').replace(/ {4}defaultConfig:\n.*\n.*\n/, '').replace(/ {4}enablePrometheusMerge.*\n/, '');
    assert.deepEqual(validateYaml(cm).issues.ofLevel('warning').map(String), []);
    const w = validateYaml(cm.replace('    networks: {}', '    networks: {west: {gateways: [{address: 192.0.2.1, port: 15443}]}, east: {}}')).issues.ofLevel('warning').map(String);
    assert.equal(w.length, 1);
    assert.match(w[0] ?? '', /give these settings as options \(or this ConfigMap as createMesh\(\{ meshConfig \}\)\), or they do not apply: data\.meshNetworks \(networks west, east\) → createMesh\(\{ network, meshNetworks \}\)/);
  });

  it('a data.mesh that is not YAML is said so', () => {
    const { issues } = validateYaml(ISTIO_CM.replace('    trustDomain: cluster.local\n', '    trustDomain: [cluster.local\n'));
    assert.match(issues.ofLevel('warning').map(String)[0] ?? '', /ConfigMap istio-system\/istio is Istio's MeshConfig \(data\.mesh\), and data\.mesh is not valid YAML/);
  });
});
