/**
 * PeerAuthentication on grpc-js servers, with real TLS handshakes and certificates made with
 * openssl at test time:
 *
 * - `mesh.grpc.bind(server, address)`: STRICT takes mTLS only (a plaintext client, a TLS client
 *   without a certificate or with one from another CA are refused before any call), PERMISSIVE
 *   takes both on one port, DISABLE plaintext only, `portLevelMtls` per port, a new mode applies
 *   to the next connection, a rotated certificate to the next handshake;
 * - `mesh.grpc.serverCredentials()` with `bindAsync`: mTLS, the SPIFFE identity checked per call;
 * - a plaintext listener the mesh did not make, under STRICT: its calls are refused (fail closed);
 * - the verified peer reaches AuthorizationPolicy (`principals`, `namespaces`) and the handler's
 *   MeshContext;
 * - independent clients: `openssl s_client` (the handshake, ALPN h2, the workload certificate)
 *   and `curl --http2` making a real gRPC call over mTLS.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type TestLeaf, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { sdk } from '../helpers/metric-reader.ts';
import { collect, type Echo, EchoClient, grpc, unary } from '../helpers/grpc.ts';
import { type BindKind, type MeshGrpcServer, md, OWN_CONNECTIONS, plainClient, startMeshGrpcServer } from '../helpers/grpc-server.ts';
import { authorizationPolicy, peerAuthentication } from '../inbound/mtls-helpers.ts';

const HOST = 'echo.foo.svc.cluster.local';
const PRODUCTPAGE = spiffe('default', 'productpage');
const quiet = { warn: () => undefined, error: () => undefined };
/** What the server's handler sees of a productpage mesh client's certificate (a new one per client: any hash). */
const XFCC_FROM_PRODUCTPAGE = /^By=spiffe:\/\/cluster\.local\/ns\/foo\/sa\/echo;Hash=[0-9a-f]{64};Subject="O=meshlet-test";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/;

function run(cmd: string, args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000, encoding: 'latin1' }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
    child.stdin?.end(input);
  });
}

/** Refusals the mesh published (`meshlet:inbound:refused`), by reason. */
function refusals(): { readonly reasons: string[]; stop(): void } {
  const reasons: string[] = [];
  const f = (m: unknown) => reasons.push((m as { reason: string }).reason);
  subscribe('meshlet:inbound:refused', f);
  return { reasons, stop: () => unsubscribe('meshlet:inbound:refused', f) };
}

/** The mesh config of the server: a PeerAuthentication (with `portLevel`, for the workload: Istio requires a selector) and a policy that opens Unary to productpage and namespace `default`, ServerStream to anyone. */
function serverConfig(mode: string, portLevel?: Record<number, string>): string {
  const pa = peerAuthentication('default', 'foo', { mtls: { mode }, ...(portLevel === undefined ? {} : { selector: { matchLabels: { app: 'echo' } }, portLevelMtls: Object.fromEntries(Object.entries(portLevel).map(([p, m]) => [p, { mode: m }])) }) });
  const allow = authorizationPolicy('allow', 'foo', {
    action: 'ALLOW',
    rules: [
      { from: [{ source: { principals: ['cluster.local/ns/default/sa/productpage'], namespaces: ['default'] } }], to: [{ operation: { paths: ['/meshlet.test.Echo/Unary'] } }] },
      { to: [{ operation: { paths: ['/meshlet.test.Echo/ServerStream'] } }] },
    ],
  });
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [pa, allow] });
}

describe('gRPC server mTLS (PeerAuthentication)', { skip: skipWithout('openssl', 'curl') }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-grpc-mtls-'));
  const file = join(dir, 'mesh.json');
  let ca: TestCa;
  let serverLeaf: TestLeaf;
  let clientLeaf: TestLeaf;
  let foreignLeaf: TestLeaf;
  const meshes: Mesh[] = [];
  const clients: grpc.Client[] = [];
  const servers: MeshGrpcServer[] = [];

  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.close();
    await Promise.all(meshes.map((m) => m.close()));
    cleanupPki();
    rmSync(dir, { recursive: true, force: true });
  });

  before(() => {
    ca = makeCa();
    // A DNS name too, so curl verifies the server for real.
    serverLeaf = issueLeaf(ca, { uris: [spiffe('foo', 'echo')], dns: [HOST] });
    clientLeaf = issueLeaf(ca, { uris: [PRODUCTPAGE] });
    foreignLeaf = issueLeaf(makeCa({ name: 'elsewhere' }), { uris: [PRODUCTPAGE] });
  });

  async function serverMesh(mode: string, bind: BindKind): Promise<{ mesh: Mesh; server: MeshGrpcServer }> {
    writeFileSync(file, serverConfig(mode));
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, config: file, watch: false, logger: quiet });
    meshes.push(mesh);
    mesh.credentials.set({ certChain: serverLeaf.chainPem, privateKey: serverLeaf.keyPem, trustBundle: ca.rootPem, spiffeId: spiffe('foo', 'echo'), notBefore: 0, notAfter: Date.now() + 86_400_000 });
    const server = await startMeshGrpcServer(mesh, bind);
    servers.push(server);
    return { mesh, server };
  }

  /** A grpc-js client through a productpage mesh (auto-mTLS with its workload certificate). */
  async function meshClient(port: number, meterProvider?: unknown): Promise<Echo> {
    const mesh = await createMesh({
      service: 'productpage',
      ...(meterProvider === undefined ? {} : { telemetry: { metrics: { meterProvider: meterProvider as never } } }),
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'echo', namespace: 'foo' },
          spec: {
            hosts: [HOST],
            location: 'MESH_INTERNAL',
            resolution: 'STATIC',
            ports: [{ number: 9090, name: 'grpc', protocol: 'GRPC' }],
            endpoints: [{ address: '127.0.0.1', ports: { grpc: port }, labels: { 'security.istio.io/tlsMode': 'istio' }, serviceAccount: 'echo' }],
          },
        },
        { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'echo', namespace: 'foo' }, spec: { hosts: [HOST], http: [{ route: [{ destination: { host: HOST } }], retries: { attempts: 0 } }] } },
      ],
      logger: quiet,
    });
    meshes.push(mesh);
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
    const c = mesh.grpc.client(EchoClient, `${HOST}:9090`) as unknown as Echo;
    clients.push(c);
    return c;
  }

  /** A grpc-js client with TLS of its own: a client certificate (or none), the CA trusted, no host name check (SPIFFE certificates name no host). */
  function tlsClient(port: number, leaf: TestLeaf | undefined): Echo {
    const creds = grpc.credentials.createSsl(Buffer.from(ca.rootPem), leaf === undefined ? null : Buffer.from(leaf.keyPem), leaf === undefined ? null : Buffer.from(leaf.chainPem), { checkServerIdentity: () => undefined });
    const c = new EchoClient(`127.0.0.1:${port}`, creds, { ...OWN_CONNECTIONS, 'grpc.ssl_target_name_override': 'echo' }) as unknown as Echo;
    clients.push(c);
    return c;
  }

  function plain(port: number): Echo {
    const c = plainClient(port) as Echo;
    clients.push(c);
    return c;
  }

  /** The serial number of the certificate a new TLS handshake with the port gets. */
  function serialOf(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.rootPem, key: clientLeaf.keyPem, cert: clientLeaf.chainPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }, () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.destroy();
      });
      s.on('error', reject);
    });
  }

  describe('mesh.grpc.bind: STRICT', () => {
    let mesh: Mesh;
    let server: MeshGrpcServer;
    before(async () => ({ mesh, server } = await serverMesh('STRICT', 'mesh')));

    it('a mesh client (mTLS): served; the handler’s MeshContext has the peer; the policy on principals and namespaces allowed it', async () => {
      const r = await unary(await meshClient(server.port), { text: 'm' });
      assert.equal(r.error, undefined, r.error?.details);
      assert.equal(server.seen.at(-1)?.context.peer?.principal, PRODUCTPAGE);
      // As an Istio sidecar's inbound listener (APPEND_FORWARD): who called, in the handler's metadata.
      assert.match(String(server.seen.at(-1)?.metadata['x-forwarded-client-cert']), XFCC_FROM_PRODUCTPAGE);
    });

    it('x-forwarded-client-cert sent by an mTLS caller (a gateway) is kept, the caller’s details appended', async () => {
      const r = await unary(tlsClient(server.port, clientLeaf), { text: 'm' }, { metadata: md({ 'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/x/sa/gateway;Hash=00' }) });
      assert.equal(r.error, undefined, r.error?.details);
      const xfcc = String(server.seen.at(-1)?.metadata['x-forwarded-client-cert']);
      assert.ok(xfcc.startsWith('By=spiffe://cluster.local/ns/x/sa/gateway;Hash=00,'), xfcc);
      assert.match(xfcc.slice(xfcc.indexOf(',') + 1), XFCC_FROM_PRODUCTPAGE);
    });

    it('a mesh client’s own x-forwarded-client-cert never arrives (its sidecar’s outbound listener would remove it): the handler sees only the certificate it holds', async () => {
      const forged = `By=spiffe://cluster.local/ns/foo/sa/echo;Hash=00;URI=${spiffe('foo', 'admin')}`;
      const r = await unary(await meshClient(server.port), { text: 'm' }, { metadata: md({ 'x-forwarded-client-cert': forged }) });
      assert.equal(r.error, undefined, r.error?.details);
      assert.match(String(server.seen.at(-1)?.metadata['x-forwarded-client-cert']), XFCC_FROM_PRODUCTPAGE);
    });

    const refused: { name: string; client: () => Echo; reason: RegExp }[] = [
      { name: 'a plaintext client', client: () => plain(server.port), reason: /^plaintext under STRICT$/ },
      { name: 'a TLS client without a certificate', client: () => tlsClient(server.port, undefined), reason: /^no client certificate$/ },
      { name: 'a TLS client whose certificate is from another CA', client: () => tlsClient(server.port, foreignLeaf), reason: /unknown CA/ },
    ];
    for (const row of refused) {
      it(`${row.name}: refused before any call (UNAVAILABLE), the handler never runs`, async () => {
        const seen = server.seen.length;
        const events = refusals();
        try {
          const r = await unary(row.client(), { text: 'x' }, { deadline: Date.now() + 3000 });
          assert.equal(r.error?.code, grpc.status.UNAVAILABLE, r.error?.details);
          assert.equal(server.seen.length, seen);
          assert.ok(events.reasons.some((x) => row.reason.test(x)), events.reasons.join('; '));
        } finally {
          events.stop();
        }
      });
    }

    it('openssl s_client with -cert: the handshake verifies, ALPN h2, the server presents the workload certificate', async () => {
      const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-cert', clientLeaf.certFile, '-key', clientLeaf.keyFile, '-CAfile', ca.certFile, '-alpn', 'h2', '-showcerts']);
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/, r.stdout + r.stderr);
      assert.match(r.stdout, /ALPN protocol: h2/);
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0] ?? '';
      const x = await run('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], pem);
      assert.match(x.stdout, /URI:spiffe:\/\/cluster\.local\/ns\/foo\/sa\/echo/);
    });

    it('ALPN: Istio’s istio-h2 is accepted; a client offering only http/1.1 is refused (no_application_protocol)', async () => {
      const istio = await run('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-cert', clientLeaf.certFile, '-key', clientLeaf.keyFile, '-CAfile', ca.certFile, '-alpn', 'istio-h2']);
      assert.match(istio.stdout, /ALPN protocol: istio-h2/, istio.stdout + istio.stderr);
      const http1 = await run('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-cert', clientLeaf.certFile, '-key', clientLeaf.keyFile, '-CAfile', ca.certFile, '-alpn', 'http/1.1']);
      assert.match(http1.stdout + http1.stderr, /no application protocol/i);
    });

    it('openssl s_client without -cert: refused (no client certificate)', async () => {
      const events = refusals();
      try {
        await run('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-CAfile', ca.certFile, '-alpn', 'h2']);
        assert.ok(events.reasons.includes('no client certificate'), events.reasons.join('; '));
      } finally {
        events.stop();
      }
    });

    it('curl --http2 with a client certificate: a real gRPC call over mTLS, answered by the handler with the peer', async () => {
      const body = join(dir, 'unary.bin');
      // One gRPC frame: uncompressed, 4 bytes, EchoRequest { text: "hi" }.
      writeFileSync(body, Buffer.from([0, 0, 0, 0, 4, 0x0a, 0x02, 0x68, 0x69]));
      const r = await run('curl', ['-sS', '--http2', '-D', '-', '--resolve', `${HOST}:${server.port}:127.0.0.1`, '--cacert', ca.certFile, '--cert', clientLeaf.certFile, '--key', clientLeaf.keyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '--data-binary', `@${body}`, `https://${HOST}:${server.port}/meshlet.test.Echo/Unary`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^HTTP\/2 200/);
      assert.match(r.stdout, /mesh-server/);
      assert.match(r.stdout, /grpc-status: 0/);
      assert.equal(server.seen.at(-1)?.context.peer?.principal, PRODUCTPAGE);
    });

    it('a rotated workload certificate is presented by the next handshake', async () => {
      const before = await serialOf(server.port);
      const next = workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo' });
      mesh.credentials.set(next);
      const after = await serialOf(server.port);
      assert.notEqual(after, before);
      assert.equal(after, new (await import('node:crypto')).X509Certificate(next.leaf.certPem).serialNumber);
      const r = await unary(await meshClient(server.port), { text: 'after rotation' });
      assert.equal(r.error, undefined, r.error?.details);
    });

    it('PERMISSIVE after a reload: plaintext and mTLS on the same port; the plaintext call has no peer, so the principal policy denies it', async () => {
      writeFileSync(file, serverConfig('PERMISSIVE'));
      assert.equal(await mesh.reload(), true);
      const c = plain(server.port);
      const denied = await unary(c, { text: 'p' });
      assert.equal(denied.error?.code, grpc.status.PERMISSION_DENIED);
      assert.equal(denied.error?.details, 'RBAC: access denied');
      // A plaintext caller cannot claim a certificate: the header it sends is removed.
      const open = await collect(c.ServerStream({ text: 'p', count: 1 }, md({ 'x-forwarded-client-cert': `By=x;Hash=00;URI=${PRODUCTPAGE}` })));
      assert.equal(open.status.code, grpc.status.OK);
      assert.equal(server.seen.at(-1)?.context.peer, undefined);
      assert.equal(server.seen.at(-1)?.metadata['x-forwarded-client-cert'], undefined);
      const r = await unary(await meshClient(server.port), { text: 'm' });
      assert.equal(r.error, undefined, r.error?.details);
      assert.equal(server.seen.at(-1)?.context.peer?.principal, PRODUCTPAGE);
    });

    it('a plaintext connection let in under PERMISSIVE, after a change to STRICT: its next call is refused, the handler never runs', async () => {
      const c = plain(server.port);
      assert.equal((await collect(c.ServerStream({ text: 'k', count: 1 }))).status.code, grpc.status.OK);
      writeFileSync(file, serverConfig('STRICT'));
      assert.equal(await mesh.reload(), true);
      const seen = server.seen.length;
      const r = await collect(c.ServerStream({ text: 'k', count: 1 }));
      assert.equal(r.status.code, grpc.status.UNAVAILABLE);
      assert.equal(server.seen.length, seen);
      // And a new connection is refused when it connects.
      assert.equal((await unary(c, { text: 'k' }, { deadline: Date.now() + 3000 })).error?.code, grpc.status.UNAVAILABLE);
      assert.equal(server.seen.length, seen);
    });

    it('DISABLE: plaintext only; a TLS handshake is refused', async () => {
      writeFileSync(file, serverConfig('DISABLE'));
      assert.equal(await mesh.reload(), true);
      assert.equal((await collect(plain(server.port).ServerStream({ text: 'd', count: 1 }))).status.code, grpc.status.OK);
      const events = refusals();
      try {
        const r = await unary(tlsClient(server.port, clientLeaf), { text: 'x' }, { deadline: Date.now() + 3000 });
        assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
        assert.ok(events.reasons.some((x) => /under DISABLE/.test(x)), events.reasons.join('; '));
      } finally {
        events.stop();
      }
    });

    it('portLevelMtls: STRICT for the workload, DISABLE on this port — plaintext is served', async () => {
      writeFileSync(file, serverConfig('STRICT', { [server.port]: 'DISABLE' }));
      assert.equal(await mesh.reload(), true);
      assert.equal((await collect(plain(server.port).ServerStream({ text: 'd', count: 1 }))).status.code, grpc.status.OK);
      writeFileSync(file, serverConfig('STRICT', { [server.port + 1]: 'DISABLE' }));
      assert.equal(await mesh.reload(), true);
      assert.equal((await unary(plain(server.port), { text: 'x' }, { deadline: Date.now() + 3000 })).error?.code, grpc.status.UNAVAILABLE);
    });
  });

  describe('mesh.grpc.serverCredentials() with bindAsync', () => {
    let mesh: Mesh;
    let server: MeshGrpcServer;
    before(async () => ({ mesh, server } = await serverMesh('STRICT', 'credentials')));

    it('a mesh client (mTLS): served with its peer, and its certificate in x-forwarded-client-cert', async () => {
      const r = await unary(await meshClient(server.port), { text: 'c' });
      assert.equal(r.error, undefined, r.error?.details);
      assert.equal(server.seen.at(-1)?.context.peer?.principal, PRODUCTPAGE);
      assert.match(String(server.seen.at(-1)?.metadata['x-forwarded-client-cert']), XFCC_FROM_PRODUCTPAGE);
    });

    for (const [name, client] of [
      ['a plaintext client', () => plain(server.port)],
      ['a TLS client without a certificate', () => tlsClient(server.port, undefined)],
      ['a TLS client whose certificate is from another CA', () => tlsClient(server.port, foreignLeaf)],
    ] as const) {
      it(`${name}: no connection (UNAVAILABLE), the handler never runs`, async () => {
        const seen = server.seen.length;
        const r = await unary(client(), { text: 'x' }, { deadline: Date.now() + 3000 });
        assert.equal(r.error?.code, grpc.status.UNAVAILABLE, r.error?.details);
        assert.equal(server.seen.length, seen);
      });
    }

    it('a certificate of the trust bundle but another trust domain: the call is refused, naming why', async () => {
      const other = issueLeaf(ca, { uris: [spiffe('default', 'productpage', 'other.example')] });
      const seen = server.seen.length;
      const r = await unary(tlsClient(server.port, other), { text: 'x' });
      assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
      assert.match(r.error?.details ?? '', /connection refused by PeerAuthentication: wrong trust domain/);
      assert.equal(server.seen.length, seen);
    });

    it('a rotated workload certificate is presented by the next handshake', async () => {
      const before = await serialOf(server.port);
      mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo' }));
      assert.notEqual(await serialOf(server.port), before);
    });

    it('without a workload certificate every connection is refused (fail closed); one that arrives later is served from', async () => {
      writeFileSync(file, serverConfig('STRICT'));
      const bare = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, config: file, watch: false, logger: quiet });
      meshes.push(bare);
      const s = await startMeshGrpcServer(bare, 'credentials');
      servers.push(s);
      assert.equal((await unary(tlsClient(s.port, clientLeaf), { text: 'x' }, { deadline: Date.now() + 3000 })).error?.code, grpc.status.UNAVAILABLE);
      bare.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo' }));
      const r = await unary(await meshClient(s.port), { text: 'y' });
      assert.equal(r.error, undefined, r.error?.details);
      assert.equal(s.seen.at(-1)?.context.peer?.principal, PRODUCTPAGE);
    });

    it('DISABLE on the port: its mTLS calls are refused, naming the mode and mesh.grpc.bind', async () => {
      writeFileSync(file, serverConfig('DISABLE'));
      assert.equal(await mesh.reload(), true);
      const seen = server.seen.length;
      const r = await unary(await meshClient(server.port), { text: 'x' });
      assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
      assert.match(r.error?.details ?? '', /PeerAuthentication DISABLE on port \d+: .*mesh\.grpc\.bind/);
      assert.equal(server.seen.length, seen);
    });
  });

  it('a server whose identity is not the destination’s: the caller’s error says why (the TLS failure reason, as mesh.fetch words it)', async () => {
    writeFileSync(file, serverConfig('STRICT'));
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, config: file, watch: false, logger: quiet });
    meshes.push(mesh);
    // The ServiceEntry says service account echo; this server proves sa/other.
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'other' }));
    const server = await startMeshGrpcServer(mesh, 'mesh');
    servers.push(server);
    const r = await unary(await meshClient(server.port), { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.match(r.error?.details ?? '', /connection failure, transport failure reason: TLS error: server identity spiffe:\/\/cluster\.local\/ns\/foo\/sa\/other is not one of the destination's identities/);
    assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'UF');
  });

  it('a server whose certificate has expired (its control plane was down through a renewal): the caller’s error says so, as mesh.fetch words it', async () => {
    writeFileSync(file, serverConfig('STRICT'));
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, config: file, watch: false, logger: quiet });
    meshes.push(mesh);
    const now = Date.now();
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo', validity: { notBefore: new Date(now - 7200_000), notAfter: new Date(now - 3600_000) } }));
    const server = await startMeshGrpcServer(mesh, 'mesh');
    servers.push(server);
    const r = await unary(await meshClient(server.port), { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    // grpc-js keeps the handshake's error as "Last error: Error: certificate has expired": the
    // details name it as an HTTP call's do, not only "remote connection failure".
    assert.match(r.error?.details ?? '', /remote connection failure, transport failure reason: TLS error: the server's certificate has expired \(CERT_HAS_EXPIRED\)$/);
  });

  it('a server whose certificate is from a root the caller no longer trusts (a finalized root rotation): the caller’s error names the trust bundle', async () => {
    writeFileSync(file, serverConfig('STRICT'));
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, config: file, watch: false, logger: quiet });
    meshes.push(mesh);
    mesh.credentials.set(workloadCredentials(makeCa({ name: 'old-root' }), { namespace: 'foo', serviceAccount: 'echo' }));
    const server = await startMeshGrpcServer(mesh, 'mesh');
    servers.push(server);
    const r = await unary(await meshClient(server.port), { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.match(r.error?.details ?? '', /transport failure reason: TLS error: the server's certificate is signed by an unknown CA: not one of the mesh's trust bundle/);
  });

  describe('Istio metrics of an mTLS call (mesh.grpc.bind)', () => {
    it('the source side (mesh.grpc.client over auto-mTLS) names both identities, as for HTTP calls', async () => {
      const metrics = sdk();
      writeFileSync(file, serverConfig('STRICT'));
      const mesh = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, config: file, watch: false, logger: quiet });
      meshes.push(mesh);
      mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo' }));
      const server = await startMeshGrpcServer(mesh, 'mesh');
      servers.push(server);
      try {
        assert.equal((await unary(await meshClient(server.port, metrics.provider), { text: 'm' })).error, undefined);
        const src = (await metrics.points('istio_requests_total')).find((p) => p.attributes['reporter'] === 'source');
        assert.equal(src?.attributes['source_principal'], PRODUCTPAGE);
        assert.equal(src?.attributes['destination_principal'], spiffe('foo', 'echo'));
        assert.equal(src?.attributes['request_protocol'], 'grpc');
      } finally {
        await metrics.shutdown();
      }
    });

    it('the destination side names the caller’s identity and says mutual_tls', async () => {
      const metrics = sdk();
      writeFileSync(file, serverConfig('STRICT'));
      const mesh = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, config: file, watch: false, logger: quiet, telemetry: { metrics: { meterProvider: metrics.provider } } });
      meshes.push(mesh);
      mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo' }));
      const server = await startMeshGrpcServer(mesh, 'mesh');
      servers.push(server);
      try {
        assert.equal((await unary(await meshClient(server.port), { text: 'm' })).error, undefined);
        const dest = (await metrics.points('istio_requests_total')).find((p) => p.attributes['reporter'] === 'destination');
        assert.equal(dest?.attributes['source_principal'], PRODUCTPAGE);
        assert.equal(dest?.attributes['destination_principal'], spiffe('foo', 'echo'));
        assert.equal(dest?.attributes['connection_security_policy'], 'mutual_tls');
        assert.equal(dest?.attributes['request_protocol'], 'grpc');
        assert.equal(dest?.attributes['grpc_response_status'], '0');
      } finally {
        await metrics.shutdown();
      }
    });
  });

  describe('a plaintext listener the mesh did not make (bindAsync, insecure credentials)', () => {
    it('STRICT: every call is refused (UNAVAILABLE), fail closed; PERMISSIVE: served', async () => {
      const { mesh, server } = await serverMesh('STRICT', 'insecure');
      const c = plain(server.port);
      const r = await collect(c.ServerStream({ text: 'x', count: 1 }));
      assert.equal(r.status.code, grpc.status.UNAVAILABLE);
      assert.equal(r.status.details, 'connection refused by PeerAuthentication');
      assert.equal(server.seen.length, 0);
      writeFileSync(file, serverConfig('PERMISSIVE'));
      assert.equal(await mesh.reload(), true);
      assert.equal((await collect(c.ServerStream({ text: 'x', count: 1 }))).status.code, grpc.status.OK);
    });
  });
});
