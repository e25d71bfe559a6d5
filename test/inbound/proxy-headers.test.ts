/**
 * The headers an Istio sidecar adds to what it forwards, and ProxyConfig `proxyHeaders`
 * (`createMesh({ proxyHeaders })`), end to end on real sockets:
 *
 * - `x-forwarded-client-cert` on served requests: over mTLS the caller's certificate details as
 *   Envoy writes them (`By`, `Hash`, `Subject` in RFC 2253, `URI`, `DNS`, optionally `Cert`),
 *   checked against `openssl`'s own fingerprint and RFC 2253 subject and with `curl` as the
 *   caller; a plaintext caller's header removed (it cannot claim a certificate); every
 *   `forwardedClientCert` mode, as Envoy's `mutateXfccRequestHeader`;
 * - `x-envoy-attempt-count` on each attempt of a call (a retry says 2), on passthrough calls too,
 *   off with `attemptCount.disabled`;
 * - `requestId.disabled`: no `x-request-id` generated, on served requests nor on calls;
 * - `envoyDebugHeaders.disabled`: no `x-envoy-expected-rq-timeout-ms`;
 * - bad options refused, naming the field.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh, type ProxyHeadersOptions } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type TestLeaf, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { frameworks, listen, raw, type Seen } from '../helpers/frameworks.ts';
import { peerAuthentication } from './mtls-helpers.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const HOST = 'reviews.default.svc.cluster.local';
const XFCC = 'x-forwarded-client-cert';

after(cleanupPki);

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
  });
}

/** openssl's SHA-256 fingerprint of a certificate file, as Envoy's Hash (lower-case hex, no colons). */
async function opensslHash(certFile: string): Promise<string> {
  const r = await run('openssl', ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256']);
  return (r.stdout.trim().split('=')[1] as string).replaceAll(':', '').toLowerCase();
}

/** openssl's RFC 2253 subject of a certificate file (what Envoy prints with XN_FLAG_RFC2253). */
async function opensslSubject(certFile: string): Promise<string> {
  const r = await run('openssl', ['x509', '-in', certFile, '-noout', '-subject', '-nameopt', 'RFC2253']);
  return r.stdout.trim().replace(/^subject=/, '');
}

/** A server mesh (PERMISSIVE: mTLS and plaintext on one port) whose app answers the headers it got. */
async function echoServer(ca: TestCa, proxyHeaders?: ProxyHeadersOptions, leaf?: TestLeaf): Promise<{ mesh: Mesh; port: number; close(): Promise<void> }> {
  const mesh = await createMesh({ service: 'reviews', serviceAccount: 'reviews', config: [peerAuthentication('default', 'default', { mtls: { mode: 'PERMISSIVE' } })] as never, logger: quiet, ...(proxyHeaders === undefined ? {} : { proxyHeaders }) });
  if (leaf === undefined) mesh.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' }));
  else mesh.credentials.set({ certChain: leaf.chainPem, privateKey: leaf.keyPem, trustBundle: ca.rootPem, spiffeId: spiffe('default', 'reviews'), notBefore: 0, notAfter: Date.now() + 86_400_000 });
  const server = mesh.createServer((req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ headers: req.headers, raw: req.rawHeaders }));
  });
  const port = await listen(server);
  return { mesh, port, close: async () => mesh.close() };
}

describe('x-forwarded-client-cert: meshlet client → meshlet server', { skip: skipWithout('openssl') }, () => {
  let ca: TestCa;
  let server: { mesh: Mesh; port: number; close(): Promise<void> };
  const meshes: Mesh[] = [];
  const clientCreds = () => workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' });
  let creds: ReturnType<typeof clientCreds>;

  async function client(mtls: boolean): Promise<Mesh> {
    const m = await createMesh({
      service: 'productpage',
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'reviews', namespace: 'default' },
          spec: { hosts: [HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: server.port }, serviceAccount: 'reviews', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
        },
      ] as never,
      logger: quiet,
    });
    meshes.push(m);
    if (mtls) m.credentials.set(creds);
    return m;
  }

  async function headersSeen(m: Mesh, headers: Record<string, string> = {}): Promise<{ headers: Record<string, string | undefined>; raw: string[] }> {
    const r = await m.fetch(`http://${HOST}:9080/`, { headers });
    assert.equal(r.status, 200);
    return (await r.json()) as { headers: Record<string, string | undefined>; raw: string[] };
  }

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    creds = clientCreds();
    server = await echoServer(ca);
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await server.close();
  });

  it('over mTLS the app sees who called, as an Istio sidecar writes it (By, Hash, Subject, URI), in headers and rawHeaders', async () => {
    const seen = await headersSeen(await client(true));
    const expected = `By=${spiffe('default', 'reviews')};Hash=${await opensslHash(creds.leaf.certFile)};Subject="${await opensslSubject(creds.leaf.certFile)}";URI=${spiffe('default', 'productpage')}`;
    assert.equal(seen.headers[XFCC], expected);
    assert.equal(seen.raw[seen.raw.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === XFCC) + 1], expected);
    // The attempt's number, as Istio's outbound routes send it.
    assert.equal(seen.headers['x-envoy-attempt-count'], '1');
  });

  it('a meshlet client’s own x-forwarded-client-cert never reaches the server: only the details of the certificate it holds (a sidecar’s outbound listener removes the app’s XFCC)', async () => {
    // The app claims a certificate it does not hold, in front of its own; an mTLS caller that is
    // not a mesh client keeps its XFCC (APPEND_FORWARD: the curl table below).
    const seen = await headersSeen(await client(true), { [XFCC]: `By=${spiffe('default', 'reviews')};Hash=ab;URI=${spiffe('default', 'admin')}` });
    assert.match(String(seen.headers[XFCC]), /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews;Hash=[0-9a-f]{64};Subject="[^"]*";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/);
    // rawHeaders agree: one line, the new value (frameworks that read rawHeaders, as Hono does, see the same).
    assert.deepEqual(
      seen.raw.filter((_, i) => i % 2 === 1 && seen.raw[i - 1]?.toLowerCase() === XFCC),
      [seen.headers[XFCC]],
    );
  });

  it('a plaintext caller cannot claim a certificate: its x-forwarded-client-cert is removed', async () => {
    const seen = await headersSeen(await client(false), { [XFCC]: `By=x;Hash=00;URI=${spiffe('default', 'productpage')}` });
    assert.equal(seen.headers[XFCC], undefined);
    assert.equal(
      seen.raw.some((v, i) => i % 2 === 0 && v.toLowerCase() === XFCC),
      false,
    );
  });
});

describe('x-forwarded-client-cert with curl as the caller', { skip: skipWithout('openssl', 'curl') }, () => {
  const SERVER_HOST = 'reviews.default.svc';
  let ca: TestCa;
  let serverLeaf: TestLeaf;
  /** A caller certificate with a subject that needs RFC 2253's escapes, two URI SANs and two DNS SANs. */
  let caller: TestLeaf;
  let callerDetails: string;
  const forged = 'By=spiffe://cluster.local/ns/x/sa/edge;Hash=00;URI=spiffe://cluster.local/ns/x/sa/admin';
  const servers: { close(): Promise<void> }[] = [];

  before(async () => {
    ca = makeCa({ name: 'cluster.local' });
    serverLeaf = issueLeaf(ca, { uris: [spiffe('default', 'reviews')], dns: [SERVER_HOST] });
    caller = issueLeaf(ca, { uris: [spiffe('bar', 'sleep'), 'https://sleep.example/id'], dns: ['sleep.bar.svc', 'sleep.local'], subject: '/O=Sleep, Inc. \\+ "friends"/CN=#sleep' });
    callerDetails = `By=${spiffe('default', 'reviews')};Hash=${await opensslHash(caller.certFile)};Subject="${await opensslSubject(caller.certFile)}";URI=${spiffe('bar', 'sleep')};URI=https://sleep.example/id;DNS=sleep.bar.svc;DNS=sleep.local`;
    // The subject needs escapes, so the comparison with openssl means something.
    assert.match(callerDetails, /Subject="CN=\\#sleep,O=Sleep\\, Inc\. \\\+ \\"friends\\""/);
  });
  after(async () => {
    for (const s of servers) await s.close();
  });

  async function start(proxyHeaders?: ProxyHeadersOptions): Promise<number> {
    const s = await echoServer(ca, proxyHeaders, serverLeaf);
    servers.push(s);
    return s.port;
  }

  async function curlSeen(port: number, mtls: boolean): Promise<string | undefined> {
    const args = mtls
      ? ['-sS', '--resolve', `${SERVER_HOST}:${port}:127.0.0.1`, '--cacert', ca.certFile, '--cert', caller.certFile, '--key', caller.keyFile, '-H', `${XFCC}: ${forged}`, `https://${SERVER_HOST}:${port}/`]
      : ['-sS', '-H', `${XFCC}: ${forged}`, `http://127.0.0.1:${port}/`];
    const r = await run('curl', args);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { headers: Record<string, string | undefined> }).headers[XFCC];
  }

  // Envoy's mutateXfccRequestHeader, mode by mode: [mode, over mTLS, in plaintext].
  const table: [ProxyHeadersOptions['forwardedClientCert'], (details: string) => string | undefined, string | undefined][] = [
    [undefined, (d) => `${forged},${d}`, undefined],
    ['APPEND_FORWARD', (d) => `${forged},${d}`, undefined],
    ['SANITIZE_SET', (d) => d, undefined],
    ['SANITIZE', () => undefined, undefined],
    ['FORWARD_ONLY', () => forged, undefined],
    ['ALWAYS_FORWARD_ONLY', () => forged, forged],
  ];
  for (const [mode, overMtls, plaintext] of table) {
    it(`${mode ?? 'default (APPEND_FORWARD)'}: over mTLS ${overMtls('<details>') ?? 'removed'}; plaintext ${plaintext === undefined ? 'removed' : 'kept'}`, async () => {
      const port = await start(mode === undefined ? undefined : { forwardedClientCert: mode });
      assert.equal(await curlSeen(port, true), overMtls(callerDetails));
      assert.equal(await curlSeen(port, false), plaintext);
    });
  }

  it('setCurrentClientCertDetails: cert adds the URL-encoded PEM; subject, uri and dns off leave By and Hash', async () => {
    const port = await start({ forwardedClientCert: 'SANITIZE_SET', setCurrentClientCertDetails: { cert: true, subject: false, uri: false, dns: false } });
    // Envoy's urlEncodedPemEncodedPeerCertificate: newline, space, +, / and = escaped.
    const pem = caller.certPem.replaceAll('\n', '%0A').replaceAll(' ', '%20').replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D');
    assert.equal(await curlSeen(port, true), `By=${spiffe('default', 'reviews')};Hash=${await opensslHash(caller.certFile)};Cert="${pem}"`);
  });

  it('a caller certificate signed by an intermediate CA (sent with it): Hash and URI are the caller’s own; subject and dns off leave them out', async () => {
    const inter = makeCa({ name: 'intermediate', parent: ca });
    const leaf = issueLeaf(inter, { uris: [spiffe('bar', 'sleep')] });
    const port = await start({ forwardedClientCert: 'SANITIZE_SET', setCurrentClientCertDetails: { subject: false, dns: false } });
    const r = await run('curl', ['-sS', '--resolve', `${SERVER_HOST}:${port}:127.0.0.1`, '--cacert', ca.certFile, '--cert', leaf.chainFile, '--key', leaf.keyFile, `https://${SERVER_HOST}:${port}/`]);
    assert.equal(r.code, 0, r.stderr);
    const xfcc = (JSON.parse(r.stdout) as { headers: Record<string, string> }).headers[XFCC];
    assert.equal(xfcc, `By=${spiffe('default', 'reviews')};Hash=${await opensslHash(leaf.certFile)};URI=${spiffe('bar', 'sleep')}`);
  });
});

describe('x-forwarded-client-cert from a plaintext caller, and any caller’s x-envoy-internal and router headers, through every framework’s real entry point', () => {
  for (const fw of frameworks) {
    it(`${fw.name}: removed before the app sees them`, async () => {
      const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', config: [] as never, logger: quiet });
      const server = await fw.start(mesh);
      try {
        const r = await raw(server.port, '/headers', { headers: { [XFCC]: `By=x;Hash=00;URI=${spiffe('foo', 'admin')}`, 'x-envoy-internal': 'true', 'x-envoy-max-retries': '100', 'x-envoy-expected-rq-timeout-ms': '30000', cookie: 'kept=1' } });
        assert.equal(r.statusCode, 200, r.text);
        const seen = (JSON.parse(r.text) as Seen).headers;
        assert.equal(seen[XFCC], undefined);
        // Envoy removes it from every request and sets it only on internal ones (never on a sidecar's inbound listener).
        assert.equal(seen['x-envoy-internal'], undefined);
        // And the caller's router-steering headers, as cleanInternalHeaders on a sidecar's inbound listener; its deadline holds (and stays).
        assert.equal(seen['x-envoy-max-retries'], undefined);
        assert.equal(seen['x-envoy-expected-rq-timeout-ms'], '30000');
        assert.equal((JSON.parse(r.text) as Seen).deadlineIn, 30);
        assert.equal(seen.cookie, 'kept=1');
      } finally {
        await server.close();
        await mesh.close();
      }
    });
  }
});

describe('x-envoy-attempt-count, x-request-id and x-envoy-expected-rq-timeout-ms on calls', () => {
  let upstream: Server;
  let port = 0;
  const got: IncomingMessage['headers'][] = [];
  let failFirst = 0;
  const meshes: Mesh[] = [];

  before(async () => {
    upstream = createServer((req, res) => {
      got.push(req.headers);
      if (failFirst > 0) {
        failFirst--;
        res.statusCode = 503;
      }
      res.end('ok');
    });
    port = await listen(upstream);
  });
  after(async () => {
    await Promise.all(meshes.map((m) => m.close()));
    await new Promise((r) => upstream.close(r));
  });

  async function mesh(proxyHeaders?: ProxyHeadersOptions): Promise<Mesh> {
    const m = await createMesh({
      service: 'productpage',
      config: [
        { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'up', namespace: 'default' }, spec: { hosts: ['up.default.svc.cluster.local'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1', ports: { http: port } }] } },
        { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'up', namespace: 'default' }, spec: { hosts: ['up.default.svc.cluster.local'], http: [{ route: [{ destination: { host: 'up.default.svc.cluster.local' } }], timeout: '7s', retries: { attempts: 2, retryOn: '5xx', perTryTimeout: '3s' } }] } },
      ] as never,
      logger: quiet,
      ...(proxyHeaders === undefined ? {} : { proxyHeaders }),
    });
    meshes.push(m);
    return m;
  }

  it('by default: each attempt carries its number (a retry says 2), a generated x-request-id (the same on both) and the time the caller waits', async () => {
    const m = await mesh();
    got.length = 0;
    failFirst = 1;
    const r = await m.fetch('http://up.default.svc.cluster.local/');
    assert.equal(r.status, 200);
    assert.deepEqual(
      got.map((h) => h['x-envoy-attempt-count']),
      ['1', '2'],
    );
    assert.match(String(got[0]?.['x-request-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(got[1]?.['x-request-id'], got[0]?.['x-request-id']);
    assert.ok(Number(got[0]?.['x-envoy-expected-rq-timeout-ms']) > 0);
  });

  it('a call outside the mesh (ALLOW_ANY passthrough) carries x-envoy-attempt-count: 1, as Istio’s allow_any route', async () => {
    const m = await mesh();
    got.length = 0;
    const r = await m.fetch(`http://127.0.0.1:${port}/`);
    assert.equal(r.status, 200);
    assert.equal(got[0]?.['x-envoy-attempt-count'], '1');
  });

  it('attemptCount, requestId and envoyDebugHeaders disabled: none of the three headers', async () => {
    const m = await mesh({ attemptCount: { disabled: true }, requestId: { disabled: true }, envoyDebugHeaders: { disabled: true } });
    got.length = 0;
    failFirst = 1;
    const r = await m.fetch('http://up.default.svc.cluster.local/');
    assert.equal(r.status, 200);
    assert.equal(got.length, 2);
    for (const h of got) {
      assert.equal(h['x-envoy-attempt-count'], undefined);
      assert.equal(h['x-request-id'], undefined);
      assert.equal(h['x-envoy-expected-rq-timeout-ms'], undefined);
    }
  });

  it('an x-request-id the app sends is kept, generation on or off', async () => {
    const m = await mesh({ requestId: { disabled: true } });
    got.length = 0;
    await (await m.fetch('http://up.default.svc.cluster.local/', { headers: { 'x-request-id': 'from-the-app' } })).text();
    assert.equal(got[0]?.['x-request-id'], 'from-the-app');
  });
});

describe('x-request-id on served requests', () => {
  it('generated for a request without one; with requestId disabled, none — and a received one is kept', async () => {
    for (const disabled of [false, true]) {
      const m = await createMesh({ service: 'reviews', config: [] as never, logger: quiet, proxyHeaders: { requestId: { disabled } } });
      const server = m.createServer((req, res) => res.end(JSON.stringify({ id: req.headers['x-request-id'] ?? null, ctx: m.context().trace?.['x-request-id'] ?? null })));
      const p = await listen(server);
      try {
        const bare = (await (await fetch(`http://127.0.0.1:${p}/`)).json()) as { id: string | null; ctx: string | null };
        if (disabled) assert.deepEqual(bare, { id: null, ctx: null });
        else {
          assert.match(String(bare.id), /^[0-9a-f-]{36}$/);
          assert.equal(bare.ctx, bare.id);
        }
        const given = (await (await fetch(`http://127.0.0.1:${p}/`, { headers: { 'x-request-id': 'abc' } })).json()) as { id: string | null; ctx: string | null };
        assert.deepEqual(given, { id: 'abc', ctx: 'abc' });
      } finally {
        await m.close();
      }
    }
  });
});

describe('a generated x-request-id is in rawHeaders too', () => {
  it('Hono on its node adapter (whose header list is built from rawHeaders) sees the id the mesh generated, with and without phases that change headers', async () => {
    const { Hono } = await import('hono');
    const { getRequestListener } = await import('@hono/node-server');
    // One config without inbound phases (the app's own req.headers judged), one with a RequestAuthentication (a view from rawHeaders).
    const configs = [[], [requestAuthentication()]];
    for (const config of configs) {
      const m = await createMesh({ service: 'reviews', config: config as never, logger: quiet });
      const app = new Hono<{ Bindings: { incoming: IncomingMessage } }>();
      // All of the request's headers (what a handler that forwards c.req.raw sends on): built from rawHeaders.
      app.all('*', (c) => c.json({ hono: c.req.header()['x-request-id'] ?? null, node: c.env.incoming.headers['x-request-id'] ?? null }));
      const server = m.createServer(getRequestListener(app.fetch));
      const p = await listen(server);
      try {
        const got = (await (await fetch(`http://127.0.0.1:${p}/`)).json()) as { hono: string | null; node: string | null };
        assert.match(String(got.node), /^[0-9a-f-]{36}$/);
        assert.equal(got.hono, got.node);
      } finally {
        await m.close();
      }
    }
  });
});

/** A RequestAuthentication (no token is sent, no key is fetched): its phase is in use, so the headers are viewed from rawHeaders. */
function requestAuthentication() {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'jwt', namespace: 'default' },
    spec: { jwtRules: [{ issuer: 'https://issuer.example', jwksUri: 'https://issuer.example/jwks' }] },
  };
}

describe('proxyHeaders: bad options are refused, naming the field', () => {
  const cases: [string, unknown, RegExp][] = [
    ['an unknown mode', { forwardedClientCert: 'APPEND_FOWARD' }, /`proxyHeaders\.forwardedClientCert` must be one of APPEND_FORWARD, .*got "APPEND_FOWARD" \(did you mean "APPEND_FORWARD"\?\)/],
    ['a misspelt field', { attemptCounts: { disabled: true } }, /unknown option "proxyHeaders\.attemptCounts" \(did you mean "proxyHeaders\.attemptCount"\?\)/],
    ['a detail that is not a boolean', { setCurrentClientCertDetails: { uri: 'yes' } }, /`proxyHeaders\.setCurrentClientCertDetails\.uri` must be true or false, got "yes"/],
    ['an unknown detail', { setCurrentClientCertDetails: { san: true } }, /unknown option "proxyHeaders\.setCurrentClientCertDetails\.san"/],
    ['disabled as a boolean', { requestId: true }, /`proxyHeaders\.requestId` must be an object \(\{ disabled: true \}\), got true/],
    ['not an object', 'SANITIZE', /`proxyHeaders` must be an object/],
    ['chain, which Node cannot give', { setCurrentClientCertDetails: { chain: true } }, /`proxyHeaders\.setCurrentClientCertDetails\.chain` is not supported: Node's TLS server does not expose the intermediate certificates/],
  ];
  for (const [name, value, message] of cases) {
    it(name, async () => {
      await assert.rejects(createMesh({ service: 'a', config: [] as never, logger: quiet, proxyHeaders: value as never }), message);
    });
  }

  it("Istio's UNDEFINED is the default (APPEND_FORWARD)", async () => {
    const m = await createMesh({ service: 'a', config: [] as never, logger: quiet, proxyHeaders: { forwardedClientCert: 'UNDEFINED' as never } });
    await m.close();
  });
});
