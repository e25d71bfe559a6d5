/**
 * Istio mutual TLS on the client side against real node:https mTLS servers (requestCert) with
 * openssl-made certificates: ISTIO_MUTUAL and auto-mTLS (the endpoint label, the destination's
 * PeerAuthentication, DestinationRule DISABLE), Istio's SNI and ALPN, the server's SPIFFE ID
 * checked against the destination's identities (and trust-domain aliases), refusals naming
 * why, retries of a failed handshake, and credential rotation.
 */
import assert from 'node:assert/strict';
import { createSecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createMesh, isMeshletError, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type TestLeaf, workloadCredentials } from '../helpers/pki.ts';
import { startTlsUpstream, type TlsUpstream, failure } from '../helpers/tls-upstreams.ts';
import { skipWithout } from '../helpers/tools.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const HOST = 'reviews.default.svc.cluster.local';
const TLS_ISTIO = { 'security.istio.io/tlsMode': 'istio' };

interface Ep {
  readonly port: number;
  readonly labels?: Record<string, string>;
  readonly serviceAccount?: string;
}

function reviews(endpoints: Ep[]): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: {
      hosts: [HOST],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }],
      endpoints: endpoints.map((e) => ({ address: '127.0.0.1', ports: { http: e.port }, labels: e.labels, serviceAccount: e.serviceAccount ?? 'reviews' })),
    },
  };
}

const dr = (spec: Record<string, unknown>, name = 'reviews'): object => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace: 'default' }, spec: { host: HOST, ...spec } });
const pa = (name: string, spec: Record<string, unknown>, namespace = 'default'): object => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace }, spec });

describe('client-side Istio mTLS', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let other: TestCa;
  let good: TlsUpstream;
  const servers: TlsUpstream[] = [];
  let plain: Upstream;
  const meshes: Mesh[] = [];
  let creds: ReturnType<typeof workloadCredentials>;

  async function mtlsServer(leaf: TestLeaf, name: string): Promise<TlsUpstream> {
    const s = await startTlsUpstream({ cert: leaf.chainPem, key: leaf.keyPem, ca: ca.rootPem, requestCert: true, alpn: ['istio-h2', 'istio-http/1.1', 'h2', 'http/1.1'], name });
    servers.push(s);
    return s;
  }

  async function mesh(config: object[], o: { credentials?: boolean; trustDomainAliases?: string[]; enableAutoMtls?: boolean } = {}): Promise<Mesh> {
    const m = await createMesh({ service: 'productpage', errors: 'throw', config, trustDomainAliases: o.trustDomainAliases, enableAutoMtls: o.enableAutoMtls, logger: { warn: () => undefined, error: () => undefined } });
    meshes.push(m);
    if (o.credentials !== false) m.credentials.set(creds);
    return m;
  }

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    other = makeCa({ name: 'other' });
    creds = workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' });
    good = await mtlsServer(issueLeaf(ca, { uris: [spiffe('default', 'reviews')] }), 'reviews');
    plain = await startUpstream('plain');
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(servers.map((s) => s.close()));
    await plain.close();
    cleanupPki();
  });

  it('auto-mTLS: an endpoint labelled tlsMode istio gets mTLS with Istio SNI and ALPN, presenting the workload certificate', async () => {
    const m = await mesh([reviews([{ port: good.port, labels: TLS_ISTIO }])]);
    const r = await m.fetch(`http://${HOST}:9080/auto`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'reviews');
    const s = good.seen.at(-1);
    assert.equal(s?.url, '/auto');
    assert.equal(s?.servername, `outbound_.9080_._.${HOST}`);
    assert.equal(s?.alpn, 'istio-http/1.1');
    assert.match(s?.clientSans ?? '', /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage/);
    assert.equal(m.explain({ url: `http://${HOST}:9080/` }).targets[0]?.endpoints[0]?.tls?.startsWith('ISTIO_MUTUAL'), true);
  });

  it("through Node's built-in fetch with dispatcher: mesh.dispatcher as well", async () => {
    const m = await mesh([reviews([{ port: good.port, labels: TLS_ISTIO }])]);
    const r = await fetch(`http://${HOST}:9080/builtin`, { dispatcher: m.dispatcher } as RequestInit);
    assert.equal(r.status, 200);
    assert.equal(good.seen.at(-1)?.url, '/builtin');
    assert.match(good.seen.at(-1)?.clientSans ?? '', /sa\/productpage/);
  });

  it('auto-mTLS: an unlabelled endpoint is called in plaintext', async () => {
    const m = await mesh([reviews([{ port: plain.port }])]);
    const r = await m.fetch(`http://${HOST}:9080/unlabelled`);
    assert.equal(await r.text(), 'plain');
    assert.match(m.explain({ url: `http://${HOST}:9080/` }).targets[0]?.endpoints[0]?.tls ?? '', /^plaintext .*has no security\.istio\.io\/tlsMode label/);
  });

  it("auto-mTLS: the destination workload's PeerAuthentication DISABLE (port level, or the namespace's) keeps it plaintext", async () => {
    const wl = pa('reviews-port', { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { [plain.port]: { mode: 'DISABLE' } } });
    const m = await mesh([reviews([{ port: plain.port, labels: { ...TLS_ISTIO, app: 'reviews' } }]), wl]);
    assert.equal(await (await m.fetch(`http://${HOST}:9080/pa`)).text(), 'plain');
    assert.match(m.explain({ url: `http://${HOST}:9080/` }).targets[0]?.endpoints[0]?.tls ?? '', /PeerAuthentication default\/reviews-port sets mTLS DISABLE for port/);
    const ns = await mesh([reviews([{ port: plain.port, labels: TLS_ISTIO }]), pa('default', { mtls: { mode: 'DISABLE' } })]);
    assert.equal(await (await ns.fetch(`http://${HOST}:9080/pa-ns`)).text(), 'plain');
  });

  it('enableAutoMtls: false keeps a labelled endpoint plaintext', async () => {
    const m = await mesh([reviews([{ port: plain.port, labels: TLS_ISTIO }])], { enableAutoMtls: false });
    assert.equal(await (await m.fetch(`http://${HOST}:9080/auto-off`)).text(), 'plain');
  });

  it('DestinationRule DISABLE beats auto-mTLS', async () => {
    const m = await mesh([reviews([{ port: plain.port, labels: TLS_ISTIO }]), dr({ trafficPolicy: { tls: { mode: 'DISABLE' } } })]);
    assert.equal(await (await m.fetch(`http://${HOST}:9080/dr-disable`)).text(), 'plain');
  });

  it('a mesh without credentials calls a labelled endpoint in plaintext; an explicit ISTIO_MUTUAL fails closed', async () => {
    const m = await mesh([reviews([{ port: plain.port, labels: TLS_ISTIO }])], { credentials: false });
    assert.equal(await (await m.fetch(`http://${HOST}:9080/no-creds`)).text(), 'plain');
    const hits = plain.hits;
    const strict = await mesh([reviews([{ port: plain.port }]), dr({ trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } })], { credentials: false });
    const e = await failure(strict, `http://${HOST}:9080/x`);
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    assert.match(e.message, /ISTIO_MUTUAL but this mesh has no workload certificate/);
    assert.equal(plain.hits, hits, 'never sent in plaintext');
  });

  it('ISTIO_MUTUAL (DestinationRule, subset) to an unlabelled endpoint, with the subset in the SNI', async () => {
    const m = await mesh([reviews([{ port: good.port, labels: { version: 'v1' } }]), dr({ subsets: [{ name: 'v1', labels: { version: 'v1' }, trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } }] }), {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: { hosts: [HOST], http: [{ route: [{ destination: { host: HOST, subset: 'v1' } }] }] },
    }]);
    assert.equal((await m.fetch(`http://${HOST}:9080/subset`)).status, 200);
    assert.equal(good.seen.at(-1)?.servername, `outbound_.9080_.v1_.${HOST}`);
  });

  it('a server proving another service identity is refused, naming it and the identities expected', async () => {
    const ratings = await mtlsServer(issueLeaf(ca, { uris: [spiffe('default', 'ratings')] }), 'ratings');
    const m = await mesh([reviews([{ port: ratings.port, labels: TLS_ISTIO }])]);
    const e = await failure(m, `http://${HOST}:9080/wrong-id`);
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    assert.match(e.message, /reset reason: remote connection failure, transport failure reason: TLS error: server identity spiffe:\/\/cluster\.local\/ns\/default\/sa\/ratings is not one of the destination's identities \[spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\]/);
    assert.equal(ratings.seen.length, 0);
  });

  it('ISTIO_MUTUAL with insecureSkipVerify still verifies: an impostor from another CA with another identity is refused', async () => {
    const impostor = await mtlsServer(issueLeaf(other, { uris: [spiffe('attacker', 'x', 'evil.org')] }), 'impostor');
    const m = await mesh([reviews([{ port: impostor.port }]), dr({ trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL', insecureSkipVerify: true } } })]);
    const e = await failure(m, `http://${HOST}:9080/secret`);
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    assert.match(e.message, /signed by an unknown CA/);
    assert.equal(impostor.seen.length, 0, 'the impostor never got the request');
    assert.match(m.explain({ url: `http://${HOST}:9080/` }).targets[0]?.endpoints[0]?.tls ?? '', /server identity one of spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews/);
  });

  it('a server certificate from another CA, an expired one, and another trust domain are refused, each naming why', async () => {
    const stranger = await mtlsServer(issueLeaf(other, { uris: [spiffe('default', 'reviews')] }), 'stranger');
    const expired = await mtlsServer(issueLeaf(ca, { uris: [spiffe('default', 'reviews')], validity: { notBefore: new Date(Date.now() - 86400_000 * 2), notAfter: new Date(Date.now() - 86400_000) } }), 'expired');
    const foreign = await mtlsServer(issueLeaf(ca, { uris: [spiffe('default', 'reviews', 'evil.example')] }), 'foreign');
    const cases: [TlsUpstream, RegExp][] = [
      [stranger, /the server's certificate is signed by an unknown CA: not one of the mesh's trust bundle/],
      [expired, /the server's certificate has expired/],
      [foreign, /server identity spiffe:\/\/evil\.example\/ns\/default\/sa\/reviews is not one of the destination's identities \[spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews\] \(trust domain evil\.example is not cluster\.local\)/],
    ];
    for (const [server, why] of cases) {
      const m = await mesh([reviews([{ port: server.port, labels: TLS_ISTIO }])]);
      const e = await failure(m, `http://${HOST}:9080/refused`);
      assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
      assert.match(e.message, why);
      assert.equal(server.seen.length, 0);
    }
    // A trust-domain alias makes the other domain's identity one of the destination's.
    const aliased = await mesh([reviews([{ port: foreign.port, labels: TLS_ISTIO }])], { trustDomainAliases: ['evil.example'] });
    assert.equal((await aliased.fetch(`http://${HOST}:9080/alias`)).status, 200);
  });

  it('a failed handshake is a connect failure: retried on another endpoint, and counted as UF', async () => {
    const ratings = await mtlsServer(issueLeaf(ca, { uris: [spiffe('default', 'ratings')] }), 'impostor');
    const m = await mesh([reviews([{ port: ratings.port, labels: TLS_ISTIO }, { port: good.port, labels: TLS_ISTIO }]), {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: { hosts: [HOST], http: [{ route: [{ destination: { host: HOST } }], retries: { attempts: 3, retryOn: 'connect-failure' } }] },
    }]);
    for (let i = 0; i < 6; i++) {
      const r = await m.fetch(`http://${HOST}:9080/retry-${i}`);
      assert.equal(r.status, 200);
      assert.equal(await r.text(), 'reviews');
    }
    assert.equal(ratings.seen.length, 0);
  });

  it("HTTP/2 port: Istio's h2 ALPN list; an HTTP/2 server agreeing on h2 is spoken to in HTTP/2", async () => {
    const leaf = issueLeaf(ca, { uris: [spiffe('default', 'reviews')] });
    const seen: { alpn: string | false | null; version: string; sans: string }[] = [];
    const h2 = createSecureServer({ cert: leaf.chainPem, key: leaf.keyPem, ca: ca.rootPem, requestCert: true, rejectUnauthorized: true, allowHTTP1: true }, (req, res) => {
      const sock = req.socket as TLSSocket;
      seen.push({ alpn: sock.alpnProtocol, version: req.httpVersion, sans: sock.getPeerCertificate().subjectaltname ?? '' });
      res.end('h2');
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    try {
      const port = (h2.address() as AddressInfo).port;
      const se = reviews([{ port, labels: TLS_ISTIO }]) as { spec: { ports: { protocol: string }[] } };
      se.spec.ports[0]!.protocol = 'HTTP2';
      const m = await mesh([se]);
      const r = await m.fetch(`http://${HOST}:9080/h2`);
      assert.equal(await r.text(), 'h2');
      assert.deepEqual(seen.map((x) => [x.alpn, x.version]), [['h2', '2.0']]);
      assert.match(seen[0]?.sans ?? '', /sa\/productpage/);
    } finally {
      h2.close();
    }
  });

  it('rotation: new connections present the new certificate at once; a call in flight on the old connection completes', async () => {
    const m = await mesh([reviews([{ port: good.port, labels: TLS_ISTIO }])]);
    assert.equal((await m.fetch(`http://${HOST}:9080/warm`)).status, 200);
    const first = good.seen.at(-1);
    const release = good.hold();
    const inflight = m.fetch(`http://${HOST}:9080/inflight`);
    while (good.seen.at(-1)?.url !== '/inflight') await new Promise((r) => setTimeout(r, 5));
    const next = workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' });
    m.credentials.set(next);
    const r = await m.fetch(`http://${HOST}:9080/after-rotation`);
    assert.equal(r.status, 200);
    const rotated = good.seen.at(-1);
    assert.equal(rotated?.url, '/after-rotation');
    assert.notEqual(rotated?.clientFingerprint, first?.clientFingerprint, 'the new certificate');
    assert.notEqual(rotated?.remotePort, first?.remotePort, 'a new connection');
    release();
    const old = await inflight;
    assert.equal(old.status, 200);
    assert.equal(await old.text(), 'reviews');
  });
});
