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

/** A TLS socket whose handshake verified (or did not verify) the client's certificate as OpenSSL said. */
function socket(authorizationError: string | undefined): TLSSocket {
  const cert = { subjectaltname: 'URI:spiffe://cluster.local/ns/bar/sa/sleep', ca: false };
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
