/**
 * A process frozen past its workload certificate's expiry (AWS Lambda between invocations,
 * Cloud Run between requests, SIGSTOP) thaws with the invocation's I/O ready before its overdue
 * renewal timer: the first call runs with the expired certificate in the holder. A source that
 * renews by itself (the control plane's CA, a dev CA: `credentials.renewer`) is asked to renew now and a
 * new mTLS connection waits for it (bounded by the connect timeout) instead of
 * presenting the expired one and being refused (503 UF). Without such a source (files renewed by
 * others) nothing waits: the expired certificate is presented, as before.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { startTlsUpstream, type TlsUpstream } from '../helpers/tls-upstreams.ts';
import { skipWithout } from '../helpers/tools.ts';

const HOST = 'reviews.default.svc.cluster.local';

function reviews(port: number): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: {
      hosts: [HOST],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }],
      endpoints: [{ address: '127.0.0.1', ports: { http: port }, labels: { 'security.istio.io/tlsMode': 'istio' }, serviceAccount: 'reviews' }],
    },
  };
}

describe('an expired workload certificate about to be renewed', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let server: TlsUpstream;
  const meshes: Mesh[] = [];
  const expiredCreds = () =>
    workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage', validity: { notBefore: new Date(Date.now() - 120_000), notAfter: new Date(Date.now() - 60_000) } });

  async function mesh(): Promise<Mesh> {
    const m = await createMesh({ service: 'productpage', config: [reviews(server.port)], logger: { warn: () => undefined, error: () => undefined } });
    meshes.push(m);
    return m;
  }

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    const leaf = issueLeaf(ca, { uris: [spiffe('default', 'reviews')] });
    server = await startTlsUpstream({ cert: leaf.chainPem, key: leaf.keyPem, ca: ca.rootPem, requestCert: true, alpn: ['istio-http/1.1', 'http/1.1'], name: 'reviews' });
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await server.close();
    cleanupPki();
  });

  it('a new connection waits for the renewal and presents the new certificate, not the expired one', async () => {
    const m = await mesh();
    m.credentials.set(expiredCreds());
    const fresh = workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' });
    // As the control plane's CA and a dev CA set it: the renewal comes when asked (a renewal
    // timer that has not fired yet — or never would, had the monotonic clock stood still).
    let asked = 0;
    m.credentials.renewer = () => {
      asked++;
      setImmediate(() => m.credentials.set(fresh));
    };
    const r = await m.fetch(`http://${HOST}:9080/after-thaw`);
    assert.equal(r.status, 200, `${r.status} ${r.headers.get('x-meshlet-response-flags')} ${await r.clone().text()}`);
    assert.equal(await r.text(), 'reviews');
    const seen = server.seen.at(-1);
    assert.equal(seen?.url, '/after-thaw');
    assert.equal(seen?.clientFingerprint, new X509Certificate(fresh.leaf.certPem).fingerprint256);
    assert.equal(asked, 1, 'the connection asked for the renewal');
  });

  it('without a source that renews (files), nothing waits: the expired certificate is presented and refused, as before', async () => {
    const m = await mesh();
    m.credentials.set(expiredCreds());
    const r = await m.fetch(`http://${HOST}:9080/files`);
    assert.equal(r.status, 503);
    assert.match(r.headers.get('x-meshlet-response-flags') ?? '', /UF/);
  });
});
