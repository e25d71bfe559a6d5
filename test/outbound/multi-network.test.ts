/**
 * Multi-network over real sockets: the client mesh is on network `east`; the destination, a
 * meshlet server under STRICT mTLS, is on network `west` and advertised at an address the client
 * cannot reach (a port nothing listens on). West's east-west gateway is nginx routing TLS by SNI
 * without terminating it (Istio's AUTO_PASSTHROUGH on 15443) — not meshlet. The client reaches
 * the server only through the gateway, with mTLS end to end: the server sees the client's SPIFFE
 * identity, the gateway saw the SNI `outbound_.9080_._.<host>`, and a server behind the gateway
 * with another identity than the destination's is refused.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, isMeshletError, type Mesh } from '../../src/index.ts';
import { type SniGateway, startSniGateway } from '../helpers/nginx-gateway.ts';
import { cleanupPki, makeCa, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { deadPort } from '../helpers/upstreams.ts';

const REVIEWS = 'reviews.default.svc.cluster.local';
const RATINGS = 'ratings.default.svc.cluster.local';
const quiet = { warn: () => undefined, error: () => undefined };
const sni = (host: string) => `outbound_.9080_._.${host}`;

describe('multi-network: a meshlet client on network east calls a server on network west through its east-west gateway (nginx, SNI passthrough)', { skip: skipWithout('openssl', 'nginx') }, () => {
  let ca: TestCa;
  let server: Mesh;
  let gateway: SniGateway;
  let unreachable = 0;
  const meshes: Mesh[] = [];
  const seen: string[] = [];
  const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'default' }, spec: { mtls: { mode: 'STRICT' } } };
  const entry = (host: string, name: string, sa: string, labels: Record<string, string>) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name, namespace: 'default' },
    // The address as network west knows it: nothing answers there from network east.
    spec: { hosts: [host], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.3', ports: { http: unreachable }, serviceAccount: sa, network: 'west', labels }] },
  });
  const mtls = { 'security.istio.io/tlsMode': 'istio' };
  const meshNetworks = () => ({ networks: { west: { gateways: [{ address: gateway.address, port: gateway.port }] }, east: { endpoints: [{ fromCidr: '10.0.0.0/8' }] } } });

  async function client(o: { extra?: object[]; network?: string } = {}): Promise<Mesh> {
    const m = await createMesh({
      service: 'productpage',
      serviceAccount: 'productpage',
      network: o.network ?? 'east',
      meshNetworks: meshNetworks(),
      config: [entry(REVIEWS, 'reviews', 'reviews', mtls), entry(RATINGS, 'ratings', 'ratings', mtls), strict, ...(o.extra ?? [])],
      errors: 'throw',
      logger: quiet,
    });
    meshes.push(m);
    m.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
    return m;
  }

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    unreachable = await deadPort();
    server = await createMesh({ service: 'reviews', serviceAccount: 'reviews', config: [strict], logger: quiet });
    server.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' }));
    const s = server.createServer((req, res) => {
      const peer = (req as { meshlet?: { peer?: { principal?: string } } }).meshlet?.peer?.principal ?? 'plaintext';
      seen.push(peer);
      res.end(peer);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.2', r));
    const at = `127.0.0.2:${(s.address() as AddressInfo).port}`;
    // West's gateway knows both names' endpoint as the reviews server: ratings' is served by the wrong workload.
    gateway = await startSniGateway('127.0.0.2', { [sni(REVIEWS)]: at, [sni(RATINGS)]: at });
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await server.close();
    await gateway?.stop();
    cleanupPki();
  });

  it('reaches the server only through the gateway, mTLS end to end: the server sees the client identity, the gateway saw the SNI', async () => {
    const m = await client();
    const r = await m.fetch(`http://${REVIEWS}:9080/`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'spiffe://cluster.local/ns/default/sa/productpage');
    await m.close();
    assert.match(await gateway.sessionEnded(sni(REVIEWS)), /^outbound_\.9080_\._\.reviews\.default\.svc\.cluster\.local 127\.0\.0\.2:\d+$/);
  });

  it('mesh.explain names the gateway that reaches the endpoint, with the TLS it uses', async () => {
    const m = await client();
    const text = String(m.explain({ url: `http://${REVIEWS}:9080/` }));
    assert.match(text, /network: multi-network: this workload is on network east; 1 endpoint\(s\) on other networks reached through gateway 127\.0\.0\.2:\d+ \(meshNetworks networks\.west\.gateways\[0\]\)/);
    assert.match(text, new RegExp(`127\\.0\\.0\\.2:${gateway.port} .*\\n {8}via: east-west gateway of network west \\(meshNetworks networks\\.west\\.gateways\\[0\\]\\) for 127\\.0\\.0\\.3:${unreachable}`));
    assert.match(text, /tls: ISTIO_MUTUAL \[sni outbound_\.9080_\._\.reviews\.default\.svc\.cluster\.local; server identity one of spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\]/);
  });

  it('a workload behind the gateway with another identity than the destination is refused (the gateway is not trusted with identity)', async () => {
    const m = await client();
    const before = seen.length;
    const e = await m.fetch(`http://${RATINGS}:9080/`).then(
      () => assert.fail('expected a refusal'),
      (err: Error) => err,
    );
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    assert.match(e.message, /server identity spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews is not one of the destination's identities \[spiffe:\/\/cluster\.local\/ns\/default\/sa\/ratings\]/);
    assert.equal(seen.length, before, 'the server app never saw it');
  });

  it('a client with no network set still goes through the gateway (forceGateway)', async () => {
    const m = await client({ network: '' });
    assert.equal(await (await m.fetch(`http://${REVIEWS}:9080/`)).text(), 'spiffe://cluster.local/ns/default/sa/productpage');
  });

  it('a client on network west dials the endpoint directly (here: nothing answers at its address)', async () => {
    const m = await client({ network: 'west' });
    const e = await m.fetch(`http://${REVIEWS}:9080/`).then(
      () => assert.fail('expected a connection failure'),
      (err: Error) => err,
    );
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.3:${unreachable}|ECONNREFUSED|connection`), String(e));
  });
});
