/**
 * The `Subject` of `x-forwarded-client-cert` is OpenSSL's RFC 2253 form (Envoy prints it with
 * `X509_NAME_print_ex(…, XN_FLAG_RFC2253)`): checked against `openssl x509 -nameopt RFC2253` for
 * subjects made with openssl — multi-valued RDNs, characters RFC 2253 escapes, non-ASCII text,
 * an empty subject.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { rfc2253 } from '../../src/core/certificate-text.ts';
import { skipWithout } from '../helpers/tools.ts';

function openssl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile('openssl', args, { timeout: 10_000 }, (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`${err.message}\n${stderr}`)))));
}

describe('RFC 2253 subjects, as openssl prints them', { skip: skipWithout('openssl') }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-xfcc-subject-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const subjects: [string, string][] = [
    ['one attribute', '/O=cluster.local'],
    ['several RDNs', '/C=US/ST=California/L=San Francisco/O=Example/OU=Mesh/CN=sleep'],
    ['a multi-valued RDN (+)', '/O=Example/OU=a+OU=b+CN=c/CN=sleep'],
    ['characters RFC 2253 escapes', '/O=Sleep, Inc. \\+ "friends" <x>; y\\\\z/CN=#sleep /OU= leading'],
    ['non-ASCII text (each UTF-8 byte as \\XX)', '/L=Zürich/O=Société Générale/CN=日本'],
  ];
  subjects.forEach(([name, subject], i) => {
    it(name, async () => {
      const cert = join(dir, `${i}.pem`);
      await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, `${i}.key`), '-out', cert, '-days', '1', '-utf8', '-subj', subject]);
      const expected = (await openssl(['x509', '-in', cert, '-noout', '-subject', '-nameopt', 'RFC2253'])).trim().replace(/^subject=/, '');
      assert.equal(rfc2253(new X509Certificate(readFileSync(cert)).subject), expected);
    });
  });

  it('an empty subject is empty (Istio workload certificates have none: Subject=""); Node reports it as undefined', async () => {
    const cert = join(dir, 'empty.pem');
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'empty.key'), '-out', cert, '-days', '1', '-subj', '/', '-addext', 'subjectAltName=critical,URI:spiffe://cluster.local/ns/a/sa/b']);
    assert.equal(rfc2253(new X509Certificate(readFileSync(cert)).subject), '');
  });
});
