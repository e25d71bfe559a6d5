/**
 * PeerAuthentication on servers the mesh did not make — the app's own `http.createServer` with
 * `mesh.handler()`, `app.listen()` with `mesh.express()`, an app's own HTTPS server: under STRICT
 * a request without a verified mesh identity is refused and its connection closed (the app never
 * sees it), with one warning naming `mesh.createServer`; under PERMISSIVE it is served. On an
 * app's own HTTPS server a client certificate counts only as the mesh's servers count one: one
 * SPIFFE ID of this trust domain, never a CA certificate.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import express from 'express';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { peerAuthentication, plainGet, tlsGet } from './mtls-helpers.ts';

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  cleanupPki();
});

async function mesh(mode: 'STRICT' | 'PERMISSIVE', warnings: string[] = []): Promise<Mesh> {
  const m = await createMesh({ service: 'httpbin', namespace: 'foo', config: [peerAuthentication('default', 'istio-system', { mtls: { mode } })] as never, logger: { warn: (w: string) => warnings.push(w) } });
  closers.push(() => m.close());
  return m;
}

async function listen(server: Server | ReturnType<typeof createHttpsServer>): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  return (server.address() as AddressInfo).port;
}

const peerOf = (req: unknown): string => (req as { meshlet?: { peer?: { principal: string } } }).meshlet?.peer?.principal ?? 'none';

describe("PeerAuthentication on the app's own servers", { skip: skipWithout('openssl') }, () => {
  it('STRICT: http.createServer(mesh.handler()) refuses plaintext (the connection is closed, the app never called) and warns once naming mesh.createServer', async () => {
    const warnings: string[] = [];
    const m = await mesh('STRICT', warnings);
    let called = 0;
    const port = await listen(createServer(m.handler((_req, res) => { called++; res.end('served'); })));
    for (let i = 0; i < 2; i++) {
      const r = await plainGet(port);
      assert.ok('refused' in r, `refused, got ${JSON.stringify(r)}`);
    }
    assert.equal(called, 0);
    const said = warnings.filter((w) => w.includes('served by a server the mesh did not make'));
    assert.equal(said.length, 1, warnings.join('\n'));
    assert.match(said[0] as string, new RegExp(`STRICT applies to port ${port}.*mesh\\.createServer\\(app\\)`));
    assert.equal(m.diagnostics().inboundTls.plaintext, 2, 'counted for the move to STRICT');
  });

  it('STRICT: app.listen() with mesh.express() refuses plaintext too; PERMISSIVE serves it', async () => {
    for (const mode of ['STRICT', 'PERMISSIVE'] as const) {
      const m = await mesh(mode);
      const app = express();
      app.use(m.express());
      app.get('/', (_req, res) => {
        res.send('served');
      });
      const port = await listen(createServer(app));
      const r = await plainGet(port);
      if (mode === 'STRICT') assert.ok('refused' in r, JSON.stringify(r));
      else assert.deepEqual({ status: (r as { status: number }).status, body: (r as { body: string }).body }, { status: 200, body: 'served' });
    }
  });

  it("STRICT on the app's own HTTPS server: a mesh identity of this trust domain is the peer; another trust domain and a CA certificate are refused", async () => {
    const ca = makeCa();
    const m = await mesh('STRICT');
    const server = workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' });
    const port = await listen(createHttpsServer({ key: server.privateKey, cert: server.certChain, ca: ca.rootPem, requestCert: true, rejectUnauthorized: false }, m.handler((req, res) => res.end(`peer=${peerOf(req)}`))));
    const client = (uris: string[]) => issueLeaf(ca, { uris });
    const ok = client([spiffe('bar', 'sleep')]);
    const good = await tlsGet(port, { key: ok.keyPem, cert: ok.certPem, ca: ca.rootPem });
    assert.deepEqual({ status: (good as { status: number }).status, body: (good as { body: string }).body }, { status: 200, body: 'peer=spiffe://cluster.local/ns/bar/sa/sleep' });
    const foreign = client([spiffe('bar', 'sleep', 'evil.example')]);
    assert.ok('refused' in (await tlsGet(port, { key: foreign.keyPem, cert: foreign.certPem, ca: ca.rootPem })), 'another trust domain');
    const none = await tlsGet(port, { ca: ca.rootPem });
    assert.ok('refused' in none, 'no client certificate');
    // A CA certificate carrying a SPIFFE ID (its holder could sign any identity).
    const caAsLeaf = makeCa({ parent: ca, name: 'sub', uris: [spiffe('bar', 'sleep')] });
    const r = await tlsGet(port, { key: caAsLeaf.keyPem, cert: caAsLeaf.certPem, ca: ca.rootPem });
    assert.ok('refused' in r, `a CA certificate is not a peer: ${JSON.stringify(r)}`);
  });
});
