/**
 * gRPC calls are routed like HTTP ones, by the same route table: a VirtualService matches the
 * method as its uri (`/pkg.Service/Method`), metadata as headers (and `user-agent` as grpc-js
 * sends it) and the port; weights split
 * calls between subsets; every load-balancing kind of a DestinationRule picks the endpoint of
 * each call; a call no route matches gets UNIMPLEMENTED (Envoy's 404 → gRPC), flag NR.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, seededRandom } from '../../src/index.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { closedAfter, collect, type Echo, EchoClient, grpc, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';
const subsets = [
  { name: 'v1', labels: { version: 'v1' } },
  { name: 'v2', labels: { version: 'v2' } },
];

describe('gRPC routing through the mesh', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup(config: object[], target = 'echo:9090') {
    const a = await startGrpcUpstream('v1');
    const b = await startGrpcUpstream('v2');
    ups.push(a, b);
    const mesh = await createMesh({
      service: 'client',
      random: seededRandom(7),
      config: [grpcServiceEntry('echo', HOST, 9090, [{ port: a.port, labels: { version: 'v1' } }, { port: b.port, labels: { version: 'v2' } }]), ...config],
    });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, target) as unknown as Echo;
    clients.push(client);
    return { a, b, mesh, client };
  }

  it("user-agent is matched as grpc-js sends it: the client's grpc.primary_user_agent, then grpc-node-js/<version>", async () => {
    const { mesh, client } = await setup([
      destinationRule('echo', 'echo', { subsets }),
      virtualService('echo', ['echo'], [
        { name: 'app', match: [{ headers: { 'user-agent': { prefix: 'myapp/1.0 grpc-node-js/' } } }], route: [{ destination: { host: 'echo', subset: 'v2' } }] },
        { name: 'grpc-js', match: [{ headers: { 'user-agent': { regex: 'grpc-node-js/[0-9.]+' } } }], route: [{ destination: { host: 'echo', subset: 'v1' } }] },
      ]),
    ]);
    const app = mesh.grpc.client(EchoClient, 'echo:9090', { 'grpc.primary_user_agent': 'myapp/1.0' }) as unknown as Echo;
    clients.push(app);
    assert.equal((await unary(client, { text: 'x' })).reply?.server, 'v1');
    assert.equal((await unary(app, { text: 'x' })).reply?.server, 'v2');
  });

  it('match table: uri (the method), metadata as headers, port; a route per row', async () => {
    const { client } = await setup([
      destinationRule('echo', 'echo', { subsets }),
      virtualService('echo', ['echo'], [
        { name: 'by-header', match: [{ headers: { 'x-user': { exact: 'jason' } } }], route: [{ destination: { host: 'echo', subset: 'v2' } }] },
        { name: 'by-method', match: [{ uri: { exact: '/meshlet.test.Echo/ServerStream' } }], route: [{ destination: { host: 'echo', subset: 'v2' } }] },
        { name: 'by-prefix-and-port', match: [{ uri: { prefix: '/meshlet.test.Echo/' }, port: 9090 }], route: [{ destination: { host: 'echo', subset: 'v1' } }] },
      ]),
    ]);
    const rows: [string, () => Promise<string | undefined>, string][] = [
      ['no match but the prefix → v1', async () => (await unary(client, { text: 'x' })).reply?.server, 'v1'],
      [
        'metadata x-user: jason → v2',
        async () => {
          const md = new grpc.Metadata();
          md.set('x-user', 'jason');
          return (await unary(client, { text: 'x' }, { metadata: md })).reply?.server;
        },
        'v2',
      ],
      [
        'metadata x-user: other → v1 (negative)',
        async () => {
          const md = new grpc.Metadata();
          md.set('x-user', 'other');
          return (await unary(client, { text: 'x' }, { metadata: md })).reply?.server;
        },
        'v1',
      ],
      ['method ServerStream → v2', async () => (await collect(client.ServerStream({ text: 'x', count: 1 }))).messages[0]?.server, 'v2'],
    ];
    for (const [name, run, want] of rows) assert.equal(await run(), want, name);
  });

  it('-bin metadata is matched as its base64 text, as Envoy compares it', async () => {
    const { client } = await setup([
      destinationRule('echo', 'echo', { subsets }),
      virtualService('echo', ['echo'], [
        { match: [{ headers: { 'x-token-bin': { exact: Buffer.from('secret').toString('base64') } } }], route: [{ destination: { host: 'echo', subset: 'v2' } }] },
        { route: [{ destination: { host: 'echo', subset: 'v1' } }] },
      ]),
    ]);
    const md = new grpc.Metadata();
    md.set('x-token-bin', Buffer.from('secret'));
    assert.equal((await unary(client, { text: 'x' }, { metadata: md })).reply?.server, 'v2');
    const other = new grpc.Metadata();
    other.set('x-token-bin', Buffer.from('other'));
    assert.equal((await unary(client, { text: 'x' }, { metadata: other })).reply?.server, 'v1');
  });

  it('a call no route matches: UNIMPLEMENTED with flag NR, nothing sent', async () => {
    const { client, a, b } = await setup([virtualService('echo', ['echo'], [{ match: [{ uri: { exact: '/other.Svc/Method' } }], route: [{ destination: { host: 'echo' } }] }])]);
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNIMPLEMENTED);
    assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'NR');
    assert.equal(a.hits + b.hits, 0);
  });

  it('weighted subsets: 20/80 split by the route weights (both served, v2 the most)', async () => {
    const { client } = await setup([
      destinationRule('echo', 'echo', { subsets }),
      virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo', subset: 'v1' }, weight: 20 }, { destination: { host: 'echo', subset: 'v2' }, weight: 80 }] }]),
    ]);
    const count = { v1: 0, v2: 0 } as Record<string, number>;
    for (let i = 0; i < 50; i++) {
      const s = (await unary(client, { text: 'w' })).reply?.server as string;
      count[s] = (count[s] ?? 0) + 1;
    }
    assert.ok((count.v1 ?? 0) > 0 && (count.v2 ?? 0) > (count.v1 ?? 0) * 2, JSON.stringify(count));
  });

  const lbRows: [string, Record<string, unknown>, (servers: string[]) => void][] = [
    ['ROUND_ROBIN alternates', { simple: 'ROUND_ROBIN' }, (s) => assert.deepEqual(new Set([s[0], s[1]]).size, 2, s.join())],
    ['RANDOM reaches both', { simple: 'RANDOM' }, (s) => assert.equal(new Set(s).size, 2, s.join())],
    ['LEAST_REQUEST reaches both', { simple: 'LEAST_REQUEST' }, (s) => assert.equal(new Set(s).size, 2, s.join())],
    ['consistentHash on metadata x-user sticks to one endpoint', { consistentHash: { httpHeaderName: 'x-user' } }, (s) => assert.equal(new Set(s).size, 1, s.join())],
  ];
  for (const [name, loadBalancer, check] of lbRows) {
    it(`load balancing: ${name}`, async () => {
      const { client } = await setup([destinationRule('echo', 'echo', { trafficPolicy: { loadBalancer } })]);
      const servers: string[] = [];
      for (let i = 0; i < 12; i++) {
        const md = new grpc.Metadata();
        md.set('x-user', 'sticky');
        servers.push((await unary(client, { text: 'lb' }, { metadata: md })).reply?.server as string);
      }
      check(servers);
      if (name.startsWith('ROUND_ROBIN')) for (let i = 2; i < servers.length; i++) assert.equal(servers[i], servers[i - 2], servers.join());
    });
  }
});
