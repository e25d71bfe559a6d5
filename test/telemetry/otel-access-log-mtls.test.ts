/**
 * An in-mesh collector with STRICT mTLS: the Export calls go through the mesh, so the mesh's
 * workload certificate carries them (auto mTLS to an endpoint labelled `security.istio.io/tlsMode:
 * istio`), as Envoy's calls to the collector's cluster do. Without a certificate the collector
 * refuses them: the records are dropped, the request still succeeds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { T0, telemetry, until } from '../helpers/access-log.ts';
import { type Collector, startCollector } from '../helpers/otel-collector.ts';
import { cleanupPki, makeCa, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const OTEL_HOST = 'opentelemetry-collector.observability.svc.cluster.local';
const RATINGS = 'ratings.default.svc.cluster.local';
const strict = (ns: string) => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: ns }, spec: { mtls: { mode: 'STRICT' } } });
const quiet = { warn: () => undefined };

describe('envoyOtelAls to an in-mesh collector with STRICT mTLS', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let collectorMesh: Mesh;
  let collector: Collector;
  let up: Upstream;
  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    collectorMesh = await createMesh({ service: 'opentelemetry-collector', namespace: 'observability', serviceAccount: 'otel', config: [strict('observability')], logger: quiet });
    collectorMesh.credentials.set(workloadCredentials(ca, { namespace: 'observability', serviceAccount: 'otel' }));
    collector = await startCollector((server) => collectorMesh.grpc.bind(server, '127.0.0.1:0'));
    up = await startUpstream('ratings');
  });
  after(async () => {
    await collectorMesh.close();
    collector.close();
    await up.close();
    cleanupPki();
  });

  async function client(withCert: boolean): Promise<{ mesh: Mesh; clock: ManualClock }> {
    const clock = new ManualClock(T0);
    const mesh = await createMesh({
      service: 'reviews',
      namespace: 'default',
      serviceAccount: 'reviews',
      clock,
      logger: quiet,
      extensionProviders: [{ name: 'otel', envoyOtelAls: { service: OTEL_HOST, port: 4317, logFormat: { text: '%REQ(:PATH)%' } } }],
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'otel', namespace: 'observability' },
          spec: { hosts: [OTEL_HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 4317, name: 'grpc', protocol: 'GRPC' }], endpoints: [{ address: '127.0.0.1', ports: { grpc: collector.port }, serviceAccount: 'otel', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
        },
        { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'ratings', namespace: 'default' }, spec: { hosts: [RATINGS], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: up.port } }] } },
        telemetry('otel', { accessLogging: [{ providers: [{ name: 'otel' }] }] }),
      ] as never,
    });
    if (withCert) mesh.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' }));
    return { mesh, clock };
  }

  test('with the workload certificate: the collector takes the records over mTLS', async () => {
    collector.exports.length = 0;
    const { mesh, clock } = await client(true);
    try {
      const r = await mesh.fetch(`http://${RATINGS}:9080/over-mtls`);
      assert.equal(r.status, 200);
      await r.text();
      clock.advance(1000);
      await until(() => collector.records().length === 1, 'the record at the collector');
      assert.deepEqual(collector.bodies(), ['/over-mtls']);
    } finally {
      await mesh.close();
    }
  });

  test('without a certificate (plaintext): STRICT refuses the Export, the record is dropped, the request unaffected', async () => {
    collector.exports.length = 0;
    const { mesh, clock } = await client(false);
    try {
      const r = await mesh.fetch(`http://${RATINGS}:9080/plain`);
      assert.equal(r.status, 200);
      await r.text();
      clock.advance(1000);
      await until(() => mesh.diagnostics().otelAccessLogs['otel']?.dropped === 1, 'the refused export to be counted');
      assert.equal(collector.records().length, 0);
    } finally {
      await mesh.close();
    }
  });
});
