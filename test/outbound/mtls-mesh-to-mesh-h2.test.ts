/**
 * meshlet to meshlet over HTTP/2 (a port of protocol HTTP2 or GRPC): when the server's mesh
 * refuses a request for its connection's sake — PeerAuthentication STRICT and a plaintext (h2c)
 * caller on a server that still answers its health probes in plaintext (`probePaths`), or a
 * second mesh's STRICT on a server another mesh made — the caller's connection is closed, as
 * Envoy's listener refuses it and as it is over HTTP/1.1: the calling mesh answers 503 UC
 * `upstream connect error or disconnect/reset before headers. reset reason: connection
 * termination` and retries it under `reset`. The HTTP/2 bridge used to close only its in-memory
 * connection to the app and reset the caller's stream with INTERNAL_ERROR: the caller saw an
 * upstream stream reset (UR, `remote reset`).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { createMesh, type Mesh } from '../../src/index.ts';
import { startMeshToMesh, type MeshToMesh, REVIEWS_HOST as HOST, reviewsEntry } from '../helpers/mesh-to-mesh.ts';
import { skipWithout } from '../helpers/tools.ts';
import { peerAuthentication } from '../inbound/mtls-helpers.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const TERMINATED = 'upstream connect error or disconnect/reset before headers. reset reason: connection termination';

describe('meshlet client → meshlet server over HTTP/2, refused by the server for its connection', { skip: skipWithout('openssl') }, () => {
  let t: MeshToMesh;
  let port = 0;
  const strict = peerAuthentication('default', 'default', { mtls: { mode: 'STRICT' } });

  /** A calling mesh; without `credentials` it calls in plaintext (h2c). */
  const client = (o: { protocol?: string; port?: number; credentials?: boolean; extra?: object[] } = {}): Promise<Mesh> => t.client([reviewsEntry(o.protocol ?? 'HTTP2', o.port ?? port), ...(o.extra ?? [])], o);

  const attempts = (m: Mesh) => m.diagnostics().clusters.flatMap((c) => c.endpoints.map((e) => e.requests.total)).reduce((a, b) => a + b, 0);

  before(async () => {
    // STRICT, but the health probes answer in plaintext: a plaintext connection is let in and judged request by request.
    t = await startMeshToMesh([strict], { probePaths: ['/healthz'], record: (url, peer) => `${url} ${peer}` });
    port = t.port;
  });
  after(() => t.close());

  it('over mTLS (h2): 200 and the client identity', async () => {
    const m = await client();
    const r = await m.fetch(`http://${HOST}:9080/`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'spiffe://cluster.local/ns/default/sa/productpage');
  });

  it('an h2c health probe is served in plaintext; any other request closes the connection (an independent HTTP/2 client sees no stream reset)', async () => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    try {
      const get = (path: string) =>
        new Promise<string>((resolve) => {
          const st = session.request({ ':path': path });
          st.on('response', (h) => resolve(`status ${h[':status']}`));
          st.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
          st.on('close', () => resolve(`closed ${st.rstCode}`));
          st.resume();
        });
      assert.equal(await get('/healthz'), 'status 200');
      const refused = await get('/reviews');
      assert.notEqual(refused, 'error ERR_HTTP2_STREAM_ERROR', 'not a stream reset (INTERNAL_ERROR)');
      assert.ok(session.destroyed, `the connection was closed (${refused})`);
    } finally {
      session.destroy();
    }
  });

  for (const protocol of ['HTTP2', 'GRPC']) {
    it(`${protocol}: a plaintext caller refused by STRICT gets 503 UC connection termination, not a stream reset (UR)`, async () => {
      const m = await client({ protocol, credentials: false });
      const before = t.seen.length;
      const grpc = protocol === 'GRPC';
      const r = await m.fetch(`http://${HOST}:9080/reviews`, grpc ? { method: 'POST', headers: { 'content-type': 'application/grpc' }, body: new Uint8Array(5) } : {});
      const text = await r.text();
      assert.equal(r.headers.get('x-meshlet-response-flags'), 'UC');
      if (grpc) {
        assert.equal(r.headers.get('grpc-status'), '14');
        assert.equal(decodeURIComponent(r.headers.get('grpc-message') ?? ''), TERMINATED);
      } else {
        assert.equal(r.status, 503);
        assert.equal(text, TERMINATED);
      }
      assert.equal(t.seen.length, before, 'the app never saw it');
      assert.equal(attempts(m), 1, "Istio's default retry policy does not retry a connection termination");
    });
  }

  it('retried under retryOn reset, as Envoy retries a connection termination', async () => {
    const retry = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default' }, spec: { hosts: [HOST], http: [{ route: [{ destination: { host: HOST } }], retries: { attempts: 2, retryOn: 'reset' } }] } };
    const m = await client({ credentials: false, extra: [retry] });
    const r = await m.fetch(`http://${HOST}:9080/reviews`);
    assert.equal(r.status, 503);
    assert.equal(await r.text(), 'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection termination');
    assert.equal(r.headers.get('x-meshlet-response-flags'), 'URX,UC');
    assert.equal(attempts(m), 3, 'the first attempt and two retries');
  });

  it("two meshes: mesh B's STRICT on a server mesh A made (PERMISSIVE) closes the HTTP/2 caller's connection, as over HTTP/1.1", async () => {
    const a = await createMesh({ service: 'alpha', config: [peerAuthentication('default', 'istio-system', { mtls: { mode: 'PERMISSIVE' } })] as never, logger: quiet });
    const b = await createMesh({ service: 'beta', config: [peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } })] as never, logger: quiet });
    t.keep(a, b);
    const app = express();
    app.get('/b', b.express(), (_req, res) => {
      res.send('b served');
    });
    app.get('/a', a.express(), (_req, res) => {
      res.send('a served');
    });
    const s = a.createServer(app);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      const at = (s.address() as AddressInfo).port;
      const m = await client({ credentials: false, port: at });
      const ra = await m.fetch(`http://${HOST}:9080/a`);
      assert.equal(await ra.text(), 'a served');
      const rb = await m.fetch(`http://${HOST}:9080/b`);
      assert.equal(rb.status, 503);
      assert.equal(await rb.text(), TERMINATED);
      assert.equal(rb.headers.get('x-meshlet-response-flags'), 'UC');
    } finally {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });
});
