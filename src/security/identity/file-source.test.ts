import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { configMapVolume, until, writeSlowly } from '../../../test/helpers/config-dir.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type Validity } from '../../../test/helpers/pki.ts';
import { skipWithout } from '../../../test/helpers/tools.ts';
import { ManualClock } from '../../core/clock.ts';
import { CredentialHolder, type WorkloadCredentials } from './credentials.ts';
import { CredentialFileError, readCredentialFiles } from './file-credentials.ts';
import { FileIdentitySource } from './file-source.ts';

const skip = skipWithout('openssl');
const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshlet-files-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupPki();
});

/** Writes atomically (temporary file renamed over), as spiffe-helper and most tools do. */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function filesIn(dir: string, ca: TestCa, id: string, chain = true, validity?: Validity) {
  const leaf = issueLeaf(ca, { uris: [id], validity });
  const f = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), caFile: join(dir, 'ca.crt') };
  writeFileSync(f.certFile, chain ? leaf.chainPem : leaf.certPem);
  writeFileSync(f.keyFile, leaf.keyPem);
  writeFileSync(f.caFile, ca.rootPem);
  return { ...f, leaf };
}

/** Every installed pair must be usable: the key is the certificate's. */
function pairsMatch(c: WorkloadCredentials): boolean {
  return new X509Certificate(c.certChain).checkPrivateKey(createPrivateKey(c.privateKey));
}

describe('readCredentialFiles', { skip }, () => {
  it('reads a leaf with its intermediate, trusting the root in caFile; the key as PKCS#8', async () => {
    const root = makeCa({ name: 'root.example' });
    const mid = makeCa({ name: 'mid.example', parent: root });
    const dir = tmp();
    const f = filesIn(dir, mid, spiffe('foo', 'bar'));
    writeFileSync(f.caFile, root.rootPem);
    const c = await readCredentialFiles(f, Date.now());
    assert.equal(c.spiffeId, 'spiffe://cluster.local/ns/foo/sa/bar');
    assert.equal(c.certChain.split('BEGIN CERTIFICATE').length - 1, 2);
    assert.match(c.privateKey, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(c.trustBundle, new X509Certificate(root.rootPem).toString());
    assert.equal(c.notAfter, new X509Certificate(f.leaf.certPem).validToDate.getTime());
    // A root appended to the chain file is not sent.
    writeFileSync(f.certFile, f.leaf.chainPem + root.rootPem);
    assert.equal((await readCredentialFiles(f, Date.now())).certChain.split('BEGIN CERTIFICATE').length - 1, 2);
    // The intermediate may be in caFile with the root instead (a trust store holding both).
    writeFileSync(f.certFile, f.leaf.certPem);
    writeFileSync(f.caFile, mid.certPem + root.rootPem);
    assert.equal((await readCredentialFiles(f, Date.now())).spiffeId, 'spiffe://cluster.local/ns/foo/sa/bar');
  });

  it('refuses files it cannot use, naming the file and why', async () => {
    const ca = makeCa();
    const other = makeCa();
    const dir = tmp();
    const good = filesIn(dir, ca, spiffe('foo', 'bar'));
    const otherLeaf = issueLeaf(ca, { uris: [spiffe('foo', 'bar')] });
    const expired = issueLeaf(ca, { uris: [spiffe('foo', 'bar')], validity: { notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) } });
    const noSpiffe = issueLeaf(ca, { dns: ['foo.example'] });
    const twoSpiffe = issueLeaf(ca, { uris: [spiffe('foo', 'bar'), spiffe('foo', 'baz')] });
    const stranger = issueLeaf(other, { uris: [spiffe('foo', 'bar')] });
    const caLeaf = makeCa({ name: 'issuing.example', parent: ca, uris: [spiffe('foo', 'bar')] });
    const mid = makeCa({ name: 'mid.example', parent: ca });
    const viaMid = issueLeaf(mid, { uris: [spiffe('foo', 'bar')] });
    const cases: { name: string; write: Record<string, string>; file: string; reason: CredentialFileError['reason']; error: RegExp }[] = [
      { name: 'a missing certificate', write: {}, file: join(dir, 'nope.crt'), reason: 'missing', error: /nope\.crt: missing \(no such file\)/ },
      { name: 'a certificate file that is not PEM', write: { certFile: 'hello' }, file: good.certFile, reason: 'not-pem', error: /tls\.crt: not PEM: no "-----BEGIN CERTIFICATE-----" block/ },
      { name: 'a key that is not PEM', write: { keyFile: 'hello' }, file: good.keyFile, reason: 'not-pem', error: /tls\.key: is not PEM/ },
      {
        name: 'an encrypted key',
        write: { keyFile: createPrivateKey(good.leaf.keyPem).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string },
        file: good.keyFile,
        reason: 'not-pem',
        error: /tls\.key: is encrypted \(a passphrase-protected key\): meshlet reads unencrypted keys only/,
      },
      { name: 'a key of another certificate', write: { keyFile: otherLeaf.keyPem }, file: good.keyFile, reason: 'key-mismatch', error: /tls\.key: the private key does not match the certificate in .*tls\.crt/ },
      { name: 'no SPIFFE URI SAN', write: { certFile: noSpiffe.certPem, keyFile: noSpiffe.keyPem }, file: good.certFile, reason: 'no-identity', error: /has no SPIFFE URI SAN .*DNS:foo\.example/ },
      { name: 'two SPIFFE URI SANs', write: { certFile: twoSpiffe.certPem, keyFile: twoSpiffe.keyPem }, file: good.certFile, reason: 'no-identity', error: /has 2 SPIFFE URI SANs/ },
      { name: 'a CA certificate', write: { certFile: caLeaf.certPem, keyFile: caLeaf.keyPem }, file: good.certFile, reason: 'no-identity', error: /tls\.crt: the certificate is a CA certificate \(CA:TRUE\), not a workload certificate/ },
      { name: 'an expired certificate', write: { certFile: expired.certPem, keyFile: expired.keyPem }, file: good.certFile, reason: 'expired', error: /tls\.crt: the certificate expired at 20/ },
      { name: 'a certificate from another CA', write: { certFile: stranger.certPem, keyFile: stranger.keyPem }, file: good.certFile, reason: 'untrusted', error: /tls\.crt: the chain does not lead to any of the 1 trusted root .*roots from .*ca\.crt/ },
      { name: 'a caFile holding an intermediate CA, not the root', write: { certFile: viaMid.certPem, keyFile: viaMid.keyPem, caFile: mid.certPem }, file: good.certFile, reason: 'untrusted', error: /tls\.crt: the chain ends at "O=mid\.example" among the trusted roots, an intermediate CA, not a root: .*add the root "O=cluster\.local" to the trusted roots/ },
      { name: 'a caFile that is not PEM', write: { caFile: 'hello' }, file: good.caFile, reason: 'not-pem', error: /ca\.crt: not PEM/ },
    ];
    for (const c of cases) {
      const d = tmp();
      const f = { certFile: join(d, 'tls.crt'), keyFile: join(d, 'tls.key'), caFile: join(d, 'ca.crt') };
      writeFileSync(f.certFile, good.leaf.certPem);
      writeFileSync(f.keyFile, good.leaf.keyPem);
      writeFileSync(f.caFile, ca.rootPem);
      for (const [k, v] of Object.entries(c.write)) writeFileSync(f[k as keyof typeof f], v);
      const files = c.reason === 'missing' ? { ...f, certFile: c.file.replace(dir, d) } : f;
      await assert.rejects(readCredentialFiles(files, Date.now()), (e: unknown) => {
        assert.ok(e instanceof CredentialFileError, c.name);
        assert.equal(e.reason, c.reason, c.name);
        assert.equal(e.file, c.reason === 'missing' ? files.certFile : c.file.replace(dir, d), c.name);
        assert.match(e.message, c.error, c.name);
        return true;
      });
    }
  });
});

describe('FileIdentitySource', { skip }, () => {
  const warnings: string[] = [];
  const log = { warn: (m: string) => warnings.push(m) };

  it('refuses to start on files it cannot use', async () => {
    const ca = makeCa();
    const f = filesIn(tmp(), ca, spiffe('foo', 'bar'));
    writeFileSync(f.keyFile, issueLeaf(ca, { uris: [spiffe('foo', 'bar')] }).keyPem);
    const holder = new CredentialHolder();
    await assert.rejects(new FileIdentitySource({ files: f, holder, log }).start(), /tls\.key: the private key does not match/);
    assert.equal(holder.current, undefined);
  });

  it("warns when the certificate's identity is one the mesh's peers refuse: another trust domain, or not Istio's form", async (t) => {
    const ca = makeCa();
    const cases: { id: string; domains: string[]; warning: RegExp | undefined }[] = [
      { id: spiffe('foo', 'bar'), domains: ['cluster.local'], warning: undefined },
      { id: spiffe('foo', 'bar', 'old.td'), domains: ['cluster.local', 'old.td'], warning: undefined },
      { id: spiffe('foo', 'bar', 'other.td'), domains: ['cluster.local'], warning: /names spiffe:\/\/other\.td\/ns\/foo\/sa\/bar, of trust domain other\.td, but this mesh's trust domain is cluster\.local: peers of cluster\.local refuse it/ },
      { id: 'spiffe://cluster.local/workload/bar', domains: ['cluster.local'], warning: /names spiffe:\/\/cluster\.local\/workload\/bar, which is not in Istio's form .*meshlet servers refuse it/ },
    ];
    for (const c of cases) {
      const seen: string[] = [];
      const f = filesIn(tmp(), ca, c.id);
      const holder = new CredentialHolder();
      const src = new FileIdentitySource({ files: f, holder, log: { warn: (m) => seen.push(m) }, trustDomains: c.domains });
      await src.start();
      t.after(() => src.close());
      assert.equal(holder.current?.spiffeId, c.id, 'used all the same');
      if (c.warning === undefined) assert.deepEqual(seen, [], c.id);
      else {
        assert.equal(seen.length, 1, c.id);
        assert.match(seen[0] as string, c.warning);
        assert.ok((seen[0] as string).includes(f.certFile), 'names the file');
      }
    }
  });

  it('reloads files replaced by rename; a bad update keeps the last good credentials and warns naming the file', async (t) => {
    warnings.length = 0;
    const ca = makeCa();
    const dir = tmp();
    const f = filesIn(dir, ca, spiffe('foo', 'a'));
    const holder = new CredentialHolder();
    const installed: WorkloadCredentials[] = [];
    holder.subscribe((c) => installed.push(c));
    const src = new FileIdentitySource({ files: f, holder, log, settleMs: 50, debounceMs: 10 });
    await src.start();
    t.after(() => src.close());
    assert.equal(holder.current?.spiffeId, spiffe('foo', 'a'));
    const b = issueLeaf(ca, { uris: [spiffe('foo', 'b')] });
    replace(f.keyFile, b.keyPem);
    replace(f.certFile, b.chainPem);
    await until(() => holder.current?.spiffeId === spiffe('foo', 'b'), 'the new certificate installed');
    replace(f.certFile, 'garbage');
    await until(() => warnings.length > 0, 'a warning');
    assert.match(warnings[0] as string, /identity files not loaded: .*tls\.crt: not PEM.*the last good certificate \(spiffe:\/\/cluster\.local\/ns\/foo\/sa\/b, valid until/);
    assert.equal(holder.current?.spiffeId, spiffe('foo', 'b'));
    assert.ok(installed.every(pairsMatch));
  });

  it('follows a Secret volume updated as kubelet does it (..data symlink swap)', async (t) => {
    const ca = makeCa();
    const dir = tmp();
    const vol = configMapVolume(join(dir, 'certs'));
    const a = issueLeaf(ca, { uris: [spiffe('foo', 'a')] });
    vol.update({ 'tls.crt': a.chainPem, 'tls.key': a.keyPem, 'ca.crt': ca.rootPem });
    const files = { certFile: join(dir, 'certs', 'tls.crt'), keyFile: join(dir, 'certs', 'tls.key'), caFile: join(dir, 'certs', 'ca.crt') };
    const holder = new CredentialHolder();
    const src = new FileIdentitySource({ files, holder, log, settleMs: 50, debounceMs: 10 });
    await src.start();
    t.after(() => src.close());
    const b = issueLeaf(ca, { uris: [spiffe('foo', 'b')] });
    vol.update({ 'tls.crt': b.chainPem, 'tls.key': b.keyPem, 'ca.crt': ca.rootPem });
    await until(() => holder.current?.spiffeId === spiffe('foo', 'b'), 'the swapped-in certificate installed');
    assert.equal(holder.current?.generation, 2);
  });

  it('a certificate written in place slowly is installed only once complete', async (t) => {
    const ca = makeCa();
    const dir = tmp();
    const f = filesIn(dir, ca, spiffe('foo', 'a'), false);
    const holder = new CredentialHolder();
    const installed: WorkloadCredentials[] = [];
    holder.subscribe((c) => installed.push(c));
    const w: string[] = [];
    const src = new FileIdentitySource({ files: f, holder, log: { warn: (m) => w.push(m) }, settleMs: 300, debounceMs: 10 });
    await src.start();
    t.after(() => src.close());
    // The new key first (atomically), then the new certificate in place, in two halves.
    const b = issueLeaf(ca, { uris: [spiffe('foo', 'b')] });
    const half = Math.floor(b.certPem.length / 2);
    replace(f.keyFile, b.keyPem);
    await writeSlowly(f.certFile, [b.certPem.slice(0, half), b.certPem.slice(half)], 100);
    await until(() => holder.current?.spiffeId === spiffe('foo', 'b'), 'the new certificate installed');
    assert.ok(installed.every(pairsMatch), 'no mismatched pair was installed');
  });

  it('a pair read half-updated (new certificate, old key) is not installed; it is read again after the settle time, and reported only if it still does not match', async (t) => {
    const ca = makeCa();
    const dir = tmp();
    const f = filesIn(dir, ca, spiffe('foo', 'a'));
    const holder = new CredentialHolder();
    const installed: WorkloadCredentials[] = [];
    holder.subscribe((c) => installed.push(c));
    const w: string[] = [];
    const clock = new ManualClock();
    const src = new FileIdentitySource({ files: f, holder, log: { warn: (m) => w.push(m) }, clock, settleMs: 1000, debounceMs: 100 });
    await src.start();
    t.after(() => src.close());
    const base = clock.pending; // the expiry watch
    const b = issueLeaf(ca, { uris: [spiffe('foo', 'b')] });
    replace(f.certFile, b.chainPem);
    await until(() => clock.pending > base, 'the change seen');
    clock.advance(100); // debounce: the reload reads the new certificate and the old key
    await until(() => clock.pending > base, 'a read-again scheduled');
    assert.deepEqual(w, [], 'not reported yet');
    assert.equal(holder.current?.spiffeId, spiffe('foo', 'a'));
    // Nothing else changes: after the settle time the pair is read again, still mismatched, and reported.
    for (let i = 0; i < 5 && w.length === 0; i++) {
      clock.advance(1000);
      await until(() => clock.pending > base || w.length > 0, 'the read again');
    }
    await until(() => w.length > 0, 'the mismatch reported');
    assert.match(String(w.at(0)), /tls\.key: the private key does not match the certificate in .*tls\.crt; the last good certificate \(spiffe:\/\/cluster\.local\/ns\/foo\/sa\/a/);
    assert.equal(holder.current?.spiffeId, spiffe('foo', 'a'));
    // The key arrives: the pair is installed.
    replace(f.keyFile, b.keyPem);
    await until(() => clock.pending > base, 'the key change seen');
    for (let i = 0; i < 5 && holder.current?.spiffeId !== spiffe('foo', 'b'); i++) {
      clock.advance(1000);
      await new Promise((r) => setTimeout(r, 20));
    }
    await until(() => holder.current?.spiffeId === spiffe('foo', 'b'), 'the matching pair installed');
    assert.ok(installed.every(pairsMatch));
  });

  it('warns when the certificate in use expires with no newer one written', async (t) => {
    const ca = makeCa();
    // Valid for five minutes, not the default day: moving the clock to the expiry fires the file
    // watch's one-second check on the way, and a day of them (86,400) took minutes.
    const f = filesIn(tmp(), ca, spiffe('foo', 'a'), true, { notAfter: new Date(Date.now() + 300_000) });
    const holder = new CredentialHolder();
    const w: string[] = [];
    const clock = new ManualClock();
    let wallNow = Date.now();
    const src = new FileIdentitySource({ files: f, holder, log: { warn: (m) => w.push(m) }, clock, wallClock: { now: () => wallNow } });
    await src.start();
    t.after(() => src.close());
    const left = holder.current!.notAfter - wallNow;
    wallNow += left - 1;
    clock.advance(left - 1);
    assert.deepEqual(w, []);
    wallNow += 1;
    clock.advance(1);
    assert.equal(w.length, 1, w.join('\n'));
    assert.match(String(w[0]), /the certificate in .*tls\.crt \(spiffe:\/\/cluster\.local\/ns\/foo\/sa\/a\) expired at .* and no newer one was written/);
  });
});
