/**
 * gRPC calls to a `resolution: DNS` service go to each address of the name as its own endpoint
 * (Envoy's STRICT_DNS cluster), sharing the cluster's hosts with HTTP calls: an address whose
 * server answers UNAVAILABLE is ejected alone, and a new answer moves the calls.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createMesh, type DnsAnswer, ManualClock, type OutboundEvent, seededRandom } from '../../src/index.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { type Echo, EchoClient, grpc, status, unary } from '../helpers/grpc.ts';

const servers: grpc.Server[] = [];
after(() => {
  for (const s of servers) s.forceShutdown();
});
const hits = new Map<string, number>();

/** An Echo server on `address:port` (0: any); `bad`: every call UNAVAILABLE. */
async function listen(address: string, port: number, bad = false): Promise<number> {
  const server = new grpc.Server();
  server.addService(EchoClient.service, {
    Unary: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      hits.set(address, (hits.get(address) ?? 0) + 1);
      if (bad) cb(status(grpc.status.UNAVAILABLE, 'down'));
      else cb(null, { text: call.request.text, server: address, seen: [] });
    },
  });
  servers.push(server);
  return new Promise<number>((resolve, reject) => server.bindAsync(`${address}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
}

test('gRPC: each address of a DNS name is an endpoint; a failing address is ejected alone; a new answer moves calls', async () => {
  const port = await listen('127.0.0.1', 0);
  await listen('127.0.0.2', port, true);
  await listen('127.0.0.3', port);
  const clock = new ManualClock();
  let answer = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  let lookups = 0;
  const mesh = await createMesh({
    service: 'client',
    clock,
    random: seededRandom(2),
    logger: { warn: () => undefined },
    dns: {
      refreshRateMs: 10_000,
      resolve: async (): Promise<DnsAnswer> => {
        lookups++;
        return { addresses: answer, ttlMs: 5_000 };
      },
    },
    config: [
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: { name: 'echo', namespace: 'default' },
        spec: { hosts: ['echo.example.test'], location: 'MESH_EXTERNAL', resolution: 'DNS', ports: [{ number: 9090, name: 'grpc', protocol: 'GRPC', targetPort: port }] },
      },
      virtualService('echo', ['echo.example.test'], [{ route: [{ destination: { host: 'echo.example.test' } }], retries: { attempts: 0 } }]),
      destinationRule('echo', 'echo.example.test', { trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 1, baseEjectionTime: '300s', maxEjectionPercent: 100 } } }),
    ],
  });
  const ejected: OutboundEvent[] = [];
  mesh.on('ejected', (e: OutboundEvent) => ejected.push(e));
  const client = mesh.grpc.client(EchoClient, 'echo.example.test:9090') as unknown as Echo;
  try {
    for (let i = 0; i < 6; i++) await unary(client, { text: 'x' });
    assert.deepEqual(ejected.map((e) => e.endpoint), [`127.0.0.2:${port}`]);
    hits.clear();
    for (let i = 0; i < 6; i++) assert.equal((await unary(client, { text: 'y' })).error, undefined);
    assert.deepEqual([...hits.keys()].sort(), ['127.0.0.1', '127.0.0.3']);
    // The answer's TTL (5 s) comes before dnsRefreshRate (10 s): Istio sets respect_dns_ttl.
    answer = ['127.0.0.3'];
    clock.advance(5_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(lookups, 2);
    hits.clear();
    for (let i = 0; i < 4; i++) assert.equal((await unary(client, { text: 'z' })).error, undefined);
    assert.deepEqual([...hits.keys()], ['127.0.0.3']);
  } finally {
    client.close();
    await mesh.close();
  }
});

test('gRPC: DNS_ROUND_ROBIN (LOGICAL_DNS) is one endpoint whose new connections follow the first address of the latest answer', async () => {
  const port = await listen('127.0.0.4', 0);
  await listen('127.0.0.5', port);
  const clock = new ManualClock();
  let answer = ['127.0.0.4', '127.0.0.5'];
  const mesh = await createMesh({
    service: 'client',
    clock,
    logger: { warn: () => undefined },
    dns: { refreshRateMs: 10_000, resolve: async (): Promise<DnsAnswer> => ({ addresses: answer }) },
    config: [
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: { name: 'echo', namespace: 'default' },
        spec: { hosts: ['echo.example.test'], location: 'MESH_EXTERNAL', resolution: 'DNS_ROUND_ROBIN', ports: [{ number: 9090, name: 'grpc', protocol: 'GRPC', targetPort: port }] },
      },
    ],
  });
  const client = mesh.grpc.client(EchoClient, 'echo.example.test:9090') as unknown as Echo;
  try {
    hits.clear();
    for (let i = 0; i < 3; i++) assert.equal((await unary(client, { text: 'a' })).error, undefined);
    assert.deepEqual([...hits.entries()], [['127.0.0.4', 3]]);
    answer = ['127.0.0.5'];
    clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
    hits.clear();
    for (let i = 0; i < 3; i++) assert.equal((await unary(client, { text: 'b' })).error, undefined);
    assert.deepEqual([...hits.entries()], [['127.0.0.5', 3]]);
    assert.deepEqual(mesh.diagnostics().clusters[0]?.endpoints.map((e) => e.endpoint), [`echo.example.test:${port}`]);
  } finally {
    client.close();
    await mesh.close();
  }
});
