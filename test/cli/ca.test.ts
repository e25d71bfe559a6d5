/**
 * `meshlet ca` through the real CLI: a development CA made, shown, used to issue certificates
 * that openssl verifies and completes a handshake with, rotated with an overlapping bundle and
 * finalized; usage mistakes exit 2, a directory that is not a CA exits 1 naming the file.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as tls from 'node:tls';
import { parse } from 'yaml';
import { skipWithout } from '../helpers/tools.ts';
import { createMesh } from '../../src/index.ts';
import { meshlet } from './helpers.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshlet-ca-cli-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const run = (...args: string[]) => meshlet(args);

/** Runs a tool without blocking this process (a server in it answers); `input` goes to its stdin. */
function execFileAsync(cmd: string, args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
    child.stdin?.end(input);
  });
}

function verifies(caFile: string, certFile: string): boolean {
  try {
    execFileSync('openssl', ['verify', '-CAfile', caFile, certFile], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

describe('meshlet ca', () => {
  it('init makes a CA (key 0600) and refuses to overwrite it; show prints it; -o json', () => {
    const dir = join(tmp(), 'ca');
    const r = run('ca', 'init', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Trust domain: {2}cluster\.local/);
    assert.match(r.stdout, /Fingerprint: {3}SHA256 ([0-9A-F]{2}:){31}[0-9A-F]{2}/);
    assert.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
    for (const f of ['ca-cert.pem', 'cert-chain.pem', 'root-cert.pem']) assert.match(readFileSync(join(dir, f), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
    const again = run('ca', 'init', dir);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /meshlet: ca init: .*ca-cert\.pem exists: .* already holds a CA/);
    const show = run('ca', 'show', dir);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /Subject: {7}O=cluster\.local/);
    assert.match(show.stdout, /Valid: .*expires in 36\d\d days/);
    assert.match(show.stdout, /Bundle: {8}1 root \(root-cert\.pem\)/);
    const doc = JSON.parse(run('ca', 'show', dir, '-o', 'json').stdout);
    assert.equal(doc.trustDomain, 'cluster.local');
    assert.equal(doc.root.key, 'ECDSA P-256');
    assert.equal(doc.bundle.length, 1);
    assert.equal(doc.bundle[0].current, true);
    assert.equal(doc.root.fingerprintSha256, new X509Certificate(readFileSync(join(dir, 'ca-cert.pem'))).fingerprint256);
  });

  it('init --trust-domain --ttl --key', () => {
    const dir = join(tmp(), 'ca');
    const doc = parse(run('ca', 'init', dir, '--trust-domain', 'example.org', '--ttl', '48h', '--key', 'rsa-2048', '-o', 'yaml').stdout);
    assert.equal(doc.trustDomain, 'example.org');
    assert.equal(doc.root.subject, 'O=example.org');
    assert.equal(doc.root.key, 'RSA 2048');
    assert.equal(Date.parse(doc.root.notAfter) - Date.parse(doc.root.notBefore), 48 * 3_600_000);
  });

  it('issue writes a certificate, key and bundle that openssl verifies and completes a mutual TLS handshake with', { skip: skipWithout('openssl') }, async (t) => {
    const d = tmp();
    const dir = join(d, 'ca');
    assert.equal(run('ca', 'init', dir).code, 0);
    const server = run('ca', 'issue', dir, '-n', 'foo', '--service-account', 'server', '--out', join(d, 'server'));
    assert.equal(server.code, 0, server.stderr);
    assert.match(server.stdout, /Issued spiffe:\/\/cluster\.local\/ns\/foo\/sa\/server/);
    const client = JSON.parse(run('ca', 'issue', dir, '-n', 'foo', '--service-account', 'client', '--ttl', '30m', '--out', join(d, 'client'), '-o', 'json').stdout);
    assert.equal(client.spiffeId, 'spiffe://cluster.local/ns/foo/sa/client');
    assert.equal(Date.parse(client.notAfter) - Date.parse(client.notBefore), 32 * 60_000, '30 min, notBefore 2 min back');
    assert.equal(statSync(client.keyFile).mode & 0o777, 0o600);
    assert.ok(verifies(client.caFile, client.certFile));
    const text = execFileSync('openssl', ['x509', '-in', client.certFile, '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/foo\/sa\/client\n/);
    // openssl s_client as the client, with the issued client certificate, against a TLS server with the issued server certificate.
    let peer: string | undefined;
    const srv = tls.createServer({ cert: readFileSync(join(d, 'server.crt')), key: readFileSync(join(d, 'server.key')), ca: readFileSync(join(d, 'server.ca.crt')), requestCert: true, rejectUnauthorized: true }, (s) => {
      peer = s.getPeerCertificate().subjectaltname;
      s.end('hello\n');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => srv.close());
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${(srv.address() as AddressInfo).port}`, '-cert', client.certFile, '-key', client.keyFile, '-CAfile', client.caFile, '-verify_return_error', '-brief', '-ign_eof'], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.end();
    let output = '';
    child.stdout.on('data', (x) => {
      output += x;
    });
    child.stderr.on('data', (x) => {
      output += x;
    });
    await once(child, 'close');
    // (openssl 3 exits 1 on the server's close without close_notify; the handshake and the answer are what count.)
    assert.match(output, /Verification: OK/);
    assert.match(output, /hello/);
    assert.equal(peer, 'URI:spiffe://cluster.local/ns/foo/sa/client');
  });

  it('issue prints a curl and an openssl s_client command that work against a STRICT mesh server', { skip: skipWithout('openssl', 'curl') }, async (t) => {
    const d = tmp();
    const dir = join(d, 'ca');
    assert.equal(run('ca', 'init', dir).code, 0);
    const issued = run('ca', 'issue', dir, '-n', 'bar', '--service-account', 'sleep', '--out', join(d, 'sleep'));
    assert.equal(issued.code, 0, issued.stderr);
    const mesh = await createMesh({
      service: 'httpbin',
      namespace: 'foo',
      identity: { devCa: dir },
      config: [{ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'foo' }, spec: { mtls: { mode: 'STRICT' } } }] as never,
      logger: { warn: () => undefined },
    });
    t.after(() => mesh.close());
    const server = mesh.createServer((req, res) => res.end(`peer=${(req as { meshlet?: { peer?: { principal: string } } }).meshlet?.peer?.principal}`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const command = (tool: string) => {
      // (The old hint read "e.g. curl --cert … --key … --cacert … https://…".)
      const line = issued.stdout.split('\n').find((l) => l.trimStart().startsWith(`${tool} `) || l.startsWith(`e.g. ${tool} `));
      assert.ok(line !== undefined, issued.stdout);
      return line.replace(/^e\.g\. /, '').trim().replaceAll('<host>:<port>', target).replace('https://…', `https://${target}/`).split(/\s+/);
    };
    const [curl, ...curlArgs] = command('curl');
    const c = await execFileAsync(curl!, ['-sS', ...curlArgs]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, 'peer=spiffe://cluster.local/ns/bar/sa/sleep');
    const [openssl, ...opensslArgs] = command('openssl');
    const o = await execFileAsync(openssl!, [...opensslArgs, '-quiet', '-ign_eof'], 'GET / HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n');
    assert.match(o.stdout, /^HTTP\/1\.1 200 OK/m, o.stdout + o.stderr);
    assert.match(o.stdout, /peer=spiffe:\/\/cluster\.local\/ns\/bar\/sa\/sleep/);
  });

  it('rotate: a new root signs, the bundle trusts old and new; --finalize drops the old', { skip: skipWithout('openssl') }, () => {
    const d = tmp();
    const dir = join(d, 'ca');
    assert.equal(run('ca', 'init', dir).code, 0);
    const before = JSON.parse(run('ca', 'show', dir, '-o', 'json').stdout);
    assert.equal(run('ca', 'issue', dir, '-n', 'foo', '--service-account', 'old', '--out', join(d, 'old')).code, 0);
    const r = run('ca', 'rotate', dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Bundle: {8}2 roots/);
    assert.match(r.stdout, /meshlet ca rotate .* --finalize/);
    const mid = JSON.parse(run('ca', 'show', dir, '-o', 'json').stdout);
    assert.notEqual(mid.root.fingerprintSha256, before.root.fingerprintSha256);
    assert.deepEqual(
      mid.bundle.map((b: { fingerprintSha256: string; current: boolean }) => [b.fingerprintSha256, b.current]),
      [
        [mid.root.fingerprintSha256, true],
        [before.root.fingerprintSha256, false],
      ],
    );
    assert.equal(run('ca', 'issue', dir, '-n', 'foo', '--service-account', 'new', '--out', join(d, 'new')).code, 0);
    const bundle = join(dir, 'root-cert.pem');
    assert.ok(verifies(bundle, join(d, 'old.crt')), 'a certificate of the old root is trusted during the overlap');
    assert.ok(verifies(bundle, join(d, 'new.crt')));
    const fin = run('ca', 'rotate', dir, '--finalize');
    assert.equal(fin.code, 0, fin.stderr);
    assert.match(fin.stdout, /Dropped 1 old root/);
    assert.ok(!verifies(bundle, join(d, 'old.crt')), 'after --finalize the old root is no longer trusted');
    assert.ok(verifies(bundle, join(d, 'new.crt')));
    assert.match(run('ca', 'rotate', dir, '--finalize').stdout, /Nothing to finalize/);
  });

  it('usage mistakes exit 2; a directory that is not a CA exits 1 naming the file', () => {
    const d = tmp();
    const dir = join(d, 'ca');
    assert.equal(run('ca', 'init', dir).code, 0);
    const usage: { args: string[]; error: RegExp }[] = [
      { args: ['ca'], error: /give a subcommand \(init, show, issue, rotate\)/ },
      { args: ['ca', 'sign', dir], error: /unknown subcommand "sign"/ },
      { args: ['ca', 'show'], error: /give the CA's directory/ },
      { args: ['ca', 'show', dir, 'more'], error: /unexpected argument "more"/ },
      { args: ['ca', 'issue', dir, '--service-account', 'a'], error: /--namespace is required/ },
      { args: ['ca', 'issue', dir, '-n', 'a'], error: /--service-account is required/ },
      { args: ['ca', 'issue', dir, '-n', 'a/b', '--service-account', 'c'], error: /--namespace: "a\/b" is not a Kubernetes name/ },
      { args: ['ca', 'issue', dir, '-n', 'a', '--service-account', 'c', '--ttl', 'soon'], error: /--ttl: / },
      { args: ['ca', 'init', join(d, 'x'), '--ttl', '10ms'], error: /--ttl: must be at least 1s/ },
      { args: ['ca', 'init', join(d, 'x'), '--key', 'dsa'], error: /--key: expected ecdsa-p256 or rsa-2048/ },
      { args: ['ca', 'init', join(d, 'x'), '--finalize'], error: /--finalize does not apply to init/ },
      { args: ['ca', 'show', dir, '--namespace', 'x'], error: /--namespace does not apply to show/ },
      { args: ['ca', 'rotate', dir, '--finalize', '--ttl', '1h'], error: /--ttl does not apply to rotate/ },
      { args: ['ca', 'show', dir, '-o', 'table'], error: /--output: expected json or yaml/ },
    ];
    for (const u of usage) {
      const r = run(...u.args);
      assert.equal(r.code, 2, `${u.args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, u.error, u.args.join(' '));
    }
    // Without a directory: how to act on the control plane's CA instead, also when only $MESHLET_CONTROL_PLANE is set.
    const bare = meshlet(['ca', 'rotate'], { env: { MESHLET_CONTROL_PLANE: '' } });
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /give the CA's directory \(meshlet ca rotate <dir>\), or --control-plane <url> for the control plane's CA\n/);
    const fromEnv = meshlet(['ca', 'show'], { env: { MESHLET_CONTROL_PLANE: 'http://127.0.0.1:1' } });
    assert.equal(fromEnv.code, 2);
    assert.match(fromEnv.stderr, /or --control-plane <url> for the control plane's CA \(\$MESHLET_CONTROL_PLANE is not used here: give --control-plane "\$MESHLET_CONTROL_PLANE"\)/);
    assert.doesNotMatch(meshlet(['ca', 'init']).stderr, /--control-plane/);
    const none = run('ca', 'show', d);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /meshlet: ca show: .*ca-cert\.pem is missing: .* is not a development CA \(make one with `meshlet ca init/);
    writeFileSync(join(dir, 'ca-key.pem'), 'junk');
    const broken = run('ca', 'issue', dir, '-n', 'a', '--service-account', 'b', '--out', join(d, 'x'));
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /meshlet: ca issue: \S*ca-key\.pem: the CA key is not PEM/);
    const help = run('ca', '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /meshlet ca init <dir>/);
    assert.match(run('help').stdout, /ca <init\|show\|issue\|rotate> <dir>/);
  });
});
