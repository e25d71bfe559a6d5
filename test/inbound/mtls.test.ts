/**
 * Server-side mTLS through real sockets: PeerAuthentication modes × client kinds on one port,
 * portLevelMtls and a mode change, peer certificates that must be refused (expired, another CA,
 * another trust domain, no SPIFFE ID), STRICT before the workload has a certificate, certificate
 * hot swap, the peer identity in AuthorizationPolicy and the app, a silent connection on close,
 * and the ready-for-STRICT counts. Certificates come from `openssl` (test/helpers/pki.ts), not
 * from meshlet.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import type { InboundRequestMessage } from '../../src/core/observe.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { listen } from '../helpers/frameworks.ts';
import { authorizationPolicy, type Outcome, peerAuthentication, plainGet, type TlsClient, tlsConnection, tlsGet } from './mtls-helpers.ts';

const SKIP = skipWithout('openssl');
const dir = mkdtempSync(join(tmpdir(), 'meshlet-mtls-'));
after(() => {
  cleanupPki();
  rmSync(dir, { recursive: true, force: true });
});

/** The app: what the request saw of the mesh. */
function echo(mesh: Mesh) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const m = (req as { meshlet?: { peer?: { principal: string } } }).meshlet;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ peer: m?.peer?.principal ?? null, contextPeer: mesh.context().peer?.principal ?? null }));
  };
}

function status(o: Outcome): number | 'refused' {
  return 'refused' in o ? 'refused' : o.status;
}

let ca: TestCa;
let otherCa: TestCa;
let sleep: TlsClient;
before(() => {
  if (SKIP !== false) return;
  ca = makeCa();
  otherCa = makeCa({ name: 'other' });
  const c = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep' });
  sleep = { key: c.privateKey, cert: c.certChain, ca: ca.rootPem };
});

async function meshWith(config: unknown[], o: { credentials?: boolean; debug?: string[]; warn?: string[]; trustDomainAliases?: string[] } = {}): Promise<Mesh> {
  const mesh = await createMesh({
    service: 'httpbin',
    namespace: 'foo',
    labels: { app: 'httpbin' },
    serviceAccount: 'httpbin',
    config: config as never,
    trustDomainAliases: o.trustDomainAliases,
    logger: { warn: (m) => o.warn?.push(m), debug: (m) => o.debug?.push(m) },
  });
  if (o.credentials !== false) mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
  return mesh;
}

describe('PeerAuthentication modes × clients, on one port', { skip: SKIP }, () => {
  const clients: Record<string, (port: number) => Promise<Outcome>> = {
    plaintext: (port) => plainGet(port),
    mtls: (port) => tlsGet(port, sleep),
    'TLS without a client certificate': (port) => tlsGet(port, { ca: ca.rootPem }),
  };
  const table: { mode: string; config: () => unknown[]; want: Record<string, number | 'refused'> }[] = [
    { mode: 'STRICT (mesh-wide)', config: () => [peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } })], want: { plaintext: 'refused', mtls: 200, 'TLS without a client certificate': 'refused' } },
    { mode: 'PERMISSIVE (namespace)', config: () => [peerAuthentication('default', 'foo', { mtls: { mode: 'PERMISSIVE' } })], want: { plaintext: 200, mtls: 200, 'TLS without a client certificate': 'refused' } },
    { mode: 'no PeerAuthentication (PERMISSIVE)', config: () => [], want: { plaintext: 200, mtls: 200, 'TLS without a client certificate': 'refused' } },
    {
      mode: 'DISABLE (workload, over a STRICT mesh)',
      config: () => [peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } }), peerAuthentication('httpbin', 'foo', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'DISABLE' } })],
      want: { plaintext: 200, mtls: 'refused', 'TLS without a client certificate': 'refused' },
    },
  ];
  for (const row of table) {
    describe(row.mode, () => {
      let mesh: Mesh;
      let port: number;
      const debug: string[] = [];
      before(async () => {
        mesh = await meshWith(row.config(), { debug });
        port = await listen(mesh.createServer(echo(mesh)));
      });
      after(() => mesh.close());
      for (const [client, want] of Object.entries(row.want)) {
        it(`${client}: ${want === 'refused' ? 'refused' : `answered ${want}`}`, async () => {
          const before = debug.length;
          const got = await (clients[client] as (p: number) => Promise<Outcome>)(port);
          assert.equal(status(got), want, JSON.stringify(got));
          if (want === 'refused') {
            assert.match(debug.slice(before).join('\n'), /refused an inbound .*connection from 127\.0\.0\.1:\d+ on port \d+ \(PeerAuthentication (STRICT|PERMISSIVE|DISABLE)\): /);
          } else if (client === 'mtls') {
            assert.deepEqual(JSON.parse((got as { body: string }).body), { peer: spiffe('bar', 'sleep'), contextPeer: spiffe('bar', 'sleep') });
          } else {
            assert.deepEqual(JSON.parse((got as { body: string }).body), { peer: null, contextPeer: null });
          }
        });
      }
    });
  }
});

describe('refusal reasons', { skip: SKIP }, () => {
  let mesh: Mesh;
  let port: number;
  const debug: string[] = [];
  before(async () => {
    mesh = await meshWith([peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } })], { debug, trustDomainAliases: ['old.local'] });
    port = await listen(mesh.createServer(echo(mesh)));
  });
  after(() => mesh.close());
  const day = 86400_000;
  const rows: { name: string; client: () => TlsClient; reason?: RegExp; peer?: string }[] = [
    { name: 'plaintext', client: () => ({ ca: '' }), reason: /\(PeerAuthentication STRICT\): plaintext under STRICT$/ },
    { name: 'no client certificate', client: () => ({ ca: ca.rootPem }), reason: /: no client certificate$/ },
    {
      name: 'an expired certificate',
      client: () => {
        const c = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep', validity: { notBefore: new Date(Date.now() - 2 * day), notAfter: new Date(Date.now() - day) } });
        return { key: c.privateKey, cert: c.certChain, ca: ca.rootPem };
      },
      reason: /: certificate expired \(CERT_HAS_EXPIRED\)$/,
    },
    {
      name: 'a certificate from another CA',
      client: () => {
        const c = workloadCredentials(otherCa, { namespace: 'bar', serviceAccount: 'sleep' });
        return { key: c.privateKey, cert: c.certChain, ca: ca.rootPem };
      },
      reason: /: unknown CA: the certificate does not chain to the trust bundle/,
    },
    {
      name: 'another trust domain',
      client: () => {
        const c = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep', trustDomain: 'evil.local' });
        return { key: c.privateKey, cert: c.certChain, ca: ca.rootPem };
      },
      reason: /: wrong trust domain: spiffe:\/\/evil\.local\/ns\/bar\/sa\/sleep is not in cluster\.local or old\.local$/,
    },
    {
      name: 'no SPIFFE ID (a DNS SAN only)',
      client: () => {
        const l = issueLeaf(ca, { dns: ['sleep.bar.svc.cluster.local'] });
        return { key: l.keyPem, cert: l.chainPem, ca: ca.rootPem };
      },
      reason: /: no SPIFFE ID: the certificate has no spiffe:\/\/ URI SAN$/,
    },
    {
      name: 'two SPIFFE IDs',
      client: () => {
        const l = issueLeaf(ca, { uris: [spiffe('bar', 'sleep'), spiffe('bar', 'other')] });
        return { key: l.keyPem, cert: l.chainPem, ca: ca.rootPem };
      },
      reason: /: more than one SPIFFE ID in the certificate/,
    },
    {
      name: 'a trust domain alias is accepted',
      client: () => {
        const c = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep', trustDomain: 'old.local' });
        return { key: c.privateKey, cert: c.certChain, ca: ca.rootPem };
      },
      peer: 'spiffe://old.local/ns/bar/sa/sleep',
    },
    {
      name: 'an intermediate CA under the trusted root is accepted',
      client: () => {
        const c = workloadCredentials(makeCa({ name: 'intermediate', parent: ca }), { namespace: 'bar', serviceAccount: 'sleep' });
        return { key: c.privateKey, cert: c.certChain, ca: ca.rootPem };
      },
      peer: spiffe('bar', 'sleep'),
    },
  ];
  for (const row of rows) {
    it(row.reason === undefined ? row.name : `${row.name}: refused, and the log says why`, async () => {
      const before = debug.length;
      const c = row.client();
      const got = c.ca === '' ? await plainGet(port) : await tlsGet(port, c);
      if (row.reason === undefined) {
        assert.equal(status(got), 200, JSON.stringify(got));
        assert.equal(JSON.parse((got as { body: string }).body).peer, row.peer);
        return;
      }
      assert.equal(status(got), 'refused', JSON.stringify(got));
      const logged = debug.slice(before);
      assert.equal(logged.length, 1, logged.join('\n'));
      assert.match(logged[0] as string, row.reason);
    });
  }
});

describe('portLevelMtls and config changes', { skip: SKIP }, () => {
  it('a port-level mode overrides the workload mode; a change applies to new connections', async () => {
    const file = join(dir, 'pa.yaml');
    writeFileSync(file, '');
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: file, watch: false, logger: { warn: () => {} } });
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
    try {
      const a = await listen(mesh.createServer(echo(mesh)));
      const b = await listen(mesh.createServer(echo(mesh)));
      assert.equal(status(await plainGet(a)), 200);
      assert.equal(status(await plainGet(b)), 200);
      // A plaintext keep-alive connection opened before the change.
      const kept = new Client(`http://127.0.0.1:${a}`);
      assert.equal((await (await kept.request({ path: '/', method: 'GET' })).body.text()).length > 0, true);
      writeFileSync(file, JSON.stringify(peerAuthentication('httpbin', 'foo', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { [String(b)]: { mode: 'PERMISSIVE' } } })));
      assert.equal(await mesh.reload(), true);
      // It is drained as Envoy drains a changed filter chain: the next request is served with Connection: close.
      const last = await kept.request({ path: '/', method: 'GET' });
      await last.body.text();
      assert.equal(last.statusCode, 200);
      assert.equal(last.headers.connection, 'close');
      await kept.close();
      assert.equal(status(await plainGet(a)), 'refused', 'port a: STRICT');
      assert.equal(status(await plainGet(b)), 200, 'port b: PERMISSIVE by portLevelMtls');
      assert.equal(status(await tlsGet(a, sleep)), 200);
      assert.equal(status(await tlsGet(b, sleep)), 200);
      writeFileSync(file, JSON.stringify(peerAuthentication('httpbin', 'foo', { selector: { matchLabels: { app: 'httpbin' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { [String(b)]: { mode: 'DISABLE' } } })));
      assert.equal(await mesh.reload(), true);
      assert.equal(status(await tlsGet(b, sleep)), 'refused', 'port b: DISABLE');
      assert.equal(status(await plainGet(b)), 200);
    } finally {
      await mesh.close();
    }
  });
});

describe('STRICT before the workload has a certificate', { skip: SKIP }, () => {
  it('refuses every connection (fail closed), warns once, and serves mTLS once credentials arrive', async () => {
    const warn: string[] = [];
    const mesh = await meshWith([peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } })], { credentials: false, warn });
    try {
      const port = await listen(mesh.createServer(echo(mesh)));
      assert.equal(status(await plainGet(port)), 'refused');
      assert.equal(status(await tlsGet(port, sleep)), 'refused');
      assert.equal(warn.filter((m) => /STRICT applies but this workload has no usable certificate yet/.test(m)).length, 1, warn.join('\n'));
      mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
      assert.equal(status(await tlsGet(port, sleep)), 200);
      assert.equal(status(await plainGet(port)), 'refused');
    } finally {
      await mesh.close();
    }
  });

  it('credentials whose key does not match the certificate are not used (warned); the previous ones keep serving', async () => {
    const warn: string[] = [];
    const mesh = await meshWith([], { warn });
    try {
      const port = await listen(mesh.createServer(echo(mesh)));
      const first = await tlsGet(port, sleep);
      assert.equal(status(first), 200);
      const a = workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' });
      const b = workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' });
      mesh.credentials.set({ ...a, privateKey: b.privateKey });
      assert.match(warn.join('\n'), /cannot be used by the servers .*the previous certificate keeps serving/);
      const again = await tlsGet(port, sleep);
      assert.equal(status(again), 200);
      assert.equal((again as { serverSerial: string }).serverSerial, (first as { serverSerial: string }).serverSerial);
    } finally {
      await mesh.close();
    }
  });
});

describe('certificate hot swap', { skip: SKIP }, () => {
  it('new handshakes present the new certificate while an open keep-alive connection goes on', async () => {
    const mesh = await meshWith([]);
    const conn: { close(): void }[] = [];
    try {
      const port = await listen(mesh.createServer(echo(mesh)));
      const kept = await tlsConnection(port, sleep);
      conn.push(kept);
      assert.equal((await kept.get()).status, 200);
      mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
      const fresh = (await tlsGet(port, sleep)) as { status: number; serverSerial: string };
      assert.equal(fresh.status, 200);
      assert.notEqual(fresh.serverSerial, kept.serverSerial, 'a new handshake gets the new certificate');
      const again = await kept.get();
      assert.equal(again.status, 200, 'the connection opened before the swap still serves');
      assert.equal(JSON.parse(again.body).peer, spiffe('bar', 'sleep'));
    } finally {
      for (const c of conn) c.close();
      await mesh.close();
    }
  });
});

describe("TLS versions and cipher suites: Istio's inbound mTLS settings", { skip: SKIP }, () => {
  let mesh: Mesh;
  let port: number;
  before(async () => {
    mesh = await meshWith([peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } })]);
    port = await listen(mesh.createServer(echo(mesh)));
  });
  after(() => mesh.close());
  // Istio's SupportedCiphers: AES-GCM with ECDHE or RSA key exchange; TLS 1.2 at least.
  const rows: { name: string; client: Partial<TlsClient>; want: number | 'refused' }[] = [
    { name: 'TLS 1.3', client: { minVersion: 'TLSv1.3' }, want: 200 },
    { name: 'TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256', client: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }, want: 200 },
    { name: 'TLS 1.2 with ECDHE-ECDSA-AES256-GCM-SHA384', client: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' }, want: 200 },
    { name: 'TLS 1.2 with a CBC suite and a SHA-1 MAC (ECDHE-ECDSA-AES128-SHA)', client: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' }, want: 'refused' },
    { name: 'TLS 1.2 with a CBC suite (ECDHE-ECDSA-AES256-SHA384)', client: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-SHA384' }, want: 'refused' },
    { name: 'TLS 1.2 with ChaCha20 (not in Istio\'s list)', client: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' }, want: 'refused' },
    { name: 'TLS 1.1', client: { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }, want: 'refused' },
  ];
  for (const row of rows) {
    it(`${row.name}: ${row.want === 'refused' ? 'refused' : 'served'}`, async () => {
      const got = await tlsGet(port, { ...sleep, ...row.client });
      assert.equal(status(got), row.want, JSON.stringify(got));
    });
  }
});

describe('the peer in AuthorizationPolicy', { skip: SKIP }, () => {
  let mesh: Mesh;
  let port: number;
  let other: TlsClient;
  before(async () => {
    const o = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'other' });
    other = { key: o.privateKey, cert: o.certChain, ca: ca.rootPem };
    mesh = await meshWith([
      authorizationPolicy('allow-sleep', 'foo', { selector: { matchLabels: { app: 'httpbin' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/bar/sa/sleep'] } }] }] }),
      authorizationPolicy('deny-sni', 'foo', { action: 'DENY', rules: [{ when: [{ key: 'connection.sni', values: ['blocked.example'] }] }] }),
    ]);
    port = await listen(mesh.createServer(echo(mesh)));
  });
  after(() => mesh.close());

  const rows: { name: string; client: () => TlsClient | 'plaintext'; status: number; body?: string }[] = [
    { name: 'the allowed principal', client: () => sleep, status: 200 },
    { name: 'another principal: 403 RBAC: access denied', client: () => other, status: 403, body: 'RBAC: access denied' },
    { name: 'plaintext: no principal, 403', client: () => 'plaintext', status: 403, body: 'RBAC: access denied' },
    { name: 'the allowed principal with a denied SNI (connection.sni)', client: () => ({ ...sleep, servername: 'blocked.example' }), status: 403, body: 'RBAC: access denied' },
    { name: 'the allowed principal with another SNI', client: () => ({ ...sleep, servername: 'httpbin.foo.svc.cluster.local' }), status: 200 },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const c = row.client();
      const got = c === 'plaintext' ? await plainGet(port) : await tlsGet(port, c);
      assert.equal(status(got), row.status, JSON.stringify(got));
      if (row.body !== undefined) assert.equal((got as { body: string }).body, row.body);
    });
  }
});

describe('connections that send nothing', { skip: SKIP }, () => {
  it('mesh.close() closes a connection that has not sent its first bytes, without waiting for it', { timeout: 10_000 }, async () => {
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: [], closeTimeoutMs: 60_000, logger: { warn: () => {} } });
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
    const server: Server = mesh.createServer(echo(mesh));
    const port = await listen(server);
    const silent = connect(port, '127.0.0.1');
    await new Promise((r) => silent.once('connect', r));
    const closed = new Promise((r) => silent.once('close', r));
    silent.resume();
    // A plaintext request on another connection still works while the silent one waits.
    assert.equal(status(await plainGet(port)), 200);
    await mesh.close();
    await closed;
    assert.equal(server.listening, false);
  });
});

describe('ready for STRICT: inbound counts', { skip: SKIP }, () => {
  it('counts plaintext and mTLS requests and the peers, in diagnostics and on meshlet:inbound:request', async () => {
    const mesh = await meshWith([]);
    const seen: InboundRequestMessage[] = [];
    const onMessage = (m: unknown) => seen.push(m as InboundRequestMessage);
    subscribe('meshlet:inbound:request', onMessage);
    try {
      const port = await listen(mesh.createServer(echo(mesh)));
      assert.deepEqual({ ...mesh.diagnostics().inboundTls, peers: { ...mesh.diagnostics().inboundTls.peers } }, { plaintext: 0, mtls: 0, peers: {} });
      await plainGet(port);
      await plainGet(port);
      await tlsGet(port, sleep);
      const { lastPlaintextAt, ...d } = mesh.diagnostics().inboundTls;
      assert.deepEqual({ ...d, peers: { ...d.peers } }, { plaintext: 2, mtls: 1, peers: { [spiffe('bar', 'sleep')]: 1 } });
      // Unix milliseconds, a whole number (the control plane refuses a report with anything else):
      // the system clock's own readings count from the process's start, with fractions.
      assert.ok(Number.isInteger(lastPlaintextAt) && lastPlaintextAt! > Date.parse('2020-01-01'), `Unix time in ms: ${lastPlaintextAt}`);
      const mine = seen.filter((m) => m.workload.service === 'httpbin');
      assert.deepEqual(
        mine.map((m) => [m.mtls, m.peer, m.localPort]),
        [
          [false, undefined, port],
          [false, undefined, port],
          [true, spiffe('bar', 'sleep'), port],
        ],
      );
    } finally {
      unsubscribe('meshlet:inbound:request', onMessage);
      await mesh.close();
    }
  });
});
