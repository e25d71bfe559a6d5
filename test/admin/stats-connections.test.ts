/**
 * `/stats`'s connection stats of a cluster, for the undici (HTTP) and gRPC transports, over real
 * sockets, as Envoy keeps them (conn_pool_base.cc, upstream_impl.h ALL_CLUSTER_TRAFFIC_STATS):
 * `upstream_cx_connect_ms` (histogram: TCP and TLS, until requests can go on the connection),
 * `upstream_cx_rx_bytes_total` / `upstream_cx_tx_bytes_total` (bytes over the connections, after
 * TLS — what the server's sockets wrote and read), `upstream_rq_pending_total` and
 * `upstream_cx_overflow` (a request waits for a connection the limit will not let open),
 * `upstream_rq_cancelled` (one gave up waiting), and the gRPC transport's `upstream_cx_total`,
 * `upstream_cx_destroy*` (with `…_with_active_rq` when calls were still on the connection) and
 * queue overflow.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type Http2Session } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { closedAfter, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { cleanupPki, issueLeaf, makeCa } from '../helpers/pki.ts';
import { skipWithout } from '../helpers/tools.ts';
import { until } from '../helpers/until.ts';
import { destinationRule, serviceEntry } from '../helpers/upstreams.ts';

const quiet = { warn: () => {} };

async function statsOf(mesh: Mesh, filter: string): Promise<Map<string, number>> {
  const body = await (await fetch(`${mesh.adminUrl}/stats?filter=${encodeURIComponent(filter)}`)).text();
  const m = new Map<string, number>();
  for (const line of body.split('\n')) {
    const i = line.lastIndexOf(': ');
    if (i > 0 && !line.includes(': P0(') && !line.includes('No recorded values')) m.set(line.slice(0, i), Number(line.slice(i + 2)));
  }
  return m;
}

async function listen(server: { listen(port: number, host: string, cb: () => void): unknown; address(): unknown }): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

describe('/stats: a cluster connections (undici)', () => {
  const closers: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c();
    cleanupPki();
  });

  it('upstream_cx_connect_ms (TCP and TLS, mesh clock), rx/tx bytes as the server saw them, Prometheus series', { skip: skipWithout('openssl') }, async () => {
    const HOST = 'api.example.test';
    const CLUSTER = `outbound|80||${HOST}`;
    const ca = makeCa({ name: 'stats-cx-ca' });
    const leaf = issueLeaf(ca, { dns: [HOST] });
    const clock = new ManualClock(1000);
    const serverSockets: TLSSocket[] = [];
    const server = createHttpsServer({ cert: leaf.chainPem, key: leaf.keyPem }, async (req: IncomingMessage, res: ServerResponse) => {
      for await (const _ of req) {
        // drain
      }
      res.end('x'.repeat(1000));
    });
    // The TCP accept comes before the TLS handshake ends: 7 ms pass on the mesh clock while connecting.
    server.on('connection', () => clock.advance(7));
    server.on('secureConnection', (s: TLSSocket) => serverSockets.push(s));
    const port = await listen(server);
    closers.push(() => new Promise((r) => server.close(() => r())));
    const mesh = await createMesh({
      service: 'client',
      clock,
      logger: quiet,
      admin: { port: 0 },
      config: [
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'ServiceEntry',
          metadata: { name: 'api', namespace: 'default' },
          spec: { hosts: [HOST], location: 'MESH_EXTERNAL', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: port }], endpoints: [{ address: '127.0.0.1' }] },
        },
        destinationRule('api-tls', HOST, { trafficPolicy: { tls: { mode: 'SIMPLE', caCertificates: ca.certFile } } }),
      ],
    });
    closers.push(() => mesh.close());
    for (const body of ['', 'y'.repeat(500)]) {
      const r = await mesh.fetch(`http://${HOST}/bytes`, { method: 'POST', body });
      assert.equal((await r.text()).length, 1000);
    }
    // undici may open a second connection for the second request (the first one not free yet): every one counts.
    const n = serverSockets.length;
    const sum = (f: (x: TLSSocket) => number) => serverSockets.reduce((a, x) => a + f(x), 0);
    const s = await statsOf(mesh, `${HOST}.*upstream_cx_(total|rx_bytes_total|tx_bytes_total|active)`);
    assert.deepEqual(Object.fromEntries(s), {
      [`cluster.${CLUSTER};.upstream_cx_active`]: n,
      [`cluster.${CLUSTER};.upstream_cx_rx_bytes_total`]: sum((x) => x.bytesWritten),
      [`cluster.${CLUSTER};.upstream_cx_total`]: n,
      [`cluster.${CLUSTER};.upstream_cx_tx_bytes_total`]: sum((x) => x.bytesRead),
    });
    assert.ok(sum((x) => x.bytesWritten) > 2000 && sum((x) => x.bytesRead) > 500, 'plaintext bytes both ways');
    // Histograms are merged every 5 s on the mesh clock.
    clock.advance(5000);
    const json = (await (await fetch(`${mesh.adminUrl}/stats?format=json&filter=upstream_cx_connect_ms`)).json()) as { stats: { histograms?: { supported_quantiles: number[]; computed_quantiles: { name: string; values: { cumulative: number | null }[] }[] } }[] };
    const hs = json.stats.find((x) => x.histograms !== undefined)?.histograms;
    const q = hs?.computed_quantiles.find((c) => c.name === `cluster.${CLUSTER};.upstream_cx_connect_ms`);
    assert.ok(q !== undefined, JSON.stringify(json));
    const p100 = q.values[hs?.supported_quantiles.indexOf(100) ?? -1]?.cumulative ?? Number.NaN;
    assert.ok(p100 >= 7 && p100 < 7.2, `P100 of 7 ms connects: ${p100}`);
    const prom = await (await fetch(`${mesh.adminUrl}/stats/prometheus?filter=upstream_cx`)).text();
    const tag = `cluster_name="${CLUSTER}"`;
    assert.match(prom, /# TYPE envoy_cluster_upstream_cx_connect_ms histogram/);
    assert.ok(prom.includes(`envoy_cluster_upstream_cx_connect_ms_bucket{${tag},le="5"} 0\n`), prom);
    assert.ok(prom.includes(`envoy_cluster_upstream_cx_connect_ms_bucket{${tag},le="10"} ${n}\n`), prom);
    assert.ok(prom.includes(`envoy_cluster_upstream_cx_connect_ms_count{${tag}} ${n}\n`), prom);
    assert.ok(prom.includes(`envoy_cluster_upstream_cx_rx_bytes_total{${tag}} ${sum((x) => x.bytesWritten)}\n`), prom);
  });

  it('a closed connection keeps its bytes; upstream_cx_destroy_remote when the server closes it', async () => {
    const sockets: Socket[] = [];
    const server = createHttpServer((_req, res) => res.end('hello'));
    server.on('connection', (s: Socket) => sockets.push(s));
    const port = await listen(server);
    closers.push(() => new Promise((r) => server.close(() => r())));
    const mesh = await createMesh({ service: 'client', logger: quiet, admin: { port: 0 }, config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port }])] });
    closers.push(() => mesh.close());
    await (await mesh.fetch('http://svc/one')).text();
    const so = sockets[0] as Socket;
    const read = so.bytesRead;
    const written = so.bytesWritten;
    so.destroy();
    const C = 'cluster.outbound|80||svc.default.svc.cluster.local;.';
    await until(async () => (await statsOf(mesh, 'svc.*upstream_cx_destroy$')).get(`${C}upstream_cx_destroy`) === 1, 'the closed connection counted');
    const s = await statsOf(mesh, 'svc.*upstream_cx_(destroy_remote|rx_bytes_total|tx_bytes_total|active)');
    assert.equal(s.get(`${C}upstream_cx_destroy_remote`), 1);
    assert.equal(s.get(`${C}upstream_cx_active`), 0);
    assert.equal(s.get(`${C}upstream_cx_rx_bytes_total`), written);
    assert.equal(s.get(`${C}upstream_cx_tx_bytes_total`), read);
  });

  it('upstream_rq_pending_total and upstream_cx_overflow when a request waits for a connection (maxConnections), upstream_rq_cancelled when it gives up, upstream_rq_pending_overflow past the queue', async () => {
    const held: (() => void)[] = [];
    const server = createHttpServer((_req, res) => held.push(() => res.end('done')));
    const port = await listen(server);
    closers.push(() => new Promise((r) => server.close(() => r())));
    const mesh = await createMesh({
      service: 'client',
      logger: quiet,
      admin: { port: 0 },
      config: [
        serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port }]),
        destinationRule('svc', 'svc.default.svc.cluster.local', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } } }),
      ],
    });
    closers.push(() => mesh.close());
    const C = 'cluster.outbound|80||svc.default.svc.cluster.local;.';
    const first = mesh.fetch('http://svc/first');
    await until(() => held.length === 1, 'the first request reached the server');
    const ac = new AbortController();
    const second = mesh.fetch('http://svc/second', { signal: ac.signal }).catch((e: unknown) => e);
    await until(async () => (await statsOf(mesh, 'svc.*upstream_rq_pending_active')).get(`${C}upstream_rq_pending_active`) === 1, 'the second request waiting');
    const third = await mesh.fetch('http://svc/third');
    assert.equal(third.status, 503, 'the pending queue is full');
    await third.text();
    ac.abort();
    assert.equal((await second as Error).name, 'AbortError');
    (held.shift() as () => void)();
    assert.equal(await (await first).text(), 'done');
    const s = await statsOf(mesh, 'svc.*upstream_(rq_pending|rq_cancelled|cx_overflow)');
    assert.deepEqual(Object.fromEntries(s), {
      [`${C}upstream_cx_overflow`]: 1,
      [`${C}upstream_rq_cancelled`]: 1,
      [`${C}upstream_rq_pending_active`]: 0,
      [`${C}upstream_rq_pending_overflow`]: 1,
      [`${C}upstream_rq_pending_total`]: 1,
    });
  });
});

describe('/stats: a gRPC cluster connections', () => {
  const { ups, meshes, clients } = closedAfter();
  const C = 'cluster.outbound|9090||echo.default.svc.cluster.local;.';

  it('upstream_cx_total, _active, connect_ms, rx/tx bytes; an idle connection closed by the mesh is upstream_cx_destroy_local', async () => {
    const up = await startGrpcUpstream('g');
    ups.push(up);
    const clock = new ManualClock(1000);
    const mesh = await createMesh({
      service: 'client',
      clock,
      logger: quiet,
      admin: { port: 0 },
      config: [
        grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]),
        destinationRule('echo', 'echo.default.svc.cluster.local', { trafficPolicy: { connectionPool: { http: { idleTimeout: '30s' } } } }),
      ],
    });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    assert.equal((await unary(client, { text: 'a' })).error, undefined);
    const s1 = await statsOf(mesh, 'echo.*upstream_cx_(total|active|rx_bytes_total|tx_bytes_total)');
    assert.equal(s1.get(`${C}upstream_cx_total`), 1);
    assert.equal(s1.get(`${C}upstream_cx_active`), 1);
    const rx1 = s1.get(`${C}upstream_cx_rx_bytes_total`) ?? 0;
    const tx1 = s1.get(`${C}upstream_cx_tx_bytes_total`) ?? 0;
    assert.ok(rx1 > 0 && tx1 > 0, `bytes both ways (${rx1}, ${tx1})`);
    assert.equal((await unary(client, { text: 'b'.repeat(10_000) })).error, undefined);
    const s2 = await statsOf(mesh, 'echo.*upstream_cx_(total|rx_bytes_total|tx_bytes_total)');
    assert.equal(s2.get(`${C}upstream_cx_total`), 1, 'the same connection');
    assert.ok((s2.get(`${C}upstream_cx_tx_bytes_total`) ?? 0) - tx1 >= 10_000, 'the request went out on it');
    assert.ok((s2.get(`${C}upstream_cx_rx_bytes_total`) ?? 0) - rx1 >= 10_000, 'the echo came back on it');
    clock.advance(5000);
    const text = await (await fetch(`${mesh.adminUrl}/stats?filter=echo.*upstream_cx_connect_ms`)).text();
    assert.match(text, /upstream_cx_connect_ms: P0\(/, text);
    const prom = await (await fetch(`${mesh.adminUrl}/stats/prometheus?filter=echo.*upstream_cx_connect_ms`)).text();
    assert.match(prom, /envoy_cluster_upstream_cx_connect_ms_count\{cluster_name="outbound\|9090\|\|echo.default.svc.cluster.local"\} 1\n/);
    // idleTimeout on the mesh clock: the mesh closes the connection.
    clock.advance(30_000);
    await until(async () => (await statsOf(mesh, 'echo.*upstream_cx_destroy$')).get(`${C}upstream_cx_destroy`) === 1, 'the idle connection closed');
    const s3 = await statsOf(mesh, 'echo.*upstream_cx_(destroy_local|destroy_remote|active)');
    assert.deepEqual(Object.fromEntries(s3), { [`${C}upstream_cx_active`]: 0, [`${C}upstream_cx_destroy_local`]: 1, [`${C}upstream_cx_destroy_remote`]: 0 });
    // No call was on it: not a destroy with active requests.
    assert.deepEqual(Object.fromEntries(await statsOf(mesh, 'echo.*with_active_rq')), {});
  });

  it('a connection the server drops under two calls in flight: upstream_cx_destroy_with_active_rq and _remote_with_active_rq', async () => {
    const sessions: Http2Session[] = [];
    let streams = 0;
    const server = createHttp2Server();
    server.on('session', (s) => {
      sessions.push(s);
      s.on('error', () => undefined);
    });
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      streams++;
    });
    const port = await listen(server);
    const mesh = await createMesh({ service: 'client', logger: quiet, admin: { port: 0 }, config: [grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port }]), destinationRule('echo', 'echo.default.svc.cluster.local', { trafficPolicy: { connectionPool: { http: { maxRetries: 0 } } } })] });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    try {
      const calls = [unary(client, { text: 'a' }), unary(client, { text: 'b' })];
      await until(() => streams === 2, 'both calls reached the server');
      for (const s of sessions) s.destroy();
      for (const r of await Promise.all(calls)) assert.notEqual(r.error, undefined, "the call ended with an error");
      await until(async () => (await statsOf(mesh, 'echo.*upstream_cx_destroy$')).get(`${C}upstream_cx_destroy`) === 1, 'the dropped connection counted');
      assert.deepEqual(Object.fromEntries(await statsOf(mesh, 'echo.*upstream_cx_destroy_')), {
        [`${C}upstream_cx_destroy_local`]: 0,
        [`${C}upstream_cx_destroy_remote`]: 1,
        [`${C}upstream_cx_destroy_with_active_rq`]: 1,
        [`${C}upstream_cx_destroy_remote_with_active_rq`]: 1,
      });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('a call waiting for a stream (maxConnections, maxConcurrentStreams) is upstream_rq_pending_total and upstream_cx_overflow; cancelled, upstream_rq_cancelled; past the queue, upstream_rq_pending_overflow', async () => {
    const held: (() => void)[] = [];
    const up = await startGrpcUpstream('g', {
      Unary: ((_call: unknown, cb: grpc.sendUnaryData<unknown>) => held.push(() => cb(null, { text: 'x', server: 'g', seen: [] }))) as never,
    });
    ups.push(up);
    const mesh = await createMesh({
      service: 'client',
      logger: quiet,
      admin: { port: 0 },
      config: [
        grpcServiceEntry('echo', 'echo.default.svc.cluster.local', 9090, [{ port: up.port }]),
        destinationRule('echo', 'echo.default.svc.cluster.local', { trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { maxConcurrentStreams: 1, http1MaxPendingRequests: 1 } } } }),
      ],
    });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    const first = unary(client, { text: '1' });
    await until(() => held.length === 1, 'the first call reached the server');
    const waiting = client.Unary({ text: '2' }, new grpc.Metadata(), {}, () => undefined);
    await until(async () => (await statsOf(mesh, 'echo.*upstream_rq_pending_total')).get(`${C}upstream_rq_pending_total`) === 1, 'the second call waiting');
    assert.equal((await unary(client, { text: '3' })).error?.code, grpc.status.UNAVAILABLE, 'the queue is full');
    waiting.cancel();
    await until(async () => (await statsOf(mesh, 'echo.*upstream_rq_cancelled')).get(`${C}upstream_rq_cancelled`) === 1, 'the waiting call cancelled');
    (held.shift() as () => void)();
    assert.equal((await first).error, undefined);
    const s = await statsOf(mesh, 'echo.*upstream_(rq_pending_total|rq_pending_overflow|cx_overflow)');
    assert.deepEqual(Object.fromEntries(s), { [`${C}upstream_cx_overflow`]: 1, [`${C}upstream_rq_pending_overflow`]: 1, [`${C}upstream_rq_pending_total`]: 1 });
  });
});

describe("/stats: connections of the app's own server (mesh.handler)", () => {
  it('http.inbound_0.0.0.0_<port>;.downstream_cx_total / _active count its connections at their first request; no listener.* stats (the mesh did not accept them)', async () => {
    const mesh = await createMesh({ service: 'httpbin', logger: quiet, admin: { port: 0 }, config: [] });
    const server = createHttpServer(mesh.handler((_req, res) => res.end('ok')));
    const port = await listen(server);
    const { Agent, request } = await import('undici');
    const agents = [new Agent({ connections: 1 }), new Agent({ connections: 1 })];
    try {
      const url = `http://127.0.0.1:${port}/get`;
      for (const a of [agents[0], agents[0], agents[1]]) await (await request(url, { dispatcher: a })).body.text();
      const P = `http.inbound_0.0.0.0_${port};.`;
      const s = await statsOf(mesh, `inbound_0.0.0.0_${port}.*downstream_(cx|rq_total)|listener`);
      assert.deepEqual(Object.fromEntries(s), {
        [`${P}downstream_cx_active`]: 2,
        [`${P}downstream_cx_ssl_active`]: 0,
        [`${P}downstream_cx_total`]: 2,
        [`${P}downstream_rq_total`]: 3,
      });
      await (agents[0] as InstanceType<typeof Agent>).close();
      await until(async () => (await statsOf(mesh, `inbound_0.0.0.0_${port}.*downstream_cx_active`)).get(`${P}downstream_cx_active`) === 1, 'the closed connection no longer active');
    } finally {
      await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await mesh.close();
    }
  });
});

