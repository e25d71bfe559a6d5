import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateYaml } from '../../test/helpers/config.ts';
import { compileSnapshot } from '../routing/compile.ts';
import type { Cluster } from '../routing/route-table.ts';
import { ClusterTlsPlanner, describeDecision, istioMtlsSni, serviceIdentities } from './tls-decision.ts';

const HOST = 'reviews.shop.svc.cluster.local';

/** reviews in namespace shop: endpoint .1 labelled tlsMode istio (app reviews, sa reviews), .2 unlabelled (sa legacy). */
function se(location = 'MESH_INTERNAL', extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [${HOST}]
  location: ${location}
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, ports: {http: 8080}, serviceAccount: reviews, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}}
  - {address: 10.0.0.2, ports: {http: 8080}, serviceAccount: legacy, labels: {app: reviews, version: v2}}
${extra}`;
}

const pa = (name: string, ns: string, spec: string) => `---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: ${spec}\n`;
const dr = (spec: string) => `---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: shop}\nspec:\n  host: ${HOST}\n${spec}\n`;

function setup(yaml: string, o: { hasIdentity?: boolean; identityPending?: boolean; enableAutoMtls?: boolean; aliases?: string[]; subset?: string } = {}) {
  const { resources, errors } = validateYaml(yaml);
  assert.deepEqual(errors, []);
  const snap = compileSnapshot(resources, { service: 'productpage', namespace: 'shop', labels: {} });
  const name = `outbound|9080|${o.subset ?? ''}|${HOST}`;
  const cluster = snap.clusters.get(name) as Cluster;
  assert.ok(cluster !== undefined, name);
  const planner = new ClusterTlsPlanner(cluster, { resources, rootNamespace: 'istio-system', trustDomain: 'cluster.local', trustDomainAliases: o.aliases ?? [], enableAutoMtls: o.enableAutoMtls ?? true, hasIdentity: o.hasIdentity ?? true, identityPending: o.identityPending });
  const ep = (addr: string) => cluster.endpoints.find((e) => e.address === addr);
  return { cluster, planner, labelled: ep('10.0.0.1'), unlabelled: ep('10.0.0.2') };
}

describe('TLS decision (istiod: buildUpstreamTLSSettings + mtlsChecker)', () => {
  const rows: { name: string; yaml: string; o?: Parameters<typeof setup>[1]; labelled: string; unlabelled: string; why?: RegExp }[] = [
    { name: 'auto-mTLS: the label decides', yaml: se(), labelled: 'ISTIO_MUTUAL', unlabelled: 'DISABLE', why: /auto-mTLS: endpoint 10\.0\.0\.1:8080 is labelled .* and no PeerAuthentication applies to port 8080 \(the default: PERMISSIVE\)$/ },
    { name: 'enableAutoMtls off', yaml: se(), o: { enableAutoMtls: false }, labelled: 'DISABLE', unlabelled: 'DISABLE', why: /enableAutoMtls is off/ },
    { name: 'no credentials: plaintext', yaml: se(), o: { hasIdentity: false }, labelled: 'DISABLE', unlabelled: 'DISABLE', why: /this mesh has no workload certificate, so it calls in plaintext/ },
    { name: 'MESH_EXTERNAL', yaml: se('MESH_EXTERNAL'), labelled: 'DISABLE', unlabelled: 'DISABLE', why: /is MESH_EXTERNAL/ },
    { name: 'namespace PeerAuthentication DISABLE', yaml: se() + pa('default', 'shop', '{mtls: {mode: DISABLE}}'), labelled: 'DISABLE', unlabelled: 'DISABLE', why: /PeerAuthentication shop\/default sets mTLS DISABLE for namespace shop/ },
    { name: 'mesh-wide DISABLE, namespace STRICT: the namespace wins', yaml: se() + pa('mesh', 'istio-system', '{mtls: {mode: DISABLE}}') + pa('default', 'shop', '{mtls: {mode: STRICT}}'), labelled: 'ISTIO_MUTUAL', unlabelled: 'DISABLE' },
    { name: 'mesh-wide DISABLE', yaml: se() + pa('mesh', 'istio-system', '{mtls: {mode: DISABLE}}'), labelled: 'DISABLE', unlabelled: 'DISABLE' },
    { name: 'workload DISABLE for the endpoint port', yaml: se() + pa('r', 'shop', '{selector: {matchLabels: {version: v1}}, mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: DISABLE}}}'), labelled: 'DISABLE', unlabelled: 'DISABLE', why: /PeerAuthentication shop\/r sets mTLS DISABLE for port 8080/ },
    { name: 'workload DISABLE for another port', yaml: se() + pa('r', 'shop', '{selector: {matchLabels: {version: v1}}, mtls: {mode: STRICT}, portLevelMtls: {9999: {mode: DISABLE}}}'), labelled: 'ISTIO_MUTUAL', unlabelled: 'DISABLE' },
    { name: 'workload DISABLE selecting another workload', yaml: se() + pa('r', 'shop', '{selector: {matchLabels: {version: v9}}, mtls: {mode: DISABLE}}'), labelled: 'ISTIO_MUTUAL', unlabelled: 'DISABLE' },
    { name: 'a PeerAuthentication in another namespace does not apply', yaml: se() + pa('default', 'other', '{mtls: {mode: DISABLE}}'), labelled: 'ISTIO_MUTUAL', unlabelled: 'DISABLE' },
    { name: 'DestinationRule DISABLE beats auto-mTLS', yaml: se() + dr('  trafficPolicy: {tls: {mode: DISABLE}}'), labelled: 'DISABLE', unlabelled: 'DISABLE', why: /^DestinationRule shop\/reviews sets tls mode DISABLE$/ },
    { name: 'a tls block without mode is DISABLE', yaml: se() + dr('  trafficPolicy: {tls: {sni: x.example}}'), labelled: 'DISABLE', unlabelled: 'DISABLE' },
    { name: 'DestinationRule ISTIO_MUTUAL to every endpoint, PeerAuthentication DISABLE or not', yaml: se() + pa('default', 'shop', '{mtls: {mode: DISABLE}}') + dr('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}'), labelled: 'ISTIO_MUTUAL', unlabelled: 'ISTIO_MUTUAL' },
    { name: 'port-level SIMPLE overrides top-level DISABLE', yaml: se() + dr('  trafficPolicy:\n    tls: {mode: DISABLE}\n    portLevelSettings: [{port: {number: 9080}, tls: {mode: SIMPLE}}]'), labelled: 'SIMPLE', unlabelled: 'SIMPLE' },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const { planner, labelled, unlabelled } = setup(r.yaml, r.o);
      const a = planner.decide(labelled);
      const b = planner.decide(unlabelled);
      assert.equal(a.mode, r.labelled, a.why);
      assert.equal(b.mode, r.unlabelled, b.why);
      if (r.why !== undefined) assert.match(a.why, r.why);
    });
  }

  it('a subset policy replaces the top-level tls, and the subset is in the SNI', () => {
    const vs = `---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop}\nspec: {hosts: [${HOST}], http: [{route: [{destination: {host: ${HOST}, subset: v2}}]}]}\n`;
    const yaml = se() + dr('  trafficPolicy: {tls: {mode: DISABLE}}\n  subsets:\n  - {name: v2, labels: {version: v2}, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}') + vs;
    const { planner, unlabelled } = setup(yaml, { subset: 'v2' });
    const d = planner.decide(unlabelled);
    assert.equal(d.mode, 'ISTIO_MUTUAL');
    assert.equal(d.sni, `outbound_.9080_.v2_.${HOST}`);
  });

  it('ISTIO_MUTUAL: the rule sni and subjectAltNames win over the computed ones', () => {
    const { planner, labelled } = setup(se() + dr('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: my.sni, subjectAltNames: [spiffe://cluster.local/ns/shop/sa/x]}}'));
    const d = planner.decide(labelled);
    assert.equal(d.sni, 'my.sni');
    assert.deepEqual(d.identities, ['spiffe://cluster.local/ns/shop/sa/x']);
  });

  it('fails closed: ISTIO_MUTUAL without credentials, SIMPLE with credentialName', () => {
    const a = setup(se() + dr('  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}'), { hasIdentity: false });
    assert.match(a.planner.decide(a.labelled).failure ?? '', /ISTIO_MUTUAL but this mesh has no workload certificate/);
    // Auto-mTLS while the certificate is still being issued: the call fails, it does not go out in plaintext.
    const p = setup(se(), { hasIdentity: false, identityPending: true });
    assert.match(p.planner.decide(p.labelled).failure ?? '', /this workload's certificate has not been issued yet .*rather than go out in plaintext/);
    assert.equal(p.planner.decide(p.unlabelled).mode, 'DISABLE', 'an endpoint without a sidecar is still called in plaintext');
    const b = setup(se() + dr('  trafficPolicy: {tls: {mode: SIMPLE, credentialName: cred}}'));
    assert.match(b.planner.decide(b.labelled).failure ?? '', /credentialName "cred" cannot be resolved/);
    assert.match(describeDecision(b.planner.decide(b.labelled)), /calls FAIL/);
  });

  it("identities: every workload's account of the service, a ServiceEntry's subjectAltNames, trust-domain aliases", () => {
    const { cluster } = setup(se('MESH_INTERNAL', '  subjectAltNames: [spiffe://cluster.local/ns/shop/sa/extra, dns.example]'));
    assert.deepEqual(serviceIdentities(cluster, 'cluster.local', []), ['dns.example', 'spiffe://cluster.local/ns/shop/sa/extra', 'spiffe://cluster.local/ns/shop/sa/legacy', 'spiffe://cluster.local/ns/shop/sa/reviews']);
    assert.deepEqual(serviceIdentities(cluster, 'td.new', ['td.old']).filter((s) => s.includes('sa/reviews')), ['spiffe://td.new/ns/shop/sa/reviews', 'spiffe://td.old/ns/shop/sa/reviews']);
  });

  it("Istio's SNI (BuildDNSSrvSubsetKey)", () => {
    assert.equal(istioMtlsSni(9080, undefined, HOST), `outbound_.9080_._.${HOST}`);
    assert.equal(istioMtlsSni(443, 'v1', 'a.b'), 'outbound_.443_.v1_.a.b');
  });
});
