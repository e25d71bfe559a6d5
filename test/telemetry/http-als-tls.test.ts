/**
 * `envoyHttpAls` entries' `tls_properties` and response times, as Envoy's
 * `extractCommonAccessLogProperties` fills them
 * (source/extensions/access_loggers/common/grpc_access_logger_utils.cc): a request a mesh server
 * answers over mTLS (a plain Node HTTPS client with a certificate of the mesh's CA), and a gRPC
 * call the mesh makes (its connection's local end). Values are checked against the client socket's
 * own view, openssl's rendering of the certificates and sessions, and what the gRPC upstream saw.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, T0, telemetry, until } from '../helpers/access-log.ts';
import { ALS_HOST, type AlsCollector, alsServiceEntry, type DecodedAddress, type DecodedDuration, type DecodedEntry, startAlsCollector } from '../helpers/als-collector.ts';
import { type Echo, EchoClient, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type TestLeaf, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';

const ECHO = 'echo.default.svc.cluster.local';
/** The IANA ids of the TLS 1.3 suites (RFC 8446 §B.4). */
const TLS13_SUITES: Record<string, number> = { TLS_AES_128_GCM_SHA256: 0x1301, TLS_AES_256_GCM_SHA384: 0x1302, TLS_CHACHA20_POLY1305_SHA256: 0x1303 };

const openssl = (args: string[], input?: Buffer): string => execFileSync('openssl', args, { input }).toString().trim();
const subjectOf = (file: string): string => openssl(['x509', '-in', file, '-noout', '-subject', '-nameopt', 'RFC2253']).replace(/^subject=/, '');
const ms = (d: DecodedDuration | null): number | undefined => (d === null ? undefined : Number(d.seconds) * 1000 + d.nanos / 1e6);
const addr = (a: DecodedAddress | null): string | undefined => (a?.socket_address == null ? undefined : `${a.socket_address.address}:${a.socket_address.port_value}`);

describe('envoyHttpAls: tls_properties and response times', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let client: TestLeaf;
  let serverCertFile: string;
  let als: AlsCollector;
  let echo: GrpcUpstream;
  let mesh: Mesh;
  let clock: ManualClock;
  let port: number;
  /** The gRPC upstream's view of the caller (`call.getPeer()`). */
  const peers: string[] = [];
  let session: Buffer | undefined;

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    client = issueLeaf(ca, { uris: [spiffe('default', 'productpage')], subject: '/O=acme/CN=client-1' });
    als = await startAlsCollector();
    clock = new ManualClock(T0);
    echo = await startGrpcUpstream('echo', {
      Unary: (call, cb) => {
        peers.push(call.getPeer());
        clock.advance(3);
        cb(null, { text: call.request.text, server: 'echo', seen: [] });
      },
    });
    mesh = await createMesh({
      service: 'reviews',
      namespace: 'default',
      clock,
      logger: capture().logger,
      extensionProviders: [{ name: 'als', envoyHttpAls: { service: ALS_HOST, port: 15000 } }],
      config: [alsServiceEntry(als.port), grpcServiceEntry('echo', ECHO, 9090, [{ port: echo.port }]), telemetry('logs', { accessLogging: [{ providers: [{ name: 'als' }] }] })] as never,
    });
    const creds = workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' });
    serverCertFile = join(ca.dir, 'server.crt');
    writeFileSync(serverCertFile, creds.leaf.certPem);
    mesh.credentials.set(creds);
    const server = mesh.createServer((req, res) => {
      session = (req.socket as TLSSocket).getSession();
      clock.advance(5);
      res.writeHead(200, { 'content-type': 'text/plain' });
      clock.advance(7);
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await mesh.close();
    als.close();
    await echo.close();
    cleanupPki();
  });

  async function entry(match: (e: DecodedEntry) => boolean): Promise<DecodedEntry> {
    clock.advance(1000);
    await until(() => als.entries().some(match), 'the entry at the log service');
    return als.entries().find(match) as DecodedEntry;
  }

  test('a request served over mTLS: version, cipher suite id, SNI, session id, both certificates; the head and end times', async () => {
    const agent = new Agent({ cert: client.certPem, key: client.keyPem, ca: ca.rootPem, servername: 'reviews.default.svc', checkServerIdentity: () => undefined });
    try {
      const seen = await new Promise<{ protocol: string | null; suite: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/tls', agent }, (res) => {
          const s = res.socket as TLSSocket;
          const v = { protocol: s.getProtocol(), suite: s.getCipher().standardName };
          res.resume();
          res.on('end', () => resolve(v));
        });
        req.on('error', reject);
        req.end();
      });
      const e = await entry((x) => x.request.path === '/tls');
      const t = e.common_properties.tls_properties;
      assert.ok(t !== null);
      assert.equal(seen.protocol, 'TLSv1.3');
      assert.equal(t.tls_version, 'TLSv1_3');
      assert.equal(t.tls_cipher_suite?.value, TLS13_SUITES[seen.suite]);
      assert.equal(t.tls_sni_hostname, 'reviews.default.svc');
      const id = /Session-ID: *([0-9A-F]*)/.exec(openssl(['sess_id', '-inform', 'DER', '-noout', '-text'], session))?.[1] ?? '';
      assert.notEqual(id, '');
      assert.equal(t.tls_session_id, id.toLowerCase());
      assert.deepEqual(t.peer_certificate_properties, { subject_alt_name: [{ uri: spiffe('default', 'productpage'), san: 'uri' }], subject: subjectOf(client.certFile) });
      assert.deepEqual(t.local_certificate_properties, { subject_alt_name: [{ uri: spiffe('default', 'reviews'), san: 'uri' }], subject: subjectOf(serverCertFile) });
      const c = e.common_properties;
      assert.equal(ms(c.time_to_last_rx_byte), 0, 'a GET ends with its head');
      assert.equal(ms(c.time_to_last_upstream_tx_byte), 0, 'and reached the app whole');
      assert.equal(ms(c.time_to_first_upstream_rx_byte), 5, 'the app’s head');
      assert.equal(ms(c.time_to_first_downstream_tx_byte), 5);
      assert.equal(ms(c.time_to_last_downstream_tx_byte), 12, 'the end of the response');
      assert.equal(ms(c.duration), 12);
    } finally {
      agent.destroy();
    }
  });

  test('a gRPC call the mesh makes: the connection’s local end (as the upstream saw the caller) and the response head’s time', async () => {
    const c = mesh.grpc.client(EchoClient, `${ECHO}:9090`) as unknown as Echo;
    try {
      assert.equal((await unary(c, { text: 'hi' })).error, undefined);
      const e = await entry((x) => x.request.path === '/meshlet.test.Echo/Unary');
      assert.equal(addr(e.common_properties.upstream_local_address), peers[0]);
      assert.equal(ms(e.common_properties.time_to_first_upstream_rx_byte), 3);
      assert.equal(ms(e.common_properties.time_to_last_rx_byte), 0, 'the caller’s half-close came with the call');
      assert.equal(ms(e.common_properties.time_to_last_upstream_tx_byte), 0, 'and went out before the answer');
      assert.equal(e.common_properties.tls_properties, null, 'the client side has no downstream TLS');
    } finally {
      c.close();
    }
  });
});
