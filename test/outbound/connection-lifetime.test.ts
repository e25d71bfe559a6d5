/**
 * A connection's lifetime, as a DestinationRule bounds it (Envoy's `max_requests_per_connection`
 * and `max_connection_duration`, which istiod sets from `http.maxRequestsPerConnection` and
 * `tcp.maxConnectionDuration`): a connection that has carried that many requests, or is that
 * old, is given no new request; the requests already on it finish, and the next request opens
 * another connection. HTTP calls (undici's pools) and gRPC calls (the gRPC transport's
 * connections) alike. The upstreams tell connections apart by the client's port.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh, seededRandom } from '../../src/index.ts';
import { type Echo, EchoClient, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';
import { skipWithout } from '../helpers/tools.ts';
import { until } from '../helpers/until.ts';
import { destinationRule, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

const GRPC_HOST = 'echo.default.svc.cluster.local';

describe('connection lifetime: maxRequestsPerConnection and maxConnectionDuration', () => {
  const meshes: Mesh[] = [];
  const clients: Echo[] = [];
  const ups: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(ups.map((u) => u.close()));
  });

  /** An HTTP upstream answering with the client's port (one per connection). */
  async function httpSetup(connectionPool: Record<string, unknown>) {
    const up: Upstream = await startUpstream('a', (req, res) => {
      res.end(String(req.socket.remotePort));
    });
    ups.push(up);
    const mesh = await createMesh({
      service: 'client',
      random: seededRandom(3),
      config: [serviceEntry('up', 'up.default.svc.cluster.local', 80, [{ port: up.port }]), destinationRule('up', 'up', { trafficPolicy: { connectionPool } })],
    });
    meshes.push(mesh);
    const port = async () => {
      const res = await mesh.fetch('http://up/');
      assert.equal(res.status, 200);
      return res.text();
    };
    return { mesh, up, port };
  }

  /** Requests per connection (client port). */
  const perConnection = (ports: string[]) => [...ports.reduce((m, p) => m.set(p, (m.get(p) ?? 0) + 1), new Map<string, number>()).values()];

  // Sequential requests through an undici Pool (raw or the mesh's) alternate between two
  // connections: the first is still busy when the next request is dispatched. So these tests
  // count requests per connection rather than expect one connection.
  it('HTTP: maxRequestsPerConnection 2 — no connection carries more than two requests', async () => {
    const { port } = await httpSetup({ http: { maxRequestsPerConnection: 2 } });
    const ports = [];
    for (let i = 0; i < 8; i++) ports.push(await port());
    const counts = perConnection(ports);
    assert.ok(Math.max(...counts) <= 2, `requests per connection: ${counts.join(' ')}`);
    assert.ok(counts.length >= 4, ports.join(' '));
  });

  it('HTTP: maxConnectionDuration — connections older than it take no new request; later requests open others', async () => {
    // undici's pools age their connections on the system clock, so this one waits for real.
    const { port } = await httpSetup({ tcp: { maxConnectionDuration: '1s' } });
    const before = new Set<string>();
    for (let i = 0; i < 4; i++) before.add(await port());
    assert.ok(before.size <= 2, 'young connections are reused');
    // Past the age limit (a second, so that a busy machine's slow requests stay well inside it before).
    await sleep(1500);
    const later = [];
    for (let i = 0; i < 4; i++) later.push(await port());
    assert.deepEqual(
      later.filter((p) => before.has(p)),
      [],
      'a connection past maxConnectionDuration is not used again',
    );
    assert.ok(new Set(later).size <= 2, 'the new connections are reused while young');
  });

  /** A gRPC upstream that records each call's peer (client address:port) and can hold calls. */
  async function grpcSetup(connectionPool: Record<string, unknown>, clock?: ManualClock) {
    const up: GrpcUpstream = await startGrpcUpstream('a');
    ups.push(up);
    const peers: string[] = [];
    const held: (() => void)[] = [];
    let hold = false;
    const inner = up.behaviour.Unary;
    up.behaviour.Unary = (call, cb, hit) => {
      peers.push(call.getPeer());
      if (hold) held.push(() => inner(call, cb, hit));
      else inner(call, cb, hit);
    };
    const mesh = await createMesh({
      service: 'client',
      random: seededRandom(5),
      ...(clock === undefined ? {} : { clock }),
      config: [
        grpcServiceEntry('echo', GRPC_HOST, 9090, [{ port: up.port }]),
        destinationRule('echo', 'echo', { trafficPolicy: { connectionPool } }),
        virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 } }]),
      ],
    });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    const call = async (text: string) => {
      const r = await unary(client, { text });
      assert.equal(r.error, undefined, r.error?.message);
      return r;
    };
    return {
      call,
      client,
      up,
      peers,
      holdCalls: (on: boolean) => {
        hold = on;
      },
      release: () => {
        for (const h of held.splice(0)) h();
      },
      heldCount: () => held.length,
    };
  }

  it('gRPC: maxRequestsPerConnection 2 — five calls take three connections', async () => {
    const { call, peers } = await grpcSetup({ http: { maxRequestsPerConnection: 2 } });
    for (let i = 0; i < 5; i++) await call(String(i));
    assert.equal(peers[0], peers[1]);
    assert.equal(peers[2], peers[3]);
    assert.equal(new Set(peers).size, 3, peers.join(' '));
  });

  it('gRPC: maxConnectionDuration on the mesh clock — a call in flight on the old connection finishes; new calls open another', async () => {
    const clock = new ManualClock(1_000_000);
    const { call, client, peers, holdCalls, release, heldCount } = await grpcSetup({ tcp: { maxConnectionDuration: '10s' } }, clock);
    await call('1');
    clock.advance(9_000);
    await call('2');
    assert.equal(peers[1], peers[0], 'a connection younger than 10s is reused');
    holdCalls(true);
    const inFlight = unary(client, { text: '3' });
    while (heldCount() < 1) await sleep(5);
    holdCalls(false);
    clock.advance(1_000);
    await call('4');
    assert.notEqual(peers[3], peers[0], 'a connection 10s old takes no new call');
    assert.equal(peers[2], peers[0], 'the held call was on the old connection');
    release();
    const r = await inFlight;
    assert.equal(r.error, undefined, 'the call on the retired connection finishes');
    assert.equal(r.reply?.text, '3');
    await call('5');
    assert.equal(peers[4], peers[3]);
  });

  it('gRPC: a call waiting for a stream of a connection that grew too old takes one on a new connection', async () => {
    const clock = new ManualClock(1_000_000);
    const { client, peers, holdCalls, release, heldCount } = await grpcSetup({ tcp: { maxConnectionDuration: '10s', maxConnections: 1 }, http: { maxConcurrentStreams: 1 } }, clock);
    holdCalls(true);
    const first = unary(client, { text: '1' });
    while (heldCount() < 1) await sleep(5);
    holdCalls(false);
    // One connection, one stream, busy: the second call waits for it.
    const second = unary(client, { text: '2' });
    await sleep(20);
    assert.equal(peers.length, 1, 'the second call waits');
    clock.advance(10_000);
    release();
    assert.equal((await first).reply?.text, '1');
    const r = await second;
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.reply?.text, '2');
    assert.notEqual(peers[1], peers[0], 'the freed stream was on a connection 10s old: the waiting call went to a new one');
  });

  it('gRPC: idleTimeout on the mesh clock — a connection without calls for that long is closed (Envoy: idle_timeout), not at grpc-js\'s next 10 s sweep', { skip: skipWithout('ss') }, async () => {
    const clock = new ManualClock(1_000_000);
    const { call, up, peers } = await grpcSetup({ http: { idleTimeout: '60s' } }, clock);
    /** The client's established connections to the upstream, by local port (ss). */
    const open = () => execFileSync('ss', ['-tnH', 'state', 'established', 'dst', `127.0.0.1:${up.port}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).length;
    await call('1');
    clock.advance(50_000);
    await call('2');
    assert.equal(peers[1], peers[0], 'a connection idle for less than idleTimeout is reused');
    clock.advance(59_999);
    await sleep(50);
    assert.equal(open(), 1, 'still open just before idleTimeout since its last call');
    clock.advance(1);
    await until(() => open() === 0, 'the idle connection to close');
    await call('3');
    assert.notEqual(peers[2], peers[0], 'the next call opens a new connection');
  });
});
