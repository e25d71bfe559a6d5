/**
 * DestinationRule keepalives on real connections: `tcp.tcpKeepalive.time` is the idle time
 * before TCP keepalive probes on the sockets the mesh opens (undici's own, the TLS connector's,
 * the gRPC transport's), and `http.http2KeepAlive` makes HTTP/2 connections send PINGs at its
 * interval — through undici to an h2c port, and the gRPC transport's to a GRPC port — seen by a `node:http2`
 * server counting the PING frames it receives.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createServer as createH2Server, constants as h2, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { OS_KEEPALIVE } from '../../src/core/tcp-keepalive.ts';
import { EchoClient, type Echo, unary } from '../helpers/grpc.ts';
import { keepAliveCalls } from '../helpers/keepalive.ts';
import { cleanupPki, issueLeaf, makeCa } from '../helpers/pki.ts';
import { startTlsUpstream } from '../helpers/tls-upstreams.ts';
import { skipWithout } from '../helpers/tools.ts';
import { destinationRule, serviceEntry } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';

/** The kernel's keepalive timer (seconds left) on this host's established connections to `port`, from `ss`. */
function keepaliveTimers(port: number): number[] {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', 'dst', `127.0.0.1:${port}`], { encoding: 'utf8' });
  return [...out.matchAll(/timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?/g)].map((m) => Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0));
}

interface PingServer {
  readonly port: number;
  /** PING frames received (from any session). */
  pings: number;
  close(): Promise<void>;
}

/** An h2c server that answers every request: `grpc` → a trailers-only UNIMPLEMENTED, else 200 "ok"; it counts the PINGs it gets. */
async function startPingServer(grpc: boolean): Promise<PingServer> {
  const sessions = new Set<ServerHttp2Session>();
  const server: Http2Server = createH2Server();
  const s: PingServer = { port: 0, pings: 0, close: async () => undefined };
  server.on('session', (session) => {
    sessions.add(session);
    session.on('ping', () => s.pings++);
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream) => {
    stream.on('data', () => {});
    if (grpc) stream.respond({ [h2.HTTP2_HEADER_STATUS]: 200, 'content-type': 'application/grpc', 'grpc-status': '12', 'grpc-message': 'no such method' }, { endStream: true });
    else {
      stream.respond({ [h2.HTTP2_HEADER_STATUS]: 200 });
      stream.end('ok');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (s as { port: number }).port = (server.address() as AddressInfo).port;
  s.close = () =>
    new Promise<void>((r) => {
      for (const x of sessions) x.destroy();
      server.close(() => r());
    });
  return s;
}

describe('DestinationRule keepalives', () => {
  let http1: Server;
  let http1Port: number;
  let h2c: PingServer;
  let grpcUp: PingServer;
  let mesh: Mesh | undefined;

  before(async () => {
    http1 = createServer((_req, res) => res.end('ok'));
    // Idle connections stay (undici keeps one for the server's keep-alive hint minus 2 s): the test reads them with ss.
    http1.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => http1.listen(0, '127.0.0.1', r));
    http1Port = (http1.address() as AddressInfo).port;
    [h2c, grpcUp] = await Promise.all([startPingServer(false), startPingServer(true)]);
    const port = (protocol: string) => ({ ports: [{ number: 9080, name: 'http', protocol }] });
    const keepalive = { connectionPool: { tcp: { tcpKeepalive: { time: '45s' } }, http: { http2KeepAlive: { interval: '100ms', timeout: '10s' } } } };
    mesh = await createMesh({
      service: 'client',
      config: [
        serviceEntry('kept', 'kept.default.svc.cluster.local', 9080, [{ port: http1Port }], port('HTTP')),
        serviceEntry('plain', 'plain.default.svc.cluster.local', 9080, [{ port: http1Port }], port('HTTP')),
        serviceEntry('probed', 'probed.default.svc.cluster.local', 9080, [{ port: http1Port }], port('HTTP')),
        destinationRule('probed', 'probed', { trafficPolicy: { connectionPool: { tcp: { tcpKeepalive: { probes: 3 } } } } }),
        serviceEntry('pinged', 'pinged.default.svc.cluster.local', 9080, [{ port: h2c.port }], port('HTTP2')),
        serviceEntry('rpc', 'rpc.default.svc.cluster.local', 9080, [{ port: grpcUp.port }], port('GRPC')),
        destinationRule('kept', 'kept', { trafficPolicy: { connectionPool: { tcp: { tcpKeepalive: { time: '45s', interval: '5s', probes: 4 } } } } }),
        destinationRule('pinged', 'pinged', { trafficPolicy: keepalive }),
        destinationRule('rpc', 'rpc', { trafficPolicy: keepalive }),
      ],
    });
  });

  after(async () => {
    await mesh?.close();
    await Promise.all([new Promise<void>((r) => http1.close(() => r())), h2c.close(), grpcUp.close()]);
  });

  it('tcpKeepalive sets the keepalive of the connections to that destination (the kernel’s timer shows it); others keep undici’s 60 s', { skip: skipWithout('ss') }, async () => {
    const kept = await keepAliveCalls(async () => assert.equal(await (await (mesh as Mesh).fetch('http://kept:9080/')).text(), 'ok'));
    // The interval and count too (which Node ≥ 24.19 applies).
    assert.deepEqual(kept.at(-1), [true, 45_000, 5_000, 4]);
    const timers = keepaliveTimers(http1Port);
    assert.equal(timers.length, 1, `one connection to the upstream: ${timers}`);
    // At most the rule's 45 s (undici's own would be 60 s); it counts down, so no lower bound on a busy machine.
    assert.ok((timers[0] as number) <= 45, `the kernel's keepalive timer: ${timers[0]} s`);
    const plain = await keepAliveCalls(async () => assert.equal(await (await (mesh as Mesh).fetch('http://plain:9080/')).text(), 'ok'));
    assert.deepEqual(plain, [[true, 60_000]]);
  });

  it('a field the rule leaves out keeps the operating system’s value (Envoy sets only the fields given)', { skip: skipWithout('ss') }, async () => {
    const calls = await keepAliveCalls(async () => assert.equal(await (await (mesh as Mesh).fetch('http://probed:9080/')).text(), 'ok'));
    assert.deepEqual(calls.at(-1), [true, OS_KEEPALIVE.timeMs, OS_KEEPALIVE.intervalMs, 3]);
    // The kernel's timer runs from the OS idle time (2 h on a default Linux), not undici's 60 s.
    if (OS_KEEPALIVE.timeMs > 600_000) assert.ok(keepaliveTimers(http1Port).some((t) => t > 600), `timers: ${keepaliveTimers(http1Port)}`);
  });

  it('http2KeepAlive: an HTTP/2 connection through undici sends PINGs at the interval', async () => {
    const r = await (mesh as Mesh).fetch('http://pinged:9080/');
    assert.equal(await r.text(), 'ok');
    // undici's own default is one PING a minute: several within seconds are the DestinationRule's.
    await until(() => h2c.pings >= 3, 'three PINGs on the h2c connection', 20_000, 20);
  });

  it('http2KeepAlive and tcpKeepalive on a gRPC destination: the gRPC connection PINGs at the interval, its socket has the keepalive idle time', async () => {
    const client = (mesh as Mesh).grpc.client(EchoClient, 'rpc:9080') as unknown as Echo;
    try {
      const calls = await keepAliveCalls(async () => {
        const { error } = await unary(client, { text: 'hi' });
        assert.equal(error?.code, 12);
      });
      assert.ok(calls.some(([on, delay]) => on === true && delay === 45_000), JSON.stringify(calls));
      // No call is active now: the PINGs go on (Envoy pings busy or idle connections).
      await until(() => grpcUp.pings >= 3, 'three PINGs on the gRPC connection', 20_000, 20);
    } finally {
      client.close();
    }
  });

  it('the app’s own https:// to a mesh endpoint (TLS verified by Node’s roots + NODE_EXTRA_CA_CERTS, in a child process) gets the rule’s keepalive', { skip: skipWithout('openssl') }, async () => {
    const ca = makeCa({ name: 'keepalive-ca' });
    const leaf = issueLeaf(ca, { dns: ['api.example.test'] });
    const up = await startTlsUpstream({ cert: leaf.chainPem, key: leaf.keyPem, name: 'own-tls' });
    try {
      const child = fileURLToPath(new URL('./fixtures/https-keepalive-child.ts', import.meta.url));
      const { stdout } = await promisify(execFile)(process.execPath, [child, 'api.example.test', String(up.port)], { env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.certFile }, encoding: 'utf8', timeout: 60_000 });
      const out = JSON.parse(stdout) as { status: number; body: string; calls: unknown[][] };
      assert.deepEqual([out.status, out.body], [200, 'own-tls']);
      assert.equal(up.seen.at(-1)?.servername, 'api.example.test');
      assert.deepEqual(out.calls.at(-1), [true, 33_000, 4_000, 2]);
    } finally {
      await up.close();
      cleanupPki();
    }
  });
});
