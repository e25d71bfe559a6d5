/**
 * Server-side mTLS through each framework's real entry point — node:http (`mesh.createServer`),
 * Express 5 and 4 (`mesh.createServer(app)`), Fastify 5 (`Fastify({ ...mesh.fastifyOptions() })`,
 * its `serverFactory` making the mesh's server) — and with independent clients: `openssl
 * s_client` (with and without `-cert`) and `curl` (`--cert --key --cacert`, and plain http),
 * under STRICT and PERMISSIVE.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type TestLeaf, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { listen } from '../helpers/frameworks.ts';
import { type Outcome, peerAuthentication, plainGet, type TlsClient, tlsGet } from './mtls-helpers.ts';

after(cleanupPki);

function peerOf(req: IncomingMessage): string | null {
  return (req as { meshlet?: { peer?: { principal: string } } }).meshlet?.peer?.principal ?? null;
}

function xfccOf(req: IncomingMessage): string | null {
  return (req.headers['x-forwarded-client-cert'] as string | undefined) ?? null;
}

const frameworks: { name: string; start(mesh: Mesh): Promise<{ port: number; close(): Promise<void> }> }[] = [
  {
    name: 'node:http (mesh.createServer)',
    async start(mesh) {
      const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => res.end(JSON.stringify({ peer: peerOf(req), xfcc: xfccOf(req) })));
      return { port: await listen(server), close: () => new Promise((r) => server.close(() => r())) };
    },
  },
  ...(
    [
      ['Express 5 (mesh.createServer(app))', express],
      ['Express 4 (mesh.createServer(app))', express4],
    ] as const
  ).map(([name, make]) => ({
    name,
    async start(mesh: Mesh) {
      const app = (make as typeof express)();
      app.get('/', (req, res) => {
        res.json({ peer: peerOf(req), xfcc: xfccOf(req) });
      });
      const server = mesh.createServer(app);
      return { port: await listen(server), close: () => new Promise<void>((r) => server.close(() => r())) };
    },
  })),
  {
    name: 'Fastify 5 (serverFactory from mesh.fastifyOptions())',
    async start(mesh) {
      const app = Fastify({ ...mesh.fastifyOptions() });
      await app.register(mesh.fastify() as never);
      app.get('/', async (req) => ({ peer: (req as unknown as { meshlet?: { peer?: { principal: string } } }).meshlet?.peer?.principal ?? null, xfcc: xfccOf(req.raw) }));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: (app.server.address() as AddressInfo).port, close: () => app.close() };
    },
  },
];

function status(o: Outcome): number | 'refused' {
  return 'refused' in o ? 'refused' : o.status;
}

describe('frameworks under STRICT', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let sleep: TlsClient;
  before(() => {
    ca = makeCa();
    const c = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep' });
    sleep = { key: c.privateKey, cert: c.certChain, ca: ca.rootPem };
  });
  for (const fw of frameworks) {
    it(`${fw.name}: mTLS reaches the app with the peer, plaintext is refused`, async () => {
      const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: [peerAuthentication('default', 'foo', { mtls: { mode: 'STRICT' } })] as never, logger: { warn: () => {} } });
      mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
      const server = await fw.start(mesh);
      try {
        const ok = await tlsGet(server.port, sleep);
        assert.equal(status(ok), 200, JSON.stringify(ok));
        const seen = JSON.parse((ok as { body: string }).body) as { peer: string; xfcc: string };
        assert.equal(seen.peer, spiffe('bar', 'sleep'));
        // Who called, as an Istio sidecar tells the app (x-forwarded-client-cert, APPEND_FORWARD).
        assert.match(seen.xfcc, /^By=spiffe:\/\/cluster\.local\/ns\/foo\/sa\/httpbin;Hash=[0-9a-f]{64};Subject="O=meshlet-test";URI=spiffe:\/\/cluster\.local\/ns\/bar\/sa\/sleep$/);
        assert.equal(status(await plainGet(server.port)), 'refused');
        assert.deepEqual(mesh.diagnostics().inboundTls.mtls, 1);
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }
});

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
    child.stdin?.end(input ?? '');
  });
}

describe('independent clients: openssl s_client and curl', { skip: skipWithout('openssl', 'curl') }, () => {
  const HOST = 'httpbin.foo.svc.cluster.local';
  let ca: TestCa;
  let client: TestLeaf;
  for (const mode of ['STRICT', 'PERMISSIVE'] as const) {
    describe(mode, () => {
      let mesh: Mesh;
      let port: number;
      before(async () => {
        ca = makeCa();
        client = issueLeaf(ca, { uris: [spiffe('bar', 'sleep')] });
        mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: [peerAuthentication('default', 'istio-system', { mtls: { mode } })] as never, logger: { warn: () => {} } });
        // A server certificate with a DNS name too, so curl verifies it for real (--cacert, no -k).
        const server = issueLeaf(ca, { uris: [spiffe('foo', 'httpbin')], dns: [HOST] });
        mesh.credentials.set({ certChain: server.chainPem, privateKey: server.keyPem, trustBundle: ca.rootPem, spiffeId: spiffe('foo', 'httpbin'), notBefore: 0, notAfter: Date.now() + 86400_000 });
        port = await listen(mesh.createServer((req, res) => res.end(`peer=${peerOf(req)}`)));
      });
      after(() => mesh.close());

      it('openssl s_client with -cert: HTTP/1.1 200 and the peer', async () => {
        const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', client.certFile, '-key', client.keyFile, '-CAfile', ca.certFile, '-alpn', 'istio-http/1.1', '-quiet', '-ign_eof'], 'GET / HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n');
        assert.match(r.stdout, /^HTTP\/1\.1 200 OK/m, r.stdout + r.stderr);
        assert.match(r.stdout, /peer=spiffe:\/\/cluster\.local\/ns\/bar\/sa\/sleep/);
      });

      it('openssl s_client without -cert: no HTTP answer', async () => {
        const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', ca.certFile, '-quiet', '-ign_eof'], 'GET / HTTP/1.1\r\nHost: httpbin\r\nConnection: close\r\n\r\n');
        assert.doesNotMatch(r.stdout, /HTTP\/1\.1/, r.stdout);
      });

      it('curl --cert --key --cacert: 200 and the peer', async () => {
        const r = await run('curl', ['-sS', '--resolve', `${HOST}:${port}:127.0.0.1`, '--cacert', ca.certFile, '--cert', client.certFile, '--key', client.keyFile, `https://${HOST}:${port}/`]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'peer=spiffe://cluster.local/ns/bar/sa/sleep');
      });

      it(`curl over plain http: ${mode === 'STRICT' ? 'refused' : '200'}`, async () => {
        const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/`]);
        if (mode === 'STRICT') {
          assert.notEqual(r.code, 0);
          assert.equal(r.stdout, '000');
          assert.match(r.stderr, /Empty reply from server|Connection reset|Recv failure/);
        } else {
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout, '200');
        }
      });
    });
  }
});
