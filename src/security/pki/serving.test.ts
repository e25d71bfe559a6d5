import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { ipAddressBytes } from './ca.ts';
import { CertificateAuthority, CLOCK_SKEW_GRACE_MS } from './index.ts';

describe('serving certificates (CertificateAuthority.issueServing)', () => {
  it('names DNS names and IPv4/IPv6 addresses as SANs, serverAuth only, not a CA, within the CA', async () => {
    const now = Date.UTC(2030, 0, 1);
    const ca = await CertificateAuthority.createRoot({ trustDomain: 'cluster.local', ttlMs: 3600_000, clock: { now: () => now } });
    const c = await ca.issueServing({ names: ['cp.example', 'LOCALHOST.', '10.1.2.3', '::1', 'fd00::a:1', '::ffff:192.0.2.1'], ttlMs: 7200_000 });
    const x = new X509Certificate(c.certChainPem);
    assert.equal(x.subjectAltName, 'DNS:cp.example, DNS:localhost, IP Address:10.1.2.3, IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:A:1, IP Address:0:0:0:0:0:FFFF:C000:201');
    assert.equal(x.subject, 'CN=cp.example');
    assert.equal(x.ca, false);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.ok(x.checkIssued(new X509Certificate(ca.rootPem)) && x.verify(new X509Certificate(ca.rootPem).publicKey));
    assert.ok(x.checkPrivateKey(await import('node:crypto').then((m) => m.createPrivateKey(c.keyPem))));
    assert.equal(c.notBefore, now - CLOCK_SKEW_GRACE_MS);
    assert.equal(c.notAfter, now + 3600_000, 'clamped to the CA');
    assert.equal(x.checkHost('cp.example'), 'cp.example');
    assert.equal(x.checkIP('10.1.2.3'), '10.1.2.3');
    assert.equal(x.checkIP('fd00:0::a:1'), 'fd00:0::a:1');
    assert.equal(x.checkHost('other.example'), undefined);
  });

  it('refuses what is neither a DNS name nor an IP address, and an empty list', async () => {
    const ca = await CertificateAuthority.createRoot({ trustDomain: 'cluster.local' });
    await assert.rejects(ca.issueServing({ names: ['bad name'], ttlMs: 60_000 }), /"bad name" is neither a DNS name nor an IP address/);
    await assert.rejects(ca.issueServing({ names: [], ttlMs: 60_000 }), /at least one DNS name or IP address/);
  });

  it('encodes IP addresses as 4 or 16 bytes', () => {
    assert.deepEqual([...ipAddressBytes('192.168.0.1')], [192, 168, 0, 1]);
    assert.deepEqual([...ipAddressBytes('::')], new Array(16).fill(0));
    assert.deepEqual([...ipAddressBytes('1::')], [0, 1, ...new Array(14).fill(0)]);
    assert.deepEqual([...ipAddressBytes('2001:db8:0:0:0:0:0:ff')], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
    assert.throws(() => ipAddressBytes('300.1.1.1'), /not an IP address/);
  });
});
