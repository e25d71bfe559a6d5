import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { validateYaml } from '../../test/helpers/config.ts';
import { cleanupPki, issueLeaf, makeCa } from '../../test/helpers/pki.ts';
import { TLS_FILE_CODE, TlsFiles } from './tls-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-tls-files-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
  cleanupPki();
});
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n';
const ca = join(dir, 'ca.pem');
const key = join(dir, 'key.pem');
writeFileSync(ca, CERT);
writeFileSync(key, KEY);

function files(tls: string) {
  const { resources, errors } = validateYaml(`apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api, namespace: default}\nspec:\n  host: api.example.com\n${tls}\n`);
  assert.deepEqual(errors, []);
  return new TlsFiles(resources);
}

describe('TlsFiles: the files of DestinationRule tls blocks, read once per config', () => {
  it('good files: no finding, contents kept', () => {
    const root = makeCa({ name: 'tls-files' });
    const leaf = issueLeaf(root, { dns: ['client.example.test'] });
    const f = files(`  trafficPolicy: {tls: {mode: MUTUAL, caCertificates: ${ca}, clientCertificate: ${leaf.chainFile}, privateKey: ${leaf.keyFile}}}`);
    assert.deepEqual(f.issues, []);
    assert.deepEqual(f.get('caCertificates', ca), { ok: true, pem: CERT });
    assert.deepEqual(f.pair(leaf.chainFile, leaf.keyFile), { ok: true, pem: leaf.chainPem });
  });

  it('MUTUAL: a client certificate and a key that do not belong together are a finding naming both files', () => {
    const root = makeCa({ name: 'tls-files-pair' });
    const mine = issueLeaf(root, { dns: ['client.example.test'] });
    const theirs = issueLeaf(root, { dns: ['other.example.test'] });
    const f = files(`  trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: ${mine.chainFile}, privateKey: ${theirs.keyFile}}}`);
    assert.deepEqual(f.issues.map((i) => `${i.code} ${i.path}`), [`${TLS_FILE_CODE} spec.trafficPolicy.tls.privateKey`]);
    const message = f.issues[0]?.message ?? '';
    assert.ok(message.includes(`the private key in ${theirs.keyFile} does not match the certificate in ${mine.chainFile}`), message);
    assert.match(message, /calls to api\.example\.com that use this setting fail/);
    const pair = f.pair(mine.chainFile, theirs.keyFile);
    assert.equal(pair.ok, false);
    // A certificate block that does not parse is named too (its key is fine).
    const broken = join(dir, 'broken.crt');
    writeFileSync(broken, CERT);
    const g = files(`  trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: ${broken}, privateKey: ${mine.keyFile}}}`);
    assert.match(g.issues[0]?.message ?? '', new RegExp(`${broken.replaceAll('.', '\\.')}: its certificate cannot be parsed`));
    // An encrypted key is named, with why.
    const encrypted = join(dir, 'encrypted.key');
    writeFileSync(encrypted, createPrivateKey(mine.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string);
    const h = files(`  trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: ${mine.chainFile}, privateKey: ${encrypted}}}`);
    assert.ok((h.issues[0]?.message ?? '').startsWith(`${encrypted} is encrypted (a passphrase-protected key)`), h.issues[0]?.message);
  });

  it('missing and wrong-kind files are findings naming the rule, the field path and the file (every level)', () => {
    const f = files(`  trafficPolicy:\n    portLevelSettings: [{port: {number: 443}, tls: {mode: SIMPLE, caCertificates: ${join(dir, 'nope.pem')}}}]\n  subsets:\n  - {name: v1, labels: {v: '1'}, trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: ${key}, privateKey: ${ca}}}}`);
    assert.deepEqual(f.issues.map((i) => `${i.code} ${i.resource} ${i.path}`), [
      `${TLS_FILE_CODE} DestinationRule default/api spec.trafficPolicy.portLevelSettings[0].tls.caCertificates`,
      `${TLS_FILE_CODE} DestinationRule default/api spec.subsets[0].trafficPolicy.tls.clientCertificate`,
      `${TLS_FILE_CODE} DestinationRule default/api spec.subsets[0].trafficPolicy.tls.privateKey`,
    ]);
    assert.match(f.issues[0]?.message ?? '', /cannot read \S+nope\.pem: no such file; calls to api\.example\.com that use this setting fail/);
    assert.match(f.issues[1]?.message ?? '', /key\.pem holds no PEM CERTIFICATE \(clientCertificate\)/);
    assert.match(f.issues[2]?.message ?? '', /ca\.pem holds no PEM PRIVATE KEY \(privateKey\)/);
  });

  it('client files are not read for SIMPLE, nor any for ISTIO_MUTUAL or DISABLE', () => {
    const f = files(`  trafficPolicy:\n    tls: {mode: SIMPLE, clientCertificate: ${join(dir, 'absent.pem')}}\n    portLevelSettings: [{port: {number: 1}, tls: {mode: DISABLE, caCertificates: ${join(dir, 'absent.pem')}}}]`);
    assert.deepEqual(f.issues.map(String), []);
  });
});
