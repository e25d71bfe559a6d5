/**
 * createMesh's embedded identity sources end to end: credentials from files and from a dev CA
 * directory are in the mesh before createMesh resolves, reported by diagnostics(), renewed on the
 * mesh's clock, refused with the file and the reason, and stopped by close().
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as tls from 'node:tls';
import { createMesh, type Mesh } from '../../src/index.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { initDevCa } from '../../src/security/pki/dev-ca.ts';
import { until } from '../helpers/config-dir.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshlet-identity-'));
  dirs.push(d);
  return d;
}
const meshes: Mesh[] = [];
after(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupPki();
});
const quiet = { warn: () => {} };

describe('createMesh identity: files', { skip: skipWithout('openssl') }, () => {
  it('installs the certificate before createMesh resolves and reports it in diagnostics', async () => {
    const ca = makeCa();
    const leaf = issueLeaf(ca, { uris: [spiffe('foo', 'bar')] });
    const d = tmp();
    const files = { certFile: join(d, 'tls.crt'), keyFile: join(d, 'tls.key'), caFile: join(d, 'ca.crt') };
    writeFileSync(files.certFile, leaf.chainPem);
    writeFileSync(files.keyFile, leaf.keyPem);
    writeFileSync(files.caFile, ca.rootPem);
    const mesh = await createMesh({ service: 'bar', namespace: 'foo', config: [], identity: files, logger: quiet });
    meshes.push(mesh);
    assert.equal(mesh.credentials.current?.spiffeId, spiffe('foo', 'bar'));
    assert.deepEqual(mesh.diagnostics().identity, { spiffeId: spiffe('foo', 'bar'), notAfter: new X509Certificate(leaf.certPem).validToDate.getTime(), source: 'files' });
  });

  it('refuses to start with files it cannot use, naming the file and why', async () => {
    const ca = makeCa();
    const other = makeCa();
    const leaf = issueLeaf(ca, { uris: [spiffe('foo', 'bar')] });
    const stranger = issueLeaf(other, { uris: [spiffe('foo', 'bar')] });
    const d = tmp();
    const files = { certFile: join(d, 'tls.crt'), keyFile: join(d, 'tls.key'), caFile: join(d, 'ca.crt') };
    writeFileSync(files.certFile, leaf.chainPem);
    writeFileSync(files.keyFile, stranger.keyPem);
    writeFileSync(files.caFile, ca.rootPem);
    await assert.rejects(createMesh({ service: 'bar', namespace: 'foo', config: [], identity: files, logger: quiet }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'MESHLET_ERR_INVALID_ARG');
      assert.match(e.message, /^createMesh: identity files: .*tls\.key: the private key does not match the certificate in .*tls\.crt$/);
      return true;
    });
    await assert.rejects(createMesh({ service: 'bar', config: [], identity: { ...files, caFile: join(d, 'missing.crt') }, logger: quiet }), /missing\.crt: missing \(no such file\)/);
  });

  it("warns, naming the file, when the certificate's trust domain is not the mesh's trustDomain nor an alias", async () => {
    const ca = makeCa();
    const leaf = issueLeaf(ca, { uris: [spiffe('foo', 'bar', 'spire.example')] });
    const d = tmp();
    const files = { certFile: join(d, 'tls.crt'), keyFile: join(d, 'tls.key'), caFile: join(d, 'ca.crt') };
    writeFileSync(files.certFile, leaf.chainPem);
    writeFileSync(files.keyFile, leaf.keyPem);
    writeFileSync(files.caFile, ca.rootPem);
    const warnings: string[] = [];
    meshes.push(await createMesh({ service: 'bar', namespace: 'foo', config: [], identity: files, logger: { warn: (m) => warnings.push(m) } }));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.ok(warnings[0]?.includes(`the certificate in ${files.certFile} names spiffe://spire.example/ns/foo/sa/bar, of trust domain spire.example, but this mesh's trust domain is cluster.local`), warnings[0]);
    warnings.length = 0;
    meshes.push(await createMesh({ service: 'bar', namespace: 'foo', config: [], trustDomain: 'spire.example', identity: files, logger: { warn: (m) => warnings.push(m) } }));
    meshes.push(await createMesh({ service: 'bar', namespace: 'foo', config: [], trustDomainAliases: ['spire.example'], identity: files, logger: { warn: (m) => warnings.push(m) } }));
    assert.deepEqual(warnings, []);
  });
});

describe('createMesh identity: dev CA', () => {
  it('issues spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount> and renews it on the mesh clock', async () => {
    const dir = join(tmp(), 'ca');
    await initDevCa(dir);
    const clock = new ManualClock();
    const mesh = await createMesh({ service: 'reviews', namespace: 'bookinfo', serviceAccount: 'bookinfo-reviews', config: [], identity: { devCa: dir }, clock, logger: quiet });
    meshes.push(mesh);
    const first = mesh.credentials.current;
    assert.ok(first !== undefined);
    assert.equal(first.spiffeId, 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews');
    assert.deepEqual(mesh.diagnostics().identity, { spiffeId: first.spiffeId, notAfter: first.notAfter, source: 'dev-ca' });
    const halfLife = (first.notAfter - first.notBefore) / 2;
    clock.advance(halfLife - 3 * 60_000); // issued 2 min after notBefore: not yet halfway
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(mesh.credentials.current?.generation, first.generation);
    clock.advance(2 * 60_000);
    await until(() => mesh.credentials.current?.generation === first.generation + 1, 'renewed at half its lifetime');
  });

  it("defaults the service account to 'default'; a CA of another trust domain is refused", async () => {
    const dir = join(tmp(), 'ca');
    await initDevCa(dir, { trustDomain: 'example.org' });
    const mesh = await createMesh({ service: 'x', config: [], identity: { devCa: dir }, trustDomain: 'example.org', logger: quiet });
    meshes.push(mesh);
    assert.equal(mesh.credentials.current?.spiffeId, 'spiffe://example.org/ns/default/sa/default');
    await assert.rejects(createMesh({ service: 'x', config: [], identity: { devCa: dir }, logger: quiet }), /createMesh: identity devCa .*: the dev CA in .* is for trust domain "example\.org" but the mesh's trustDomain is "cluster\.local"/);
  });

  it('two meshes from one dev CA complete a mutual TLS handshake with their credentials', async (t) => {
    const dir = join(tmp(), 'ca');
    await initDevCa(dir);
    const a = await createMesh({ service: 'a', namespace: 'foo', serviceAccount: 'a', config: [], identity: { devCa: dir }, logger: quiet });
    const b = await createMesh({ service: 'b', namespace: 'foo', serviceAccount: 'b', config: [], identity: { devCa: dir }, logger: quiet });
    meshes.push(a, b);
    const ca = a.credentials.current!;
    const cb = b.credentials.current!;
    let peer: string | undefined;
    const srv = tls.createServer({ cert: ca.certChain, key: ca.privateKey, ca: ca.trustBundle, requestCert: true, rejectUnauthorized: true }, (s) => {
      peer = s.getPeerCertificate().subjectaltname;
      s.end('hi');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => srv.close());
    const got = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, cert: cb.certChain, key: cb.privateKey, ca: cb.trustBundle, checkServerIdentity: () => undefined });
      let text = '';
      c.setEncoding('utf8');
      c.on('data', (x) => {
        text += x;
      });
      c.on('end', () => resolve(text));
      c.on('error', reject);
    });
    assert.equal(got, 'hi');
    assert.equal(peer, 'URI:spiffe://cluster.local/ns/foo/sa/b');
  });
});

describe('createMesh identity option', () => {
  it('is none by default: no credentials, no identity in diagnostics', async () => {
    const mesh = await createMesh({ service: 'x', config: [], logger: quiet });
    meshes.push(mesh);
    assert.equal(mesh.credentials.current, undefined);
    assert.equal(mesh.diagnostics().identity, undefined);
  });

  const bad: { name: string; identity: unknown; error: RegExp }[] = [
    { name: 'a string', identity: 'files', error: /`identity` must be \{ certFile, keyFile, caFile \}, \{ devCa: .* 'control-plane' or 'none', got "files"/ },
    { name: 'an empty object', identity: {}, error: /got an object with no keys/ },
    { name: 'a missing caFile', identity: { certFile: 'a', keyFile: 'b' }, error: /`identity\.caFile` must be a non-empty string \(the trusted roots' PEM file\)/ },
    { name: 'an empty devCa', identity: { devCa: '' }, error: /`identity\.devCa` must be a non-empty string/ },
    { name: 'devCa with files', identity: { devCa: 'd', certFile: 'a' }, error: /unexpected `certFile` next to devCa/ },
    { name: 'an unknown key', identity: { certFile: 'a', keyFile: 'b', caFile: 'c', trust: 'd' }, error: /has unexpected `trust`/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.name}`, async () => {
      await assert.rejects(createMesh({ service: 'x', config: [], identity: c.identity as never, logger: quiet }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'MESHLET_ERR_INVALID_ARG');
        assert.match(e.message, c.error);
        return true;
      });
    });
  }
});
