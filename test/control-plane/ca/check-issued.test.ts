/**
 * What a mesh checks in the control plane's answer before installing it: the certificate is for
 * its own key, names the SPIFFE ID the answer says, and chains to a root of the bundle.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkIssued } from '../../../src/control-plane/identity.ts';
import type { CertificateResponse } from '../../../src/control-plane/protocol.ts';
import { CertificateAuthority, createCsr, generateKeyPair } from '../../../src/security/pki/index.ts';

const ID = 'spiffe://cluster.local/ns/default/sa/reviews';

describe('checkIssued', async () => {
  const root = await CertificateAuthority.createRoot({ trustDomain: 'cluster.local' });
  const other = await CertificateAuthority.createRoot({ trustDomain: 'cluster.local' });
  const keys = generateKeyPair();
  const csr = await createCsr(keys, { spiffeId: ID });
  const good = await root.sign(csr, { spiffeId: ID, ttlMs: 3600_000 });
  const answer = (o: Partial<CertificateResponse> = {}): CertificateResponse => ({
    spiffeId: ID,
    certChain: good.certChainPem,
    trustBundle: [root.rootPem],
    trustBundleVersion: 'v',
    notBefore: good.notBefore,
    notAfter: good.notAfter,
    ...o,
  });

  it('accepts a certificate for its key that chains to the bundle (also when the bundle holds two roots)', () => {
    assert.equal(checkIssued(answer(), keys.privateKeyPem).leaf.subjectAltName, `URI:${ID}`);
    assert.ok(checkIssued(answer({ trustBundle: [other.rootPem, root.rootPem] }), keys.privateKeyPem));
  });

  it('refuses, saying why', async () => {
    const someoneElse = generateKeyPair();
    const cases: [string, unknown, string, RegExp][] = [
      ['not a response', { ok: true }, keys.privateKeyPem, /not a certificate response/],
      ['no certificate', answer({ certChain: '' }), keys.privateKeyPem, /holds no certificate/],
      ['no bundle', answer({ trustBundle: [] }), keys.privateKeyPem, /holds no trust bundle/],
      ["another workload's key", answer(), someoneElse.privateKeyPem, /not for this workload's key/],
      ['another identity than it says', answer({ spiffeId: 'spiffe://cluster.local/ns/default/sa/other' }), keys.privateKeyPem, /does not name spiffe:\/\/cluster\.local\/ns\/default\/sa\/other/],
      ['a root it does not chain to', answer({ trustBundle: [other.rootPem] }), keys.privateKeyPem, /does not chain to a root of the trust bundle/],
    ];
    for (const [what, res, key, message] of cases) assert.throws(() => checkIssued(res as CertificateResponse, key), message, what);
  });
});
