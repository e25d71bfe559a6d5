/**
 * `createMesh({ meshConfig })`: Istio's MeshConfig as the cluster has it (the `istio` ConfigMap,
 * its data.mesh text, or that text parsed) sets the options meshlet applies; explicit options win.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { applyMeshConfig } from '../../src/mesh-config-option.ts';
import { call, serviceEntry, startUpstream } from '../helpers/upstreams.ts';

/** istiod's `istio` ConfigMap as `kubectl get configmap istio -n istio-system -o yaml` shows it (parsed), with REGISTRY_ONLY set. */
const CONFIG_MAP = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'istio', namespace: 'istio-system', labels: { 'install.operator.istio.io/owning-resource': 'unknown', 'istio.io/rev': 'default' } },
  data: {
    mesh: 'defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  tracing:\n    sampling: 10\ndefaultProviders:\n  metrics:\n  - prometheus\nenablePrometheusMerge: true\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY\nrootNamespace: istio-system\ntrustDomain: example.org\n',
    meshNetworks: 'networks: {}',
  },
};

describe('createMesh({ meshConfig })', () => {
  test('the istio ConfigMap: its settings become options, the others are named once', () => {
    const said: string[] = [];
    const o = applyMeshConfig({ service: 'a', config: [], meshConfig: CONFIG_MAP }, (m) => said.push(m));
    assert.equal(o.outboundTrafficPolicy, 'REGISTRY_ONLY');
    assert.equal(o.trustDomain, 'example.org');
    assert.equal(o.rootNamespace, 'istio-system');
    assert.equal(o.telemetry?.tracing?.samplingPercentage, 10);
    assert.equal('meshConfig' in o, false);
    assert.deepEqual(said, ['createMesh: meshConfig settings meshlet has no option for (not applied): defaultConfig.discoveryAddress, defaultProviders.metrics, enablePrometheusMerge']);
  });

  test('exportTo defaults other than "*" are warned about (not applied: meshlet would show workloads more than istiod does); "*" is said nothing of', async () => {
    const infos: string[] = [];
    const warnings: string[] = [];
    applyMeshConfig({ service: 'a', config: [], meshConfig: 'defaultServiceExportTo: ["."]\ndefaultVirtualServiceExportTo: ["*"]\nenablePrometheusMerge: true\n' }, (m) => infos.push(m), (m) => warnings.push(m));
    assert.deepEqual(infos, ['createMesh: meshConfig settings meshlet has no option for (not applied): enablePrometheusMerge']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /^createMesh: meshConfig: meshlet does not apply these visibility settings: .*defaultServiceExportTo: \["\."\] \(write exportTo on each ServiceEntry and the networking\.istio\.io\/exportTo annotation on each Service\)$/);
    // Through createMesh, to the logger's warn.
    const said: string[] = [];
    const mesh = await createMesh({ service: 'a', config: [], meshConfig: 'defaultDestinationRuleExportTo: ["."]\n', logger: { warn: (m: string) => said.push(m) } });
    await mesh.close();
    assert.ok(said.some((m) => /defaultDestinationRuleExportTo: \["\."\] \(write exportTo on each DestinationRule\)/.test(m)), said.join('\n'));
  });

  test('data.mesh as text, or parsed; explicit options win field by field', () => {
    const text = 'trustDomain: a.org\npathNormalization:\n  normalization: MERGE_SLASHES\naccessLogFile: /dev/stdout\naccessLogEncoding: JSON\nenableTracing: false\ndefaultConfig:\n  proxyHeaders:\n    requestId:\n      disabled: true\n';
    const o = applyMeshConfig({ service: 'a', config: [], trustDomain: 'b.org', telemetry: { accessLog: { encoding: 'TEXT', file: undefined } }, meshConfig: text }, () => {});
    assert.equal(o.trustDomain, 'b.org');
    assert.equal(o.pathNormalization, 'MERGE_SLASHES');
    assert.deepEqual(o.telemetry?.accessLog, { file: '/dev/stdout', encoding: 'TEXT' });
    assert.deepEqual(o.telemetry?.tracing, { enabled: false });
    assert.deepEqual(o.proxyHeaders, { requestId: { disabled: true } });
    const parsed = applyMeshConfig({ service: 'a', config: [], meshConfig: { trustDomainAliases: ['old.org'], enableAutoMtls: false, pathNormalization: { normalization: 'DEFAULT' } } }, () => {});
    assert.deepEqual(parsed.trustDomainAliases, ['old.org']);
    assert.equal(parsed.enableAutoMtls, false);
    assert.equal(parsed.pathNormalization, 'BASE');
    // The ConfigMap's own YAML, as kubectl prints it.
    const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  namespace: istio-system\ndata:\n  mesh: |-\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY\n`;
    assert.equal(applyMeshConfig({ service: 'a', config: [], meshConfig: yaml }, () => {}).outboundTrafficPolicy, 'REGISTRY_ONLY');
  });

  test('a bad setting is refused naming its MeshConfig field', async () => {
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: 'outboundTrafficPolicy:\n  mode: ALLOW_NONE\n' }), /meshConfig\.outboundTrafficPolicy\.mode` must be one of ALLOW_ANY, REGISTRY_ONLY, got "ALLOW_NONE"/);
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: 'trustDomainAliases: old.org\n' }), /meshConfig\.trustDomainAliases` must be a list of strings/);
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: 'defaultConfig:\n  tracing:\n    sampling: 150\n' }), /meshConfig\.defaultConfig\.tracing\.sampling` must be a percentage from 0 to 100/);
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: 'trustDomain: [a\n' }), /`meshConfig` is not valid YAML/);
    // defaultConfig.proxyHeaders: named as the MeshConfig's, not as a proxyHeaders option the app never gave.
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: 'defaultConfig:\n  proxyHeaders:\n    envoyDebugHeaders: {disabled: yes please}\n' }), {
      message: 'createMesh: `meshConfig.defaultConfig.proxyHeaders.envoyDebugHeaders.disabled` must be true or false, got "yes please"',
    });
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: 'defaultConfig:\n  proxyHeaders:\n    serverr: {value: x}\n' }), /unknown option "meshConfig\.defaultConfig\.proxyHeaders\.serverr" \(did you mean "meshConfig\.defaultConfig\.proxyHeaders\.server"\?\)/);
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'istio' }, data: {} } }), /ConfigMap without a `data.mesh`/);
    await assert.rejects(createMesh({ service: 'a', config: [], meshConfig: ['trustDomain: a'] as never }), /`meshConfig` must be Istio's MeshConfig/);
  });

  test("REGISTRY_ONLY from the ConfigMap blocks hosts outside the registry, as the cluster's sidecars did", async () => {
    const up = await startUpstream('known');
    const mesh = await createMesh({ service: 'client', meshConfig: CONFIG_MAP, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: up.port }])] });
    try {
      const blocked = await call(mesh, `http://127.0.0.1:${up.port}/`);
      assert.equal(blocked.status, 502);
      assert.equal((await call(mesh, 'http://svc/')).upstream, 'known');
      assert.equal(up.hits, 1);
    } finally {
      await mesh.close();
      await up.close();
    }
  });
});
