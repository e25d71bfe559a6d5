/**
 * `destination_workload` of calls whose answer carries no peer metadata (a failed call; an
 * upstream without a sidecar or mesh): the endpoint's workload name as istiod gives it — a
 * WorkloadEntry's name (`pilot/pkg/serviceregistry/serviceentry/conversion.go`: "Workload entry
 * config name is used as workload name, which will appear in metric label").
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { deadPort, startUpstream } from '../helpers/upstreams.ts';

describe('destination_workload without peer metadata', () => {
  test("a Service's WorkloadEntry endpoints: the entry's name, for an answer without metadata and for a connect failure alike", async () => {
    const up = await startUpstream('ratings');
    const dead = await deadPort();
    const m = sdk();
    const service = (name: string, port: number) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080, targetPort: port }] } });
    const entry = (name: string, app: string) => ({ apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name, namespace: 'default' }, spec: { address: '127.0.0.1', labels: { app, version: 'v1' } } });
    const mesh = await createMesh({
      service: 'productpage',
      logger: { warn: () => undefined },
      telemetry: { metrics: { meterProvider: m.provider } },
      config: [service('ratings', up.port), entry('ratings-v1', 'ratings'), service('details', dead), entry('details-v1', 'details')],
    });
    try {
      const ok = await mesh.fetch('http://ratings:9080/');
      await ok.text();
      assert.equal(ok.status, 200);
      const failed = await mesh.fetch('http://details:9080/');
      await failed.text();
      assert.equal(failed.status, 503);
      assert.match(failed.headers.get('x-meshlet-response-flags') ?? '', /(^|,)UF(,|$)/);
      const points = (await m.points('istio_requests_total')).map((p) => [p.attributes['destination_service_name'], p.attributes['response_code'], p.attributes['destination_workload'], p.attributes['destination_canonical_service']]);
      assert.deepEqual(
        points.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
        [
          ['details', '503', 'details-v1', 'details'],
          ['ratings', '200', 'ratings-v1', 'ratings'],
        ],
      );
    } finally {
      await mesh.close();
      await m.shutdown();
      await up.close();
    }
  });
});
