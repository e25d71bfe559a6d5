/**
 * WorkloadEntry health as istiod reads it (`isHealthy` in pilot/pkg/serviceregistry/serviceentry/conversion.go):
 * with `proxy.istio.io/health-checks-enabled` parsing true, an entry is an endpoint only while its
 * status has a `Healthy` condition `True`; otherwise it is dropped before any service selects it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateYaml } from '../../test/helpers/config.ts';
import { compileSnapshot } from './compile.ts';
import { NO_ROUTE } from './route-table.ts';

const SE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.example.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
`;
const KUBE = `apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
`;

function we(name: string, address: string, annotation: string | undefined, healthy: string | undefined): string {
  const meta = annotation === undefined ? `{name: ${name}, namespace: default}` : `{name: ${name}, namespace: default, annotations: {proxy.istio.io/health-checks-enabled: "${annotation}"}}`;
  const status = healthy === undefined ? '' : `status:\n  conditions:\n  - {type: Healthy, status: "${healthy}", reason: probe}\n`;
  return `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: ${meta}\nspec: {address: ${address}, labels: {app: reviews}}\n${status}`;
}

function addresses(yaml: string, authority: string): { addrs: string[]; warnings: string[] } {
  const { resources, errors, warnings } = validateYaml(yaml);
  assert.deepEqual(errors, []);
  const s = compileSnapshot(resources, { service: 'productpage' });
  const d = s.routes.route({ method: 'GET', scheme: 'http', authority, path: '/', headers: {} }, 0);
  if (d === undefined || d === NO_ROUTE) assert.fail(`no route for ${authority}`);
  return { addrs: (d.target?.cluster?.endpoints ?? []).map((e) => e.address).sort(), warnings };
}

describe('WorkloadEntry health (proxy.istio.io/health-checks-enabled + status Healthy)', () => {
  const entries = [
    we('plain', '10.0.0.1', undefined, undefined), // no health checks: always an endpoint
    we('up', '10.0.0.2', 'true', 'True'),
    we('down', '10.0.0.3', 'true', 'False'),
    we('unknown', '10.0.0.4', 'true', undefined), // istiod: unhealthy until a probe succeeds
    we('odd', '10.0.0.5', 'true', 'Unknown'),
    we('go-true', '10.0.0.6', 'T', 'False'), // strconv.ParseBool accepts T
    we('not-bool', '10.0.0.7', 'yes', 'False'), // ParseBool fails → no health checks
    we('off', '10.0.0.8', 'false', 'False'),
  ];

  it('a ServiceEntry selects only the healthy ones; the unhealthy ones are named in warnings', () => {
    const { addrs, warnings } = addresses([SE, ...entries].join('---\n'), 'reviews.example.internal:9080');
    assert.deepEqual(addrs, ['10.0.0.1', '10.0.0.2', '10.0.0.7', '10.0.0.8']);
    const named = warnings.filter((w) => w.includes('health checks are on'));
    assert.equal(named.length, 4, named.join('\n'));
    assert.ok(named.some((w) => w.includes('WorkloadEntry default/unknown') && w.includes('has no Healthy condition')), named.join('\n'));
    assert.ok(named.some((w) => w.includes('WorkloadEntry default/down') && w.includes('Healthy "False"')), named.join('\n'));
  });

  it('a Kubernetes Service selecting WorkloadEntries drops them too', () => {
    const { addrs } = addresses([KUBE, ...entries].join('---\n'), 'ratings:9080');
    assert.deepEqual(addrs, ['10.0.0.1', '10.0.0.2', '10.0.0.7', '10.0.0.8']);
  });

});
