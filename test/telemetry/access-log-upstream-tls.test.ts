/**
 * The access-log operators of a call's upstream connection (Envoy's
 * `StreamInfoUpstreamSslConnectionInfoFormatterProvider` operators, `%UPSTREAM_LOCAL_ADDRESS%`,
 * `%UPSTREAM_CONNECTION_ID%`): a mesh calling another mesh's server over Istio mTLS, over HTTP
 * (the undici transport) and gRPC (meshlet's gRPC transport). Each value is checked against what
 * the server saw of the same connection: its socket's protocol, cipher and remote address, the
 * client certificate it got.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createMesh, type Mesh } from '../../src/index.ts';
import { capture, telemetry } from '../helpers/access-log.ts';
import { type Echo, EchoClient, unary } from '../helpers/grpc.ts';
import { startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { reviewsEntry, REVIEWS_HOST } from '../helpers/mesh-to-mesh.ts';
import { cleanupPki, makeCa, spiffe, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';

const LABELS = {
  path: '%REQ(:PATH)%',
  version: '%UPSTREAM_TLS_VERSION%',
  cipher: '%UPSTREAM_TLS_CIPHER%',
  peer_uri: '%UPSTREAM_PEER_URI_SAN%',
  peer_subject: '%UPSTREAM_PEER_SUBJECT%',
  peer_issuer: '%UPSTREAM_PEER_ISSUER%',
  peer_end: '%UPSTREAM_PEER_CERT_V_END%',
  local_uri: '%UPSTREAM_LOCAL_URI_SAN%',
  local: '%UPSTREAM_LOCAL_ADDRESS%',
  local_port: '%UPSTREAM_LOCAL_PORT%',
  upstream_conn: '%UPSTREAM_CONNECTION_ID%',
  downstream_version: '%DOWNSTREAM_TLS_VERSION%',
};
const quiet = { warn: () => undefined, error: () => undefined };

interface Seen {
  readonly protocol: string | null;
  readonly cipher: string;
  readonly remote: string;
  readonly peerUri: string | undefined;
  readonly notAfter: string | undefined;
}

describe('access-log operators of the upstream connection (mesh to mesh over mTLS)', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let server: Mesh;
  let client: Mesh;
  let log: ReturnType<typeof capture>;
  let port: number;
  const seen = new Map<string, Seen>();

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    server = await createMesh({ service: 'reviews', serviceAccount: 'reviews', logger: quiet, config: [] });
    server.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' }));
    const s = server.createServer((req, res) => {
      const t = req.socket as TLSSocket;
      // Reset after the handshake, without an answer.
      if (req.url === '/reset') {
        seen.set('/reset', { protocol: t.getProtocol(), cipher: t.getCipher().name, remote: `${t.remoteAddress}:${t.remotePort}`, peerUri: undefined, notAfter: undefined });
        t.destroy();
        return;
      }
      const own = t.getX509Certificate?.();
      seen.set(req.url ?? '', { protocol: t.getProtocol(), cipher: t.getCipher().name, remote: `${t.remoteAddress}:${t.remotePort}`, peerUri: t.getPeerX509Certificate?.()?.subjectAltName, notAfter: own?.validTo });
      res.end('ok');
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    port = (s.address() as AddressInfo).port;
    log = capture();
    client = await createMesh({
      service: 'productpage',
      serviceAccount: 'productpage',
      logger: log.logger,
      extensionProviders: [{ name: 'json', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { labels: LABELS } } }],
      config: [reviewsEntry('HTTP', port), telemetry('logs', { accessLogging: [{ providers: [{ name: 'json' }] }] })] as never,
    });
    client.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
  });
  after(async () => {
    await client.close();
    await server.close();
    cleanupPki();
  });

  async function line(path: string): Promise<Record<string, unknown>> {
    for (let i = 0; i < 200; i++) {
      const l = (log.entries as Record<string, unknown>[]).find((e) => e['path'] === path);
      if (l !== undefined) return l;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`no access-log line for ${path}`);
  }

  test('HTTP (undici): the connection the answer came on — version, cipher, both certificates, its local end', async () => {
    for (const path of ['/one', '/two']) {
      const r = await client.fetch(`http://${REVIEWS_HOST}:9080${path}`);
      assert.equal(await r.text(), 'ok');
    }
    const l = await line('/one');
    const s = seen.get('/one') as Seen;
    assert.equal(s.peerUri, `URI:${spiffe('default', 'productpage')}`, 'the server saw the mesh’s certificate');
    assert.equal(l['version'], s.protocol);
    assert.equal(l['cipher'], s.cipher);
    assert.equal(l['peer_uri'], spiffe('default', 'reviews'));
    assert.equal(l['peer_subject'], 'O=meshlet-test');
    assert.equal(l['peer_issuer'], 'O=cluster.local');
    assert.equal(l['peer_end'], new Date(s.notAfter as string).toISOString());
    assert.equal(l['local_uri'], spiffe('default', 'productpage'));
    assert.equal(l['local'], s.remote, 'the local end is the address the server saw');
    assert.equal(l['local_port'], Number(s.remote.split(':')[1]));
    assert.equal(typeof l['upstream_conn'], 'number');
    assert.ok((l['upstream_conn'] as number) > 0);
    assert.equal(l['downstream_version'], null, 'the client side has no downstream TLS');
    const l2 = await line('/two');
    assert.equal(l2['local'], (seen.get('/two') as Seen).remote);
    assert.equal(l2['upstream_conn'] === l['upstream_conn'], l2['local'] === l['local'], 'one connection, one id');
  });

  test('a call reset after the TLS handshake, with no response head: the connection’s TLS operators all the same (Envoy sets them at onPoolReady)', async () => {
    const r = await client.fetch(`http://${REVIEWS_HOST}:9080/reset`);
    await r.text();
    assert.equal(r.status, 503, 'the sidecar’s answer to a reset');
    const l = await line('/reset');
    const s = seen.get('/reset') as Seen;
    assert.equal(l['version'], s.protocol);
    assert.equal(l['cipher'], s.cipher);
    assert.equal(l['peer_uri'], spiffe('default', 'reviews'));
    assert.equal(l['local_uri'], spiffe('default', 'productpage'));
    assert.equal(l['local'], s.remote);
    assert.ok((l['upstream_conn'] as number) > 0);
  });

  test('gRPC (meshlet’s transport): the same operators from its own connection', async () => {
    const g = await startMeshGrpcServer(server);
    const grpcClient = await createMesh({
      service: 'productpage',
      serviceAccount: 'productpage',
      logger: log.logger,
      extensionProviders: [{ name: 'json', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { labels: LABELS } } }],
      config: [reviewsEntry('GRPC', g.port), telemetry('logs', { accessLogging: [{ providers: [{ name: 'json' }] }] })] as never,
    });
    grpcClient.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
    const c = grpcClient.grpc.client(EchoClient, `${REVIEWS_HOST}:9080`) as unknown as Echo;
    try {
      assert.equal((await unary(c, { text: 'hi' })).error, undefined);
      assert.equal(g.seen[0]?.context.peer?.principal, spiffe('default', 'productpage'), 'the call went over mTLS');
      const l = await line('/meshlet.test.Echo/Unary');
      assert.equal(l['version'], 'TLSv1.3');
      assert.equal(l['peer_uri'], spiffe('default', 'reviews'));
      assert.equal(l['local_uri'], spiffe('default', 'productpage'));
      assert.match(l['local'] as string, /^127\.0\.0\.1:\d+$/);
      assert.equal(typeof l['upstream_conn'], 'number');
    } finally {
      c.close();
      await grpcClient.close();
      await g.close();
    }
  });
});
