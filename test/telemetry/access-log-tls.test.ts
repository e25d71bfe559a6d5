/**
 * The access-log operators of a served request's TLS connection, and the per-request operators
 * Envoy fills from its stream info (source/common/formatter/stream_info_formatter.cc): a mesh
 * server with the workload certificate, called by a plain Node HTTPS client presenting a
 * certificate of the mesh's CA (mTLS), over TLS 1.2 and 1.3. Each value is checked against what
 * is read independently of meshlet: the client socket's own view (`getProtocol()`, `getCipher()`),
 * openssl's rendering of the certificates (`-nameopt RFC2253`, `-serial`, `sess_id`), the
 * SHA-256 of the certificate's DER computed here.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { Agent, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, T0, telemetry } from '../helpers/access-log.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type TestLeaf, workloadCredentials } from '../helpers/pki.ts';
import { EchoClient, type Echo, grpc, unary } from '../helpers/grpc.ts';
import { startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { skipWithout } from '../helpers/tools.ts';

const LABELS = {
  version: '%DOWNSTREAM_TLS_VERSION%',
  cipher: '%DOWNSTREAM_TLS_CIPHER%',
  session: '%DOWNSTREAM_TLS_SESSION_ID%',
  peer_subject: '%DOWNSTREAM_PEER_SUBJECT%',
  peer_issuer: '%DOWNSTREAM_PEER_ISSUER%',
  peer_fp: '%DOWNSTREAM_PEER_FINGERPRINT_256%',
  peer_serial: '%DOWNSTREAM_PEER_SERIAL%',
  peer_cert: '%DOWNSTREAM_PEER_CERT%',
  peer_uri: '%DOWNSTREAM_PEER_URI_SAN%',
  peer_dns: '%DOWNSTREAM_PEER_DNS_SAN%',
  peer_start: '%DOWNSTREAM_PEER_CERT_V_START%',
  peer_end: '%DOWNSTREAM_PEER_CERT_V_END(%s)%',
  local_uri: '%DOWNSTREAM_LOCAL_URI_SAN%',
  local_subject: '%DOWNSTREAM_LOCAL_SUBJECT%',
  conn: '%CONNECTION_ID%',
  stream: '%STREAM_ID%',
  unique: '%UNIQUE_ID%',
  type: '%ACCESS_LOG_TYPE%',
  env: '%ENVIRONMENT(MESHLET_ALS2_TEST)%',
  env_unset: '%ENVIRONMENT(MESHLET_ALS2_UNSET)%',
  response: '%RESPONSE_DURATION%',
  response_tx: '%RESPONSE_TX_DURATION%',
  duration: '%DURATION%',
  request_headers: '%REQUEST_HEADERS_BYTES%',
  path: '%REQ(:PATH)%',
};

const openssl = (args: string[], input?: Buffer): string => execFileSync('openssl', args, { input }).toString().trim();
/** openssl's RFC 2253 subject or issuer of a certificate file. */
const rfc2253 = (file: string, what: 'subject' | 'issuer'): string => openssl(['x509', '-in', file, '-noout', `-${what}`, '-nameopt', 'RFC2253']).replace(/^(subject|issuer)=/, '');

type Line = Record<string, unknown>;

describe('access-log operators of the downstream TLS connection (mesh server, mTLS client)', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let client: TestLeaf;
  let serverCert: string;
  let mesh: Mesh;
  let clock: ManualClock;
  let log: ReturnType<typeof capture>;
  let port: number;
  /** The DER session each request's server socket had (read by the app), by path. */
  const sessions = new Map<string, Buffer | undefined>();
  const headerBytes = new Map<string, number>();
  let gone: (() => void) | undefined;

  before(async () => {
    process.env['MESHLET_ALS2_TEST'] = 'from-the-environment';
    ca = makeCa({ name: 'cluster.local' });
    client = issueLeaf(ca, { uris: [spiffe('default', 'productpage')], dns: ['productpage.default'], subject: '/O=acme/CN=client-1' });
    clock = new ManualClock(T0);
    log = capture();
    mesh = await createMesh({
      service: 'reviews',
      namespace: 'default',
      clock,
      logger: log.logger,
      extensionProviders: [{ name: 'json', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { labels: LABELS } } }],
      config: [telemetry('logs', { accessLogging: [{ providers: [{ name: 'json' }] }] })] as never,
    });
    const creds = workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' });
    serverCert = join(ca.dir, 'server.crt');
    writeFileSync(serverCert, creds.leaf.certPem);
    mesh.credentials.set(creds);
    const server = mesh.createServer((req, res) => {
      // The caller goes away before an answer: the app never answers.
      if (req.url === '/gone') {
        gone?.();
        return;
      }
      const s = req.socket as TLSSocket;
      sessions.set(req.url ?? '', typeof s.getSession === 'function' ? s.getSession() : undefined);
      let n = 0;
      for (let i = 0; i < req.rawHeaders.length; i += 2) n += (req.rawHeaders[i] as string).length + (req.rawHeaders[i + 1] as string).length;
      headerBytes.set(req.url ?? '', n);
      // The response head 5 ms in, its end 7 ms later (the mesh's clock).
      clock.advance(5);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('a');
      clock.advance(7);
      res.end('b');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    delete process.env['MESHLET_ALS2_TEST'];
    await mesh.close();
    cleanupPki();
  });

  /** A GET over `agent`: the client socket's TLS view and the body. */
  function get(agent: Agent, path: string): Promise<{ protocol: string | null; cipher: string; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent, headers: { 'x-request-id': `rid${path}` } }, (res) => {
        const s = res.socket as TLSSocket;
        const seen = { protocol: s.getProtocol(), cipher: s.getCipher().name };
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ ...seen, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  const agentFor = (maxVersion: 'TLSv1.2' | 'TLSv1.3'): Agent =>
    new Agent({ keepAlive: true, maxSockets: 1, cert: client.certPem, key: client.keyPem, ca: ca.rootPem, maxVersion, checkServerIdentity: () => undefined });

  async function line(path: string): Promise<Line> {
    for (let i = 0; i < 200; i++) {
      const l = (log.entries as Line[]).find((e) => e['path'] === path);
      if (l !== undefined) return l;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`no access-log line for ${path}`);
  }

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    test(`${version}: version, cipher, session, the peer's and the local certificate's details`, async () => {
      const agent = agentFor(version);
      try {
        const a = await get(agent, `/${version}/a`);
        await get(agent, `/${version}/b`);
        assert.equal(a.body, 'ab');
        const la = await line(`/${version}/a`);
        const lb = await line(`/${version}/b`);
        assert.equal(a.protocol, version);
        assert.equal(la['version'], a.protocol);
        assert.equal(la['cipher'], a.cipher);
        const der = sessions.get(`/${version}/a`);
        assert.ok(der !== undefined, 'the server socket has a session');
        const id = /Session-ID: *([0-9A-F]*)/.exec(openssl(['sess_id', '-inform', 'DER', '-noout', '-text'], der))?.[1] ?? '';
        assert.equal(la['session'], id === '' ? null : id.toLowerCase());
        // TLS 1.3 servers keep a session id (Node's TLS 1.2 server answers with tickets and none).
        if (version === 'TLSv1.3') assert.match(la['session'] as string, /^[0-9a-f]{64}$/);
        const x = new X509Certificate(client.certPem);
        assert.equal(la['peer_subject'], rfc2253(client.certFile, 'subject'));
        assert.equal(la['peer_subject'], 'CN=client-1,O=acme');
        assert.equal(la['peer_issuer'], rfc2253(client.certFile, 'issuer'));
        assert.equal(la['peer_fp'], createHash('sha256').update(x.raw).digest('hex'));
        assert.equal(la['peer_serial'], openssl(['x509', '-in', client.certFile, '-noout', '-serial']).replace('serial=', '').toLowerCase());
        assert.equal(la['peer_cert'], encodeURIComponent(client.certPem));
        assert.equal(la['peer_uri'], spiffe('default', 'productpage'));
        assert.equal(la['peer_dns'], 'productpage.default');
        assert.equal(la['peer_start'], new Date(x.validFrom).toISOString());
        assert.equal(la['peer_end'], String(Date.parse(x.validTo) / 1000));
        assert.equal(la['local_uri'], spiffe('default', 'reviews'));
        assert.equal(la['local_subject'], rfc2253(serverCert, 'subject'));
        // One connection: one id, the next connection's is another.
        assert.equal(typeof la['conn'], 'number');
        assert.equal(lb['conn'], la['conn']);
        assert.equal(lb['session'], la['session']);
      } finally {
        agent.destroy();
      }
    });
  }

  test('CONNECTION_ID per connection; STREAM_ID, UNIQUE_ID, ACCESS_LOG_TYPE, ENVIRONMENT, durations, header bytes', async () => {
    const first = agentFor('TLSv1.3');
    const second = agentFor('TLSv1.3');
    try {
      await get(first, '/ids/1');
      await get(second, '/ids/2');
      const l1 = await line('/ids/1');
      const l2 = await line('/ids/2');
      assert.notEqual(l1['conn'], l2['conn']);
      assert.ok((l2['conn'] as number) > (l1['conn'] as number), 'a per-process counter');
      assert.equal(l1['stream'], 'rid/ids/1');
      assert.match(l1['unique'] as string, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.notEqual(l1['unique'], l2['unique']);
      assert.equal(l1['type'], 'DownstreamEnd');
      assert.equal(l1['env'], 'from-the-environment');
      assert.equal(l1['env_unset'], '-', 'Envoy’s EnvironmentFormatter: the string "-"');
      assert.equal(l1['response'], 5);
      assert.equal(l1['response_tx'], 7);
      assert.equal(l1['duration'], 12);
      assert.equal(l1['request_headers'], headerBytes.get('/ids/1'));
    } finally {
      first.destroy();
      second.destroy();
    }
  });

  test('a caller that goes away before the answer: its connection’s details are still logged (read when the request started)', async () => {
    const agent = agentFor('TLSv1.3');
    try {
      const reached = new Promise<void>((r) => (gone = r));
      const req = request({ host: '127.0.0.1', port, path: '/gone', agent });
      req.on('error', () => undefined);
      req.end();
      await reached;
      req.destroy();
      const l = await line('/gone');
      assert.equal(l['version'], 'TLSv1.3');
      assert.equal(l['peer_subject'], 'CN=client-1,O=acme');
      assert.equal(l['response'], null, 'no response head');
    } finally {
      agent.destroy();
    }
  });

  test('HTTP/2 over mTLS (the mesh server’s bridge): the real connection’s details', async () => {
    const session = h2connect(`https://127.0.0.1:${port}`, { cert: client.certPem, key: client.keyPem, ca: ca.rootPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
    try {
      const seen = await new Promise<{ protocol: string | null; cipher: string }>((resolve, reject) => {
        const st = session.request({ ':path': '/h2/a', 'x-request-id': 'rid-h2' });
        st.on('response', () => undefined);
        st.resume();
        st.on('end', () => {
          const s = session.socket as TLSSocket;
          resolve({ protocol: s.getProtocol(), cipher: s.getCipher().name });
        });
        st.on('error', reject);
      });
      const l = await line('/h2/a');
      assert.equal(l['version'], seen.protocol);
      assert.equal(l['cipher'], seen.cipher);
      assert.equal(l['peer_subject'], 'CN=client-1,O=acme');
      assert.equal(l['peer_fp'], createHash('sha256').update(new X509Certificate(client.certPem).raw).digest('hex'));
      assert.equal(l['local_uri'], spiffe('default', 'reviews'));
      assert.equal(l['stream'], 'rid-h2');
    } finally {
      session.close();
    }
  });

  test('gRPC over mTLS (mesh.grpc.bind): the listener’s TLS connection', async () => {
    const g = await startMeshGrpcServer(mesh);
    const creds = grpc.credentials.createSsl(Buffer.from(ca.rootPem), Buffer.from(client.keyPem), Buffer.from(client.certPem), { checkServerIdentity: () => undefined });
    const c = new EchoClient(`127.0.0.1:${g.port}`, creds) as unknown as Echo;
    try {
      assert.equal((await unary(c, { text: 'over mtls' })).error, undefined);
      const l = await line('/meshlet.test.Echo/Unary');
      assert.equal(l['version'], 'TLSv1.3');
      assert.equal(l['peer_subject'], 'CN=client-1,O=acme');
      assert.equal(l['peer_uri'], spiffe('default', 'productpage'));
      assert.equal(l['peer_serial'], openssl(['x509', '-in', client.certFile, '-noout', '-serial']).replace('serial=', '').toLowerCase());
      assert.equal(l['local_uri'], spiffe('default', 'reviews'));
      assert.equal(typeof l['conn'], 'number');
    } finally {
      c.close();
      await g.close();
    }
  });

  test('plaintext: every TLS operator is null, CONNECTION_ID still numbers the connection', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/plain`);
    assert.equal(await r.text(), 'ab');
    const l = await line('/plain');
    for (const k of ['version', 'cipher', 'session', 'peer_subject', 'peer_issuer', 'peer_fp', 'peer_serial', 'peer_cert', 'peer_uri', 'peer_dns', 'peer_start', 'peer_end', 'local_uri', 'local_subject']) assert.equal(l[k], null, k);
    assert.equal(typeof l['conn'], 'number');
    assert.equal(l['response'], 5);
  });
});
