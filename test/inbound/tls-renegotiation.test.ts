/**
 * A TLS 1.2 client asking to renegotiate on a mesh server's connection is refused, as Envoy
 * refuses it (BoringSSL, Envoy's TLS library, has no server-side renegotiation): a renegotiation
 * is a new handshake — a new client certificate — on a connection whose peer the mesh verified
 * once, at its first handshake, and a CPU cost the caller chooses. Node's TLS servers allowed
 * client-initiated renegotiation (three per ten minutes); the mesh's contexts set
 * SSL_OP_NO_RENEGOTIATION, for its HTTP servers and the gRPC server credentials alike.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, makeCa, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';

const SKIP = skipWithout('openssl');
let ca: TestCa;
let dir: string;
before(() => {
  if (SKIP !== false) return;
  ca = makeCa();
  dir = mkdtempSync(join(tmpdir(), 'meshlet-reneg-'));
});
after(() => {
  if (SKIP !== false) return;
  cleanupPki();
  rmSync(dir, { recursive: true, force: true });
});

/** openssl s_client over TLS 1.2 with a mesh certificate: renegotiates ('R'), then sends a GET; everything it printed. */
function renegotiateThenGet(port: number, files: { key: string; cert: string; ca: string }): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2', '-key', files.key, '-cert', files.cert, '-CAfile', files.ca, '-alpn', 'http/1.1']);
    let out = '';
    let renegotiated = false;
    let sent = false;
    const safety = setTimeout(() => p.kill(), 30_000);
    const seen = (d: Buffer): void => {
      out += d.toString('latin1');
      // The handshake is done once the session is printed: then ask to renegotiate.
      if (!sent && out.includes('Verify return code')) {
        sent = true;
        p.stdin.write('R\n');
      }
      if (!renegotiated && out.includes('RENEGOTIATING')) {
        renegotiated = true;
        p.stdin.write('GET / HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n');
      }
    };
    p.stdout.on('data', seen);
    p.stderr.on('data', seen);
    p.stdin.on('error', () => undefined);
    p.on('close', () => {
      clearTimeout(safety);
      resolve(out);
    });
  });
}

it('a client-initiated renegotiation on a mesh server is refused (no_renegotiation), as Envoy refuses it', { skip: SKIP }, async () => {
  const mesh: Mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, serviceAccount: 'httpbin', config: [], logger: { warn: () => {} } });
  mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
  const server = mesh.createServer((_q, r) => r.end('served'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const c = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep' });
    const files = { key: join(dir, 'key.pem'), cert: join(dir, 'cert.pem'), ca: join(dir, 'ca.pem') };
    writeFileSync(files.key, c.privateKey);
    writeFileSync(files.cert, c.certChain);
    writeFileSync(files.ca, ca.rootPem);
    const out = await renegotiateThenGet((server.address() as AddressInfo).port, files);
    assert.ok(out.includes('RENEGOTIATING'), out);
    assert.ok(!out.includes('HTTP/1.1 200'), out);
    assert.match(out, /no renegotiation/i);
  } finally {
    await new Promise((r) => server.close(r));
    await mesh.close();
  }
});
