/**
 * meshlet to meshlet: a client mesh calls a server mesh's `mesh.createServer` under STRICT
 * PeerAuthentication, with certificates from an openssl-made CA. Auto-mTLS (the endpoint label)
 * gets through and the server sees the client's SPIFFE ID; a client without a certificate, or
 * with DestinationRule DISABLE, is refused by STRICT; a certificate rotated on the client is
 * the one the server sees on the next connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createMesh, isMeshletError, type Mesh } from '../../src/index.ts';
import { startMeshToMesh, type MeshToMesh, REVIEWS_HOST as HOST, reviewsEntry } from '../helpers/mesh-to-mesh.ts';
import { makeCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';

const quiet = { warn: () => undefined, error: () => undefined };

describe('meshlet client → meshlet server over mTLS', { skip: skipWithout('openssl') }, () => {
  let t: MeshToMesh;
  const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'default' }, spec: { mtls: { mode: 'STRICT' } } };
  const config = (extra: object[] = []) => [reviewsEntry('HTTP', t.port), strict, ...extra];
  const client = (o: { credentials?: boolean; extra?: object[] } = {}): Promise<Mesh> => t.client(config(o.extra), o);

  before(async () => {
    t = await startMeshToMesh([strict]);
  });
  after(() => t.close());

  it('auto-mTLS to a labelled endpoint: STRICT lets it in and the server sees the client identity', async () => {
    const m = await client();
    const r = await m.fetch(`http://${HOST}:9080/`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'spiffe://cluster.local/ns/default/sa/productpage');
  });

  it('a client without a certificate calls in plaintext, and STRICT refuses it', async () => {
    const m = await client({ credentials: false });
    const before = t.seen.length;
    const r = await m.fetch(`http://${HOST}:9080/`);
    assert.equal(r.status, 503);
    assert.equal(t.seen.length, before, 'the app never saw it');
  });

  it('DestinationRule DISABLE sends plaintext despite the certificate: STRICT refuses it', async () => {
    const m = await client({ extra: [{ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: HOST, trafficPolicy: { tls: { mode: 'DISABLE' } } } }] });
    const r = await m.fetch(`http://${HOST}:9080/`);
    assert.equal(r.status, 503);
  });

  it('a client certificate the server does not trust (another CA): refused, naming why; the app never sees it', async () => {
    const m = await createMesh({ service: 'productpage', config: config(), errors: 'throw', logger: quiet });
    t.keep(m);
    m.credentials.set(workloadCredentials(makeCa({ name: 'elsewhere' }), { namespace: 'default', serviceAccount: 'productpage', trust: t.ca.rootPem }));
    const before = t.seen.length;
    const e = await m.fetch(`http://${HOST}:9080/`).then(
      () => assert.fail('expected a refusal'),
      (err: Error) => err,
    );
    // The server closes the TLS 1.3 connection after checking the certificate: reported as the refusal it is.
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    assert.match(e.message, /transport failure reason: TLS error: the server closed the connection right after the TLS handshake without answering: it refused this workload's certificate/);
    assert.equal(t.seen.length, before);
  });

  it('a rotated client certificate (another service account) is what the server sees next', async () => {
    const m = await client();
    assert.equal(await (await m.fetch(`http://${HOST}:9080/`)).text(), 'spiffe://cluster.local/ns/default/sa/productpage');
    m.credentials.set(workloadCredentials(t.ca, { namespace: 'default', serviceAccount: 'productpage-v2' }));
    assert.equal(await (await m.fetch(`http://${HOST}:9080/`)).text(), 'spiffe://cluster.local/ns/default/sa/productpage-v2');
  });
});
