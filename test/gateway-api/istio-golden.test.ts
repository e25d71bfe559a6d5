/**
 * istiod's own golden tests for Gateway API routes (pilot/pkg/config/kube/gateway/testdata,
 * copied into test/fixtures/gateway-api/istio): each input is loaded as meshlet loads config,
 * and the VirtualServices meshlet generates for mesh parents (Services and ServiceEntries) are
 * compared field by field with the ones istiod generated for mesh (`gateways: [mesh]`) — name,
 * namespace, hosts, the routes in order, and the `internal.istio.io/parents` annotation. Gateway
 * parents are left out (meshlet is not a gateway), and so are TCPRoute and TLSRoute (meshlet
 * routes HTTP and gRPC). The Services istiod's test registers (conversion_test.go `services`)
 * are declared too, as the routes' parents and backends need them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { routeVirtualServices } from '../../src/config/gateway-api/mesh-routes.ts';
import { validateDocuments } from '../../src/config/validate/index.ts';

const DIR = join(import.meta.dirname, '../fixtures/gateway-api/istio');

/**
 * The file's text; names istiod's test data spells with capitals (`invalid-parentRef-service`),
 * which the API server refuses (a name is a DNS-1123 subdomain) and so does meshlet, lower-cased.
 */
function read(file: string): string {
  return readFileSync(join(DIR, file), 'utf8').replaceAll('-parentRef-', '-parentref-').replaceAll('-backendRef-', '-backendref-');
}

// conversion_test.go `services`: the Kubernetes Services of istiod's test registry.
const HARNESS_SERVICES = [
  'istio-system/istio-ingressgateway', 'default/httpbin', 'apple/httpbin-apple', 'banana/httpbin-banana', 'default/httpbin-second',
  'default/httpbin-wildcard', 'default/foo-svc', 'default/httpbin-other', 'default/example', 'default/echo', 'cert/httpbin',
  'service/my-svc', 'allowed-1/a-example', 'allowed-2/a-example', 'allowed-1/b-example', 'allowed-1/svc2', 'allowed-2/svc2',
  'allowed-1/svc1', 'allowed-2/svc3', 'default/svc4', 'group-namespace1/httpbin', 'group-namespace2/httpbin', 'default/httpbin-zero',
  'istio-system/httpbin', 'default/httpbin-mirror', 'default/httpbin-foo', 'default/httpbin-alt', 'istio-system/istiod',
  'istio-system/echo', 'default/httpbin-bad', 'default/echo-1', 'default/echo-2', 'default/echo-port', 'default/not-found',
];

function harnessServices(): object[] {
  return HARNESS_SERVICES.map((key) => {
    const [namespace, name] = key.split('/') as [string, string];
    return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80 }] } };
  });
}

interface Vs {
  name: string;
  namespace: string;
  parents: string | undefined;
  hosts: unknown;
  http: unknown;
}

/** istiod's generated VirtualServices for the mesh (HTTP only), with its test domain suffix as meshlet's. */
function golden(file: string): Vs[] {
  const text = read(file).replaceAll('domain.suffix', 'cluster.local');
  return parseAllDocuments(text)
    .map((d) => d.toJS() as { kind?: string; metadata: { name: string; namespace: string; annotations?: Record<string, string> }; spec: Record<string, unknown> } | null)
    .filter((d) => d !== null && d.kind === 'VirtualService' && (d.spec.gateways as string[]).includes('mesh') && d.spec.http !== undefined)
    .map((d) => ({ name: d?.metadata.name as string, namespace: d?.metadata.namespace as string, parents: d?.metadata.annotations?.['internal.istio.io/parents'], hosts: d?.spec.hosts, http: d?.spec.http }))
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

function generated(file: string): { vss: Vs[]; errors: string[] } {
  const text = read(file);
  const docs = [
    ...parseAllDocuments(text).map((d) => ({ value: d.toJS(), source: { file } })).filter((d) => d.value !== null),
    ...harnessServices().map((value) => ({ value, source: { file: 'harness' } })),
  ];
  // Istio's inputs also hold ServiceEntries that name no port protocol meshlet reads as HTTP; only the routes matter here.
  const { resources, issues } = validateDocuments(docs);
  // istiod's unit tests feed routes that did not pass the API server, so without the CRD's schema defaults.
  const vss = routeVirtualServices(resources, undefined, false)
    .map((r) => ({
      name: r.metadata.name,
      namespace: r.metadata.namespace,
      parents: r.metadata.annotations?.['internal.istio.io/parents'],
      hosts: (r.spec as { hosts: unknown }).hosts,
      http: JSON.parse(JSON.stringify((r.spec as { http: unknown }).http)),
    }))
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  return { vss, errors: issues.ofLevel('error').map(String) };
}

describe("istiod's Gateway API golden files: the VirtualServices for mesh parents", () => {
  for (const name of ['mesh', 'route-precedence', 'invalid', 'serviceentry', 'valid-invalid-parent-ref']) {
    it(`${name}.yaml`, () => {
      const want = golden(`${name}.yaml.golden`);
      const { vss, errors } = generated(`${name}.yaml`);
      assert.ok(want.length > 0, 'the golden file has mesh VirtualServices');
      assert.deepEqual(errors.filter((e) => e.includes('HTTPRoute') || e.includes('GRPCRoute')), []);
      assert.deepEqual(
        vss.map((v) => `${v.namespace}/${v.name}`),
        want.map((v) => `${v.namespace}/${v.name}`),
      );
      for (let i = 0; i < want.length; i++) assert.deepEqual(vss[i], want[i], `${want[i]?.namespace}/${want[i]?.name}`);
    });
  }
});
