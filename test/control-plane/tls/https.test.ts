/**
 * The control plane over TLS (istiod's 15012), with real handshakes on loopback: a mesh watches,
 * ACKs, registers and gets its certificate over https, verifying the control plane with the
 * `root-cert.pem` of its data dir; another CA, or none (the system's), is refused (fails closed,
 * the error names the URL and why); the serving certificate is renewed at half its life on a
 * `ManualClock` while a watch stream stays up, and reissued from the new root on a rotation; a
 * certificate of the operator's PKI (`--tls-cert`/`--tls-key`) is served and re-read when
 * replaced; plain HTTP beyond loopback is warned about.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import timers from 'node:timers';
import { connect } from 'node:tls';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { callOne } from '../../../src/cli/client.ts';
import { ROOT_CERT_FILE } from '../../../src/control-plane-server/serving-tls.ts';
import { ManualClock } from '../../../src/core/clock.ts';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { CertificateAuthority } from '../../../src/security/pki/index.ts';
import { routeAll, shortJitter, startTestControlPlane, until, waitFor } from '../client-helpers.ts';
import { memoryLogger, startTestServer, type TestServer, tempDir } from '../server/helpers.ts';

const opened: { close(): Promise<void> | void }[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
});

const quiet = { warn: () => undefined };

/** The certificate a fresh TLS connection is served (verified against `ca`, for `servername`). */
function servedCertificate(port: number, ca: string, servername = 'localhost'): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername }, () => {
      const c = s.getPeerX509Certificate();
      s.end();
      if (c === undefined) reject(new Error('no peer certificate'));
      else resolve(c);
    });
    s.on('error', reject);
  });
}

async function tlsServer(options: Parameters<typeof startTestServer>[1] = {}): Promise<TestServer> {
  const t = await startTestServer({ 'vs.json': JSON.stringify(routeAll('reviews', 'reviews', 'reviews-v1')) }, { tls: { auto: true }, ...options });
  opened.push(t);
  return t;
}

describe('the control plane over TLS', () => {
  it('serves https: a mesh gets its config, ACKs, registers and gets its certificate, verifying the control plane with root-cert.pem', async () => {
    const t = await tlsServer();
    assert.match(t.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const rootFile = join(t.dataDir, ROOT_CERT_FILE);
    assert.equal(readFileSync(rootFile, 'utf8'), t.cp.ca.bundle.roots.join(''), 'root-cert.pem holds the trust bundle');
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default', serviceAccount: 'bookinfo-productpage' });
    const mesh: Mesh = await createMesh({ service: 'productpage', controlPlane: t.url, controlPlaneCa: rootFile, token, drainMs: 0, logger: quiet, labels: { app: 'productpage' } });
    opened.push(mesh);
    assert.equal(mesh.diagnostics().configSource, 'control-plane');
    assert.equal(mesh.configVersion, t.cp.status().configVersion);
    // The certificate came over the same https connection, from the CSR.
    assert.equal(mesh.diagnostics().identity?.spiffeId, 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage');
    // The ACK reached the control plane.
    await until(() => t.cp.status().workloads.some((w) => w.service === 'productpage' && w.acked?.config?.version === t.cp.status().configVersion), 'the ACK');
    // A registration, over https.
    const reg = await mesh.register({ ports: { http: 9080 }, address: '10.0.0.7' });
    opened.push(reg);
    const listed = await fetchJson(t, '/v1/workloads', t.admin, rootFile);
    assert.ok((listed.workloads as { workload: { spec: { address: string } } }[]).some((w) => w.workload.spec.address === '10.0.0.7'), JSON.stringify(listed));
    // A PEM string works as well as a file.
    const again = await createMesh({ service: 'ratings', controlPlane: t.url, controlPlaneCa: readFileSync(rootFile, 'utf8'), token: await t.cp.mintToken({ service: 'ratings', namespace: 'default' }), drainMs: 0, logger: quiet, identity: 'none' });
    opened.push(again);
    assert.equal(again.configVersion, t.cp.status().configVersion);
  });

  it('refuses a control plane whose certificate another CA issued, or that the system CAs do not know: createMesh fails closed naming the URL and why', async () => {
    const t = await tlsServer();
    const other = await CertificateAuthority.createRoot({ trustDomain: 'other.example' });
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    for (const controlPlaneCa of [other.rootPem, undefined]) {
      await assert.rejects(
        createMesh({ service: 'productpage', controlPlane: t.url, controlPlaneCa, token, drainMs: 0, startupTimeoutMs: 1500, logger: quiet }),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'MESHLET_ERR_CONTROL_PLANE', e.message);
          assert.ok(e.message.includes(t.url), e.message);
          assert.match(e.message, /TLS: the server's certificate is not signed by a trusted CA; .*\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN)\)/);
          return true;
        },
      );
    }
    // No workload ever connected: nothing was sent before the handshake failed.
    assert.equal(t.cp.status().workloads.length, 0);
  });

  it('an http:// URL left pointing at a control plane that now serves TLS: the mesh and the CLI say to give https://', async () => {
    const t = await tlsServer();
    const plain = t.url.replace('https://', 'http://');
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const hint = `; if it serves only TLS (meshlet control-plane --tls …), give ${t.url}`;
    await assert.rejects(createMesh({ service: 'productpage', controlPlane: plain, token, drainMs: 0, startupTimeoutMs: 1500, logger: quiet }), (e: Error) => {
      assert.ok(e.message.endsWith(hint), e.message);
      return true;
    });
    // A GET is answered as Go's net/http answers plain HTTP on a TLS port (400, its text) …
    await assert.rejects(callOne(plain, token, 'GET', '/status'), (e: Error) => {
      assert.equal(e.message, `the control plane at ${plain} answered 400: Client sent an HTTP request to an HTTPS server.${hint}`);
      return true;
    });
    // … and a server that closes a plain request unanswered (a TLS port without that answer) gets the same hint.
    const silent = createNetServer((s) => s.destroy());
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      await assert.rejects(callOne(silentUrl, token, 'GET', '/status'), (e: Error) => {
        assert.ok(e.message.startsWith(`the control plane at ${silentUrl} closed the connection before it answered`), e.message);
        assert.ok(e.message.endsWith(`; if it serves only TLS (meshlet control-plane --tls …), give ${silentUrl.replace('http://', 'https://')}`), e.message);
        return true;
      });
    } finally {
      await new Promise((r) => silent.close(r));
    }
  });

  it('a lone http:// URL to a TLS-only control plane fails start-up at its first answer, not after startupTimeoutMs; failOpen still starts', async () => {
    const t = await tlsServer();
    const plain = t.url.replace('https://', 'http://');
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    // The clock never moves unless the test moves it: a start-up that waits for startupTimeoutMs cannot end by itself.
    const clock = new ManualClock(1_000);
    const p = createMesh({ service: 'productpage', controlPlane: plain, token, drainMs: 0, startupTimeoutMs: 10_000, clock, logger: quiet }).then(
      (m) => m,
      (e: Error) => e,
    );
    // A guard against a hang only (the defect): a fixed start-up ends at the control plane's first answer.
    const guard = new Promise<'pending'>((r) => timers.setTimeout(r, 5_000, 'pending').unref());
    if ((await Promise.race([p, guard])) === 'pending') clock.advance(10_000);
    const e = await p;
    assert.ok(e instanceof Error, 'createMesh started');
    assert.doesNotMatch(e.message, /no config within/);
    assert.ok(e.message.startsWith(`control plane ${plain}: `), e.message);
    assert.ok(e.message.endsWith(`; if it serves only TLS (meshlet control-plane --tls …), give ${t.url}`), e.message);
    // failOpen keeps its meaning: the mesh starts without config, at once.
    const logger = memoryLogger();
    const open = createMesh({ service: 'productpage', controlPlane: plain, token, drainMs: 0, startupTimeoutMs: 10_000, clock: new ManualClock(1_000), failOpen: true, identity: 'none', logger }).then(
      (m) => m,
      (err: Error) => err,
    );
    const guard2 = new Promise<'pending'>((r) => timers.setTimeout(r, 5_000, 'pending').unref());
    const m = await Promise.race([open, guard2]);
    assert.ok(m !== 'pending' && !(m instanceof Error), String(m));
    try {
      assert.ok(logger.lines.some((w) => w.includes('starting without config (failOpen)') && w.includes('give https://')), logger.lines.join('\n'));
    } finally {
      await m.close();
    }
  });

  it('refuses a CA with an http:// URL, and a CA that holds no certificate, naming the option', async () => {
    const { dir, cleanup } = tempDir();
    opened.push({ close: cleanup });
    await assert.rejects(createMesh({ service: 'a', controlPlane: 'http://127.0.0.1:1', controlPlaneCa: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----', logger: quiet }), /`controlPlaneCa` verifies an https:\/\/ control plane, but http:\/\/127\.0\.0\.1:1 is plain HTTP/);
    writeFileSync(join(dir, 'empty.pem'), 'nothing here\n');
    await assert.rejects(createMesh({ service: 'a', controlPlane: 'https://127.0.0.1:1', controlPlaneCa: join(dir, 'empty.pem'), logger: quiet }), /`controlPlaneCa` .*empty\.pem: holds no PEM certificate/);
    await assert.rejects(createMesh({ service: 'a', controlPlane: 'https://127.0.0.1:1', controlPlaneCa: join(dir, 'missing.pem'), logger: quiet }), /`controlPlaneCa` .*missing\.pem: cannot read it \(ENOENT\)/);
    process.env.MESHLET_CONTROL_PLANE_CA = join(dir, 'missing.pem');
    try {
      await assert.rejects(createMesh({ service: 'a', controlPlane: 'https://127.0.0.1:1', logger: quiet }), /\$MESHLET_CONTROL_PLANE_CA .*missing\.pem: cannot read it/);
    } finally {
      delete process.env.MESHLET_CONTROL_PLANE_CA;
    }
  });

  it('renews its serving certificate at half its life without ending watch streams, and reissues it from the new root on a rotation', async () => {
    const ttlMs = 4 * 3600_000;
    // The clock starts in the past, so each certificate it issues is valid in real time (what the handshake checks).
    const clock = new ManualClock(Date.now() - 0.75 * ttlMs);
    const t = await tlsServer({ tls: { auto: true, ttlMs }, clock });
    const rootFile = join(t.dataDir, ROOT_CERT_FILE);
    const root = readFileSync(rootFile, 'utf8');
    const first = await servedCertificate(t.cp.port, root);
    const mesh: Mesh = await createMesh({ service: 'productpage', controlPlane: t.url, controlPlaneCa: rootFile, token: await t.cp.mintToken({ service: 'productpage', namespace: 'default' }), drainMs: 0, logger: quiet, identity: 'none' });
    opened.push(mesh);
    // The watch stream (its connection id, as the status shows it) and whether the mesh ever lost it.
    const streams = () => t.cp.status().workloads.filter((w) => w.service === 'productpage' && w.disconnectedAt === undefined).map((w) => w.connection);
    await until(() => streams().length === 1, 'the watch stream');
    const [stream] = streams();
    let drops = 0;
    mesh.on('disconnected', () => drops++);

    clock.advance(ttlMs / 2 + 1000);
    await until(() => t.cp.servingCertificate?.notAfter !== Date.parse(first.validTo), 'the renewal');
    const renewed = await servedCertificate(t.cp.port, root);
    assert.notEqual(renewed.serialNumber, first.serialNumber, 'a new connection gets the new certificate');
    assert.ok(Date.parse(renewed.validTo) > Date.parse(first.validTo));
    assert.ok(t.logs.some((l) => l.includes('TLS: renewed the serving certificate (half of its lifetime passed)')), t.logs.join('\n'));
    // The watch stream opened before the renewal carries the next change.
    const before = mesh.configVersion;
    const pushed = waitFor<{ version: string }>(mesh, 'config', (e) => e.version !== before);
    writeFileSync(join(t.configDir, 'vs.json'), JSON.stringify(routeAll('reviews', 'reviews', 'reviews-v2')));
    assert.equal((await pushed).version, t.cp.status().configVersion);
    assert.deepEqual({ streams: streams(), drops }, { streams: [stream], drops: 0 }, 'the stream was never dropped');

    // A rotation: the serving certificate comes from the new root; root-cert.pem holds both.
    await t.cp.ca.rotate({});
    await until(() => readFileSync(rootFile, 'utf8').split('BEGIN CERTIFICATE').length === 3, 'root-cert.pem with both roots');
    await until(() => t.logs.some((l) => l.includes('TLS: renewed the serving certificate (the CA roots changed)')), 'the reissue');
    const both = readFileSync(rootFile, 'utf8');
    const rotated = await servedCertificate(t.cp.port, both);
    const newRoot = new X509Certificate(t.cp.ca.bundle.roots.find((r) => r !== root)!);
    assert.ok(rotated.checkIssued(newRoot) && rotated.verify(newRoot.publicKey), 'issued by the new root');
    await assert.rejects(servedCertificate(t.cp.port, root), /unable to verify|self.signed|unable to get/i, 'the old root alone no longer verifies it');
    assert.deepEqual({ streams: streams(), drops }, { streams: [stream], drops: 0 });
  });

  it('a mesh given only the old root keeps reaching the control plane after a root rotation: it trusts the roots pushed to it', async () => {
    const t = await startTestControlPlane({ 'vs.json': [routeAll('reviews', 'reviews', 'reviews-v1')] }, { tls: { auto: true } });
    opened.push(t);
    const oldRoot = readFileSync(join(t.dataDir, ROOT_CERT_FILE), 'utf8');
    const mesh: Mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, controlPlaneCa: oldRoot, token: await t.cp.mintToken({ service: 'productpage', namespace: 'default' }), drainMs: 0, logger: quiet, random: shortJitter(7) });
    opened.push(mesh);
    await t.cp.ca.rotate({});
    await until(() => mesh.credentials.current?.trustBundle.split('BEGIN CERTIFICATE').length === 3, 'the pushed bundle with both roots');
    // Restarted, the control plane serves a certificate of the new root only: new connections must trust it.
    await t.cp.close();
    const reconnected = waitFor(mesh, 'connected', () => true, 15_000);
    await t.restart();
    await reconnected;
    const reg = await mesh.register({ ports: { http: 9080 }, address: '10.0.0.8' });
    opened.push(reg);
    assert.equal(reg.namespace, 'default');
  });

  it("serves a certificate of the operator's PKI (--tls-cert/--tls-key) and re-reads it when replaced", async () => {
    const { dir, cleanup } = tempDir('meshlet-cp-pki-');
    opened.push({ close: cleanup });
    const pki = await CertificateAuthority.createRoot({ trustDomain: 'corp.example' });
    const write = async () => {
      const c = await pki.issueServing({ names: ['localhost', '127.0.0.1'], ttlMs: 3600_000 });
      writeFileSync(join(dir, 'tls.crt'), c.certChainPem);
      writeFileSync(join(dir, 'tls.key'), c.keyPem);
      return new X509Certificate(c.certChainPem).serialNumber;
    };
    const serial1 = await write();
    const clock = new ManualClock(Date.now());
    const t = await tlsServer({ tls: { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), reloadMs: 60_000 }, clock });
    assert.equal((await servedCertificate(t.cp.port, pki.rootPem)).serialNumber, serial1);
    const mesh: Mesh = await createMesh({ service: 'productpage', controlPlane: t.url, controlPlaneCa: pki.rootPem, token: await t.cp.mintToken({ service: 'productpage', namespace: 'default' }), drainMs: 0, logger: quiet });
    opened.push(mesh);
    assert.equal(mesh.diagnostics().identity?.spiffeId, 'spiffe://cluster.local/ns/default/sa/default', "the workload certificate still comes from the control plane's own CA");
    const serial2 = await write();
    clock.advance(60_000);
    await until(() => t.logs.some((l) => l.includes('TLS: serving the replaced certificate')), 'the reload');
    assert.equal((await servedCertificate(t.cp.port, pki.rootPem)).serialNumber, serial2);
    // A broken replacement keeps the last good one.
    writeFileSync(join(dir, 'tls.key'), 'not a key');
    clock.advance(60_000);
    await until(() => t.logs.some((l) => l.includes('TLS: not serving the changed files')), 'the refusal');
    assert.equal((await servedCertificate(t.cp.port, pki.rootPem)).serialNumber, serial2);
  });

  it('refuses --tls-cert files that do not fit, naming them', async () => {
    const { dir, cleanup } = tempDir('meshlet-cp-pki-');
    opened.push({ close: cleanup });
    const pki = await CertificateAuthority.createRoot({ trustDomain: 'corp.example' });
    const a = await pki.issueServing({ names: ['localhost'], ttlMs: 3600_000 });
    const b = await pki.issueServing({ names: ['localhost'], ttlMs: 3600_000 });
    writeFileSync(join(dir, 'a.crt'), a.certChainPem);
    writeFileSync(join(dir, 'b.key'), b.keyPem);
    await assert.rejects(startTestServer(undefined, { tls: { certFile: join(dir, 'a.crt'), keyFile: join(dir, 'b.key') } }), /--tls-key .*b\.key: this key is not the key of the certificate in --tls-cert .*a\.crt/);
    await assert.rejects(startTestServer(undefined, { tls: { certFile: join(dir, 'none.crt'), keyFile: join(dir, 'b.key') } }), /--tls-cert .*none\.crt: cannot read it \(ENOENT\)/);
  });

  it('warns when a token-checking control plane listens beyond loopback in plain HTTP, not on loopback or with TLS', async () => {
    const warned = async (host: string, tls: boolean): Promise<string[]> => {
      const logger = memoryLogger();
      const t = await startTestServer(undefined, { host, logger, ...(tls ? { tls: { auto: true } } : {}) });
      await t.close();
      return logger.lines.filter((l) => l.startsWith('warn ') && l.includes('plain HTTP'));
    };
    const wide = await warned('0.0.0.0', false);
    assert.equal(wide.length, 1, 'one warning');
    assert.match(wide[0]!, /plain HTTP on every interface \(0\.0\.0\.0\): tokens, pushed config and workload certificates cross the network unencrypted; .*Serve TLS \(--tls auto, or --tls-cert\/--tls-key\)/);
    assert.deepEqual(await warned('127.0.0.1', false), []);
    assert.deepEqual(await warned('0.0.0.0', true), []);
  });
});

async function fetchJson(t: TestServer, path: string, token: string, caFile: string): Promise<Record<string, unknown>> {
  const { Agent, request } = await import('undici');
  const dispatcher = new Agent({ connect: { ca: readFileSync(caFile, 'utf8') } });
  try {
    const res = await request(`${t.url}${path}`, { headers: { authorization: `Bearer ${token}` }, dispatcher });
    return (await res.body.json()) as Record<string, unknown>;
  } finally {
    await dispatcher.close();
  }
}
