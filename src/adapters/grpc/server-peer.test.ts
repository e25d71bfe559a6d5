import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { afterEach, describe, it, mock } from 'node:test';
import { CredentialHolder } from '../../security/identity/credentials.ts';
import { InboundTls } from '../server/inbound-tls.ts';
import { GrpcConnections } from './server-listen.ts';
import { GrpcPeers } from './server-peer.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2026-06-01T00:00:00Z');

function peers(): GrpcPeers {
  const tls = new InboundTls(
    { credentials: new CredentialHolder(), workload: { service: 'echo', namespace: 'foo', labels: {}, serviceAccount: 'echo' }, rootNamespace: 'istio-system', trustDomain: 'cluster.local', warn: () => {} },
    [],
  );
  return new GrpcPeers(tls, new GrpcConnections());
}

/** A client certificate as grpc-js's auth context reports it (one fingerprint: one certificate). */
function cert(notBefore: number, notAfter: number): PeerCertificate {
  return { subjectaltname: 'URI:spiffe://cluster.local/ns/bar/sa/sleep', ca: false, valid_from: new Date(notBefore).toUTCString(), valid_to: new Date(notAfter).toUTCString(), fingerprint256: 'AA:BB' } as unknown as PeerCertificate;
}

const verdict = (p: GrpcPeers, c: PeerCertificate): string => {
  const v = p.verdictOf(c, '127.0.0.1');
  return v.ok ? `ok ${v.peer.principal}` : v.reason;
};

describe('GrpcPeers.verdictOf: a verdict holds only while the certificate is valid (a resumed TLS session is not verified again)', () => {
  afterEach(() => mock.timers.reset());

  it('admitted while valid, refused once expired (the earlier verdict is not reused)', () => {
    const p = peers();
    const c = cert(T0 - DAY, T0 + DAY);
    mock.timers.enable({ apis: ['Date'], now: T0 });
    assert.equal(verdict(p, c), 'ok spiffe://cluster.local/ns/bar/sa/sleep');
    mock.timers.setTime(T0 + 2 * DAY);
    assert.match(verdict(p, c), /^certificate expired \(CERT_HAS_EXPIRED\)/);
  });

  it('refused before it is valid, admitted once it is (the refusal is not kept)', () => {
    const p = peers();
    const c = cert(T0 + DAY, T0 + 3 * DAY);
    mock.timers.enable({ apis: ['Date'], now: T0 });
    assert.match(verdict(p, c), /^certificate not yet valid \(CERT_NOT_YET_VALID\)/);
    mock.timers.setTime(T0 + 2 * DAY);
    assert.equal(verdict(p, c), 'ok spiffe://cluster.local/ns/bar/sa/sleep');
  });
});
