import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const findings = (yaml: string): string[] => [...analysisFindings(yaml, 'IST0128'), ...analysisFindings(yaml, 'IST0129')];

/** Istio's db-tls DestinationRule (analyzer testdata) with the given trafficPolicy and extra spec lines. */
function dr(policy: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db-tls}
spec:
  host: mydbserver.prod.svc.cluster.local
  trafficPolicy:
${policy}${extra}`;
}

const SIMPLE = '    tls: {mode: SIMPLE, clientCertificate: /etc/certs/myclientcert.pem, privateKey: /etc/certs/client_private_key.pem}';
const PORT_SIMPLE = '    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: SIMPLE, credentialName: db-credential}';

describe('IST0128/IST0129 TLS origination without caCertificates', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'SIMPLE at the destination level without caCertificates',
      yaml: dr(SIMPLE),
      expect: ["warning spec.trafficPolicy.tls: tls mode SIMPLE without caCertificates: the server's certificate is checked against Node's default CA certificates only (its bundled roots, NODE_EXTRA_CA_CERTS), not a CA of this host's own, for host mydbserver.prod.svc.cluster.local"],
    },
    {
      name: 'MUTUAL at a port without caCertificates',
      yaml: dr('    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}'),
      expect: ["warning spec.trafficPolicy.portLevelSettings[0].tls: tls mode MUTUAL without caCertificates: the server's certificate is checked against Node's default CA certificates only (its bundled roots, NODE_EXTRA_CA_CERTS), not a CA of this host's own, for host mydbserver.prod.svc.cluster.local port 443"],
    },
    {
      name: 'a credentialName without a workloadSelector does not count as a CA',
      yaml: dr(PORT_SIMPLE),
      expect: ["warning spec.trafficPolicy.portLevelSettings[0].tls: tls mode SIMPLE without caCertificates: the server's certificate is checked against Node's default CA certificates only (its bundled roots, NODE_EXTRA_CA_CERTS), not a CA of this host's own, for host mydbserver.prod.svc.cluster.local port 443"],
    },
    { name: 'a credentialName on a rule with a workloadSelector: clean', yaml: dr(PORT_SIMPLE, '\n  workloadSelector: {matchLabels: {app: db}}'), expect: [] },
    { name: 'caCertificates set: clean', yaml: dr('    tls: {mode: SIMPLE, caCertificates: /etc/certs/root.pem}'), expect: [] },
    { name: 'ISTIO_MUTUAL (the mesh CA verifies): clean', yaml: dr('    tls: {mode: ISTIO_MUTUAL}'), expect: [] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(findings(c.yaml), c.expect));
});
