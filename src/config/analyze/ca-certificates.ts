/**
 * DestinationRules that originate TLS without a CA to check the server's certificate against
 * (`IST0128` at the destination level, `IST0129` per port), as Istio's `CaCertificateAnalyzer`
 * reports them.
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { Resource } from '../resource.ts';
import type { ClientTLSSettings } from '../types/destination-rule.ts';
import type { Analyzer } from './context.ts';

/**
 * Whether TLS settings originate TLS (SIMPLE or MUTUAL) with nothing to verify the server by: no
 * `caCertificates`, and not a `credentialName` on a rule with a `workloadSelector` (Istio reads
 * the CA from that secret then).
 */
function unverified(tls: ClientTLSSettings | undefined, dr: Resource<'DestinationRule'>): boolean {
  if (tls?.mode !== 'SIMPLE' && tls?.mode !== 'MUTUAL') return false;
  if ((tls.caCertificates ?? '') !== '') return false;
  return !((tls.credentialName ?? '') !== '' && dr.spec.workloadSelector !== undefined);
}

/**
 * `IST0128` NoServerCertificateVerificationDestinationLevel and `IST0129`
 * NoServerCertificateVerificationPortLevel (warnings): TLS mode SIMPLE or MUTUAL in
 * `trafficPolicy.tls` or a `portLevelSettings[].tls` without `caCertificates`.
 */
export const caCertificateAnalyzer: Analyzer = {
  name: 'destinationrule.ca-certificates',
  codes: ['IST0128', 'IST0129'],
  description: 'DestinationRules with TLS mode SIMPLE or MUTUAL set caCertificates to verify the server',
  *analyze(ctx, issues) {
    for (const dr of ctx.destinationRules) {
      yield;
      const policy = dr.spec.trafficPolicy;
      if (unverified(policy?.tls, dr)) {
        const path: FieldPath = ['spec', 'trafficPolicy', 'tls'];
        issues.at(dr, path, 'warning', `tls mode ${policy?.tls?.mode} without caCertificates: the server's certificate is checked against Node's default CA certificates only (its bundled roots, NODE_EXTRA_CA_CERTS), not a CA of this host's own, for host ${dr.spec.host}`, 'IST0128');
      }
      (policy?.portLevelSettings ?? []).forEach((p, i) => {
        if (!unverified(p.tls, dr)) return;
        const path: FieldPath = ['spec', 'trafficPolicy', 'portLevelSettings', i, 'tls'];
        issues.at(dr, path, 'warning', `tls mode ${p.tls?.mode} without caCertificates: the server's certificate is checked against Node's default CA certificates only (its bundled roots, NODE_EXTRA_CA_CERTS), not a CA of this host's own, for host ${dr.spec.host} port ${p.port?.number ?? '?'}`, 'IST0129');
      });
    }
  },
};
