/**
 * A control plane (or something in front of it) whose answers never end: an SSE event whose data
 * lines keep coming without the blank line that ends it, and a certificate answer that keeps
 * coming. The mesh read both into memory without bound (the app's process died of it); it now
 * refuses each past 16 MiB, says so, and keeps its last good config. A pushed trust bundle whose
 * roots are not CA certificates replaced the roots the mesh trusted; it is ignored with a warning.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { MAX_ANSWER_BYTES } from '../../src/control-plane/http.ts';
import { createMesh, type Mesh } from '../../src/index.ts';
import { CertificateAuthority, createCsr, generateKeyPair } from '../../src/security/pki/index.ts';
import { until } from './client-helpers.ts';

const MiB = 1024 * 1024;
/** More than the limit, but not endless: without the limit the mesh would read it all (and the test would still end). */
const SENT = MAX_ANSWER_BYTES + 4 * MiB;

/** Writes `total` bytes of `unit` (repeated), then calls `done`, respecting backpressure. */
function pump(res: ServerResponse, unit: string, total: number, done: () => void): void {
  let sent = 0;
  const go = () => {
    while (sent < total) {
      sent += unit.length;
      if (!res.write(unit)) return void res.once('drain', go);
    }
    done();
  };
  res.on('error', () => undefined);
  go();
}

class HostileControlPlane {
  readonly #server: Server;
  url = '';
  watches = 0;
  readonly mode: 'event' | 'certificate' | 'bundle';
  ca: CertificateAuthority | undefined;
  stream: ServerResponse | undefined;
  constructor(mode: 'event' | 'certificate' | 'bundle') {
    this.mode = mode;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }
  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const c of req) body += c;
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/v1/watch') {
      this.watches++;
      this.stream = res;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const send = (event: string, data: unknown, id: string) => res.write(`event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`);
      res.write(`event: hello\ndata: ${JSON.stringify({ connection: `c${this.watches}`, server: 'hostile', configVersion: 'v1', endpointsVersion: 'e1', heartbeatMs: 60_000, labels: { app: 'client' } })}\n\n`);
      send('config', { version: 'v1', resources: [] }, 'v1/');
      send('endpoints', { version: 'e1', workloads: [] }, 'v1/e1');
      // The first stream then starts an event that never ends: 1 MiB data lines, no blank line.
      if (this.mode === 'event' && this.watches === 1) {
        res.write('event: config\n');
        pump(res, `data: ${'x'.repeat(MiB)}\n`, SENT, () => res.end());
      }
      return;
    }
    if (path === '/v1/certificates' && this.ca !== undefined) {
      const spiffeId = 'spiffe://cluster.local/ns/default/sa/default';
      const signed = await this.ca.sign((JSON.parse(body) as { csr: string }).csr, { spiffeId, ttlMs: 3_600_000 });
      const answer = { spiffeId, certChain: signed.certChainPem, trustBundle: [this.ca.rootPem], trustBundleVersion: 'b1', notBefore: signed.notBefore, notAfter: signed.notAfter };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      return;
    }
    if (path === '/v1/certificates') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"certChain":"');
      pump(res, 'A'.repeat(MiB), SENT, () => res.end('"}'));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  }
  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((r) => this.#server.close(() => r()));
  }
}

describe('a control plane whose answers do not end', { timeout: 60_000 }, () => {
  const opened: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const o of opened.reverse()) await o.close();
  });

  it('an SSE event longer than 16 MiB ends the stream with a warning; the mesh keeps its config and reconnects', async () => {
    const cp = await new HostileControlPlane('event').start();
    opened.push(cp);
    const warnings: string[] = [];
    const mesh: Mesh = await createMesh({ service: 'client', controlPlane: cp.url, token: 't', identity: 'none', logger: { warn: (m) => warnings.push(m), info: () => undefined }, drainMs: 0 });
    opened.push(mesh);
    await until(() => warnings.some((w) => w.includes(`SSE event longer than ${MAX_ANSWER_BYTES} characters`)), 'the warning', 30_000);
    await until(() => cp.watches >= 2, 'the reconnect', 30_000);
    assert.equal(mesh.diagnostics().configVersion, 'v1');
  });

  it('a certificate answer larger than 16 MiB is refused, naming the limit', async () => {
    const cp = await new HostileControlPlane('certificate').start();
    opened.push(cp);
    await assert.rejects(
      createMesh({ service: 'client', controlPlane: cp.url, token: 't', logger: { warn: () => undefined, info: () => undefined }, drainMs: 0, startupTimeoutMs: 8000 }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`the answer to POST /v1/certificates is larger than ${MAX_ANSWER_BYTES} bytes: refused`));
        return true;
      },
    );
  });

  it('a pushed trust bundle whose root is not a CA certificate is ignored with a warning; the roots in use stay', async () => {
    const cp = await new HostileControlPlane('bundle').start();
    cp.ca = await CertificateAuthority.createRoot({ trustDomain: 'cluster.local' });
    opened.push(cp);
    const lines: string[] = [];
    const mesh: Mesh = await createMesh({ service: 'client', controlPlane: cp.url, token: 't', logger: { warn: (m) => lines.push(`warn ${m}`), info: (m) => lines.push(`info ${m}`) }, drainMs: 0 });
    opened.push(mesh);
    assert.equal(mesh.diagnostics().identity?.spiffeId, 'spiffe://cluster.local/ns/default/sa/default');
    const [, leaf] = /-----BEGIN CERTIFICATE-----\n([^-]+)-----END/.exec(cp.ca.rootPem) ?? [];
    const garbage = ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', `-----BEGIN CERTIFICATE-----\n${leaf}-----END CERTIFICATE-----\n`.replace(/^(-----BEGIN CERTIFICATE-----\n)\S/, '$1A')];
    for (const [i, root] of garbage.entries()) {
      cp.stream?.write(`event: trust-bundle\ndata: ${JSON.stringify({ version: `bad${i}`, roots: [root] })}\n\n`);
      await until(() => lines.some((l) => l.startsWith('warn') && l.includes('ignoring a malformed trust-bundle event: root 1 is not a certificate')), 'the warning');
      lines.length = 0;
    }
    // A leaf is not a root either.
    const { certChainPem } = await cp.ca.sign(await createCsr(generateKeyPair(), { spiffeId: 'spiffe://cluster.local/ns/a/sa/b' }), { spiffeId: 'spiffe://cluster.local/ns/a/sa/b', ttlMs: 3_600_000 });
    cp.stream?.write(`event: trust-bundle\ndata: ${JSON.stringify({ version: 'leaf', roots: [certChainPem] })}\n\n`);
    await until(() => lines.some((l) => l.includes('ignoring a malformed trust-bundle event: root 1 (no subject) is not a CA certificate')), 'the leaf warning');
    assert.ok(!lines.some((l) => l.includes('trust bundle') && l.includes('installed')), lines.join('\n'));
    // A self-signed X.509 v1 root (no extensions, so no basicConstraints: an old enterprise root,
    // which the control plane accepts and OpenSSL trusts) is a root: it is not refused.
    lines.length = 0;
    const v1 = v1Root();
    cp.stream?.write(`event: trust-bundle\ndata: ${JSON.stringify({ version: 'v1-root', roots: [cp.ca.rootPem, v1] })}\n\n`);
    await until(() => lines.some((l) => l.includes('v1-root')), 'the v1 root bundle taken');
    assert.ok(!lines.some((l) => l.includes('ignoring a malformed trust-bundle event')), lines.join('\n'));
  });
});

describe('a control plane behind a proxy whose refusals are long pages', () => {
  it("a 401 with a 100 KiB body (an SSO login page) still rejects createMesh as a 401, at once, not after startupTimeoutMs", async () => {
    const page = `<html>${'x'.repeat(100 * 1024)}</html>`;
    const server = createServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'text/html' });
      res.end(page);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await assert.rejects(createMesh({ service: 'client', controlPlane: url, token: 't', identity: 'none', logger: { warn: () => undefined, info: () => undefined }, drainMs: 0, startupTimeoutMs: 120_000 }), (err: Error) => {
        assert.match(err.message, /401 Unauthorized/);
        return true;
      });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

/** A self-signed X.509 v1 certificate made by openssl (`x509 -req -signkey`: no extensions). */
function v1Root(): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-v1root-'));
  try {
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    run(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k.pem', '-subj', '/O=Old Corp/CN=Old Root', '-out', 'r.csr']);
    run(['x509', '-req', '-in', 'r.csr', '-signkey', 'k.pem', '-days', '30', '-out', 'r.pem']);
    const pem = readFileSync(join(dir, 'r.pem'), 'utf8');
    assert.equal(new X509Certificate(pem).ca, false, 'a v1 certificate has no basicConstraints');
    return pem;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
