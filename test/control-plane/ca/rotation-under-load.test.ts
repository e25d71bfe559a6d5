/**
 * Rotation under steady load, meshlet to meshlet, everything from the control plane: a server mesh
 * (`mesh.createServer`, STRICT PeerAuthentication) registers itself; a client mesh calls it through
 * `mesh.fetch` (auto-mTLS: the registration carries the tlsMode label) in a steady loop while the
 * root rotates (overlapping bundle pushed), both workloads renew onto the new root, and the old
 * root is finalized away. Not one call may fail, and every call must arrive as the client's SPIFFE
 * identity (STRICT: plaintext would be refused).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../../../src/core/clock.ts';
import { createMesh, type Mesh } from '../../../src/index.ts';
import type { WorkloadCredentials } from '../../../src/security/identity/credentials.ts';
import { startTestControlPlane, type TestControlPlane, until } from '../client-helpers.ts';

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
});

const quiet = { warn: () => undefined, error: () => undefined };
const roots = (c: WorkloadCredentials): string[] => c.trustBundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
const signedBy = (c: WorkloadCredentials, rootPem: string): boolean => {
  const leaf = new X509Certificate(c.certChain);
  const r = new X509Certificate(rootPem);
  return leaf.checkIssued(r) && leaf.verify(r.publicKey);
};
const REVIEWS = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'ServiceEntry',
  metadata: { name: 'reviews', namespace: 'default' },
  spec: { hosts: ['reviews.example'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], workloadSelector: { labels: { app: 'reviews' } } },
};
const STRICT = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'istio-system' }, spec: { mtls: { mode: 'STRICT' } } };

describe('root and workload rotation under steady load', () => {
  it('not one call fails while the root rotates, both workloads renew onto the new root and the old root is dropped', async () => {
    const t: TestControlPlane = await startTestControlPlane({ mesh: [STRICT, REVIEWS] }, { certTtlMs: 120_000 });
    opened.push(t);
    const clock = new ManualClock();
    const common = { controlPlane: t.cp.url, drainMs: 0, clock, logger: quiet, startupTimeoutMs: 10_000 };
    const server: Mesh = await createMesh({ ...common, service: 'reviews', labels: { app: 'reviews' }, serviceAccount: 'reviews', token: await t.cp.mintToken({ service: 'reviews', namespace: 'default', serviceAccount: 'reviews' }) });
    opened.push(server);
    const http = server.createServer((req, res) => res.end((req as { meshlet?: { peer?: { principal: string } } }).meshlet?.peer?.principal ?? 'plaintext'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const reg = await server.register({ ports: { http: (http.address() as AddressInfo).port }, address: '127.0.0.1' });
    opened.push({ close: () => reg.close() });
    const client: Mesh = await createMesh({ ...common, service: 'productpage', serviceAccount: 'productpage', token: await t.cp.mintToken({ service: 'productpage', namespace: 'default', serviceAccount: 'productpage' }) });
    opened.push(client);
    const url = 'http://reviews.example:9080/';
    await until(() => (client.explain({ url }).targets[0]?.endpoints ?? []).length === 1, 'the client to see the registered endpoint');

    let ok = 0;
    const failures: string[] = [];
    let stop = false;
    const loop = async () => {
      while (!stop) {
        try {
          const r = await client.fetch(url);
          const body = await r.text();
          if (r.status === 200 && body === 'spiffe://cluster.local/ns/default/sa/productpage') ok++;
          else failures.push(`${r.status} ${body}`);
        } catch (e) {
          failures.push(String(e));
        }
      }
    };
    const loops = Promise.all([loop(), loop(), loop()]);
    opened.push({
      close: async () => {
        stop = true;
        await loops;
      },
    });
    const more = async (what: string, n = 10) => {
      const from = ok;
      await until(() => ok >= from + n || failures.length > 0, what, 10_000);
      assert.deepEqual(failures, [], what);
    };
    await more('calls over mTLS before the rotation');

    const firstServer = server.credentials.current as WorkloadCredentials;
    const firstClient = client.credentials.current as WorkloadCredentials;
    const oldRoot = roots(firstServer)[0] as string;
    const rotated = await t.cp.ca.rotate({});
    assert.equal(rotated.roots.length, 2);
    await until(() => roots(server.credentials.current as WorkloadCredentials).length === 2 && roots(client.credentials.current as WorkloadCredentials).length === 2, 'both meshes to install the overlapping bundle');
    const newRoot = roots(server.credentials.current as WorkloadCredentials).find((r) => r !== oldRoot) as string;
    await more('calls during the overlap, certificates still from the old root');

    // Both renew at half their lifetime (the manual clock): new keys, certificates from the new root.
    clock.advance(Math.floor((Math.max(firstServer.notAfter, firstClient.notAfter) - Date.now()) / 2) + 3000);
    await until(() => signedBy(server.credentials.current as WorkloadCredentials, newRoot) && signedBy(client.credentials.current as WorkloadCredentials, newRoot), 'both workloads to renew from the new root', 10_000);
    await more('calls with certificates from the new root');

    await t.cp.ca.rotate({ finalize: true });
    await until(
      () => {
        // Moving the manual clock past the renewal timed out the meshes' streams on it; moving it on lets them reconnect.
        clock.advance(200);
        return roots(server.credentials.current as WorkloadCredentials).length === 1 && roots(client.credentials.current as WorkloadCredentials).length === 1;
      },
      'both meshes to drop the old root',
      10_000,
    );
    assert.equal((server.credentials.current as WorkloadCredentials).trustBundle.trim(), newRoot.trim());
    await more('calls after the old root is gone');
    stop = true;
    await loops;
    assert.deepEqual(failures, []);
    assert.ok(ok >= 40, `${ok} calls`);
    assert.ok(server.diagnostics().inboundTls.mtls >= ok && server.diagnostics().inboundTls.plaintext === 0, 'every call arrived over mTLS');
  });
});
