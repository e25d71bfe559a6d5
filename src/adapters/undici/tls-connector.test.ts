import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { createSecureContext, type PeerCertificate } from 'node:tls';
import { describe, it } from 'node:test';
import { setImmediate } from 'node:timers';
import { errors } from 'undici';
import { ManualClock } from '../../core/clock.ts';
import { TlsHandshakeError, tlsFailureReason } from '../../core/tls-failure.ts';
import { checkServer, resumedSessionProblem, type TlsPlan, type TlsVerify, tlsConnector } from './tls-connector.ts';

const plan = (verify: TlsVerify): TlsPlan => ({ mode: 'SIMPLE', servername: undefined, context: createSecureContext({}), verify, alpn: ['http/1.1'], h2: false, trust: 'the test roots', key: 'k' });
const cert = (subjectaltname: string): PeerCertificate => ({ subjectaltname, subject: { CN: '' } }) as unknown as PeerCertificate;

describe('checkServer: what is checked of a verified server certificate', () => {
  const rows: [string, TlsVerify, string, RegExp | undefined][] = [
    ['none', { kind: 'none' }, '', undefined],
    ['chain only', { kind: 'chain' }, 'DNS:other', undefined],
    ['host name matches', { kind: 'hostname', hostname: 'api.example.com' }, 'DNS:api.example.com', undefined],
    ['host name by wildcard', { kind: 'hostname', hostname: 'api.example.com' }, 'DNS:*.example.com', undefined],
    ['host name differs', { kind: 'hostname', hostname: 'api.example.com' }, 'DNS:web.example.com', /does not name api\.example\.com/],
    ['SAN exact (DNS)', { kind: 'sans', sans: ['b.example'] }, 'DNS:a.example, DNS:b.example', undefined],
    ['SAN exact (URI)', { kind: 'sans', sans: ['spiffe://td/ns/a/sa/b'] }, 'URI:spiffe://td/ns/a/sa/b', undefined],
    ['SAN exact (IP)', { kind: 'sans', sans: ['10.0.0.1'] }, 'IP Address:10.0.0.1', undefined],
    ['SAN by a wildcard in the certificate', { kind: 'sans', sans: ['x.example'] }, 'DNS:*.example', undefined],
    ['a wildcard covers one label only', { kind: 'sans', sans: ['a.x.example'] }, 'DNS:*.example', /names none of the subjectAltNames \[a\.x\.example\] \(it has \[\*\.example\]\)/],
    ['SAN missing', { kind: 'sans', sans: ['c.example'] }, 'DNS:a.example', /names none of the subjectAltNames \[c\.example\] \(it has \[a\.example\]\)/],
    ['identity matches', { kind: 'identity', identities: ['spiffe://cluster.local/ns/a/sa/b'], trustDomains: ['cluster.local'] }, 'URI:spiffe://cluster.local/ns/a/sa/b', undefined],
    ['no identities expected: any', { kind: 'identity', identities: [], trustDomains: ['cluster.local'] }, 'DNS:x', undefined],
    ['another service account', { kind: 'identity', identities: ['spiffe://cluster.local/ns/a/sa/b'], trustDomains: ['cluster.local'] }, 'URI:spiffe://cluster.local/ns/a/sa/c', /^server identity spiffe:\/\/cluster\.local\/ns\/a\/sa\/c is not one of the destination's identities \[spiffe:\/\/cluster\.local\/ns\/a\/sa\/b\]$/],
    ['another trust domain', { kind: 'identity', identities: ['spiffe://cluster.local/ns/a/sa/b'], trustDomains: ['cluster.local', 'old.td'] }, 'URI:spiffe://evil/ns/a/sa/b', /\(trust domain evil is not cluster\.local or old\.td\)/],
    ['no SPIFFE identity', { kind: 'identity', identities: ['spiffe://cluster.local/ns/a/sa/b'], trustDomains: ['cluster.local'] }, 'DNS:b.example', /has no SPIFFE identity \(SANs: DNS:b\.example\)/],
  ];
  for (const [name, verify, sans, want] of rows) {
    it(name, () => {
      const err = checkServer(plan(verify), 'api.example.com', cert(sans));
      if (want === undefined) assert.equal(err, undefined, err?.message);
      else {
        assert.ok(err instanceof TlsHandshakeError, String(err));
        assert.match(err.reason, want);
      }
    });
  }
});

describe('checkServer: a host name only in the subject CN', () => {
  // Envoy's auto SAN validation reads subjectAltName only; Node's checkServerIdentity falls back to the CN.
  it('is refused when the certificate has no subjectAltName', () => {
    const cnOnly = { subject: { CN: 'api.example.com' } } as unknown as PeerCertificate;
    const err = checkServer(plan({ kind: 'hostname', hostname: undefined }), 'api.example.com', cnOnly);
    assert.ok(err instanceof TlsHandshakeError, String(err));
    assert.match(err.reason, /does not name api\.example\.com: it has no DNS subjectAltName/);
  });
  for (const san of ['URI:spiffe://cluster.local/ns/default/sa/api', 'email:ops@example.com', 'IP Address:10.0.0.7']) {
    it(`is refused when its SANs are only ${san.split(':')[0]} entries (Node would still read the CN)`, () => {
      const c = { subjectaltname: san, subject: { CN: 'api.example.com' } } as unknown as PeerCertificate;
      const err = checkServer(plan({ kind: 'hostname', hostname: undefined }), 'api.example.com', c);
      assert.ok(err instanceof TlsHandshakeError, String(err));
      assert.match(err.reason, /no DNS subjectAltName/);
    });
  }
  it('an IP SAN names an IP host', () => {
    const c = { subjectaltname: 'IP Address:10.0.0.7', subject: { CN: 'x' } } as unknown as PeerCertificate;
    assert.equal(checkServer(plan({ kind: 'hostname', hostname: undefined }), '10.0.0.7', c), undefined);
  });
  it('a certificate with the name in a SAN and another CN is accepted', () => {
    const c = { subjectaltname: 'DNS:api.example.com', subject: { CN: 'other' } } as unknown as PeerCertificate;
    assert.equal(checkServer(plan({ kind: 'hostname', hostname: undefined }), 'api.example.com', c), undefined);
  });
});

describe('tlsFailureReason', () => {
  const rows: [string, unknown, RegExp | undefined][] = [
    ['a handshake error', new TlsHandshakeError('the reason'), /^the reason$/],
    ['an alert, as the cause of a socket error', Object.assign(new Error('other side closed'), { cause: Object.assign(new Error('alert'), { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' }) }), /requires a client certificate/],
    ['unknown CA alert', Object.assign(new Error('x'), { code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' }), /does not trust this workload's certificate/],
    ['plaintext server', Object.assign(new Error('x'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }), /did not answer with TLS/],
    ["Node's refusal of an expired certificate (undici's own connector)", Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }), /^the server's certificate has expired \(CERT_HAS_EXPIRED\)$/],
    ['an unknown CA, as the cause', Object.assign(new Error('fetch failed'), { cause: Object.assign(new Error('x'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }) }), /signed by an unknown CA: not one of Node's default CA certificates/],
    ["another host's certificate", Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID', host: 'api.example.com', reason: "Host: api.example.com. is not in the cert's altnames: DNS:other" }), /^the server's certificate does not name api\.example\.com: Host: api\.example\.com\. is not in the cert's altnames: DNS:other$/],
    ['a connection refused is not TLS', Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), undefined],
    ['not an error', 'text', undefined],
  ];
  for (const [name, err, want] of rows) {
    it(name, () => {
      const r = tlsFailureReason(err);
      if (want === undefined) assert.equal(r, undefined);
      else assert.match(r ?? '', want);
    });
  }
});

describe('resumedSessionProblem: a resumed session is checked for the certificate having expired since', () => {
  const now = Date.parse('2026-06-01T00:00:00Z');
  const dated = (valid_from: string, valid_to: string) => ({ ...cert('URI:spiffe://cluster.local/ns/a/sa/b'), valid_from, valid_to }) as PeerCertificate;
  const valid = dated('May  1 00:00:00 2026 GMT', 'Jul  1 00:00:00 2026 GMT');
  const expired = dated('Apr  1 00:00:00 2026 GMT', 'May 31 23:59:59 2026 GMT');
  const identity: TlsVerify = { kind: 'identity', identities: ['spiffe://cluster.local/ns/a/sa/b'], trustDomains: ['cluster.local'] };
  const socket = (reused: boolean, c: PeerCertificate) => ({ isSessionReused: () => reused, getPeerCertificate: () => c });
  it('a full handshake is left to OpenSSL', () => assert.equal(resumedSessionProblem(plan(identity), socket(false, expired), now), undefined));
  it('a resumed session with a certificate still valid is used', () => assert.equal(resumedSessionProblem(plan(identity), socket(true, valid), now), undefined));
  it('a resumed session whose certificate has expired since is refused, saying so', () => {
    const err = resumedSessionProblem(plan(identity), socket(true, expired), now);
    assert.ok(err instanceof TlsHandshakeError, String(err));
    assert.equal(err.reason, "the server's certificate expired (CERT_HAS_EXPIRED) at 2026-05-31T23:59:59.000Z: a TLS session resumed from before it expired");
  });
  it('with insecureSkipVerify nothing is checked', () => assert.equal(resumedSessionProblem(plan({ kind: 'none' }), socket(true, expired), now), undefined));
});

describe('tlsConnector: the connect timeout runs on the mesh clock', () => {
  it('a handshake the server never answers fails with ConnectTimeoutError when the clock reaches the timeout, not before', async () => {
    const accepted: Socket[] = [];
    const server = createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const clock = new ManualClock();
      const connect = tlsConnector(plan({ kind: 'none' }), 5000, clock);
      const outcome: { err?: Error | null } = {};
      connect({ hostname: '127.0.0.1', port }, (err) => {
        outcome.err = err;
      });
      while (accepted.length === 0) await new Promise((r) => setImmediate(r));
      clock.advance(4999);
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      assert.equal(outcome.err, undefined, 'not before the timeout');
      clock.advance(1);
      const err: unknown = outcome.err;
      assert.ok(err instanceof errors.ConnectTimeoutError, `at the timeout: ${String(err)}`);
      assert.match(err.message, new RegExp(`attempted address: 127\\.0\\.0\\.1:${port}, timeout: 5000ms`));
    } finally {
      for (const s of accepted) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
