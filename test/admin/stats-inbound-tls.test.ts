/**
 * `/stats` for the connections a mesh server's port accepts, over real sockets and real TLS
 * clients: Envoy's listener stats (`listener.0.0.0.0_<port>.downstream_cx_total`, `ssl.handshake`,
 * `ssl.connection_error`, `ssl.fail_verify_error`, `ssl.fail_verify_no_cert` — envoy
 * source/common/tls/context_impl.h `ALL_SSL_STATS`, counted in context_impl.cc's verify callback
 * and the socket's handshake), and the inbound connection manager's `downstream_cx_total` /
 * `downstream_cx_ssl_total` (source/common/http/conn_manager_impl.h `ALL_HTTP_CONN_MAN_STATS`)
 * under Istio's stat prefix `inbound_0.0.0.0_<port>;`, with Istio's `listener_address` tag in
 * Prometheus (tools/packaging/common/envoy_bootstrap.json).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { until } from '../helpers/until.ts';
import { plainGet, type TlsClient, tlsGet } from '../inbound/mtls-helpers.ts';

const SKIP = skipWithout('openssl');
after(() => cleanupPki());

let ca: TestCa;
let sleep: TlsClient;
let stranger: TlsClient;
before(() => {
  if (SKIP !== false) return;
  ca = makeCa();
  const c = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep' });
  sleep = { key: c.privateKey, cert: c.certChain, ca: ca.rootPem };
  // A SPIFFE certificate from a CA the mesh does not trust.
  const other = makeCa({ name: 'other' });
  const leaf = issueLeaf(other, { uris: [spiffe('bar', 'sleep')] });
  stranger = { key: leaf.keyPem, cert: leaf.certPem, ca: ca.rootPem };
});

function parse(body: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const i = line.indexOf(': ');
    m.set(line.slice(0, i), line.slice(i + 2));
  }
  return m;
}

describe('admin /stats: listener and TLS stats of the mesh servers', { skip: SKIP }, () => {
  it('PERMISSIVE: plaintext, mTLS, TLS without a client certificate, a certificate of another CA, a failed handshake — counted as Envoy counts them', async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', serviceAccount: 'httpbin', logger: { warn: () => {} }, admin: { port: 0 }, config: [] });
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
    const server = mesh.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      assert.deepEqual(await plainGet(port), { status: 200, body: 'ok' });
      assert.equal('status' in (await tlsGet(port, sleep)) ? 200 : 0, 200);
      assert.ok('refused' in (await tlsGet(port, { ca: ca.rootPem })), 'no client certificate: refused');
      assert.ok('refused' in (await tlsGet(port, stranger)), 'a certificate of another CA: refused');
      // A client offering only a TLS 1.2 suite Istio's servers do not take: the handshake fails.
      assert.ok('refused' in (await tlsGet(port, { ...sleep, ciphers: 'AES128-SHA', maxVersion: 'TLSv1.2' })));
      const l = `listener.0.0.0.0_${port}.`;
      const h = `http.inbound_0.0.0.0_${port};.`;
      const read = async () => parse((await (await fetch(`${mesh.adminUrl}/stats?filter=${encodeURIComponent(`_${port}`)}`)).text()));
      await until(async () => (await read()).get(`${l}downstream_cx_active`) === '0', 'every connection closed');
      const s = await read();
      assert.equal(s.get(`${l}downstream_cx_total`), '5');
      assert.equal(s.get(`${l}ssl.handshake`), '1', 'the mTLS client');
      assert.equal(s.get(`${l}ssl.fail_verify_no_cert`), '1');
      assert.equal(s.get(`${l}ssl.fail_verify_error`), '1');
      assert.equal(s.get(`${l}ssl.connection_error`), '1');
      assert.equal(s.get(`${h}downstream_cx_total`), '2', 'the plaintext and the mTLS connection reached the server');
      assert.equal(s.get(`${h}downstream_cx_ssl_total`), '1');
      assert.equal(s.get(`${h}downstream_cx_active`), '0');
      assert.equal(s.get(`${h}downstream_rq_total`), '2');
      const prom = await (await fetch(`${mesh.adminUrl}/stats/prometheus`)).text();
      assert.ok(prom.includes(`envoy_listener_downstream_cx_total{listener_address="0.0.0.0_${port}"} 5\n`), prom);
      assert.ok(prom.includes(`envoy_listener_ssl_handshake{listener_address="0.0.0.0_${port}"} 1\n`));
      assert.ok(prom.includes(`envoy_http_downstream_cx_ssl_total{http_conn_manager_prefix="inbound_0.0.0.0_${port}"} 1\n`));
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });
});
