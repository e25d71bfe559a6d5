/**
 * Istio's egress for an external HTTPS API declares the port `protocol: TLS` (the "HTTPS
 * passthrough" ServiceEntry): the app speaks TLS itself and the sidecar proxies it, by SNI, to
 * the ServiceEntry's endpoints — under `REGISTRY_ONLY` too, since the host is in the registry.
 * meshlet routes a TLS port as it routes an HTTPS one: an `https://` call reaches the service's
 * endpoints with the app's TLS to the service's host. Before, a TLS port got no route: the call
 * passed through to the URL's address under ALLOW_ANY and was refused (502, BlackHoleCluster)
 * under REGISTRY_ONLY.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { CallEndMessage } from '../../src/core/observe.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, type TestCa } from '../helpers/pki.ts';
import { startTlsUpstream, type TlsUpstream } from '../helpers/tls-upstreams.ts';
import { skipWithout } from '../helpers/tools.ts';

const HOST = 'api.example.test';

function tlsService(port: number): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'api', namespace: 'default' },
    spec: { hosts: [HOST], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: 443, name: 'tls', protocol: 'TLS', targetPort: port }], endpoints: [{ address: '127.0.0.1' }] },
  };
}

describe('a ServiceEntry TLS port (HTTPS passthrough egress)', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let server: TlsUpstream;
  const meshes: Mesh[] = [];
  const defaults = getCACertificates('default');

  const ends: CallEndMessage[] = [];
  const onEnd = (m: unknown): void => void ends.push(m as CallEndMessage);

  async function mesh(outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY'): Promise<Mesh> {
    const m = await createMesh({ service: 'client', config: [tlsService(server.port)], outboundTrafficPolicy, logger: { warn: () => {} } });
    meshes.push(m);
    return m;
  }

  before(async () => {
    ca = makeCa({ name: 'tls-port-ca' });
    const leaf = issueLeaf(ca, { dns: [HOST] });
    server = await startTlsUpstream({ cert: leaf.chainPem, key: leaf.keyPem, name: 'api' });
    // The app's own TLS is verified against Node's default CAs: the test CA is one of them here.
    setDefaultCACertificates([...defaults, ca.rootPem]);
    subscribe('meshlet:call:end', onEnd);
  });
  after(async () => {
    unsubscribe('meshlet:call:end', onEnd);
    setDefaultCACertificates(defaults);
    await Promise.all(meshes.map((m) => m.close()));
    await server.close();
    cleanupPki();
  });

  for (const policy of ['REGISTRY_ONLY', 'ALLOW_ANY'] as const) {
    it(`${policy}: an https:// call reaches the ServiceEntry's endpoint over one TLS layer, SNI the host, as the service's cluster`, async () => {
      const m = await mesh(policy);
      const seen = server.seen.length;
      const r = await m.fetch(`https://${HOST}/v1/things`);
      assert.equal(r.status, 200);
      assert.equal(await r.text(), 'api');
      assert.equal(server.seen.length, seen + 1);
      assert.equal(server.seen.at(-1)?.url, '/v1/things');
      assert.equal(server.seen.at(-1)?.servername, HOST);
      assert.equal(ends.at(-1)?.cluster, `outbound|443||${HOST}`);
    });
  }
});
