/**
 * Multi-network over real sockets with the east-west gateway given by host name (as an AWS ELB's
 * is): the name is answered by a DNS server the test runs (UDP on 127.0.0.1, asked through
 * `dns.Resolver#setServers`), and its answer moves from one gateway (nginx on 127.0.0.2) to
 * another (nginx on 127.0.0.5, same port) mid-test. Calls go through whichever gateway the name
 * resolves to, with mTLS end to end; a DNS outage keeps the last addresses.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { resolverFor, startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { type SniGateway, startSniGateway } from '../helpers/nginx-gateway.ts';
import { cleanupPki, makeCa, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { until } from '../helpers/until.ts';
import { deadPort } from '../helpers/upstreams.ts';

const REVIEWS = 'reviews.default.svc.cluster.local';
const SNI = `outbound_.9080_._.${REVIEWS}`;
const GW_NAME = 'eastwest.west.mesh.test';
const quiet = { warn: () => undefined, error: () => undefined };

describe('multi-network: the east-west gateway by host name, resolved through a DNS server whose answer changes', { skip: skipWithout('openssl', 'nginx') }, () => {
  let ca: TestCa;
  let server: Mesh;
  let client: Mesh;
  let dns: TestDnsServer;
  let gwA: SniGateway;
  let gwB: SniGateway;
  const clock = new ManualClock();
  const warnings: string[] = [];
  const strict = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'default' }, spec: { mtls: { mode: 'STRICT' } } };

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    const unreachable = await deadPort();
    server = await createMesh({ service: 'reviews', serviceAccount: 'reviews', config: [strict], logger: quiet });
    server.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' }));
    const s = server.createServer((req, res) => res.end((req as { meshlet?: { peer?: { principal?: string } } }).meshlet?.peer?.principal ?? 'plaintext'));
    await new Promise<void>((r) => s.listen(0, '127.0.0.2', r));
    const at = `127.0.0.2:${(s.address() as AddressInfo).port}`;
    gwA = await startSniGateway('127.0.0.2', { [SNI]: at });
    gwB = await startSniGateway('127.0.0.5', { [SNI]: at }, gwA.port);
    dns = await startDnsServer();
    dns.set(GW_NAME, ['127.0.0.2'], 30);
    const entry = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: { hosts: [REVIEWS], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.3', ports: { http: unreachable }, serviceAccount: 'reviews', network: 'west', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
    };
    client = await createMesh({
      service: 'productpage',
      serviceAccount: 'productpage',
      network: 'east',
      meshNetworks: { networks: { west: { gateways: [{ address: GW_NAME, port: gwA.port }] } } },
      config: [entry, strict],
      errors: 'throw',
      clock,
      dns: { resolve: resolverFor(dns.server) },
      logger: { warn: (m) => warnings.push(m) },
    });
    client.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
  });
  after(async () => {
    await client?.close();
    await server?.close();
    await gwA?.stop();
    await gwB?.stop();
    await dns?.close();
    cleanupPki();
  });

  const gatewayOf = () => client.explain({ url: `http://${REVIEWS}:9080/` }).targets[0]?.endpoints.map((e) => e.endpoint) ?? [];
  const call = async () => (await client.fetch(`http://${REVIEWS}:9080/`)).text();

  it('calls go through the gateway the name resolves to, and move with its answer; a DNS outage keeps the last address', async () => {
    assert.deepEqual(dns.asked.slice(0, 2).sort(), [`${GW_NAME}/A`, `${GW_NAME}/AAAA`]);
    assert.deepEqual(gatewayOf(), [`127.0.0.2:${gwA.port}`]);
    assert.match(String(client.explain({ url: `http://${REVIEWS}:9080/` })), new RegExp(`via: east-west gateway of network west \\(meshNetworks networks\\.west\\.gateways\\[0\\], host name ${GW_NAME.replaceAll('.', '\\.')}\\)`));
    assert.equal(await call(), 'spiffe://cluster.local/ns/default/sa/productpage');
    const version = client.snapshot.version;

    // The name now points at the other gateway: after the TTL the mesh resolves it again and moves.
    dns.set(GW_NAME, ['127.0.0.5'], 30);
    clock.advance(30_000);
    await until(() => gatewayOf()[0] === `127.0.0.5:${gwA.port}`, 'the new gateway address');
    assert.equal(client.snapshot.version, version);
    assert.equal(await call(), 'spiffe://cluster.local/ns/default/sa/productpage');

    // The DNS server fails: the last address stays (istiod keeps it), the failure is logged once.
    dns.fail(true);
    const asked = dns.asked.length;
    clock.advance(30_000);
    await until(() => dns.asked.length >= asked + 2 && warnings.some((w) => w.includes('could not resolve')), 'the failed refresh');
    assert.deepEqual(gatewayOf(), [`127.0.0.5:${gwA.port}`]);
    assert.match(warnings.find((w) => w.includes('could not resolve')) ?? '', /could not resolve east-west gateway host name "eastwest\.west\.mesh\.test": .*ESERVFAIL.*; keeping its last addresses 127\.0\.0\.5/);
    assert.equal(await call(), 'spiffe://cluster.local/ns/default/sa/productpage');
    // Each gateway carried calls (nginx logs a session when its connection ends: close the client).
    await client.close();
    assert.match(await gwA.sessionEnded(SNI), /^outbound_\.9080_\._\.reviews\S+ 127\.0\.0\.2:\d+$/);
    assert.match(await gwB.sessionEnded(SNI), /^outbound_\.9080_\._\.reviews\S+ 127\.0\.0\.2:\d+$/);
  });
});
