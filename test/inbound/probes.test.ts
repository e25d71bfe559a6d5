/**
 * Health probes (`createMesh({ probePaths })`): kubelet's HTTP probes reach an Istio app through
 * istio-agent (its probe rewrite), never through the sidecar — so no PeerAuthentication, no
 * AuthorizationPolicy, no metrics. Here: a plaintext GET/HEAD of exactly a probe path is served
 * under STRICT and a deny-all AuthorizationPolicy, by every framework (Express on the app's own
 * server, Fastify and node:http on the mesh's), also before the workload has a certificate;
 * anything else in plaintext is refused as before (the connection closed), also on a connection
 * that just served a probe; over mTLS the path is judged as usual; the mesh publishes nothing
 * about a probe.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { type AddressInfo, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import { createMesh, type Mesh } from '../../src/index.ts';
import { frameworks, raw } from '../helpers/frameworks.ts';
import { cleanupPki, makeCa, type TestCa, workloadCredentials } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { authorizationPolicy, peerAuthentication, tlsGet } from './mtls-helpers.ts';

const SKIP = skipWithout('openssl', 'curl');
const PROBES = ['/healthz', '/ready'];
const STRICT_DENY_ALL = [
  peerAuthentication('default', 'istio-system', { mtls: { mode: 'STRICT' } }),
  // An ALLOW policy without rules: every request is denied.
  authorizationPolicy('allow-nothing', 'foo', { action: 'ALLOW' }),
];

let ca: TestCa;
const closers: (() => Promise<unknown>)[] = [];

/** What a server answers a raw WebSocket upgrade request for `path` with, until it closes the connection. */
function upgradeTo(port: number, path: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (c) => {
      out += c.toString('latin1');
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(out));
    s.write(`GET ${path} HTTP/1.1\r\nHost: httpbin\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
  });
}

/** Listens on a loopback port with an 'upgrade' listener that would switch protocols; `upgraded()` counts the upgrades it saw. */
async function listenUpgrading(server: Server): Promise<{ port: number; upgraded: () => number }> {
  let n = 0;
  server.on('upgrade', (_req, socket: Duplex) => {
    n++;
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  return { port: (server.address() as AddressInfo).port, upgraded: () => n };
}
before(() => {
  if (SKIP === false) ca = makeCa();
});
after(async () => {
  for (const c of closers.reverse()) await c();
  cleanupPki();
});

async function meshWith(o: { probes?: string[]; credentials?: boolean; warnings?: string[] } = {}): Promise<Mesh> {
  const mesh = await createMesh({
    service: 'httpbin',
    namespace: 'foo',
    labels: { app: 'httpbin' },
    serviceAccount: 'httpbin',
    config: STRICT_DENY_ALL as never,
    probePaths: o.probes ?? PROBES,
    logger: { warn: (m) => o.warnings?.push(m), error: () => undefined },
  });
  closers.push(() => mesh.close());
  if (o.credentials !== false) mesh.credentials.set(workloadCredentials(ca, { namespace: 'foo', serviceAccount: 'httpbin' }));
  return mesh;
}

/** A plaintext request's status, or 'refused' when the connection was closed without an answer. */
async function plain(port: number, path: string, method = 'GET'): Promise<number | 'refused'> {
  try {
    return (await raw(port, path, { method })).statusCode;
  } catch {
    return 'refused';
  }
}

/** Two requests on one plaintext connection, the second once the first is answered: what came back, as text. */
function twoOnOneConnection(port: number, first: string, second: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    let sent = false;
    s.on('data', (c) => {
      got += c.toString('latin1');
      if (!sent && /\r\n\r\n[\s\S]*$/.test(got)) {
        sent = true;
        s.write(`GET ${second} HTTP/1.1\r\nHost: httpbin\r\n\r\n`);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
    s.write(`GET ${first} HTTP/1.1\r\nHost: httpbin\r\nConnection: keep-alive\r\n\r\n`);
    setTimeout(() => s.destroy(), 2000).unref();
  });
}

describe('health probes (probePaths): served outside the inbound policies, as istio-agent serves them', { skip: SKIP }, () => {
  for (const fw of frameworks) {
    it(`${fw.name}: plaintext GET/HEAD of a probe path is served under STRICT and deny-all; every other plaintext request is refused; mTLS is judged`, async () => {
      const mesh = await meshWith();
      const app = await fw.start(mesh);
      closers.push(() => app.close());
      const probe = await raw(app.port, '/healthz');
      assert.equal(probe.statusCode, 200);
      // The app saw the probe outside the mesh: no req.meshlet.
      assert.equal((JSON.parse(probe.text) as { meshlet: unknown }).meshlet, null);
      assert.equal(await plain(app.port, '/ready', 'HEAD'), 200);
      assert.equal(await plain(app.port, '/healthz?verbose=1'), 200);
      for (const [path, method] of [
        ['/', 'GET'],
        ['/healthz', 'POST'],
        ['/healthz/', 'GET'],
        ['/healthz/../admin', 'GET'],
        ['//healthz', 'GET'],
        ['/HEALTHZ', 'GET'],
      ] as const) {
        assert.equal(await plain(app.port, path, method), 'refused', `${method} ${path}`);
      }
      // A mesh peer asking for the probe path over mTLS: judged as any request (the deny-all).
      const sleep = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep' });
      const mtls = await tlsGet(app.port, { key: sleep.privateKey, cert: sleep.certChain, ca: ca.rootPem }, '/healthz');
      if (fw.name.startsWith('Express')) {
        // app.listen(): the app's own plaintext server cannot speak TLS at all.
        assert.ok('refused' in mtls, JSON.stringify(mtls));
      } else {
        assert.equal('status' in mtls ? mtls.status : mtls.refused, 403);
      }
    });
  }

  it('a probe on a plaintext connection under STRICT is answered with Connection: close; a next request on it is never served (mesh.createServer)', async () => {
    const mesh = await meshWith();
    const app = await (frameworks[0] as (typeof frameworks)[number]).start(mesh);
    closers.push(() => app.close());
    const got = await twoOnOneConnection(app.port, '/healthz', '/admin');
    assert.equal(got.match(/HTTP\/1\.1 \d+/g)?.join(','), 'HTTP/1.1 200', got);
    assert.match(got, /\r\nconnection: close\r\n/i);
  });

  it('a plaintext WebSocket upgrade under STRICT is refused like any non-probe request (the upgrade listener never runs)', async () => {
    const mesh = await meshWith();
    const { port, upgraded } = await listenUpgrading(mesh.createServer((_req, res) => res.end('http')));
    assert.equal(await upgradeTo(port, '/admin'), '');
    assert.equal(upgraded(), 0);
  });

  it('a WebSocket upgrade to a probe path is no probe: refused under STRICT and judged by the policies under PERMISSIVE, on the mesh\'s server and a protected one', async () => {
    // A ws WebSocketServer({ server }) answers an upgrade on any path: as a probe, /healthz would open it to anyone.
    const strict = await meshWith();
    const permissive = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [STRICT_DENY_ALL[1]] as never, probePaths: PROBES });
    closers.push(() => permissive.close());
    for (const [mesh, name, want] of [
      [strict, 'STRICT', /^$/],
      [permissive, 'PERMISSIVE', /^HTTP\/1\.1 403 [\s\S]*RBAC: access denied$/],
    ] as const) {
      for (const own of [false, true]) {
        const { port, upgraded } = await listenUpgrading(own ? mesh.protect(createHttpServer((_req, res) => res.end('http'))) : mesh.createServer((_req, res) => res.end('http')));
        const where = `${name}, ${own ? 'mesh.protect' : 'mesh.createServer'}`;
        assert.match(await upgradeTo(port, '/healthz'), want, where);
        assert.equal(upgraded(), 0, where);
        // The control: the probe itself is still served.
        assert.equal(await plain(port, '/healthz'), 200, where);
      }
    }
    const e = await strict.explainInbound({ url: 'http://httpbin.foo:8000/healthz', headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    assert.equal(e.refusedBy, 'peer-authentication');
  });

  it('curl (an independent client) gets the probe; without probePaths the same request is refused', async () => {
    const curl = promisify(execFile);
    for (const probes of [PROBES, []]) {
      const mesh = await meshWith({ probes });
      const server = mesh.createServer((_req, res) => res.end('ok'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      closers.push(() => new Promise((r) => server.close(r)));
      const port = (server.address() as { port: number }).port;
      const r = await curl('curl', ['-sS', '-o', '-', '-w', ' %{http_code}', `http://127.0.0.1:${port}/healthz`]).then(
        (x) => x.stdout,
        (e: { code?: number }) => `curl exit ${e.code}`,
      );
      if (probes.length > 0) assert.equal(r, 'ok 200');
      else assert.match(r, /^curl exit (52|56)$/, 'refused: empty reply or reset');
    }
  });

  it('Fastify: the probe match is on the target as sent, not the path its rewriteUrl normalized (/public/../healthz, /healthz/ are ordinary requests)', async () => {
    // PERMISSIVE with deny-all: an ordinary request is answered 403, a probe 200.
    const mesh = await createMesh({ service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' }, config: [STRICT_DENY_ALL[1]] as never, probePaths: PROBES });
    closers.push(() => mesh.close());
    const app = Fastify({ ...mesh.fastifyOptions(), ignoreTrailingSlash: true });
    await app.register(mesh.fastify() as never);
    app.get('/healthz', async () => 'ok');
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    const port = (app.server.address() as AddressInfo).port;
    assert.equal(await plain(port, '/healthz'), 200);
    for (const path of ['/public/../healthz', '/healthz/', '/%68ealthz']) assert.equal(await plain(port, path), 403, path);
  });

  it('before the workload has a certificate, STRICT still answers the probes (and refuses the rest, TLS too)', async () => {
    const mesh = await meshWith({ credentials: false });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as { port: number }).port;
    assert.equal(await plain(port, '/healthz'), 200);
    assert.equal(await plain(port, '/other'), 'refused');
    const sleep = workloadCredentials(ca, { namespace: 'bar', serviceAccount: 'sleep' });
    assert.ok('refused' in (await tlsGet(port, { key: sleep.privateKey, cert: sleep.certChain, ca: ca.rootPem }, '/healthz')));
  });

  it('publishes nothing about a probe (no Istio metrics, span or access log), and says no STRICT warning for it on the app’s own server', async () => {
    const warnings: string[] = [];
    const mesh = await meshWith({ warnings });
    const seen: string[] = [];
    const names = ['meshlet:inbound:request', 'meshlet:inbound:start', 'meshlet:inbound:end', 'meshlet:inbound:refused'];
    const listener = (_m: unknown, name: string | symbol) => seen.push(String(name));
    for (const n of names) subscribe(n, listener);
    try {
      const app = await (frameworks[1] as (typeof frameworks)[number]).start(mesh); // Express 5 on app.listen()
      closers.push(() => app.close());
      assert.equal(await plain(app.port, '/healthz'), 200);
      assert.deepEqual(seen, []);
      assert.deepEqual(
        warnings.filter((w) => w.includes('STRICT')),
        [],
      );
      // The control: a request that is not a probe is seen (and refused).
      assert.equal(await plain(app.port, '/admin'), 'refused');
      assert.ok(seen.length > 0);
    } finally {
      for (const n of names) unsubscribe(n, listener);
    }
  });

  it('mesh.explainInbound says a probe is served outside the policies, and judges the rest as enforced', async () => {
    const mesh = await meshWith();
    const probe = await mesh.explainInbound({ url: 'http://httpbin.foo:8000/healthz?x=1' });
    assert.deepEqual([probe.status, probe.refusedBy, probe.peerAuthentication.accepted], [200, undefined, true]);
    assert.match(probe.reason, /health probe \(probePaths\)/);
    assert.match(String(probe), /health probe/);
    const other = await mesh.explainInbound({ url: 'http://httpbin.foo:8000/admin' });
    assert.equal(other.refusedBy, 'peer-authentication');
    const post = await mesh.explainInbound({ url: 'http://httpbin.foo:8000/healthz', method: 'POST' });
    assert.equal(post.refusedBy, 'peer-authentication');
    const overMtls = await mesh.explainInbound({ url: 'http://httpbin.foo:8000/healthz', source: { namespace: 'bar', serviceAccount: 'sleep' } });
    assert.deepEqual([overMtls.status, overMtls.refusedBy], [403, 'authorization']);
  });

  it('createMesh refuses probePaths that are not paths, naming the entry', async () => {
    for (const [probePaths, want] of [
      ['/healthz', /`probePaths` must be an array/],
      [['healthz'], /`probePaths\[0\]` must be a path starting with \//],
      [['/ok', '/a?b=1'], /`probePaths\[1\]`.*"\/a\?b=1"/],
    ] as const) {
      await assert.rejects(createMesh({ service: 'a', config: [], probePaths: probePaths as never }), (e: Error) => want.test(e.message));
    }
  });
});
