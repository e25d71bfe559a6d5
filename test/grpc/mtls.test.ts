/**
 * Istio mutual TLS for gRPC calls, decided as for HTTP calls: auto-mTLS to an endpoint labelled
 * `security.istio.io/tlsMode: istio` presents the workload's certificate and checks the
 * server's SPIFFE ID against the destination's service account; a server with another
 * identity is refused (UNAVAILABLE, UF) and never gets the call; ISTIO_MUTUAL without a
 * workload certificate fails closed, naming why.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { destinationRule } from '../helpers/upstreams.ts';
import { type Echo, EchoClient, grpc, type GrpcUpstream, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

function echoEntry(port: number, labels: Record<string, string> = { 'security.istio.io/tlsMode': 'istio' }): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'echo', namespace: 'default' },
    spec: {
      hosts: [HOST],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: 9090, name: 'grpc', protocol: 'GRPC' }],
      endpoints: [{ address: '127.0.0.1', ports: { grpc: port }, labels, serviceAccount: 'echo' }],
    },
  };
}

describe('gRPC client mTLS with the workload identity', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let good: GrpcUpstream;
  let impostor: GrpcUpstream;
  const meshes: Mesh[] = [];
  const clients: Echo[] = [];
  let peers: (string | undefined)[] = [];

  async function tlsServer(name: string, serviceAccount: string): Promise<GrpcUpstream> {
    const leaf = issueLeaf(ca, { uris: [spiffe('default', serviceAccount)] });
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.rootPem), [{ cert_chain: Buffer.from(leaf.chainPem), private_key: Buffer.from(leaf.keyPem) }], true);
    return startGrpcUpstream(
      name,
      {
        Unary: (call, cb) => {
          const cert = (call.getAuthContext() as { sslPeerCertificate?: PeerCertificate }).sslPeerCertificate;
          peers.push(cert?.subjectaltname);
          cb(null, { text: call.request.text, server: name, seen: [] });
        },
      },
      creds,
    );
  }

  async function client(config: object[], withCredentials = true): Promise<Echo> {
    const mesh = await createMesh({ service: 'productpage', config, logger: { warn: () => undefined, error: () => undefined } });
    meshes.push(mesh);
    if (withCredentials) mesh.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
    const c = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(c);
    return c;
  }

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    good = await tlsServer('echo', 'echo');
    impostor = await tlsServer('impostor', 'someone-else');
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(meshes.map((m) => m.close()));
    await good.close();
    await impostor.close();
    cleanupPki();
  });

  it('auto-mTLS: the call goes over mTLS, presenting the workload’s SPIFFE identity', async () => {
    peers = [];
    const c = await client([echoEntry(good.port)]);
    const r = await unary(c, { text: 'secure' });
    assert.equal(r.error, undefined);
    assert.equal(r.reply?.text, 'secure');
    assert.deepEqual(peers, [`URI:${spiffe('default', 'productpage')}`]);
  });

  it('a server whose SPIFFE ID is not the destination’s is refused: UNAVAILABLE, UF, the call never reaches it', async () => {
    peers = [];
    const c = await client([echoEntry(impostor.port), { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'echo', namespace: 'default' }, spec: { hosts: ['echo'], http: [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 } }] } }]);
    const r = await unary(c, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.match(r.error?.metadata.get('x-meshlet-response-flags')[0] as string, /UF/);
    assert.deepEqual(peers, []);
    assert.equal(impostor.hits, 0);
  });

  it('ISTIO_MUTUAL without a workload certificate fails closed (UNAVAILABLE), naming why', async () => {
    const c = await client([echoEntry(good.port, {}), destinationRule('echo', 'echo', { trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } })], false);
    const r = await unary(c, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.match(r.error?.details ?? '', /the call is not sent: .*ISTIO_MUTUAL but this mesh has no workload certificate/);
  });

  it('DestinationRule tls SIMPLE without sni: the service host is the SNI and the name checked (auto_sni), though the channel dials an address', async () => {
    const leaf = issueLeaf(ca, { dns: [HOST] });
    const seen: (string | undefined)[] = [];
    const named = await startGrpcUpstream(
      'named',
      {
        Unary: (call, cb) => {
          seen.push(call.getPeer());
          cb(null, { text: call.request.text, server: 'named', seen: [] });
        },
      },
      grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(leaf.chainPem), private_key: Buffer.from(leaf.keyPem) }], false),
    );
    try {
      const c = await client([echoEntry(named.port, {}), destinationRule('echo', 'echo', { trafficPolicy: { tls: { mode: 'SIMPLE', caCertificates: ca.certFile } } })], false);
      const r = await unary(c, { text: 'simple' });
      assert.equal(r.error, undefined, r.error?.details);
      assert.equal(r.reply?.server, 'named');
      assert.equal(seen.length, 1);
    } finally {
      await named.close();
    }
  });

  it('DestinationRule tls DISABLE: plaintext, so a TLS-only server refuses the call (UNAVAILABLE)', async () => {
    const c = await client([echoEntry(good.port), destinationRule('echo', 'echo', { trafficPolicy: { tls: { mode: 'DISABLE' } } })]);
    const before = good.hits;
    const r = await unary(c, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(good.hits, before);
  });
});
