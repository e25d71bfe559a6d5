/**
 * Draining the servers the mesh makes (`mesh.close()`), as Envoy's HTTP connection manager drains
 * an HTTP/1 listener: an answer given while draining says `Connection: close`
 * (source/common/http/conn_manager_impl.cc, encodeHeaders), so a keep-alive caller opens a new
 * connection for its next request instead of sending it on one the server is about to close
 * (where it would be reset after it was sent, with no way to know whether it was processed).
 * With registrations, the drain starts before `drainMs`, while the servers still accept.
 */
import assert from 'node:assert/strict';
import { Agent, request, type ServerResponse } from 'node:http';
import { connect as connectH2 } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { DRAIN_IDLE_GRACE_MS, drainIdle } from '../../src/adapters/server/idle-connections.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createMesh } from '../../src/index.ts';
import { quietLogger, startTestControlPlane, type TestControlPlane } from '../control-plane/client-helpers.ts';
import { listen } from '../helpers/frameworks.ts';

/** A raw keep-alive HTTP/1.1 connection: what it received, and whether the server ended it. */
function keepAliveConnection(port: number): Promise<{ socket: Socket; received: () => string; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (data += c));
    const ended = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', reject);
    socket.once('connect', () => resolve({ socket, received: () => data, ended }));
  });
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}

describe('mesh.close(): HTTP/1 answers during the drain say Connection: close', () => {
  it('mesh.createServer: a request in flight when the drain starts is answered with Connection: close and its connection closed after it', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [], closeTimeoutMs: 60_000 });
    const waiting: ServerResponse[] = [];
    const server = mesh.createServer((_req, res) => void waiting.push(res));
    const port = await listen(server);
    const c = await keepAliveConnection(port);
    c.socket.write('GET /slow HTTP/1.1\r\nHost: httpbin\r\nConnection: keep-alive\r\n\r\n');
    await until(() => waiting.length === 1);
    const closing = mesh.close();
    await until(() => !server.listening);
    (waiting[0] as ServerResponse).end('done');
    await c.ended;
    await closing;
    assert.match(c.received(), /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(c.received(), /\r\nconnection: close\r\n/i, c.received());
    assert.match(c.received(), /\r\n\r\ndone$/);
  });

  /** A mesh server with `graceMs` of drain idle grace, and a keep-alive connection that got one answer. */
  async function answeredOnce(graceMs: number) {
    drainIdle.graceMs = graceMs;
    const mesh = await createMesh({ service: 'httpbin', config: [], closeTimeoutMs: 60_000 });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    const c = await keepAliveConnection(await listen(server));
    c.socket.write('GET /a HTTP/1.1\r\nHost: httpbin\r\n\r\n');
    await until(() => c.received().endsWith('ok'));
    return { mesh, server, c };
  }

  it('a kept-alive connection idle when the server stops accepting is not closed under a request its caller sends right then: the request is answered, with Connection: close', async () => {
    // node:http's close() destroyed every idle connection at once, so a caller that had just been
    // answered and sent its next request on the same connection got it reset after sending it.
    // Now a connection is closed once idle for a grace (250 ms; a minute here, so that the
    // second request is always sent inside it), and closed at the grace's end when unused.
    try {
      const { mesh, server, c } = await answeredOnce(60_000);
      const answered = c.received().length;
      const closing = mesh.close();
      await until(() => !server.listening);
      c.socket.write('GET /b HTTP/1.1\r\nHost: httpbin\r\n\r\n');
      await c.ended;
      await closing;
      assert.match(c.received().slice(answered), /^HTTP\/1\.1 200 OK\r\n(?:[^\r\n]*\r\n)*connection: close\r\n(?:[^\r\n]*\r\n)*\r\nok$/i, c.received());
    } finally {
      drainIdle.graceMs = DRAIN_IDLE_GRACE_MS;
    }
  });

  it('a kept-alive connection left idle during the drain is closed once the grace has passed, and the close completes', async () => {
    try {
      const { mesh, c } = await answeredOnce(20);
      await mesh.close();
      await c.ended;
      assert.equal(c.socket.destroyed || c.socket.readableEnded, true);
    } finally {
      drainIdle.graceMs = DRAIN_IDLE_GRACE_MS;
    }
  });

  it('a server closed and listening again serves keep-alive again (its drain is over)', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [], logger: { warn: () => undefined } });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    const get = (port: number, agent: Agent) =>
      new Promise<string | undefined>((resolve, reject) => {
        const r = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.headers.connection));
        });
        r.on('error', reject);
        r.end();
      });
    try {
      const first = new Agent({ keepAlive: true });
      assert.equal(await get(await listen(server), first), 'keep-alive');
      first.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      const again = new Agent({ keepAlive: true });
      const port = await listen(server);
      assert.deepEqual([await get(port, again), await get(port, again)], ['keep-alive', 'keep-alive']);
      again.destroy();
    } finally {
      server.close();
      await mesh.close();
    }
  });

  it('Fastify on mesh.fastifyOptions(): an answer given during the drain says Connection: close', async () => {
    const mesh = await createMesh({ service: 'httpbin', config: [], closeTimeoutMs: 60_000 });
    const fastify = Fastify({ ...mesh.fastifyOptions() });
    await fastify.register(mesh.fastify());
    let release: (() => void) | undefined;
    fastify.get('/slow', () => new Promise((r) => (release = () => r('slow'))));
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    const c = await keepAliveConnection((fastify.server.address() as { port: number }).port);
    c.socket.write('GET /slow HTTP/1.1\r\nHost: httpbin\r\n\r\n');
    await until(() => release !== undefined);
    const closing = mesh.close();
    await until(() => !fastify.server.listening);
    (release as () => void)();
    await c.ended;
    await closing;
    await fastify.close();
    assert.match(c.received(), /^HTTP\/1\.1 200 OK\r\n(?:[^\r\n]*\r\n)*connection: close\r\n(?:[^\r\n]*\r\n)*\r\nslow$/i, c.received());
  });
});

describe('mesh.close() with registrations: the servers drain while they still accept, during drainMs', () => {
  let t: TestControlPlane;
  before(async () => {
    t = await startTestControlPlane({});
  });
  after(async () => {
    await t.close();
  });

  it('after deregistering, new and kept-alive connections are still served, with Connection: close (HTTP/2: GOAWAY), as an Envoy listener in its graceful drain', async () => {
    // The mesh's clock holds drainMs for as long as the test looks.
    const clock = new ManualClock();
    const token = await t.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const mesh = await createMesh({ service: 'reviews', controlPlane: t.cp.url, token, identity: 'none', drainMs: 1000, clock, logger: quietLogger });
    const server = mesh.createServer((_req, res) => res.end('ok'));
    const port = await listen(server);
    await mesh.register({ ports: { http: port }, address: '127.0.0.1' });
    const kept = await keepAliveConnection(port);
    kept.socket.write('GET /a HTTP/1.1\r\nHost: reviews\r\n\r\n');
    await until(() => kept.received().endsWith('ok'));
    assert.match(kept.received(), /\r\nconnection: keep-alive\r\n/i);
    const closing = mesh.close();
    await until(() => t.cp.status().registered === 0);
    // Deregistered; other meshes are learning it: this one still serves, and tells its callers to go.
    const answered = kept.received().length;
    kept.socket.write('GET /b HTTP/1.1\r\nHost: reviews\r\n\r\n');
    await until(() => kept.received().slice(answered).endsWith('ok'));
    assert.match(kept.received().slice(answered), /^HTTP\/1\.1 200 OK\r\n(?:[^\r\n]*\r\n)*connection: close\r\n/i, kept.received());
    await kept.ended;
    const fresh = await keepAliveConnection(port);
    fresh.socket.write('GET /c HTTP/1.1\r\nHost: reviews\r\n\r\n');
    await until(() => fresh.received().endsWith('ok'));
    assert.match(fresh.received(), /^HTTP\/1\.1 200 OK\r\n(?:[^\r\n]*\r\n)*connection: close\r\n/i, fresh.received());
    // An HTTP/2 caller that connects now gets its answer, and a GOAWAY.
    const h2 = connectH2(`http://127.0.0.1:${port}`);
    const goaway = new Promise<void>((r) => h2.once('goaway', () => r()));
    const stream = h2.request({ ':path': '/d' });
    stream.setEncoding('utf8');
    let h2Body = '';
    stream.on('data', (c: string) => (h2Body += c));
    await new Promise((r) => stream.once('end', r));
    await goaway;
    assert.equal(h2Body, 'ok');
    h2.close();
    // drainMs passes on the mesh's clock (its timer is set once the deregistration was answered).
    let closed = false;
    void closing.then(() => (closed = true));
    await until(() => {
      clock.advance(1000);
      return closed;
    });
    assert.equal(server.listening, false);
  });
});
