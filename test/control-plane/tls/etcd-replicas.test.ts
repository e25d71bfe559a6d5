/**
 * Two `--tls auto` replicas on one real etcd: each issues its own serving certificate from the
 * shared CA, so the `root-cert.pem` of either data dir verifies both, and one mesh given both
 * URLs reaches whichever it picks; a rotation through one reissues both replicas' certificates
 * from the new root.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { ROOT_CERT_FILE } from '../../../src/control-plane-server/serving-tls.ts';
import { createMesh } from '../../../src/index.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { until } from '../client-helpers.ts';
import { startTestServer, type TestServer } from '../server/helpers.ts';

function served(port: number, ca: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const c = s.getPeerX509Certificate();
      s.end();
      if (c === undefined) reject(new Error('no peer certificate'));
      else resolve(c);
    });
    s.on('error', reject);
  });
}

describe('TLS replicas on etcd', { skip: skipWithout('etcd') }, () => {
  let etcd: EtcdServer;
  const stores: EtcdStores[] = [];
  const servers: TestServer[] = [];
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const s of stores) await s.close();
    await etcd?.stop();
  });

  async function replica(): Promise<TestServer> {
    const st = await openEtcd(etcd.endpoints, { prefix: '/tls-test' });
    stores.push(st);
    const s = await startTestServer(undefined, { store: st.store, registry: st.registry, shared: st.shared, tls: { auto: true } });
    servers.push(s);
    return s;
  }

  it("each replica serves its own certificate from the shared CA; either data dir's root-cert.pem verifies both; a rotation reissues both", async () => {
    const a = await replica();
    const b = await replica();
    const rootA = readFileSync(join(a.dataDir, ROOT_CERT_FILE), 'utf8');
    assert.equal(readFileSync(join(b.dataDir, ROOT_CERT_FILE), 'utf8'), rootA);
    const [ca, cb] = [await served(a.cp.port, rootA), await served(b.cp.port, rootA)];
    assert.notEqual(ca.serialNumber, cb.serialNumber, 'each replica issued its own');
    assert.equal(ca.issuer, cb.issuer);

    const token = await a.cp.mintToken({ service: 'productpage', namespace: 'default' });
    for (const url of [a.url, b.url]) {
      const mesh = await createMesh({ service: 'productpage', controlPlane: url, controlPlaneCa: join(a.dataDir, ROOT_CERT_FILE), token, drainMs: 0, logger: { warn: () => undefined } });
      assert.equal(mesh.diagnostics().identity?.spiffeId, 'spiffe://cluster.local/ns/default/sa/default');
      await mesh.close();
    }

    await a.cp.ca.rotate({});
    const newRoot = () => a.cp.ca.bundle.roots.find((r) => r !== rootA);
    await until(() => b.cp.ca.bundle.roots.length === 2, 'the other replica to pick up the rotation');
    const bundle = a.cp.ca.bundle.roots.join('');
    for (const s of [a, b]) {
      await until(() => s.cp.servingCertificate !== undefined && new X509Certificate(s.cp.servingCertificate.certChain).checkIssued(new X509Certificate(newRoot()!)), `${s.url} to serve a certificate of the new root`);
      const c = await served(s.cp.port, bundle);
      assert.ok(c.verify(new X509Certificate(newRoot()!).publicKey));
    }
  });
});
