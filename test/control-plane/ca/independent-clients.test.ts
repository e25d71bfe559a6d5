/**
 * Certificates issued by the control plane, checked by independent clients: a mesh server whose
 * certificate comes from the control plane's CA, under STRICT, answers `openssl s_client` that
 * verifies the server's chain against the control plane's bundle (`-verify_return_error`) and
 * presents a client certificate the control plane issued (admin, identity ns/default/sa/sleep);
 * without a client certificate, or from another CA, there is no HTTP answer; `curl` over plain
 * HTTP is refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../../src/index.ts';
import { createCsr, generateKeyPair } from '../../../src/security/pki/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe } from '../../helpers/pki.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { startTestControlPlane, type TestControlPlane } from '../client-helpers.ts';
import { api } from '../server/helpers.ts';

const opened: { close(): Promise<void> }[] = [];
const dir = mkdtempSync(join(tmpdir(), 'meshlet-cp-openssl-'));
after(async () => {
  for (const o of opened.reverse()) await o.close();
  rmSync(dir, { recursive: true, force: true });
  cleanupPki();
});

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
    child.stdin?.end(input ?? '');
  });
}

const STRICT = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'istio-system' }, spec: { mtls: { mode: 'STRICT' } } };
const GET = 'GET / HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n';

describe('control-plane certificates with openssl and curl as clients', { skip: skipWithout('openssl', 'curl') }, () => {
  it('STRICT: s_client with a control-plane client certificate gets 200 and its identity; without one, or from another CA, no answer; plain curl refused', async () => {
    const t: TestControlPlane = await startTestControlPlane({ mesh: [STRICT] });
    opened.push(t);
    const mesh: Mesh = await createMesh({ service: 'httpbin', controlPlane: t.cp.url, token: await t.cp.mintToken({ service: 'httpbin', namespace: 'default', serviceAccount: 'httpbin' }), drainMs: 0, logger: { warn: () => undefined } });
    opened.push(mesh);
    const server = mesh.createServer((req, res) => res.end(`peer=${(req as { meshlet?: { peer?: { principal: string } } }).meshlet?.peer?.principal ?? 'none'}`));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;

    const keys = generateKeyPair();
    const admin = await t.cp.mintToken({ admin: true });
    const issued = await api(t.cp.url, 'POST', '/v1/certificates', { token: admin, body: { csr: await createCsr(keys, { spiffeId: spiffe('default', 'sleep') }), namespace: 'default', serviceAccount: 'sleep' } });
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const files = { cert: join(dir, 'sleep.crt'), key: join(dir, 'sleep.key'), bundle: join(dir, 'bundle.pem') };
    writeFileSync(files.cert, issued.body.certChain);
    writeFileSync(files.key, keys.privateKeyPem, { mode: 0o600 });
    writeFileSync(files.bundle, (issued.body.trustBundle as string[]).join(''));

    const base = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', files.bundle, '-verify_return_error', '-alpn', 'istio-http/1.1', '-quiet', '-ign_eof'];
    const ok = await run('openssl', [...base, '-cert', files.cert, '-key', files.key], GET);
    assert.match(ok.stdout, /^HTTP\/1\.1 200 OK/m, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /peer=spiffe:\/\/cluster\.local\/ns\/default\/sa\/sleep/);

    const none = await run('openssl', base, GET);
    assert.doesNotMatch(none.stdout, /HTTP\/1\.1/, 'no client certificate: no answer');

    const other = makeCa();
    const stranger = issueLeaf(other, { uris: [spiffe('default', 'sleep')] });
    const foreign = await run('openssl', [...base, '-cert', stranger.certFile, '-key', stranger.keyFile], GET);
    assert.doesNotMatch(foreign.stdout, /HTTP\/1\.1/, 'a client certificate from another CA: no answer');

    // The server's chain did verify against the control plane's bundle (s_client would stop otherwise): and not against another CA's.
    const wrongTrust = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', other.certFile, '-verify_return_error', '-cert', files.cert, '-key', files.key, '-quiet'], GET);
    assert.doesNotMatch(wrongTrust.stdout, /HTTP\/1\.1/);
    assert.match(wrongTrust.stderr, /verify error|unable to get local issuer certificate/);

    const plain = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/`]);
    assert.notEqual(plain.code, 0, 'curl over plain HTTP fails (the connection is closed)');
    assert.equal(plain.stdout, '000');
  });
});
