/**
 * The control plane's CA over real HTTP on 127.0.0.1: the root made at first start and kept,
 * CSRs signed for the token's identity only (checked with Node's X509Certificate and
 * `openssl verify`), the errors of the certificates endpoint, a provided intermediate, and
 * `--cert-ttl` bounds.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ControlPlaneCa } from '../../../src/control-plane-server/ca/authority.ts';
import { ManualClock } from '../../../src/core/clock.ts';
import { until } from '../client-helpers.ts';
import { createCsr, generateKeyPair } from '../../../src/security/pki/index.ts';
import { cleanupPki, makeCa } from '../../helpers/pki.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { api, memoryLogger, startTestServer, type TestServer, tempDir, watch } from '../server/helpers.ts';

/** Long enough for the default 24 h certificates (the helper's default is a day). */
const MONTH = { notAfter: new Date(Date.now() + 30 * 86_400_000) };

const servers: TestServer[] = [];
const dirs: (() => void)[] = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) d();
  cleanupPki();
});

async function server(options: Parameters<typeof startTestServer>[1] = {}): Promise<TestServer> {
  const s = await startTestServer(undefined, options);
  servers.push(s);
  return s;
}

function scratch(): string {
  const t = tempDir('meshlet-ca-test-');
  dirs.push(t.cleanup);
  return t.dir;
}

async function csrFor(spiffeId = 'spiffe://cluster.local/ns/default/sa/default'): Promise<{ csr: string; keys: ReturnType<typeof generateKeyPair> }> {
  const keys = generateKeyPair();
  return { csr: await createCsr(keys, { spiffeId }), keys };
}

/** `openssl verify` of a leaf (with its intermediates) against roots; returns its output or throws. */
function opensslVerify(leafChain: string, roots: string): string {
  const dir = scratch();
  const [leaf, ...rest] = leafChain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  writeFileSync(join(dir, 'leaf.pem'), leaf!);
  writeFileSync(join(dir, 'untrusted.pem'), rest.join('') || leaf!);
  writeFileSync(join(dir, 'roots.pem'), roots);
  return execFileSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'roots.pem'), '-untrusted', join(dir, 'untrusted.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('the control plane CA', () => {
  it('generates a root for the trust domain at first start, keeps it in ca.json (0600), and uses it again after a restart', async () => {
    const s = await server({ trustDomain: 'example.org' });
    const file = join(s.dataDir, 'ca.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const first = (await api(s.url, 'GET', '/v1/ca', { token: s.admin })).body;
    assert.equal(first.trustDomain, 'example.org');
    assert.equal(first.origin, 'generated');
    assert.equal(first.roots.length, 1);
    assert.equal(first.signer.fingerprint, first.roots[0].fingerprint);
    assert.equal(first.signer.subject, 'O=example.org');
    assert.equal(first.certTtlMs, 24 * 3600_000);
    const again = await ControlPlaneCa.open({ dataDir: s.dataDir, trustDomain: 'example.org' });
    assert.equal(again.info().signer.fingerprint, first.signer.fingerprint);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).generation, 1);
    await again.close();
  });

  it("signs a CSR for the token's identity only: namespace and service account from the token, the CSR's SAN ignored", async () => {
    const s = await server();
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'bookinfo', serviceAccount: 'bookinfo-reviews' });
    const { csr, keys } = await csrFor('spiffe://evil.example/ns/kube-system/sa/admin');
    const before = Date.now();
    const r = await api(s.url, 'POST', '/v1/certificates', { token, body: { csr } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.spiffeId, 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews');
    const leaf = new X509Certificate(r.body.certChain);
    assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews');
    assert.ok(leaf.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(keys.privateKeyPem))));
    assert.equal(leaf.ca, false);
    const root = new X509Certificate(r.body.trustBundle[0]);
    assert.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey));
    assert.equal(r.body.notAfter, Date.parse(leaf.validTo));
    assert.ok(r.body.notAfter >= Math.floor(before / 1000) * 1000 + 24 * 3600_000 && r.body.notAfter <= Date.now() + 24 * 3600_000, 'a 24 h lifetime');
    assert.equal(r.body.trustBundleVersion, (await api(s.url, 'GET', '/v1/ca', { token })).body.trustBundleVersion);
  });

  it('a certificate it issues passes openssl verify against its trust bundle, and fails against another root', { skip: skipWithout('openssl') }, async () => {
    const s = await server();
    const token = await s.cp.mintToken({ service: 'ratings', namespace: 'default' });
    const r = await api(s.url, 'POST', '/v1/certificates', { token, body: { csr: (await csrFor()).csr } });
    assert.match(opensslVerify(r.body.certChain, r.body.trustBundle.join('')), /leaf\.pem: OK/);
    const other = makeCa({ name: 'other', validity: MONTH });
    assert.throws(() => opensslVerify(r.body.certChain, other.rootPem), /unable to get local issuer certificate|verification failed/);
  });

  it('an admin may issue for any identity (meshlet ca issue), with a shorter lifetime', async () => {
    const s = await server();
    const r = await api(s.url, 'POST', '/v1/certificates', { token: s.admin, body: { csr: (await csrFor()).csr, namespace: 'prod', serviceAccount: 'payments', ttlMs: 600_000 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.spiffeId, 'spiffe://cluster.local/ns/prod/sa/payments');
    const lifetime = r.body.notAfter - Date.now();
    assert.ok(lifetime <= 600_000 && lifetime > 500_000, `lifetime ${lifetime}`);
  });

  it('refuses with clear 4xx errors', async () => {
    const s = await server();
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const { csr } = await csrFor();
    // A CSR whose signature does not verify: one byte of the signature flipped.
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5]! ^= 0xff;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    const cases: [string, { token?: string; body?: unknown; text?: string }, number, RegExp][] = [
      ['no token', { body: { csr } }, 401, /no token/],
      ['not JSON', { token, text: 'csr' }, 400, /not valid JSON/],
      ['no csr', { token, body: {} }, 400, /csr must be a PEM certificate signing request/],
      ['a certificate instead of a CSR', { token, body: { csr: makeCa().certPem } }, 400, /csr must be a PEM certificate signing request/],
      ['garbage in the PEM', { token, body: { csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' } }, 400, /certificate request: /],
      ['a signature that does not verify', { token, body: { csr: tampered } }, 400, /certificate request: .*signature/i],
      ['another namespace', { token, body: { csr, namespace: 'kube-system' } }, 403, /the token is for namespace default, not kube-system/],
      ['another service account', { token, body: { csr, serviceAccount: 'admin' } }, 403, /the token is for service account default, not admin/],
      ['a lifetime from a workload', { token, body: { csr, ttlMs: 120_000 } }, 403, /only an admin token may ask for a lifetime/],
      ['admin without a namespace', { token: s.admin, body: { csr } }, 400, /namespace is required with an admin token/],
      ['admin with a bad namespace', { token: s.admin, body: { csr, namespace: 'Not OK' } }, 400, /namespace must be a DNS-1123 name/],
      ['admin lifetime under a minute', { token: s.admin, body: { csr, namespace: 'a', ttlMs: 1000 } }, 400, /ttlMs must be a number of ms, at least 60000/],
      ['admin lifetime over --cert-ttl', { token: s.admin, body: { csr, namespace: 'a', ttlMs: 48 * 3600_000 } }, 400, /longer than the control plane's certificate lifetime/],
      ['a body over 32 KiB', { token, body: { csr: csr + ' '.repeat(33 * 1024) } }, 413, /larger than 32768 bytes/],
    ];
    for (const [what, o, status, message] of cases) {
      const r = await api(s.url, 'POST', '/v1/certificates', o);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error.message, message, what);
    }
    const rotate = await api(s.url, 'POST', '/v1/ca/rotate', { token, body: {} });
    assert.equal(rotate.status, 403);
    assert.match(rotate.body.error.message, /rotating the CA needs an admin token/);
  });

  it('--cert-ttl: down to a minute; less, or more than the CA has left, is refused naming why', async () => {
    const dir = scratch();
    const ok = await ControlPlaneCa.open({ dataDir: dir, certTtlMs: 60_000 });
    assert.equal(ok.certTtlMs, 60_000);
    await ok.close();
    await assert.rejects(ControlPlaneCa.open({ dataDir: dir, certTtlMs: 59_000 }), /--cert-ttl\) must be at least 1m/);
    await assert.rejects(ControlPlaneCa.open({ dataDir: dir, certTtlMs: 11 * 365 * 24 * 3600_000 }), /--cert-ttl\) .* is longer than the CA has left \(it expires/);
  });

  it('rotate with an overlap finalizes by itself when it ends, pushing the bundle, also after a restart; an overlap shorter than the certificate lifetime is refused', async () => {
    // One manual time line for the timers and the wall clock.
    const clock = new ManualClock();
    const base = Date.now();
    const now = () => base + clock.now();
    const dir = scratch();
    const ca = await ControlPlaneCa.open({ dataDir: dir, certTtlMs: 120_000, clock, now });
    const bundles: number[] = [];
    ca.onChange((b) => bundles.push(b.roots.length));
    await assert.rejects(ca.rotate({ overlapMs: 60_000 }), /the overlap must be at least the certificate lifetime \(--cert-ttl, 120000 ms\)/);
    await assert.rejects(ca.rotate({ finalize: true, overlapMs: 120_000 }), /finalize takes no overlap/);
    const rotated = await ca.rotate({ overlapMs: 180_000 });
    assert.equal(rotated.rotating, true);
    assert.equal(rotated.finalizeAt, new Date(base + 180_000).toISOString());
    clock.advance(179_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(ca.info().roots.length, 2, 'not before the overlap ends');
    clock.advance(1000);
    // The new bundle is told to listeners after it is stored: wait for both, not the first only.
    await until(() => ca.info().roots.length === 1 && bundles.length === 2, 'the finalize at the end of the overlap, and its bundle pushed');
    assert.deepEqual(bundles, [2, 1]);
    assert.equal(ca.info().finalizeAt, undefined);
    // A rotation with an overlap survives a restart: the reopened CA finalizes when it ends.
    const overlapping = await ca.rotate({ overlapMs: 120_000 });
    await ca.close();
    const logger = memoryLogger();
    const again = await ControlPlaneCa.open({ dataDir: dir, certTtlMs: 120_000, clock, now, logger });
    assert.equal(again.info().roots.length, 2);
    // The start's warning says when the rotation finalizes itself, not to finalize it by hand.
    const warning = logger.lines.find((l) => l.startsWith('warn CA: 2 roots are trusted'));
    assert.ok(warning?.includes(`the old ones are dropped by themselves at ${overlapping.finalizeAt}`), logger.lines.join('\n'));
    clock.advance(120_000);
    await until(() => again.info().roots.length === 1, 'the finalize after a restart');
    await again.close();
  });

  it('a damaged ca.json stops the start, naming the file', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'ca.json'), '{"format":1,"generation":1,"origin":"generated","certChain":"x","key":"y","root":"z","roots":["z"]}');
    await assert.rejects(ControlPlaneCa.open({ dataDir: dir }), (e: Error) => e.message.includes(join(dir, 'ca.json')) && /certChain holds no PEM certificate/.test(e.message));
    writeFileSync(join(dir, 'ca.json'), 'not json');
    await assert.rejects(ControlPlaneCa.open({ dataDir: dir }), /ca\.json: not JSON/);
  });
});

describe('POST /v1/report', () => {
  it("records a workload's certificate and TLS counts on its own stream; refuses another's, an unknown one and bad shapes", async () => {
    const s = await server();
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const other = await s.cp.mintToken({ service: 'ratings', namespace: 'default' });
    const w = await watch(s.url, 'service=reviews&namespace=default', { token });
    try {
      const connection = (await w.next('hello')).data.connection as string;
      const identity = { spiffeId: 'spiffe://cluster.local/ns/default/sa/default', notAfter: Date.now() + 3600_000, source: 'control-plane' };
      const inboundTls = { plaintext: 3, mtls: 40, peers: { 'cluster.local/ns/default/sa/productpage': 40 }, lastPlaintextAt: Date.now() - 60_000 };
      const ok = await api(s.url, 'POST', '/v1/report', { token, body: { connection, identity, inboundTls } });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const row = s.cp.status().workloads.find((x) => x.connection === connection)!;
      assert.deepEqual(row.identity, identity);
      assert.deepEqual({ ...row.inboundTls, peers: { ...row.inboundTls!.peers } }, inboundTls);
      assert.ok(row.reportedAt !== undefined);
      const cases: [string, string, unknown, number, RegExp][] = [
        ["another workload's stream", other, { connection, identity }, 403, /report: the token is for default\/ratings, not default\/reviews/],
        ['an unknown stream', token, { connection: 'nope', identity }, 404, /connection nope is not connected to this server/],
        ['no connection', token, { identity }, 400, /connection must be a string/],
        ['not a SPIFFE ID', token, { connection, identity: { ...identity, spiffeId: 'https://x' } }, 400, /identity.spiffeId must be a spiffe:\/\/ URI/],
        ['a bad source', token, { connection, identity: { ...identity, source: 'magic' } }, 400, /identity.source must be/],
        ['negative counts', token, { connection, inboundTls: { plaintext: -1, mtls: 0 } }, 400, /must be non-negative integers/],
        ['a bad last plaintext time', token, { connection, inboundTls: { plaintext: 1, mtls: 0, lastPlaintextAt: 'yesterday' } }, 400, /lastPlaintextAt must be epoch milliseconds/],
        // Past what a Date holds: `meshlet status` would throw printing it (RangeError: Invalid time value).
        ['a last plaintext time no Date holds', token, { connection, inboundTls: { plaintext: 1, mtls: 0, lastPlaintextAt: 9e15 } }, 400, /lastPlaintextAt must be epoch milliseconds/],
        ['an expiry no Date holds', token, { connection, identity: { ...identity, notAfter: 9e15 } }, 400, /identity.notAfter must be epoch milliseconds/],
        ['too many peers', token, { connection, inboundTls: { plaintext: 0, mtls: 0, peers: Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`p${i}`, 1])) } }, 413, /201 peers, more than 200/],
      ];
      for (const [what, t, body, status, message] of cases) {
        const r = await api(s.url, 'POST', '/v1/report', { token: t, body });
        assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error.message, message, what);
      }
    } finally {
      w.close();
    }
  });
});

describe('a provided CA (--ca-cert, --ca-key, --ca-chain, --ca-root)', { skip: skipWithout('openssl') }, () => {
  it('an intermediate signs; leaves carry it in their chain and verify against the root', async () => {
    const root = makeCa({ name: 'corp-root', validity: MONTH });
    const inter = makeCa({ name: 'mesh-intermediate', parent: root, validity: MONTH });
    const dir = scratch();
    writeFileSync(join(dir, 'chain.pem'), root.certPem);
    const s = await server({ ca: { certFile: inter.certFile, keyFile: inter.keyFile, chainFile: join(dir, 'chain.pem') } });
    const info = (await api(s.url, 'GET', '/v1/ca', { token: s.admin })).body;
    assert.equal(info.origin, 'provided');
    assert.equal(info.signer.subject, 'O=mesh-intermediate');
    assert.deepEqual(
      info.roots.map((r: { subject: string }) => r.subject),
      ['O=corp-root'],
    );
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const r = await api(s.url, 'POST', '/v1/certificates', { token, body: { csr: (await csrFor()).csr } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const chain = r.body.certChain.match(/-----BEGIN CERTIFICATE-----/g);
    assert.equal(chain.length, 2, 'leaf and intermediate');
    assert.match(opensslVerify(r.body.certChain, root.certPem), /OK/);
  });

  it('refuses, naming the file and the problem', async () => {
    const root = makeCa({ name: 'corp-root', validity: MONTH });
    const inter = makeCa({ name: 'mesh-intermediate', parent: root, validity: MONTH });
    const other = makeCa({ name: 'other', validity: MONTH });
    const dir = scratch();
    const f = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const leaf = f('leaf.pem', (await (async () => {
      const s = await server();
      const t = await s.cp.mintToken({ service: 'x', namespace: 'default' });
      return (await api(s.url, 'POST', '/v1/certificates', { token: t, body: { csr: (await csrFor()).csr } })).body.certChain as string;
    })()));
    const cases: [Parameters<typeof ControlPlaneCa.open>[0]['provided'], RegExp][] = [
      [{ certFile: join(dir, 'missing.pem'), keyFile: root.keyFile }, /--ca-cert .*missing\.pem: cannot read it \(ENOENT\)/],
      [{ certFile: f('empty.pem', 'hello'), keyFile: root.keyFile }, /--ca-cert .*empty\.pem: no PEM certificate in it/],
      [{ certFile: root.certFile, keyFile: f('notkey.pem', 'nope') }, /--ca-key .*notkey\.pem: not a PEM private key/],
      [{ certFile: root.certFile, keyFile: other.keyFile }, /--ca-key .*: this key is not the key of the certificate in --ca-cert .* \(O=corp-root\)/],
      [{ certFile: leaf, keyFile: root.keyFile }, /is not a CA certificate \(basicConstraints CA:TRUE/],
      [{ certFile: inter.certFile, keyFile: inter.keyFile }, /does not end at a self-signed root; give the root \(--ca-root\)/],
      [{ certFile: inter.certFile, keyFile: inter.keyFile, chainFile: f('wrong-chain.pem', other.certPem) }, /O=mesh-intermediate is not issued and signed by the next certificate of the chain, O=other/],
      [{ certFile: inter.certFile, keyFile: inter.keyFile, rootFile: f('wrong-root.pem', other.certPem) }, /O=mesh-intermediate is not issued by the root O=other/],
    ];
    for (const [provided, message] of cases) {
      await assert.rejects(ControlPlaneCa.open({ dataDir: scratch(), provided }), message);
    }
    const expired = makeCa({ name: 'old', validity: { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) } });
    await assert.rejects(ControlPlaneCa.open({ dataDir: scratch(), provided: { certFile: expired.certFile, keyFile: expired.keyFile } }), /--ca-cert .*: O=old expired on/);
    // The intermediate with --ca-root instead of a chain works.
    const ok = await ControlPlaneCa.open({ dataDir: scratch(), provided: { certFile: inter.certFile, keyFile: inter.keyFile, rootFile: root.certFile } });
    assert.equal(ok.info().roots[0]?.subject, 'O=corp-root');
    await ok.close();
  });

  it('a rotation to a given CA (POST /v1/ca/rotate with certChain and key): it signs, the old root stays trusted until finalize; a bad one is refused naming the field', async () => {
    const s = await server();
    const before = (await api(s.url, 'GET', '/v1/ca', { token: s.admin })).body;
    const root = makeCa({ name: 'corp-root', validity: MONTH });
    const inter = makeCa({ name: 'mesh-intermediate', parent: root, validity: MONTH });
    const bad = await api(s.url, 'POST', '/v1/ca/rotate', { token: s.admin, body: { certChain: inter.certPem, key: root.keyPem, root: root.certPem } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /rotate: key: this key is not the key of the certificate in certChain/);
    const unknown = await api(s.url, 'POST', '/v1/ca/rotate', { token: s.admin, body: { finalise: true } });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error.message, /unknown field "finalise"/);
    const r = await api(s.url, 'POST', '/v1/ca/rotate', { token: s.admin, body: { certChain: inter.certPem, key: inter.keyPem, root: root.certPem } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.origin, 'provided');
    assert.equal(r.body.signer.subject, 'O=mesh-intermediate');
    assert.deepEqual(
      r.body.roots.map((x: { fingerprint: string }) => x.fingerprint),
      [before.roots[0].fingerprint, new X509Certificate(root.certPem).fingerprint256],
    );
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const leaf = await api(s.url, 'POST', '/v1/certificates', { token, body: { csr: (await csrFor()).csr } });
    assert.match(opensslVerify(leaf.body.certChain, leaf.body.trustBundle.join('')), /OK/);
    assert.equal(leaf.body.trustBundle.length, 2);
    const again = await api(s.url, 'POST', '/v1/ca/rotate', { token: s.admin, body: { certChain: inter.certPem, key: inter.keyPem, root: root.certPem } });
    assert.equal(again.status, 409);
    assert.match(again.body.error.message, /that CA signs already/);
  });

  it('restarting with a different --ca-cert than the stored CA is a rotation (old roots trusted until finalize); the same one again changes nothing', async () => {
    const dir = scratch();
    const generated = await ControlPlaneCa.open({ dataDir: dir });
    const oldRoot = generated.info().roots[0]!.fingerprint;
    await generated.close();
    const root = makeCa({ name: 'corp-root', validity: MONTH });
    const switched = await ControlPlaneCa.open({ dataDir: dir, provided: { certFile: root.certFile, keyFile: root.keyFile } });
    const info = switched.info();
    await switched.close();
    assert.equal(info.origin, 'provided');
    assert.equal(info.generation, 2);
    assert.equal(info.rotating, true);
    assert.deepEqual(
      info.roots.map((r) => r.fingerprint),
      [oldRoot, new X509Certificate(root.certPem).fingerprint256],
    );
    const same = await ControlPlaneCa.open({ dataDir: dir, provided: { certFile: root.certFile, keyFile: root.keyFile } });
    assert.equal(same.info().generation, 2);
    assert.equal(same.info().roots.length, 2);
    await same.rotate({ finalize: true });
    assert.equal(same.info().roots.length, 1);
    await same.close();
  });
});
