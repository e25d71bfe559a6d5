/**
 * A connection that presents a client certificate and is closed by the server before any
 * response byte, on its first request. That is how a Node server refuses a TLS 1.3 client
 * certificate (no alert), and the mesh says so — but it is also a server that read the request
 * and died before answering. Envoy sees a connection termination after a completed handshake
 * (reset reason `connection termination`), which Istio's default retry policy
 * (`connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`) does not retry:
 * a POST must not be sent again.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, type TestCa, type TestLeaf } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';

const HOST = 'crash.example.test';

describe('a mutual-TLS connection closed without an answer after the request was sent', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let clientLeaf: TestLeaf;
  let server: Server;
  let port = 0;
  const posts: string[] = [];
  const meshes: Mesh[] = [];

  before(async () => {
    ca = makeCa({ name: 'silent-close-ca' });
    const serverLeaf = issueLeaf(ca, { dns: [HOST] });
    clientLeaf = issueLeaf(ca, { dns: ['client.example.test'] });
    // Accepts the client's certificate, reads the whole request, then dies without answering.
    server = createServer({ cert: serverLeaf.chainPem, key: serverLeaf.keyPem, ca: ca.rootPem, requestCert: true, rejectUnauthorized: true }, (req) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () => {
        posts.push(body);
        req.socket.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    cleanupPki();
  });

  it("is not retried as a connect failure under Istio's default retry policy: the POST reaches the server once", async () => {
    const m = await createMesh({
      service: 'client',
      logger: { warn: () => undefined, error: () => undefined },
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'crash', namespace: 'default' },
          spec: { hosts: [HOST], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: port }], endpoints: [{ address: '127.0.0.1' }] },
        },
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'DestinationRule',
          metadata: { name: 'crash', namespace: 'default' },
          spec: { host: HOST, trafficPolicy: { tls: { mode: 'MUTUAL', caCertificates: ca.certFile, clientCertificate: clientLeaf.chainFile, privateKey: clientLeaf.keyFile } } },
        },
      ],
    });
    meshes.push(m);
    const r = await m.fetch(`http://${HOST}/charge`, { method: 'POST', body: 'charge 100' });
    await r.arrayBuffer();
    assert.equal(r.status, 503);
    assert.deepEqual(posts, ['charge 100'], 'the POST was sent once');
  });
});
