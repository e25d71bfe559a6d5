import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identityOfCertificate, parseSpiffeUri, spiffeUri, uriSans } from './spiffe.ts';

describe('SPIFFE IDs in Istio form', () => {
  const cases: [string, ReturnType<typeof parseSpiffeUri>][] = [
    ['spiffe://cluster.local/ns/foo/sa/bar', { trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'bar' }],
    ['spiffe://td/ns/a/sa/b', { trustDomain: 'td', namespace: 'a', serviceAccount: 'b' }],
    ['spiffe://cluster.local/ns/foo/sa/', undefined],
    ['spiffe://cluster.local/ns//sa/bar', undefined],
    ['spiffe:///ns/foo/sa/bar', undefined],
    ['spiffe://cluster.local/ns/foo/sa/bar/extra', undefined],
    ['spiffe://cluster.local/sa/bar/ns/foo', undefined],
    ['https://cluster.local/ns/foo/sa/bar', undefined],
    ['cluster.local/ns/foo/sa/bar', undefined],
  ];
  for (const [uri, want] of cases) {
    it(`parses ${JSON.stringify(uri)}`, () => {
      assert.deepEqual(parseSpiffeUri(uri), want);
      if (want !== undefined) assert.equal(spiffeUri(want), uri);
    });
  }

  it('reads URI SANs from Node subjectAltName text, quoted ones included', () => {
    assert.deepEqual(uriSans('DNS:a.example, URI:spiffe://td/ns/a/sa/b, IP Address:1.2.3.4'), ['spiffe://td/ns/a/sa/b']);
    assert.deepEqual(uriSans('URI:"spiffe://td/ns/a,b/sa/c"'), ['spiffe://td/ns/a,b/sa/c']);
    assert.deepEqual(uriSans(undefined), []);
  });

  it('a certificate proves an identity only with exactly one SPIFFE URI SAN', () => {
    assert.equal(identityOfCertificate({ subjectAltName: 'URI:spiffe://td/ns/a/sa/b' }, '10.0.0.1')?.principal, 'spiffe://td/ns/a/sa/b');
    assert.equal(identityOfCertificate({ subjectaltname: 'URI:spiffe://td/ns/a/sa/b' }, '10.0.0.1')?.serviceAccount, 'b');
    assert.equal(identityOfCertificate({ subjectAltName: 'URI:spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/c/sa/d' }, ''), undefined);
    assert.equal(identityOfCertificate({ subjectAltName: 'DNS:a.example' }, ''), undefined);
    assert.equal(identityOfCertificate({ subjectAltName: 'URI:spiffe://td/bogus' }, ''), undefined);
  });
});
