/**
 * gRPC calls through `mesh.grpc` after a freeze past the workload certificate's expiry (see
 * test/outbound/mtls-expired-renewal.test.ts): with a source that renews (`credentials.renewer`),
 * the call waits for the renewal and its new connection presents the new certificate, rather than
 * the expired one the server refuses (UNAVAILABLE, UF).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { type Echo, EchoClient, grpc, type GrpcUpstream, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

const echoEntry = (port: number): object => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'echo', namespace: 'default' },
  spec: {
    hosts: [HOST],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    ports: [{ number: 9090, name: 'grpc', protocol: 'GRPC' }],
    endpoints: [{ address: '127.0.0.1', ports: { grpc: port }, labels: { 'security.istio.io/tlsMode': 'istio' }, serviceAccount: 'echo' }],
  },
});

describe('gRPC: an expired workload certificate about to be renewed', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let server: GrpcUpstream;
  let mesh: Mesh;
  let client: Echo;
  const peers: (string | undefined)[] = [];

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    const leaf = issueLeaf(ca, { uris: [spiffe('default', 'echo')] });
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.rootPem), [{ cert_chain: Buffer.from(leaf.chainPem), private_key: Buffer.from(leaf.keyPem) }], true);
    server = await startGrpcUpstream(
      'echo',
      {
        Unary: (call, cb) => {
          peers.push((call.getAuthContext() as { sslPeerCertificate?: PeerCertificate }).sslPeerCertificate?.fingerprint256);
          cb(null, { text: call.request.text, server: 'echo', seen: [] });
        },
      },
      creds,
    );
    mesh = await createMesh({ service: 'productpage', config: [echoEntry(server.port)], logger: { warn: () => undefined, error: () => undefined } });
    client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
  });
  after(async () => {
    client.close();
    await mesh.close();
    await server.close();
    cleanupPki();
  });

  it('the call waits for the renewal and presents the new certificate', async () => {
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage', validity: { notBefore: new Date(Date.now() - 120_000), notAfter: new Date(Date.now() - 60_000) } }));
    const fresh = workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' });
    mesh.credentials.renewer = () => setImmediate(() => mesh.credentials.set(fresh));
    const r = await unary(client, { text: 'after-thaw' });
    assert.equal(r.error, undefined, r.error?.details);
    assert.equal(r.reply?.text, 'after-thaw');
    assert.deepEqual(peers, [new X509Certificate(fresh.leaf.certPem).fingerprint256]);
  });
});
