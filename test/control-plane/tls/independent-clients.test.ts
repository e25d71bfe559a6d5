/**
 * The control plane's TLS as clients that are not meshlet see it: `openssl s_client` verifies the
 * served chain against `root-cert.pem` and reads the SANs (the defaults and `--tls-san`);
 * `curl --cacert` gets `/healthz` and, with a token, the status, and refuses the server with another
 * CA. And `meshlet` itself, run as users run it: `meshlet control-plane --tls auto` prints an
 * `https://` ready line, and `meshlet status | apply | get` talk to it with `--control-plane-ca`
 * (or `$MESHLET_CONTROL_PLANE_CA`), and fail with the reason without it.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT_CERT_FILE } from '../../../src/control-plane-server/serving-tls.ts';
import { createMesh } from '../../../src/index.ts';
import { CertificateAuthority } from '../../../src/security/pki/index.ts';
import { MAIN, meshletAsync } from '../../cli/helpers.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { startTestServer, tempDir } from '../server/helpers.ts';

const opened: { close(): Promise<void> | void }[] = [];
after(async () => {
  for (const o of opened.reverse()) await o.close();
});

function run(cmd: string, args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
    child.stdin?.end(input);
  });
}

describe('the TLS control plane with openssl and curl as clients', { skip: skipWithout('openssl', 'curl') }, () => {
  it('s_client verifies the chain against root-cert.pem and sees the SANs; curl --cacert reaches it, and refuses it with another CA', async () => {
    const t = await startTestServer(undefined, { tls: { auto: true, sans: ['cp.mesh.example', '10.20.30.40'] } });
    opened.push(t);
    const root = join(t.dataDir, ROOT_CERT_FILE);
    const port = String(t.cp.port);
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', root, '-verify_return_error', '-verify_hostname', 'localhost', '-showcerts'], 'Q\n');
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /Verify return code: 0 \(ok\)/);
    assert.match(s.stdout, /issuer=O ?= ?cluster\.local/);
    const leaf = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(s.stdout)![0];
    const text = await run('openssl', ['x509', '-noout', '-text'], leaf);
    const sans = /X509v3 Subject Alternative Name: *\n\s*(.+)/.exec(text.stdout)![1]!;
    for (const n of ['DNS:cp.mesh.example', 'DNS:localhost', 'IP Address:10.20.30.40', 'IP Address:127.0.0.1']) assert.ok(sans.includes(n), `${n} in ${sans}`);
    assert.match(text.stdout, /Extended Key Usage: *\n\s*TLS Web Server Authentication\n/);
    // Not for a name it was not issued for.
    const wrongName = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', root, '-verify_return_error', '-verify_hostname', 'elsewhere.example'], 'Q\n');
    assert.notEqual(wrongName.code, 0);
    assert.match(wrongName.stdout + wrongName.stderr, /hostname mismatch/i);

    const healthz = await run('curl', ['-sS', '--cacert', root, `https://localhost:${port}/healthz`]);
    assert.deepEqual({ code: healthz.code, body: healthz.stdout.trim() }, { code: 0, body: 'ok' }, healthz.stderr);
    const status = await run('curl', ['-sS', '--cacert', root, '-H', `authorization: Bearer ${t.admin}`, `https://127.0.0.1:${port}/status`]);
    assert.equal(JSON.parse(status.stdout).configVersion, t.cp.status().configVersion);
    const { dir, cleanup } = tempDir();
    opened.push({ close: cleanup });
    writeFileSync(join(dir, 'other.pem'), (await CertificateAuthority.createRoot({ trustDomain: 'other.example' })).rootPem);
    const refused = await run('curl', ['-sS', '--cacert', join(dir, 'other.pem'), `https://127.0.0.1:${port}/healthz`]);
    assert.equal(refused.code, 60, `curl: peer certificate cannot be authenticated with the given CA (exit 60); ${refused.stderr}`);
    // Plain HTTP to the TLS port is not served (Go net/http's 400: handshakes.test.ts).
    const plain = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/healthz`]);
    assert.notEqual(plain.stdout, '200');
  });
});

describe('meshlet control-plane --tls auto and the CLI over https', () => {
  it('prints an https:// ready line; status, apply and get work with --control-plane-ca or $MESHLET_CONTROL_PLANE_CA, and fail naming the reason without', async () => {
    const { dir, cleanup } = tempDir();
    opened.push({ close: cleanup });
    mkdirSync(join(dir, 'config'));
    const data = join(dir, 'data');
    const child: ChildProcess = spawn(process.execPath, [MAIN, 'control-plane', '--config', join(dir, 'config'), '--data-dir', data, '--host', '127.0.0.1', '--port', '0', '--tls', 'auto', '--tls-san', 'cp.mesh.example'], { stdio: ['ignore', 'pipe', 'pipe'] });
    opened.push({ close: async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await once(child, 'exit'); } } });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    let line = '';
    child.stdout!.setEncoding('utf8');
    for await (const chunk of child.stdout!) {
      line += chunk as string;
      if (line.includes('\n')) break;
    }
    const url = /listening on (https:\/\/127\.0\.0\.1:\d+) \(config version/.exec(line)?.[1];
    assert.ok(url !== undefined, `the ready line says https://: ${line} ${stderr}`);
    assert.match(stderr, /TLS: serving a certificate from the control plane's CA for cp\.mesh\.example, localhost, 127\.0\.0\.1, ::1/);
    const root = join(data, ROOT_CERT_FILE);
    const token = (await meshletAsync(['token', '--admin', '--data-dir', data])).stdout.trim();
    const env = { MESHLET_TOKEN: token, MESHLET_CONTROL_PLANE: url };

    const status = await meshletAsync(['status', '--control-plane-ca', root], { env });
    assert.equal(status.code, 0, status.stderr);
    assert.ok(status.stdout.includes(url), status.stdout);
    writeFileSync(join(dir, 'se.yaml'), 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: default}\nspec: {hosts: [api.example.com], ports: [{number: 443, name: https, protocol: TLS}], resolution: DNS}\n');
    const apply = await meshletAsync(['apply', '-f', join(dir, 'se.yaml')], { env: { ...env, MESHLET_CONTROL_PLANE_CA: root } });
    assert.equal(apply.code, 0, apply.stderr);
    const get = await meshletAsync(['get', 'serviceentry', 'ext', '-n', 'default', '-o', 'json'], { env: { ...env, MESHLET_CONTROL_PLANE_CA: readFileSync(root, 'utf8') } });
    assert.equal(get.code, 0, get.stderr);
    assert.equal(JSON.parse(get.stdout).spec.hosts[0], 'api.example.com');
    // apply --wait reads every replica's status over https with the same CA, until a mesh
    // connected over https (verified with root-cert.pem) runs the new version.
    const workloadToken = (await meshletAsync(['token', '--service', 'ratings', '--data-dir', data])).stdout.trim();
    const mesh = await createMesh({ service: 'ratings', controlPlane: url, controlPlaneCa: root, token: workloadToken, identity: 'none', logger: { warn: () => {}, info: () => {} } });
    opened.push({ close: () => mesh.close() });
    writeFileSync(join(dir, 'se2.yaml'), 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext2, namespace: default}\nspec: {hosts: [api2.example.com], ports: [{number: 443, name: https, protocol: TLS}], resolution: DNS}\n');
    const waited = await meshletAsync(['apply', '-f', join(dir, 'se2.yaml'), '--wait', '--control-plane-ca', root], { env });
    assert.equal(waited.code, 0, waited.stderr);
    const version = /config version ([0-9a-f]+): 1\/1 connected workloads ACKed it/.exec(waited.stdout)?.[1];
    assert.ok(version !== undefined, waited.stdout);
    assert.equal(mesh.configVersion, version);

    const without = await meshletAsync(['status'], { env });
    assert.equal(without.code, 1);
    assert.match(without.stderr, new RegExp(`cannot reach the control plane at ${url.replace(/[.]/g, '\\.')}: TLS: the server's certificate is not signed by a trusted CA; .*--control-plane-ca.*\\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\\)`));
    const plainUrl = await meshletAsync(['status', '--control-plane', url.replace('https:', 'http:'), '--control-plane-ca', root], { env });
    assert.equal(plainUrl.code, 2);
    assert.match(plainUrl.stderr, /--control-plane-ca verifies an https:\/\/ control plane, but http:\/\/127\.0\.0\.1:\d+ is plain HTTP/);
  });

  it('refuses TLS flags that contradict each other, naming them', async () => {
    for (const [args, message] of [
      [['--tls', 'on'], /--tls: expected auto .* or off, got "on"/],
      [['--tls-cert', 'a.crt'], /give --tls-cert and --tls-key together/],
      [['--tls', 'auto', '--tls-cert', 'a', '--tls-key', 'b'], /--tls auto contradicts --tls-cert\/--tls-key/],
      [['--tls-san', 'x.example'], /--tls-san names what a --tls auto certificate is for; give --tls auto/],
      [['--tls', 'auto', '--tls-san', 'bad name'], /--tls-san: "bad name" is neither a DNS name nor an IP address/],
      [['--tls', 'auto', '--tls-san', '10.0.0.300'], /--tls-san: "10\.0\.0\.300" is not an IP address/],
    ] as const) {
      const r = await meshletAsync(['control-plane', '--config', '/nonexistent', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
