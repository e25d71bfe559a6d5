/**
 * kubelet's gRPC probes (`grpc:` in a Pod spec) with `createMesh({ probePaths: ['/grpc.health.v1.Health/Check'] })`:
 * in Istio, istio-agent answers kubelet's rewritten probe by calling the app's health service in
 * plaintext, outside the sidecar. Here a plaintext call of the probe method reaches the grpc-js
 * server's handler under STRICT and a deny-all AuthorizationPolicy — on a `mesh.grpc.bind` port
 * (also before the workload has its certificate) and on the app's own plaintext listener with the
 * mesh's interceptors — and nothing is published about it; every other plaintext call is refused
 * as before; over mTLS the probe method is judged like any method; without `probePaths` nothing
 * changes. curl (`--http2-prior-knowledge`) is the independent plaintext client.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, issueLeaf, makeCa, spiffe, type TestCa, type TestLeaf, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { EchoClient } from '../helpers/grpc.ts';
import { OWN_CONNECTIONS } from '../helpers/grpc-server.ts';
import { authorizationPolicy, peerAuthentication } from '../inbound/mtls-helpers.ts';

const CHECK = '/grpc.health.v1.Health/Check';
const HOST = 'echo.foo.svc.cluster.local';
const quiet = { warn: () => undefined, error: () => undefined };

const health = grpc.loadPackageDefinition(protoLoader.loadSync(fileURLToPath(new URL('../fixtures/grpc/health.proto', import.meta.url)), { keepCase: true, defaults: true, enums: String })) as unknown as {
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};
const HealthClient = health.grpc.health.v1.Health;

type Outcome = { readonly ok: string } | { readonly code: number; readonly details: string };

function call(client: grpc.Client, method: string, req: object): Promise<Outcome> {
  return new Promise((resolve) => {
    (client as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Record<string, unknown>) => void) => void>)[method]?.(req, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err, res) =>
      resolve(err === null ? { ok: String(res?.status ?? res?.text) } : { code: err.code, details: err.details }),
    );
  });
}

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 10_000, encoding: 'latin1' }, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr }));
  });
}

/** The mesh's inbound messages while `fn` runs. */
async function published(fn: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const names = ['meshlet:inbound:start', 'meshlet:inbound:end', 'meshlet:inbound:refused'];
  const subs = names.map((n) => [n, (m: unknown) => seen.push(`${n} ${(m as { path?: string }).path ?? ''}`)] as const);
  for (const [n, f] of subs) subscribe(n, f);
  try {
    await fn();
  } finally {
    for (const [n, f] of subs) unsubscribe(n, f);
  }
  return seen;
}

describe('gRPC health probes (probePaths): kubelet’s grpc probe is served outside the inbound policies', { skip: skipWithout('openssl', 'curl') }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-grpc-probes-'));
  let ca: TestCa;
  let clientLeaf: TestLeaf;
  const closers: (() => unknown)[] = [];

  before(() => {
    ca = makeCa();
    clientLeaf = issueLeaf(ca, { uris: [spiffe('default', 'productpage')] });
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
    cleanupPki();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A mesh for `echo` under `mode` with an ALLOW policy without rules (every judged request is denied). */
  async function meshFor(mode: string, o: { probes?: boolean; credentials?: boolean } = {}): Promise<Mesh> {
    const mesh = await createMesh({
      service: 'echo',
      namespace: 'foo',
      labels: { app: 'echo' },
      serviceAccount: 'echo',
      config: [peerAuthentication('default', 'istio-system', { mtls: { mode } }), authorizationPolicy('allow-nothing', 'foo', { action: 'ALLOW' })] as never,
      ...(o.probes === false ? {} : { probePaths: [CHECK, '/healthz'] }),
      logger: quiet,
    });
    closers.push(() => mesh.close());
    if (o.credentials !== false) mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo' }));
    return mesh;
  }

  /** A grpc-js server with Health (SERVING) and Echo under the mesh's interceptors (unless `interceptors` is false), bound through the mesh or plaintext by the app. */
  async function serve(mesh: Mesh, bind: 'mesh' | 'insecure', interceptors = true): Promise<{ port: number; checks: () => number }> {
    const server = new grpc.Server(interceptors ? { interceptors: mesh.grpc.serverInterceptors() } : {});
    let checks = 0;
    server.addService(HealthClient.service, {
      Check: (_c: unknown, cb: grpc.sendUnaryData<object>) => {
        checks++;
        cb(null, { status: 'SERVING' });
      },
      Watch: (c: grpc.ServerWritableStream<object, object>) => c.end(),
    });
    server.addService(EchoClient.service, {
      Unary: (c: grpc.ServerUnaryCall<{ text: string }, object>, cb: grpc.sendUnaryData<object>) => cb(null, { text: c.request.text, server: 'echo' }),
    });
    const port =
      bind === 'mesh'
        ? await mesh.grpc.bind(server, '127.0.0.1:0')
        : await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    closers.push(() => server.forceShutdown());
    return { port, checks: () => checks };
  }

  function plaintext<C extends grpc.ServiceClientConstructor>(Ctor: C, port: number): grpc.Client {
    const c = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), OWN_CONNECTIONS);
    closers.push(() => c.close());
    return c;
  }

  function mtls<C extends grpc.ServiceClientConstructor>(Ctor: C, port: number): grpc.Client {
    const creds = grpc.credentials.createSsl(Buffer.from(ca.rootPem), Buffer.from(clientLeaf.keyPem), Buffer.from(clientLeaf.chainPem), { checkServerIdentity: () => undefined });
    const c = new Ctor(`127.0.0.1:${port}`, creds, { ...OWN_CONNECTIONS, 'grpc.ssl_target_name_override': HOST, 'grpc.default_authority': HOST });
    closers.push(() => c.close());
    return c;
  }

  it('mesh.grpc.bind under STRICT and deny-all: a plaintext Check reaches the handler, unpublished; any other plaintext call is refused; over mTLS Check is judged', async () => {
    const mesh = await meshFor('STRICT');
    const s = await serve(mesh, 'mesh');
    let probe: Outcome | undefined;
    const events = await published(async () => {
      probe = await call(plaintext(HealthClient, s.port), 'Check', { service: '' });
    });
    assert.deepEqual(probe, { ok: 'SERVING' });
    assert.equal(s.checks(), 1);
    assert.deepEqual(events, [], 'nothing is published about a probe');
    const other = await call(plaintext(EchoClient, s.port), 'Unary', { text: 'x' });
    assert.equal('code' in other && other.code, grpc.status.UNAVAILABLE, JSON.stringify(other));
    assert.match('details' in other ? other.details : '', /connection refused by PeerAuthentication/);
    // Over mTLS the probe method is an ordinary method: the deny-all policy applies.
    const judged = await call(mtls(HealthClient, s.port), 'Check', { service: '' });
    assert.deepEqual(judged, { code: grpc.status.PERMISSION_DENIED, details: 'RBAC: access denied' });
    assert.equal(s.checks(), 1);
  });

  it('a path that only starts with the probe method (a query after it) is not a probe: refused like any other plaintext call', async () => {
    const mesh = await meshFor('STRICT');
    const s = await serve(mesh, 'mesh');
    const c = plaintext(HealthClient, s.port);
    const id = (b: Buffer) => b;
    const r = await new Promise<grpc.ServiceError | null>((resolve) => c.makeUnaryRequest(`${CHECK}?x=1`, id, id, Buffer.alloc(0), (err) => resolve(err)));
    assert.equal(r?.code, grpc.status.UNAVAILABLE, r?.details);
    assert.match(r?.details ?? '', /connection refused by PeerAuthentication/);
    assert.equal(s.checks(), 0);
  });

  it('a server bound without the mesh’s interceptors: STRICT refuses its plaintext connections, the probe’s too (nothing could keep them to the probe method), and a warning says why', async () => {
    const warnings: string[] = [];
    const mesh = await createMesh({
      service: 'echo',
      namespace: 'foo',
      labels: { app: 'echo' },
      serviceAccount: 'echo',
      config: [peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } })] as never,
      probePaths: [CHECK],
      logger: { warn: (m) => warnings.push(m), error: () => undefined },
    });
    closers.push(() => mesh.close());
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo' }));
    const s = await serve(mesh, 'mesh', false);
    const probe = await call(plaintext(HealthClient, s.port), 'Check', { service: '' });
    assert.equal('code' in probe && probe.code, grpc.status.UNAVAILABLE, JSON.stringify(probe));
    const other = await call(plaintext(EchoClient, s.port), 'Unary', { text: 'x' });
    assert.equal('code' in other && other.code, grpc.status.UNAVAILABLE, JSON.stringify(other));
    assert.equal(s.checks(), 0);
    assert.ok(warnings.some((w) => /has no mesh\.grpc\.serverInterceptors\(\)/.test(w)), warnings.join('\n'));
  });

  it('without the interceptors, a plaintext connection let in under PERMISSIVE is closed when STRICT comes into force (nothing else would refuse its calls)', async () => {
    const file = join(dir, 'mode.json');
    const list = (mode: string) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [peerAuthentication('default', 'istio-system', { mtls: { mode } })] });
    writeFileSync(file, list('PERMISSIVE'));
    const mesh = await createMesh({ service: 'echo', namespace: 'foo', labels: { app: 'echo' }, serviceAccount: 'echo', config: file, watch: false, logger: quiet });
    closers.push(() => mesh.close());
    mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'echo' }));
    const s = await serve(mesh, 'mesh', false);
    const c = plaintext(EchoClient, s.port);
    assert.deepEqual(await call(c, 'Unary', { text: 'before' }), { ok: 'before' });
    writeFileSync(file, list('STRICT'));
    assert.equal(await mesh.reload(), true);
    const after = await call(c, 'Unary', { text: 'after' });
    assert.equal('code' in after && after.code, grpc.status.UNAVAILABLE, JSON.stringify(after));
  });

  it('curl --http2-prior-knowledge (an independent plaintext client) gets the probe answer; another method on the same port is refused', async () => {
    const mesh = await meshFor('STRICT');
    const s = await serve(mesh, 'mesh');
    const body = join(dir, 'check.bin');
    // One gRPC frame: uncompressed, an empty HealthCheckRequest (service "").
    writeFileSync(body, Buffer.from([0, 0, 0, 0, 0]));
    const curl = (path: string) => run('curl', ['-sS', '--http2-prior-knowledge', '-D', '-', '-o', join(dir, 'out.bin'), '-H', 'content-type: application/grpc', '-H', 'te: trailers', '--data-binary', `@${body}`, `http://127.0.0.1:${s.port}${path}`]);
    const r = await curl(CHECK);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/2 200/);
    assert.match(r.stdout, /grpc-status: 0/);
    // The answer: one frame holding HealthCheckResponse { status: SERVING (1) }.
    assert.deepEqual([...readFileSync(join(dir, 'out.bin'))], [0, 0, 0, 0, 2, 0x08, 0x01]);
    const refused = await curl('/meshlet.test.Echo/Unary');
    assert.doesNotMatch(refused.stdout, /grpc-status: 0/, refused.stdout);
  });

  it('without probePaths, the same plaintext Check under STRICT is refused (nothing changes)', async () => {
    const mesh = await meshFor('STRICT', { probes: false });
    const s = await serve(mesh, 'mesh');
    const r = await call(plaintext(HealthClient, s.port), 'Check', { service: '' });
    assert.equal('code' in r && r.code, grpc.status.UNAVAILABLE, JSON.stringify(r));
    assert.equal(s.checks(), 0);
  });

  it('before the workload has a certificate, STRICT still serves the probe and refuses the rest', async () => {
    const mesh = await meshFor('STRICT', { credentials: false });
    const s = await serve(mesh, 'mesh');
    assert.deepEqual(await call(plaintext(HealthClient, s.port), 'Check', { service: '' }), { ok: 'SERVING' });
    const other = await call(plaintext(EchoClient, s.port), 'Unary', { text: 'x' });
    assert.equal('code' in other && other.code, grpc.status.UNAVAILABLE, JSON.stringify(other));
  });

  it('the app’s own plaintext listener with the mesh’s interceptors under STRICT: the probe is served, other calls refused', async () => {
    const mesh = await meshFor('STRICT');
    const s = await serve(mesh, 'insecure');
    assert.deepEqual(await call(plaintext(HealthClient, s.port), 'Check', { service: '' }), { ok: 'SERVING' });
    const other = await call(plaintext(EchoClient, s.port), 'Unary', { text: 'x' });
    assert.equal('code' in other && other.code, grpc.status.UNAVAILABLE, JSON.stringify(other));
    assert.equal(s.checks(), 1);
  });

  it('PERMISSIVE: a plaintext probe passes the deny-all policy; a plaintext Echo call is judged (denied)', async () => {
    const mesh = await meshFor('PERMISSIVE');
    const s = await serve(mesh, 'mesh');
    assert.deepEqual(await call(plaintext(HealthClient, s.port), 'Check', { service: '' }), { ok: 'SERVING' });
    assert.deepEqual(await call(plaintext(EchoClient, s.port), 'Unary', { text: 'x' }), { code: grpc.status.PERMISSION_DENIED, details: 'RBAC: access denied' });
  });

  it('mesh.explainInbound says a plaintext gRPC call of the probe method is a probe, and judges it over mTLS', async () => {
    const mesh = await meshFor('STRICT');
    const grpcHeaders = { 'content-type': 'application/grpc' };
    const probe = await mesh.explainInbound({ url: `http://echo.foo:9090${CHECK}`, method: 'POST', headers: grpcHeaders });
    assert.deepEqual([probe.status, probe.refusedBy, probe.peerAuthentication.accepted], [200, undefined, true]);
    assert.match(probe.reason, /health probe \(probePaths\)/);
    const asHttp = await mesh.explainInbound({ url: `http://echo.foo:9090${CHECK}`, method: 'POST' });
    assert.equal(asHttp.refusedBy, 'peer-authentication', 'a plain HTTP POST is not a probe');
    const other = await mesh.explainInbound({ url: 'http://echo.foo:9090/meshlet.test.Echo/Unary', method: 'POST', headers: grpcHeaders });
    assert.equal(other.refusedBy, 'peer-authentication');
    // A grpc:// URL, as meshlet explain takes one: POST with content-type application/grpc.
    const viaGrpcUrl = await mesh.explainInbound({ url: `grpc://echo.foo:9090${CHECK}` });
    assert.equal(viaGrpcUrl.status, 200);
    assert.match(viaGrpcUrl.reason, /health probe/);
    await assert.rejects(mesh.explainInbound({ url: `grpc://echo.foo:9090${CHECK}`, method: 'GET' }), /a gRPC call \(grpc:\/\/ URL\) is always POST/);
    const overMtls = await mesh.explainInbound({ url: `http://echo.foo:9090${CHECK}`, method: 'POST', headers: grpcHeaders, source: { namespace: 'default', serviceAccount: 'productpage' } });
    assert.equal(overMtls.refusedBy, 'authorization');
  });
});
