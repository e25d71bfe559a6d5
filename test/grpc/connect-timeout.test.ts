/**
 * DestinationRule `connectionPool.tcp.connectTimeout` (Istio's default 10 s) on gRPC endpoint
 * connections, on a ManualClock: a server that accepts TCP but never completes the connection
 * (no HTTP/2 settings; no TLS handshake) fails the call once the timeout passes on the mesh clock
 * — UNAVAILABLE, `reset reason: connection timeout` (Envoy's pool Timeout failure), flag UF, as the HTTP path reports a connect
 * timeout — the half-open connection is closed and the next call opens a new one; a connection
 * that came up is never cut by it (a bidi stream on it outlives the timeout). Calls to
 * addresses outside the registry (ALLOW_ANY's PassthroughCluster: MeshConfig's default 10 s) and
 * to a ServiceEntry with resolution NONE (its DestinationRule's connectTimeout) are bounded too.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createMesh, ManualClock, type Mesh, type MeshOptions, seededRandom } from '../../src/index.ts';
import { type Blackhole, blackhole, endsAtConnectTimeout, turns } from '../helpers/blackhole.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { collect, type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
const CONNECTION_FAILURE = 'upstream connect error or disconnect/reset before headers. reset reason: connection timeout';

const flagsOf = (e: grpc.ServiceError | undefined) => e?.metadata.get('x-meshlet-response-flags')[0];


describe('gRPC: connectTimeout on the endpoint connections', () => {
  const open: { close(): unknown }[] = [];
  after(async () => {
    for (const o of open.reverse()) await o.close();
  });

  async function setup(port: number, rule?: Record<string, unknown>, meshOptions: Partial<MeshOptions> = {}) {
    const clock = new ManualClock(1_000_000);
    const config = [grpcServiceEntry('echo', HOST, 9090, [{ port }]), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 } }])];
    if (rule !== undefined) config.push(destinationRule('echo', 'echo', rule));
    const mesh: Mesh = await createMesh({ service: 'client', clock, random: seededRandom(3), config, logger: { warn: () => undefined, info: () => undefined }, ...meshOptions });
    open.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    open.push(client);
    return { clock, client, mesh };
  }

  async function hole() {
    const h = await blackhole();
    open.push(h);
    return h;
  }

  /** The first call on a blackholed connection: not ended 1 ms before `timeoutMs`, UNAVAILABLE / UF at it; the half-open connection is then closed. */
  async function failsAtConnectTimeout(h: Blackhole, clock: ManualClock, client: Echo, timeoutMs: number): Promise<void> {
    const r = await endsAtConnectTimeout(h, clock, timeoutMs, () => unary(client, { text: 'a' }));
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(r.error?.details, CONNECTION_FAILURE);
    assert.equal(flagsOf(r.error), 'UF');
    for (let i = 0; i < 200 && h.closed.length < 1; i++) await turns(1);
    assert.equal(h.closed.length, 1, 'the half-open connection is closed');
  }

  const rows: [name: string, rule: Record<string, unknown> | undefined, timeoutMs: number][] = [
    ['Istio’s default (10 s), plaintext: no HTTP/2 settings from the server', undefined, 10_000],
    ['tcp.connectTimeout 250ms, plaintext', { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '250ms' } } } }, 250],
    ['tcp.connectTimeout 2s, TLS (SIMPLE): the handshake never completes', { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '2s' } }, tls: { mode: 'SIMPLE', sni: 'echo.example' } } }, 2000],
  ];
  for (const [name, rule, timeoutMs] of rows) {
    it(`${name}: not failed 1 ms before the timeout, UNAVAILABLE / UF at it; the connection is closed and the next call opens another`, async () => {
      const h = await hole();
      const { clock, client } = await setup(h.port, rule);
      // The half-open connection is given up…
      await failsAtConnectTimeout(h, clock, client, timeoutMs);
      // …and the next call opens a new one, cut the same way.
      const second = unary(client, { text: 'b' });
      await h.connected(2);
      clock.advance(timeoutMs);
      assert.equal(flagsOf((await second).error), 'UF');
      assert.equal(h.sockets.length, 2);
    });
  }

  const meshRows: [name: string, rule: Record<string, unknown> | undefined, meshOptions: Partial<MeshOptions>, timeoutMs: number][] = [
    ['createMesh({ connectTimeoutMs: 3000 }), no DestinationRule', undefined, { connectTimeoutMs: 3000 }, 3000],
    ['meshConfig connectTimeout 1.5s, no DestinationRule', undefined, { meshConfig: 'connectTimeout: 1.5s\n' }, 1500],
    ['meshConfig connectTimeout 5s and a DestinationRule without connectTimeout (TLS SIMPLE)', { trafficPolicy: { tls: { mode: 'SIMPLE', sni: 'echo.example' } } }, { meshConfig: { connectTimeout: '5s' } }, 5000],
    ['the DestinationRule’s tcp.connectTimeout 250ms wins over createMesh({ connectTimeoutMs: 3000 })', { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '250ms' } } } }, { connectTimeoutMs: 3000 }, 250],
  ];
  for (const [name, rule, meshOptions, timeoutMs] of meshRows) {
    it(`MeshConfig connectTimeout: ${name}: the call fails UNAVAILABLE / UF at ${timeoutMs} ms, not 1 ms before`, async () => {
      const h = await hole();
      const { clock, client } = await setup(h.port, rule, meshOptions);
      await failsAtConnectTimeout(h, clock, client, timeoutMs);
    });
  }

  it('a call waiting for a stream (maxConcurrentStreams 1, maxConnections 1) on a connection that times out gets a new connection, and its own timeout', async () => {
    const h = await hole();
    const { clock, client } = await setup(h.port, { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '1s', maxConnections: 1 }, http: { maxConcurrentStreams: 1 } } } });
    // A deadline (far beyond what the test needs) so that a call left waiting ends the test with a failure, not a hang.
    const deadline = () => Date.now() + 30_000;
    const first = unary(client, { text: 'a' }, { deadline: deadline() });
    const second = unary(client, { text: 'b' }, { deadline: deadline() });
    await h.connected(1);
    clock.advance(1000);
    assert.equal(flagsOf((await first).error), 'UF');
    // The waiting call goes on a connection of its own, not the one given up.
    await Promise.race([h.connected(2), second.then((r) => assert.fail(`the waiting call ended without a connection of its own: ${r.error?.code} ${r.error?.details}`))]);
    clock.advance(1000);
    const r = await second;
    assert.equal(r.error?.details, CONNECTION_FAILURE);
    assert.equal(flagsOf(r.error), 'UF');
    assert.equal(h.sockets.length, 2);
  });

  it('a connection that came up is not cut: a bidi stream on it outlives the connect timeout', async () => {
    const up: GrpcUpstream = await startGrpcUpstream('a');
    open.push(up);
    const { clock, client } = await setup(up.port, { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '1s' } } } });
    assert.equal((await unary(client, { text: 'warm' })).reply?.server, 'a');
    const bidi = client.Bidi();
    const done = collect(bidi);
    bidi.write({ text: 'x' });
    await turns();
    clock.advance(60_000);
    await turns();
    bidi.write({ text: 'y' });
    bidi.end();
    const r = await done;
    assert.equal(r.status.code, grpc.status.OK, r.status.details);
    assert.equal(r.messages.length, 2);
    // A call made after the clock moved on still goes on the connection.
    assert.equal((await unary(client, { text: 'after' })).reply?.server, 'a');
  });

  const passthroughRows: [name: string, config: (port: number) => object[], target: (port: number) => string, timeoutMs: number, meshOptions?: Partial<MeshOptions>][] = [
    ['ALLOW_ANY passthrough (an address outside the registry): Istio’s default 10 s', () => [], (port) => `127.0.0.1:${port}`, 10_000],
    ['ALLOW_ANY passthrough under meshConfig connectTimeout 2s', () => [], (port) => `127.0.0.1:${port}`, 2000, { meshConfig: 'connectTimeout: 2s\n' }],
    ['ALLOW_ANY passthrough under createMesh({ connectTimeoutMs: 700 })', () => [], (port) => `127.0.0.1:${port}`, 700, { connectTimeoutMs: 700 }],
    [
      'resolution NONE ServiceEntry: its DestinationRule’s tcp.connectTimeout (250ms)',
      (port) => [
        { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'ext', namespace: 'default' }, spec: { hosts: ['localhost'], location: 'MESH_EXTERNAL', resolution: 'NONE', ports: [{ number: port, name: 'grpc', protocol: 'GRPC' }] } },
        destinationRule('ext', 'localhost', { trafficPolicy: { connectionPool: { tcp: { connectTimeout: '250ms' } } } }),
        // No retries, so that the call ends at the first connect timeout (Istio's default retries connect-failure).
        virtualService('ext', ['localhost'], [{ route: [{ destination: { host: 'localhost' } }], retries: { attempts: 0 } }]),
      ],
      (port) => `localhost:${port}`,
      250,
    ],
  ];
  for (const [name, config, target, timeoutMs, meshOptions] of passthroughRows) {
    it(`${name}: a blackholed address fails the call UNAVAILABLE / UF at the connect timeout, not at its deadline`, async () => {
      const h = await hole();
      const clock = new ManualClock(1_000_000);
      const mesh: Mesh = await createMesh({ service: 'client', clock, random: seededRandom(3), config: config(h.port), logger: { warn: () => undefined, info: () => undefined }, ...meshOptions });
      open.push(mesh);
      const client = mesh.grpc.client(EchoClient, target(h.port)) as unknown as Echo;
      open.push(client);
      await failsAtConnectTimeout(h, clock, client, timeoutMs);
    });
  }
});
