/**
 * DestinationRule TLS origination (SIMPLE, MUTUAL) against real node:https servers with their
 * own openssl-made CA: an `http://` call to a cluster with `tls` goes out as TLS, verified as
 * the rule says, and every refusal names why; TLS settings that cannot be used fail the call,
 * never sending it in plaintext.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createMesh, isMeshletError, type Mesh } from '../../src/index.ts';
import { keepAliveCalls } from '../helpers/keepalive.ts';
import { cleanupPki, issueLeaf, makeCa, type TestCa, type TestLeaf } from '../helpers/pki.ts';
import { startTlsUpstream, type TlsUpstream, failure } from '../helpers/tls-upstreams.ts';
import { skipWithout } from '../helpers/tools.ts';
import { startUpstream, type Upstream } from '../helpers/upstreams.ts';

const HOST = 'api.example.test';

function externalService(port: number, extra: Record<string, unknown> = {}): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'api', namespace: 'default' },
    spec: { hosts: [HOST], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: port }], endpoints: [{ address: '127.0.0.1' }], ...extra },
  };
}

function rule(tls: Record<string, unknown>, name = 'api-tls'): object {
  return { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace: 'default' }, spec: { host: HOST, trafficPolicy: { tls } } };
}

describe('DestinationRule TLS origination', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let other: TestCa;
  let serverLeaf: TestLeaf;
  let server: TlsUpstream;
  let mtlsServer: TlsUpstream;
  let clientLeaf: TestLeaf;
  let strangerLeaf: TestLeaf;
  const meshes: Mesh[] = [];
  const warnings: string[] = [];

  async function mesh(config: object[]): Promise<Mesh> {
    const m = await createMesh({ service: 'client', errors: 'throw', config, logger: { warn: (s) => warnings.push(s), error: (s) => warnings.push(s) } });
    meshes.push(m);
    return m;
  }

  before(async () => {
    ca = makeCa({ name: 'origination-ca' });
    other = makeCa({ name: 'other-ca' });
    serverLeaf = issueLeaf(ca, { dns: [HOST, 'alt.example.test'] });
    clientLeaf = issueLeaf(ca, { dns: ['client.example.test'] });
    strangerLeaf = issueLeaf(other, { dns: ['client.example.test'] });
    server = await startTlsUpstream({ cert: serverLeaf.chainPem, key: serverLeaf.keyPem, name: 'simple' });
    mtlsServer = await startTlsUpstream({ cert: serverLeaf.chainPem, key: serverLeaf.keyPem, ca: ca.rootPem, requestCert: true, name: 'mutual' });
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await server.close();
    await mtlsServer.close();
    cleanupPki();
  });

  it('SIMPLE with caCertificates: an http:// call goes out as TLS, SNI the host, the name checked', async () => {
    const m = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: ca.certFile })]);
    const before = server.seen.length;
    const r = await m.fetch(`http://${HOST}/simple`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'simple');
    const s = server.seen.at(-1);
    assert.equal(server.seen.length, before + 1);
    assert.equal(s?.url, '/simple');
    assert.equal(s?.servername, HOST);
    assert.equal(s?.alpn, 'http/1.1');
  });

  it('SIMPLE with tcpKeepalive: the TLS connection has the rule\'s keepalive idle time (undici\'s 60 s without it)', async () => {
    const withRule = (tcp?: object) => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'api-tls', namespace: 'default' }, spec: { host: HOST, trafficPolicy: { tls: { mode: 'SIMPLE', caCertificates: ca.certFile }, ...(tcp === undefined ? {} : { connectionPool: { tcp } }) } } });
    for (const [tcp, want] of [[{ tcpKeepalive: { time: '20s' } }, 20_000], [undefined, 60_000]] as const) {
      const m = await mesh([externalService(server.port), withRule(tcp)]);
      const calls = await keepAliveCalls(async () => {
        const r = await m.fetch(`http://${HOST}/kept`);
        assert.equal(await r.text(), 'simple');
      });
      const delays = calls.map((c) => c[1]);
      assert.deepEqual(delays, [want]);
    }
  });

  it('SIMPLE refuses a server whose CA is not caCertificates, naming why; nothing reaches the server', async () => {
    const m = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: other.certFile })]);
    const before = server.seen.length;
    const e = await failure(m, `http://${HOST}/wrong-ca`);
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    assert.match(e.message, /transport failure reason: TLS error: the server's certificate is signed by an unknown CA: not one of caCertificates .*other-ca|caCertificates \S+ca\.crt/);
    assert.ok((e as { flags?: string }).flags?.split(',').includes('UF'));
    assert.equal(server.seen.length, before);
    // errors: 'respond' (the default): the 503 a sidecar sends, flag UF, the reason in the body.
    const respond = await createMesh({ service: 'client', config: [externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: other.certFile })], logger: { warn: () => undefined, error: () => undefined } });
    meshes.push(respond);
    const r = await respond.fetch(`http://${HOST}/wrong-ca`);
    assert.equal(r.status, 503);
    assert.match(r.headers.get('x-meshlet-response-flags') ?? '', /(^|,)UF(,|$)/);
    assert.match(await r.text(), /^upstream connect error or disconnect\/reset before headers\. (retried and the latest )?reset reason: remote connection failure, transport failure reason: TLS error: the server's certificate is signed by an unknown CA/);
  });

  it('SIMPLE without caCertificates verifies against Node\'s root CAs (a private CA is refused)', async () => {
    const m = await mesh([externalService(server.port), rule({ mode: 'SIMPLE' })]);
    const e = await failure(m, `http://${HOST}/system-roots`);
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    assert.match(e.message, /unknown CA: not one of Node's default CA certificates \(no caCertificates\)/);
  });

  it("SIMPLE without caCertificates trusts a CA added to Node's default CA certificates (NODE_EXTRA_CA_CERTS, --use-system-ca)", async () => {
    const defaults = getCACertificates('default');
    setDefaultCACertificates([...defaults, ca.rootPem]);
    try {
      const m = await mesh([externalService(server.port), rule({ mode: 'SIMPLE' })]);
      const r = await m.fetch(`http://${HOST}/extra-roots`);
      assert.equal(r.status, 200);
      assert.equal(server.seen.at(-1)?.url, '/extra-roots');
    } finally {
      setDefaultCACertificates(defaults);
    }
  });

  // Istio sets Envoy's auto_sni and auto_san_validation when the rule has no sni (cluster_tls.go
  // setAutoSniAndAutoSanValidation): the SNI is the upstream request's Host — after a
  // VirtualService's rewrite.authority, port dropped — and the certificate must name it.
  it('SIMPLE without sni: the SNI and the name checked follow the Host the call goes out with (rewrite.authority), as Envoy auto_sni', async () => {
    const vs = (authority: string) => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'api', namespace: 'default' },
      spec: { hosts: [HOST], http: [{ rewrite: { authority }, route: [{ destination: { host: HOST } }] }] },
    });
    const m = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: ca.certFile }), vs('alt.example.test:8443')]);
    const r = await m.fetch(`http://${HOST}/rewritten`);
    assert.equal(r.status, 200);
    assert.deepEqual([server.seen.at(-1)?.url, server.seen.at(-1)?.servername], ['/rewritten', 'alt.example.test']);
    // A Host the certificate does not name is refused, naming it (the service's own name would have passed).
    const bad = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: ca.certFile }, 'api-tls-2'), vs('other.example.test')]);
    const before = server.seen.length;
    const e = await failure(bad, `http://${HOST}/not-named`);
    assert.match(e.message, /certificate does not name other\.example\.test/);
    assert.equal(server.seen.length, before);
    // An explicit sni stays what the rule says, whatever the Host.
    const fixed = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: ca.certFile, sni: HOST }, 'api-tls-3'), vs('other.example.test')]);
    assert.equal((await fixed.fetch(`http://${HOST}/fixed`)).status, 200);
    assert.equal(server.seen.at(-1)?.servername, HOST);
  });

  it('SIMPLE without sni, two routes naming two Hosts in turns: one connection per SNI kept alive, as Envoy keeps a pool per SNI (the undici pool gives a call a connection named for its SNI)', async () => {
    const vs = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'api', namespace: 'default' },
      spec: { hosts: [HOST], http: [{ match: [{ uri: { prefix: '/alt' } }], rewrite: { authority: 'alt.example.test' }, route: [{ destination: { host: HOST } }] }, { route: [{ destination: { host: HOST } }] }] },
    };
    const m = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: ca.certFile }, 'api-tls-turns'), vs]);
    const before = server.seen.length;
    for (let i = 0; i < 6; i++) {
      const r = await m.fetch(`http://${HOST}/${i % 2 === 0 ? 'alt' : 'own'}/${i}`);
      assert.equal(r.status, 200);
      await r.text();
    }
    const seen = server.seen.slice(before);
    assert.deepEqual(
      seen.map((s) => s.servername),
      ['alt.example.test', HOST, 'alt.example.test', HOST, 'alt.example.test', HOST],
    );
    const connections = (name: string) => new Set(seen.filter((s) => s.servername === name).map((s) => s.remotePort)).size;
    assert.deepEqual([connections('alt.example.test'), connections(HOST)], [1, 1]);
  });

  it('SIMPLE with subjectAltNames checks them instead of the host name', async () => {
    const good = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: ca.certFile, subjectAltNames: ['alt.example.test'] })]);
    assert.equal((await good.fetch(`http://${HOST}/sans`)).status, 200);
    const bad = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: ca.certFile, subjectAltNames: ['nope.example.test'] })]);
    const e = await failure(bad, `http://${HOST}/sans-bad`);
    assert.match(e.message, /names none of the subjectAltNames \[nope\.example\.test\] \(it has \[api\.example\.test, alt\.example\.test\]\)/);
  });

  it('SIMPLE with sni sends it (and, as Istio, checks only the chain when no subjectAltNames are given)', async () => {
    const m = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', caCertificates: ca.certFile, sni: 'sni.example.test' })]);
    const r = await m.fetch(`http://${HOST}/sni`);
    assert.equal(r.status, 200);
    assert.equal(server.seen.at(-1)?.servername, 'sni.example.test');
  });

  it('SIMPLE with a certificate that does not name the host is refused (no sni, no SANs: the host is checked)', async () => {
    const m = await mesh([
      { ...(externalService(server.port) as { spec: object }), metadata: { name: 'other', namespace: 'default' }, spec: { ...(externalService(server.port) as { spec: Record<string, unknown> }).spec, hosts: ['other.example.test'] } },
      { ...(rule({ mode: 'SIMPLE', caCertificates: ca.certFile }) as { spec: object }), spec: { host: 'other.example.test', trafficPolicy: { tls: { mode: 'SIMPLE', caCertificates: ca.certFile } } } },
    ]);
    const e = await failure(m, 'http://other.example.test/');
    assert.match(e.message, /the server's certificate does not name other\.example\.test/);
  });

  it('SIMPLE with insecureSkipVerify connects to a server no CA vouches for', async () => {
    const m = await mesh([externalService(server.port), rule({ mode: 'SIMPLE', insecureSkipVerify: true })]);
    assert.equal((await m.fetch(`http://${HOST}/skip`)).status, 200);
  });

  it('MUTUAL presents the rule\'s client certificate to a server that requires one', async () => {
    const m = await mesh([externalService(mtlsServer.port), rule({ mode: 'MUTUAL', caCertificates: ca.certFile, clientCertificate: clientLeaf.chainFile, privateKey: clientLeaf.keyFile })]);
    const r = await m.fetch(`http://${HOST}/mutual`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'mutual');
    assert.match(mtlsServer.seen.at(-1)?.clientSans ?? '', /DNS:client\.example\.test/);
  });

  it('MUTUAL with a client certificate the server does not trust: refused, naming why; nothing is served', async () => {
    const m = await mesh([externalService(mtlsServer.port), rule({ mode: 'MUTUAL', caCertificates: ca.certFile, clientCertificate: strangerLeaf.chainFile, privateKey: strangerLeaf.keyFile })]);
    const before = mtlsServer.seen.length;
    const refusedBefore = mtlsServer.refused.length;
    const e = await failure(m, `http://${HOST}/stranger`);
    // A Node server (requestCert + rejectUnauthorized) closes a TLS 1.3 connection after the
    // handshake without an alert: nothing was read, so it is reported as the refusal it is.
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    assert.match(e.message, /it refused this workload's certificate/);
    assert.equal(mtlsServer.seen.length, before);
    assert.ok(mtlsServer.refused.length > refusedBefore, 'the server refused the handshake');
  });

  it('an unreadable file is a finding naming the rule, field and file, and the cluster fails closed', async () => {
    const missing = join(ca.dir, 'missing.pem');
    const notPem = join(ca.dir, 'not-pem.txt');
    writeFileSync(notPem, 'hello');
    const plain: Upstream = await startUpstream('plain');
    try {
      warnings.length = 0;
      const m = await mesh([externalService(plain.port), rule({ mode: 'MUTUAL', caCertificates: missing, clientCertificate: notPem, privateKey: clientLeaf.keyFile })]);
      const e = await failure(m, `http://${HOST}/missing`);
      assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
      assert.match(e.message, /DestinationRule default\/api-tls tls\.caCertificates: cannot read \S+missing\.pem: no such file/);
      assert.equal(plain.hits, 0, 'never sent in plaintext');
      await new Promise((r) => setImmediate(r));
      const text = warnings.join('\n');
      assert.match(text, /DestinationRule default\/api-tls: spec\.trafficPolicy\.tls\.caCertificates: cannot read \S+missing\.pem: no such file/);
      assert.match(text, /spec\.trafficPolicy\.tls\.clientCertificate: \S+not-pem\.txt holds no PEM CERTIFICATE/);
    } finally {
      await plain.close();
    }
  });

  it('a client certificate and a key that do not belong together: a finding and a failed call, both naming the files, never in plaintext', async () => {
    warnings.length = 0;
    const m = await mesh([externalService(mtlsServer.port), rule({ mode: 'MUTUAL', caCertificates: ca.certFile, clientCertificate: clientLeaf.chainFile, privateKey: strangerLeaf.keyFile }, 'mismatch')]);
    const before = mtlsServer.seen.length;
    const e = await failure(m, `http://${HOST}/mismatch`);
    assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
    const why = `the private key in ${strangerLeaf.keyFile} does not match the certificate in ${clientLeaf.chainFile}`;
    assert.ok(e.message.includes(`DestinationRule default/mismatch tls: ${why}`), e.message);
    assert.equal(mtlsServer.seen.length, before);
    await new Promise((r) => setImmediate(r));
    const text = warnings.join('\n');
    assert.ok(text.includes(`DestinationRule default/mismatch: spec.trafficPolicy.tls.privateKey: ${why}`), text);
  });

  it('credentialName cannot be resolved: the call fails, never in plaintext', async () => {
    const plain = await startUpstream('plain');
    try {
      const m = await mesh([externalService(plain.port), rule({ mode: 'SIMPLE', credentialName: 'api-cred' })]);
      const e = await failure(m, `http://${HOST}/cred`);
      assert.ok(isMeshletError(e, 'MESHLET_ERR_UPSTREAM_TLS'), String(e));
      assert.match(e.message, /credentialName "api-cred" cannot be resolved/);
      // An https:// URL does not fall back to the app's own TLS (Node's roots, no client certificate) either.
      const s = await failure(m, `https://${HOST}/cred`);
      assert.ok(isMeshletError(s, 'MESHLET_ERR_UPSTREAM_TLS'), String(s));
      assert.match(s.message, /credentialName "api-cred" cannot be resolved/);
      assert.equal(plain.hits, 0);
    } finally {
      await plain.close();
    }
  });

  it('a passthrough service (resolution NONE) with SIMPLE: TLS to the original destination, SNI and name the host', async () => {
    const se = { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'api', namespace: 'default' }, spec: { hosts: [HOST], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: server.port, name: 'http', protocol: 'HTTP' }] } };
    const m = await mesh([se, rule({ mode: 'SIMPLE', caCertificates: ca.certFile })]);
    // fetch cannot set Host: undici.request through the mesh's dispatcher can (a forwarding proxy would).
    const r = await request(`http://127.0.0.1:${server.port}/passthrough`, { dispatcher: m.dispatcher, headers: { host: `${HOST}:${server.port}` } });
    assert.equal(r.statusCode, 200);
    await r.body.dump();
    assert.equal(server.seen.at(-1)?.url, '/passthrough');
    assert.equal(server.seen.at(-1)?.servername, HOST);
    const bad = await mesh([se, rule({ mode: 'SIMPLE', caCertificates: other.certFile })]);
    await assert.rejects(request(`http://127.0.0.1:${server.port}/passthrough-bad`, { dispatcher: bad.dispatcher, headers: { host: `${HOST}:${server.port}` } }), /unknown CA/);
  });

  it('DISABLE and a port-level override: plaintext to one port, TLS to another of the same host', async () => {
    const plain = await startUpstream('plain');
    try {
      const se = {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: { name: 'api', namespace: 'default' },
        spec: {
          hosts: [HOST],
          location: 'MESH_EXTERNAL',
          resolution: 'STATIC',
          ports: [
            { number: 80, name: 'http', protocol: 'HTTP', targetPort: plain.port },
            { number: 8443, name: 'http-tls', protocol: 'HTTP', targetPort: server.port },
          ],
          endpoints: [{ address: '127.0.0.1' }],
        },
      };
      const dr = {
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: 'api-ports', namespace: 'default' },
        spec: { host: HOST, trafficPolicy: { tls: { mode: 'DISABLE' }, portLevelSettings: [{ port: { number: 8443 }, tls: { mode: 'SIMPLE', caCertificates: ca.certFile } }] } },
      };
      const m = await mesh([se, dr]);
      assert.equal(await (await m.fetch(`http://${HOST}/`)).text(), 'plain');
      assert.equal(await (await m.fetch(`http://${HOST}:8443/port`)).text(), 'simple');
      assert.equal(server.seen.at(-1)?.url, '/port');
    } finally {
      await plain.close();
    }
  });
});
