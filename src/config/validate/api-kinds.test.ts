import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateYaml } from '../../../test/helpers/config.ts';
import { classifyKind, parseApiVersion } from './api-kinds.ts';

describe('classifyKind: apply, skip with a notice, or refuse', () => {
  const rows: { apiVersion: string; kind: string; want: 'apply' | 'info' | 'warning' | RegExp }[] = [
    // Kinds meshlet applies, in every served version.
    { apiVersion: 'v1', kind: 'Service', want: 'apply' },
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', want: 'apply' },
    { apiVersion: 'networking.istio.io/v1alpha3', kind: 'DestinationRule', want: 'apply' },
    { apiVersion: 'networking.istio.io/v1beta1', kind: 'WorkloadGroup', want: 'apply' },
    { apiVersion: 'security.istio.io/v1beta1', kind: 'AuthorizationPolicy', want: 'apply' },
    { apiVersion: 'telemetry.istio.io/v1alpha1', kind: 'Telemetry', want: 'apply' },
    // EnvoyFilter is read (its local rate limit shapes are applied, the others skipped when validated).
    { apiVersion: 'networking.istio.io/v1alpha3', kind: 'EnvoyFilter', want: 'apply' },
    { apiVersion: 'networking.istio.io/v1', kind: 'EnvoyFilter', want: /unknown apiVersion "networking.istio.io\/v1"; EnvoyFilter is served as networking.istio.io\/v1alpha3$/ },
    // Other kinds of the groups meshlet reads: skipped, with a warning when Istio would change traffic.
    { apiVersion: 'v1', kind: 'ServiceAccount', want: 'info' },
    { apiVersion: 'v1', kind: 'ConfigMap', want: 'info' },
    { apiVersion: 'v1', kind: 'Secret', want: 'info' },
    { apiVersion: 'v1', kind: 'Namespace', want: 'info' },
    { apiVersion: 'v1', kind: 'Pod', want: 'info' },
    { apiVersion: 'v1', kind: 'Endpoints', want: 'info' },
    { apiVersion: 'networking.istio.io/v1', kind: 'Gateway', want: 'warning' },
    { apiVersion: 'networking.istio.io/v1beta1', kind: 'Gateway', want: 'warning' },
    { apiVersion: 'networking.istio.io/v1beta1', kind: 'ProxyConfig', want: 'warning' },
    // Other APIs: skipped.
    { apiVersion: 'apps/v1', kind: 'Deployment', want: 'info' },
    { apiVersion: 'apps/v1', kind: 'StatefulSet', want: 'info' },
    { apiVersion: 'batch/v1', kind: 'Job', want: 'info' },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', want: 'info' },
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', want: 'info' },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', want: 'info' },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', want: 'warning' },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GRPCRoute', want: 'warning' },
    { apiVersion: 'extensions.istio.io/v1alpha1', kind: 'WasmPlugin', want: 'warning' },
    { apiVersion: 'install.istio.io/v1alpha1', kind: 'IstioOperator', want: 'info' },
    { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', want: 'info' },
    { apiVersion: 'serving.knative.dev/v1', kind: 'Service', want: 'info' },
    { apiVersion: 'example.com/v1', kind: 'VirtualServce', want: 'info' },
    // Mistakes in the groups meshlet reads: errors with a did-you-mean.
    { apiVersion: 'networking.istio.io/v1', kind: 'VirtualServce', want: /unknown kind "VirtualServce" in networking.istio.io \(did you mean "VirtualService"\?\)/ },
    { apiVersion: 'networking.istio.io/v1', kind: 'Gatway', want: /did you mean "Gateway"/ },
    { apiVersion: 'networking.istio.io/v1', kind: 'Service', want: /unknown apiVersion "networking.istio.io\/v1"; Service is served as v1$/ },
    { apiVersion: 'security.istio.io/v1', kind: 'AuthorisationPolicy', want: /did you mean "AuthorizationPolicy"/ },
    { apiVersion: 'security.istio.io/v1', kind: 'VirtualService', want: /unknown apiVersion "security.istio.io\/v1"; VirtualService is served as networking.istio.io\/v1, networking.istio.io\/v1beta1, networking.istio.io\/v1alpha3$/ },
    { apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetri', want: /did you mean "Telemetry"/ },
    { apiVersion: 'v1', kind: 'Servce', want: /unknown kind "Servce" in the Kubernetes core group \(apiVersion: v1\) \(did you mean "Service"\?\)/ },
    { apiVersion: 'v1', kind: 'Deployment', want: /unknown kind "Deployment" in the Kubernetes core group/ },
    { apiVersion: 'v1', kind: 'VirtualService', want: /unknown apiVersion "v1"; VirtualService is served as networking.istio.io/ },
    { apiVersion: 'v2', kind: 'Service', want: /unknown apiVersion "v2"; Service is served as v1/ },
    { apiVersion: 'networking.istio.io/v2', kind: 'VirtualService', want: /unknown apiVersion "networking.istio.io\/v2"/ },
    { apiVersion: 'networking.isito.io/v1', kind: 'VirtualService', want: /unknown API group "networking.isito.io" \(did you mean "networking.istio.io"\?\)/ },
    { apiVersion: 'securty.istio.io/v1', kind: 'Whatever', want: /did you mean "security.istio.io"/ },
    { apiVersion: 'extensions.istio.io/v1', kind: 'VirtualService', want: /unknown apiVersion "extensions.istio.io\/v1"; VirtualService is served as/ },
    { apiVersion: 'networking.istio.io', kind: 'VirtualService', want: /unknown apiVersion "networking.istio.io"/ },
    { apiVersion: 'networking.istio.io/', kind: 'VirtualService', want: /is not of the form group\/version/ },
    { apiVersion: '/v1', kind: 'Service', want: /is not of the form group\/version/ },
  ];
  for (const r of rows) {
    it(`${r.apiVersion} ${r.kind} → ${r.want}`, () => {
      const d = classifyKind(r.apiVersion, r.kind);
      if (r.want === 'apply') assert.deepEqual(d, { action: 'apply', kind: r.kind });
      else if (r.want instanceof RegExp) {
        assert.equal(d.action, 'error', JSON.stringify(d));
        assert.match((d as { message: string }).message, r.want);
      } else {
        assert.equal(d.action, 'skip', JSON.stringify(d));
        assert.equal((d as { level: string }).level, r.want);
        assert.notEqual((d as { reason: string }).reason, '');
      }
    });
  }

  it('parses group/version, with no group for the core API', () => {
    assert.deepEqual(parseApiVersion('v1'), { group: '', version: 'v1' });
    assert.deepEqual(parseApiVersion('apps/v1'), { group: 'apps', version: 'v1' });
    assert.equal(parseApiVersion('a/b/c'), undefined);
    assert.equal(parseApiVersion(''), undefined);
  });
});

describe('skipped kinds: one notice per kind per load', () => {
  const manifest = (kind: string, apiVersion: string, names: string[], ns?: string) =>
    names.map((n) => `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: {name: ${n}${ns === undefined ? '' : `, namespace: ${ns}`}}\n`).join('---\n');

  it('names the kind, the count, the names and the reason; never an error', () => {
    const text = [
      manifest('Deployment', 'apps/v1', ['a', 'b', 'c']),
      manifest('ServiceAccount', 'v1', ['sa'], 'shop'),
      manifest('Deployment', 'apps/v1', ['d'], 'shop'),
      manifest('Namespace', 'v1', ['shop']),
      manifest('Gateway', 'networking.istio.io/v1', ['gw']),
    ].join('---\n');
    const { issues, errors, resources } = validateYaml(text, 'all.yaml');
    assert.deepEqual(errors, []);
    assert.equal(resources.length, 0);
    const notices = issues.all.filter((i) => i.code === 'MESHLET0003');
    assert.equal(notices.length, 4, notices.map(String).join('\n'));
    assert.equal(issues.all.length, 4);
    const [deployments, sas, namespaces, gateways] = notices.map(String);
    assert.match(deployments ?? '', /^all\.yaml: skipped 4 Deployment \(apps\/v1\): default\/a, default\/b, default\/c, shop\/d; workloads run outside meshlet.* \(line 1\)$/);
    assert.match(sas ?? '', /skipped 1 ServiceAccount \(v1\): shop\/sa; workload identity comes from/);
    assert.match(namespaces ?? '', /skipped 1 Namespace \(v1\): shop; meshlet does not use it/);
    assert.match(gateways ?? '', /skipped 1 Gateway \(networking.istio.io\/v1\): default\/gw; /);
    assert.deepEqual(notices.map((i) => i.level), ['info', 'info', 'info', 'warning']);
  });

  it('lists at most ten names and says how many more', () => {
    const names = Array.from({ length: 13 }, (_, i) => `cm${i}`);
    const { issues } = validateYaml(manifest('ConfigMap', 'v1', names));
    const [notice] = issues.all.map(String);
    assert.match(notice ?? '', /skipped 13 ConfigMap \(v1\): default\/cm0, .*default\/cm9, and 3 more; /);
  });

  it('a typo in a kind meshlet applies is still an error, and refuses the set', () => {
    const { errors } = validateYaml('apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: a}\nspec: {}\n');
    assert.equal(errors.length, 1);
    assert.match(errors[0] ?? '', /^test\.yaml: VirtualServce a: unknown kind "VirtualServce" in networking.istio.io \(did you mean "VirtualService"\?\); meshlet reads VirtualService, DestinationRule, ServiceEntry, WorkloadEntry, WorkloadGroup, EnvoyFilter, Sidecar from networking.istio.io \(line 1\)$/);
  });
});
