/**
 * Principals and connection security in the standard metrics between two real meshes over
 * auto-mTLS (certificates from an openssl-made CA): the client side fills `source_principal` and
 * `destination_principal`, the server side `connection_security_policy="mutual_tls"` and both
 * principals; the caller's metadata-exchange headers name its workload on the server side.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AggregationTemporality, type DataPoint, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, makeCa, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
  async requests(): Promise<DataPoint<number>[]> {
    const { resourceMetrics } = await this.collect();
    return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.filter((m) => m.descriptor.name === 'istio_requests_total').flatMap((m) => m.dataPoints as DataPoint<number>[]));
  }
}

const HOST = 'reviews.default.svc.cluster.local';
const quiet = { warn: () => undefined, error: () => undefined };

describe('Istio metrics over mTLS between meshes', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let server: Mesh;
  let client: Mesh;
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'default' }, spec: { mtls: { mode: 'STRICT' } } };
    server = await createMesh({ service: 'reviews', workloadName: 'reviews-v1', labels: { app: 'reviews', version: 'v1' }, serviceAccount: 'reviews', config: [strict], logger: quiet, telemetry: { metrics: { meterProvider: provider } } });
    server.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' }));
    const s = server.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    client = await createMesh({
      service: 'productpage',
      workloadName: 'productpage-v1',
      labels: { app: 'productpage', version: 'v1' },
      serviceAccount: 'productpage',
      logger: quiet,
      telemetry: { metrics: { meterProvider: provider } },
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'reviews', namespace: 'default' },
          spec: { hosts: [HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: port }, serviceAccount: 'reviews', labels: { app: 'reviews', version: 'v1', 'security.istio.io/tlsMode': 'istio', 'service.istio.io/workload-name': 'reviews-v1' } }] },
        },
        strict,
      ],
    });
    client.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
  });
  after(async () => {
    await client.close();
    await server.close();
    await provider.shutdown();
    cleanupPki();
  });

  it('both sides name both identities; the server side says mutual_tls', async () => {
    const r = await client.fetch(`http://${HOST}:9080/`);
    assert.equal(r.status, 200);
    await r.text();
    const points = await reader.requests();
    const source = points.find((p) => p.attributes['reporter'] === 'source')?.attributes ?? {};
    const destination = points.find((p) => p.attributes['reporter'] === 'destination')?.attributes ?? {};
    assert.equal(source['source_principal'], 'spiffe://cluster.local/ns/default/sa/productpage');
    assert.equal(source['destination_principal'], 'spiffe://cluster.local/ns/default/sa/reviews');
    assert.equal(source['destination_workload'], 'reviews-v1');
    assert.equal(source['connection_security_policy'], 'unknown');
    assert.equal(destination['source_principal'], 'spiffe://cluster.local/ns/default/sa/productpage');
    assert.equal(destination['destination_principal'], 'spiffe://cluster.local/ns/default/sa/reviews');
    assert.equal(destination['connection_security_policy'], 'mutual_tls');
    assert.equal(destination['source_workload'], 'productpage-v1');
    assert.equal(destination['source_workload_namespace'], 'default');
  });
});
