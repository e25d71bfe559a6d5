/**
 * An `https://` call without a DestinationRule `tls` block is the app's own TLS, made by undici's
 * connector with Node's default CAs. A server certificate Node refuses there (unknown CA,
 * expired, another host's) is a TLS failure as a rule's TLS is (tls-origination.md, "Failures"):
 * `MESHLET_ERR_UPSTREAM_TLS`, 503 `UF`, the reason in words, retried as a connect failure by
 * Istio's default retry policy — before, it was `MESHLET_ERR_UPSTREAM_RESET`, `UC`, "connection
 * termination", which says nothing of a certificate. The same for a host outside the registry
 * (ALLOW_ANY passthrough).
 */
import assert from 'node:assert/strict';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createMesh, isMeshletError, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, type TestCa } from '../helpers/pki.ts';
import { failure, startTlsUpstream, type TlsUpstream } from '../helpers/tls-upstreams.ts';
import { skipWithout } from '../helpers/tools.ts';

const HOST = 'api.example.test';

function httpsService(port: number): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'api', namespace: 'default' },
    spec: { hosts: [HOST], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: 443, name: 'https', protocol: 'HTTPS', targetPort: port }], endpoints: [{ address: '127.0.0.1' }] },
  };
}

describe("the app's own https:// refused by Node's certificate checks is a TLS failure", { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let good: TlsUpstream;
  let expired: TlsUpstream;
  let otherHost: TlsUpstream;
  const meshes: Mesh[] = [];
  const defaults = getCACertificates('default');

  async function mesh(config: object[]): Promise<Mesh> {
    const m = await createMesh({ service: 'client', errors: 'throw', config, logger: { warn: () => {} } });
    meshes.push(m);
    return m;
  }
  /** Node's default CAs, with the test CA among them or not (undici's connector uses the default store). */
  function trustTestCa(yes: boolean): void {
    setDefaultCACertificates(yes ? [...defaults, ca.rootPem] : defaults);
  }

  before(async () => {
    ca = makeCa({ name: 'app-tls-ca' });
    const leaf = issueLeaf(ca, { dns: [HOST], ips: ['127.0.0.1'] });
    const old = issueLeaf(ca, { dns: [HOST], ips: ['127.0.0.1'], validity: { notBefore: new Date(Date.UTC(2020, 0, 1)), notAfter: new Date(Date.UTC(2020, 1, 1)) } });
    const wrong = issueLeaf(ca, { dns: ['elsewhere.example.test'] });
    good = await startTlsUpstream({ cert: leaf.chainPem, key: leaf.keyPem, name: 'good' });
    expired = await startTlsUpstream({ cert: old.chainPem, key: old.keyPem, name: 'expired' });
    otherHost = await startTlsUpstream({ cert: wrong.chainPem, key: wrong.keyPem, name: 'other' });
  });
  after(async () => {
    setDefaultCACertificates(defaults);
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all([good.close(), expired.close(), otherHost.close()]);
    cleanupPki();
  });

  it('an unknown CA: MESHLET_ERR_UPSTREAM_TLS, UF, retried as a connect failure, saying which roots', async () => {
    trustTestCa(false);
    const m = await mesh([httpsService(good.port)]);
    const err = await failure(m, `https://${HOST}/`);
    assert.ok(isMeshletError(err), String(err));
    assert.equal(err.code, 'MESHLET_ERR_UPSTREAM_TLS', err.message);
    assert.equal(err.flags, 'URX,UF');
    assert.match(err.message, /retried and the latest reset reason: remote connection failure, transport failure reason: TLS error: the server's certificate is signed by an unknown CA: not one of Node's default CA certificates \(an https:\/\/ call without a DestinationRule tls block\) \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)$/);
    assert.equal(good.seen.length, 0);
  });

  it('an expired certificate says it has expired', async () => {
    trustTestCa(true);
    const m = await mesh([httpsService(expired.port)]);
    const err = await failure(m, `https://${HOST}/`);
    assert.ok(isMeshletError(err), String(err));
    assert.equal(err.code, 'MESHLET_ERR_UPSTREAM_TLS', err.message);
    assert.match(err.message, /transport failure reason: TLS error: the server's certificate has expired \(CERT_HAS_EXPIRED\)$/);
  });

  it("another host's certificate says which name is missing", async () => {
    trustTestCa(true);
    const m = await mesh([httpsService(otherHost.port)]);
    const err = await failure(m, `https://${HOST}/`);
    assert.ok(isMeshletError(err), String(err));
    assert.equal(err.code, 'MESHLET_ERR_UPSTREAM_TLS', err.message);
    assert.match(err.message, /TLS error: the server's certificate does not name api\.example\.test: .*elsewhere\.example\.test/);
  });

  it('a trusted certificate that names the host is used (the control)', async () => {
    trustTestCa(true);
    const m = await mesh([httpsService(good.port)]);
    const r = await m.fetch(`https://${HOST}/ok`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'good');
  });

  it('a host outside the registry (ALLOW_ANY passthrough): the same TLS failure, sent once', async () => {
    trustTestCa(false);
    const m = await mesh([]);
    const err = await failure(m, `https://127.0.0.1:${good.port}/`);
    assert.ok(isMeshletError(err), String(err));
    assert.equal(err.code, 'MESHLET_ERR_UPSTREAM_TLS', err.message);
    assert.equal(err.flags, 'UF');
    assert.match(err.message, /reset reason: remote connection failure, transport failure reason: TLS error: the server's certificate is signed by an unknown CA/);
  });
});
