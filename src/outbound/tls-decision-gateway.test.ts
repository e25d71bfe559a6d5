/**
 * The TLS of an east-west gateway endpoint (multi-network): Istio mTLS with the destination's SNI
 * and identities, and never plaintext — a cluster whose calls would be plaintext, or a mesh
 * without a certificate, fails the call instead of sending it through the gateway in the clear.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AnyResource } from '../config/resource.ts';
import { compileSnapshot } from '../routing/compile.ts';
import type { Cluster } from '../routing/route-table.ts';
import { ClusterTlsPlanner } from './tls-decision.ts';

const HOST = 'reviews.shop.svc.cluster.local';
const se = (location = 'MESH_INTERNAL') =>
  ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'reviews', namespace: 'shop' },
    spec: { hosts: [HOST], location, resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '10.2.0.1', network: 'west', serviceAccount: 'reviews', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
  }) as unknown as AnyResource;

function gatewayDecision(resources: AnyResource[], o: { hasIdentity?: boolean; identityPending?: boolean; enableAutoMtls?: boolean } = {}) {
  const snap = compileSnapshot(resources, { service: 'productpage', namespace: 'shop' }, { networks: { network: 'east', meshNetworks: { networks: { west: { gateways: [{ address: '192.0.2.1', port: 15443 }] } } } } });
  snap.routes.route({ method: 'GET', scheme: 'http', authority: `${HOST}:9080`, path: '/', headers: {} }, 0);
  const cluster = snap.clusters.get(`outbound|9080||${HOST}`) as Cluster;
  const gw = cluster.endpoints[0];
  assert.equal(gw?.gateway?.network, 'west');
  const planner = new ClusterTlsPlanner(cluster, { resources, rootNamespace: 'istio-system', trustDomain: 'cluster.local', trustDomainAliases: [], enableAutoMtls: o.enableAutoMtls ?? true, hasIdentity: o.hasIdentity ?? true, identityPending: o.identityPending });
  return planner.decide(gw);
}

describe('TLS to an east-west gateway endpoint', () => {
  it("auto-mTLS: ISTIO_MUTUAL, the destination's SNI and identities, the why naming the gateway", () => {
    const d = gatewayDecision([se()]);
    assert.equal(d.mode, 'ISTIO_MUTUAL');
    assert.equal(d.failure, undefined);
    assert.equal(d.sni, `outbound_.9080_._.${HOST}`);
    assert.deepEqual(d.identities, ['spiffe://cluster.local/ns/shop/sa/reviews']);
    assert.match(d.why, /^auto-mTLS: endpoint 192\.0\.2\.1:15443 is the east-west gateway of network west \(meshNetworks networks\.west\.gateways\[0\]\) for 10\.2\.0\.1:9080/);
  });

  it('DestinationRule ISTIO_MUTUAL: that decision, naming the gateway', () => {
    const dr = { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'shop' }, spec: { host: HOST, trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } } } as unknown as AnyResource;
    const d = gatewayDecision([se(), dr]);
    assert.equal(d.mode, 'ISTIO_MUTUAL');
    assert.match(d.why, /sets tls mode ISTIO_MUTUAL; endpoint 192\.0\.2\.1:15443 is the east-west gateway/);
  });

  it('no certificate: the call fails rather than go through the gateway in plaintext', () => {
    const d = gatewayDecision([se()], { hasIdentity: false });
    assert.match(d.failure ?? '', /which routes only Istio mTLS \(by its SNI\), and this mesh has no workload certificate \(identity 'none'\); the call fails rather than go out in plaintext/);
    assert.match(gatewayDecision([se()], { hasIdentity: false, identityPending: true }).failure ?? '', /certificate has not been issued yet/);
  });

  it('enableAutoMtls off (plaintext for the cluster): the gateway endpoint fails, naming why', () => {
    const d = gatewayDecision([se()], { enableAutoMtls: false });
    assert.match(d.failure ?? '', /which routes only Istio mTLS \(by its SNI\), and calls to this cluster use plaintext \(no DestinationRule tls and enableAutoMtls is off\)/);
  });
});
