import assert from 'node:assert/strict';
import type { TLSSocket } from 'node:tls';
import { describe, it } from 'node:test';
import { CredentialHolder } from '../../security/identity/credentials.ts';
import { InboundTls } from './inbound-tls.ts';

function inboundTls(): InboundTls {
  return new InboundTls(
    { credentials: new CredentialHolder(), workload: { service: 'httpbin', namespace: 'foo', labels: {}, serviceAccount: 'httpbin' }, rootNamespace: 'istio-system', trustDomain: 'cluster.local', warn: () => {} },
    [],
  );
}

const DAY = 86_400_000;
/** Node's form of a certificate date (`Jun  1 00:00:00 2026 GMT`). */
const nodeDate = (ms: number): string => {
  const d = new Date(ms);
  const month = d.toUTCString().slice(8, 11);
  return `${month} ${String(d.getUTCDate()).padStart(2, ' ')} ${d.toISOString().slice(11, 19)} ${d.getUTCFullYear()} GMT`;
};

/** A TLS socket whose handshake verified (or did not verify) the client's certificate as OpenSSL said. */
function socket(authorizationError: string | undefined, validity: [number, number] = [Date.now() - DAY, Date.now() + DAY]): TLSSocket {
  const cert = { subjectaltname: 'URI:spiffe://cluster.local/ns/bar/sa/sleep', ca: false, valid_from: nodeDate(validity[0]), valid_to: nodeDate(validity[1]) };
  return { getPeerCertificate: () => cert, authorized: authorizationError === undefined, authorizationError, remoteAddress: '127.0.0.1' } as unknown as TLSSocket;
}

describe('InboundTls.verifyPeer: why a client certificate is refused', () => {
  const rows: [string, string | undefined, string][] = [
    ['verified', undefined, 'ok'],
    ['expired', 'CERT_HAS_EXPIRED', 'certificate expired (CERT_HAS_EXPIRED)'],
    ['no issuer in the bundle', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unknown CA: the certificate does not chain to the trust bundle (UNABLE_TO_VERIFY_LEAF_SIGNATURE)'],
    // Another CA with the trusted root's name (every Istio and dev CA root is O=<trust domain>),
    // whose leaves carry no authorityKeyIdentifier: OpenSSL picks the trusted root by name, and its signature fails.
    ['a root of the same name did not sign it', 'CERT_SIGNATURE_FAILURE', 'unknown CA: the certificate does not chain to the trust bundle (CERT_SIGNATURE_FAILURE)'],
    ['anything else', 'INVALID_PURPOSE', 'certificate not verified (INVALID_PURPOSE)'],
  ];
  for (const [name, code, want] of rows) {
    it(name, () => {
      const v = inboundTls().verifyPeer(socket(code));
      assert.equal(v.ok ? 'ok' : v.reason, want);
    });
  }
});

describe('InboundTls.verifyPeer: a resumed TLS session is not verified by OpenSSL again', () => {
  // A session resumed from a ticket carries its first handshake's verdict (authorized), whatever
  // the time: the certificate's validity is checked again.
  it('a certificate that expired since the session began is refused', () => {
    const v = inboundTls().verifyPeer(socket(undefined, [Date.parse('2001-01-01T00:00:00Z'), Date.parse('2002-01-01T00:00:00Z')]));
    assert.deepEqual(v, { ok: false, reason: 'certificate expired (CERT_HAS_EXPIRED) at 2002-01-01T00:00:00.000Z: a TLS session resumed from before it expired' });
  });
  it('a certificate not valid yet is refused', () => {
    const v = inboundTls().verifyPeer(socket(undefined, [Date.parse('2999-01-01T00:00:00Z'), Date.parse('2999-02-01T00:00:00Z')]));
    assert.deepEqual(v, { ok: false, reason: 'certificate not yet valid (CERT_NOT_YET_VALID) before 2999-01-01T00:00:00.000Z' });
  });
});
