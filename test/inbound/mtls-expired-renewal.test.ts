/**
 * A server's side of a freeze past the workload certificate's expiry (Cloud Run's CPU throttling
 * between requests, a SIGSTOP): connections waiting at the thaw are handshaken before the overdue
 * renewal timer runs. With a source that renews (`credentials.renewer`), a handshake waits for the
 * renewal and presents the new certificate — not the expired one every mesh client refuses.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { listen } from '../helpers/frameworks.ts';
import { peerAuthentication, tlsGet } from './mtls-helpers.ts';

describe('a server whose certificate expired and is about to be renewed', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let mesh: Mesh;
  let port: number;
  let close: () => Promise<void>;

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    mesh = await createMesh({ service: 'reviews', config: [peerAuthentication('default', 'default', { mtls: { mode: 'STRICT' } })], logger: { warn: () => undefined, error: () => undefined } });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    port = await listen(server);
    close = () => new Promise((r) => server.close(() => r()));
  });
  after(async () => {
    await close();
    await mesh.close();
    cleanupPki();
  });

  it('the handshake waits for the renewal and presents the new certificate', async () => {
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews', validity: { notBefore: new Date(Date.now() - 120_000), notAfter: new Date(Date.now() - 60_000) } }));
    const fresh = workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' });
    mesh.credentials.renewer = () => setTimeout(() => mesh.credentials.set(fresh), 20);
    const client = issueLeaf(ca, { uris: [spiffe('default', 'productpage')] });
    const o = await tlsGet(port, { key: client.keyPem, cert: client.chainPem, ca: ca.rootPem });
    assert.ok('status' in o, `refused: ${'refused' in o ? o.refused : ''}`);
    assert.equal(o.status, 200);
    assert.equal(o.serverSerial, new X509Certificate(fresh.leaf.certPem).serialNumber);
  });
});
