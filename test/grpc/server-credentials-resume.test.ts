/**
 * `mesh.grpc.serverCredentials()` and a resumed TLS session: OpenSSL verifies a client
 * certificate only in a full handshake — a session resumed from a ticket carries its first
 * handshake's verdict (`authorized`) whatever the time — so the mesh checks the certificate's
 * validity again for each call, as its own listeners check it for each connection. A caller whose
 * certificate expired after its first connection must not get in by resuming that connection's
 * session, also when the mesh already judged that certificate on an earlier call.
 *
 * Real grpc-js server, real TLS 1.3 handshakes (certificates made with openssl at test time), an
 * independent client (node:http2 over node:tls, which can resume a session); the later time is
 * Date mocked forward (OpenSSL's own clock, which resumption does not consult, is untouched).
 */
import assert from 'node:assert/strict';
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, it, mock } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type TestLeaf } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { type MeshGrpcServer, startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { peerAuthentication } from '../inbound/mtls-helpers.ts';

const HOUR = 3_600_000;
const quiet = { warn: () => undefined, error: () => undefined };

/** One Echo/Unary call on a new TLS connection (resuming `session` when given): the grpc-status and message, whether the session was resumed, and the session to resume next. */
async function callOnce(port: number, ca: TestCa, leaf: TestLeaf, session?: Buffer): Promise<{ status: string; message: string; reused: boolean; session: Buffer | undefined }> {
  let socket: TLSSocket | undefined;
  let next: Buffer | undefined;
  const h2: ClientHttp2Session = h2connect(`https://127.0.0.1:${port}`, {
    createConnection: () => {
      socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.rootPem, cert: leaf.chainPem, key: leaf.keyPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined, ...(session === undefined ? {} : { session }) });
      socket.on('session', (s: Buffer) => (next = s));
      return socket;
    },
  });
  h2.on('error', () => undefined);
  try {
    // Echo/Unary with an empty request message.
    const body = Buffer.from([0, 0, 0, 0, 0]);
    const head = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const st = h2.request({ ':method': 'POST', ':path': '/meshlet.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
      let h: Record<string, unknown> = {};
      st.on('response', (x) => (h = { ...h, ...x }));
      st.on('trailers', (x) => (h = { ...h, ...x }));
      st.on('error', reject);
      st.on('close', () => resolve(h));
      st.resume();
      st.end(body);
    });
    return { status: String(head['grpc-status']), message: decodeURIComponent(String(head['grpc-message'] ?? '')), reused: socket?.isSessionReused() === true, session: next };
  } finally {
    h2.close();
  }
}

describe('gRPC server with mesh.grpc.serverCredentials(): a resumed TLS session', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let client: TestLeaf;
  let mesh: Mesh;
  let server: MeshGrpcServer;

  before(async () => {
    ca = makeCa();
    const serverLeaf = issueLeaf(ca, { uris: [spiffe('foo', 'echo')] });
    // Valid for the next hour only.
    client = issueLeaf(ca, { uris: [spiffe('default', 'productpage')], validity: { notBefore: new Date(Date.now() - HOUR), notAfter: new Date(Date.now() + HOUR) } });
    mesh = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, config: [peerAuthentication('default', 'foo', { mtls: { mode: 'STRICT' } })], logger: quiet });
    mesh.credentials.set({ certChain: serverLeaf.chainPem, privateKey: serverLeaf.keyPem, trustBundle: ca.rootPem, spiffeId: spiffe('foo', 'echo'), notBefore: 0, notAfter: Date.now() + 24 * HOUR });
    server = await startMeshGrpcServer(mesh, 'credentials');
  });
  after(async () => {
    mock.timers.reset();
    await server.close();
    await mesh.close();
    cleanupPki();
  });

  it('is refused (UNAVAILABLE, certificate expired) once the certificate has expired, though a call with it was admitted before', async () => {
    const first = await callOnce(server.port, ca, client);
    assert.equal(first.status, '0', `first call: ${first.message}`);
    assert.ok(first.session !== undefined, 'the server issued a session ticket');
    // The same session resumed while the certificate is still valid: admitted (the session works).
    const again = await callOnce(server.port, ca, client, first.session);
    assert.equal(again.reused, true);
    assert.equal(again.status, '0', `resumed while valid: ${again.message}`);
    // Two hours later (the certificate expired an hour ago), the session resumed again.
    mock.timers.enable({ apis: ['Date'], now: Date.now() + 2 * HOUR });
    const late = await callOnce(server.port, ca, client, again.session ?? first.session);
    assert.equal(late.reused, true, 'the session was resumed (no new verification by OpenSSL)');
    assert.equal(late.status, '14', `expected UNAVAILABLE, got ${late.status} ${late.message}`);
    assert.match(late.message, /^connection refused by PeerAuthentication: certificate expired \(CERT_HAS_EXPIRED\)/);
  });
});
