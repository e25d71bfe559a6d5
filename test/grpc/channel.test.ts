/**
 * The mesh channel as grpc-js sees it: READY while the mesh is open (`waitForReady` returns at
 * once), SHUTDOWN once it or the mesh is closed; per-call credentials add their metadata before
 * the call is routed (a route can match on it); a server call given as `parent` passes its
 * deadline and its cancellation on; a VirtualService direct response reaches a gRPC caller as gRPC's mapping of its
 * HTTP status, its body as the details.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, describe, it } from 'node:test';
import { createMesh, type Mesh } from '../../src/index.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { until } from '../helpers/until.ts';
import { type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

describe('the mesh channel', () => {
  const ups: GrpcUpstream[] = [];
  const meshes: Mesh[] = [];
  const clients: grpc.Client[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(meshes.map((m) => m.close()));
    await Promise.all(ups.map((u) => u.close()));
  });

  async function setup(extra: object[] = [], labels?: Record<string, string>[]) {
    const a = await startGrpcUpstream('v1');
    const b = await startGrpcUpstream('v2');
    ups.push(a, b);
    const mesh = await createMesh({ service: 'client', config: [grpcServiceEntry('echo', HOST, 9090, [{ port: a.port, labels: labels?.[0] }, { port: b.port, labels: labels?.[1] }]), ...extra] });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, 'echo:9090') as unknown as Echo;
    clients.push(client);
    return { a, b, mesh, client };
  }

  it('is READY while the mesh is open (waitForReady returns), SHUTDOWN after close()', async () => {
    const { mesh } = await setup();
    const channel = mesh.grpc.channel('echo:9090');
    const client = new EchoClient('echo:9090', grpc.credentials.createInsecure(), { channelOverride: channel });
    clients.push(client);
    await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())));
    assert.equal(channel.getConnectivityState(true), grpc.connectivityState.READY);
    assert.equal(channel.getTarget(), 'echo:9090');
    const changed = new Promise<Error | undefined>((r) => channel.watchConnectivityState(grpc.connectivityState.READY, Number.POSITIVE_INFINITY, r));
    channel.close();
    assert.equal(await changed, undefined);
    assert.equal(channel.getConnectivityState(false), grpc.connectivityState.SHUTDOWN);
    assert.throws(() => channel.createCall('/meshlet.test.Echo/Unary', Number.POSITIVE_INFINITY, undefined, null, undefined), /shut down/);
  });

  it('watchConnectivityState: a deadline that passes without a change calls back with an error', async () => {
    const { mesh } = await setup();
    const channel = mesh.grpc.channel('echo:9090');
    const err = await new Promise<Error | undefined>((r) => channel.watchConnectivityState(grpc.connectivityState.READY, Date.now() + 10, r));
    assert.match(err?.message ?? '', /Deadline passed without connectivity state change/);
  });

  it('per-call credentials: their metadata is added before routing (a route matches on it) and reaches the server', async () => {
    const { client, a, b } = await setup(
      [
        destinationRule('echo', 'echo', { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
        virtualService('echo', ['echo'], [
          { match: [{ headers: { authorization: { exact: 'Bearer t0ken' } } }], route: [{ destination: { host: 'echo', subset: 'v2' } }] },
          { route: [{ destination: { host: 'echo', subset: 'v1' } }] },
        ]),
      ],
      [{ version: 'v1' }, { version: 'v2' }],
    );
    const creds = grpc.credentials.createFromMetadataGenerator((_params, cb) => {
      const md = new grpc.Metadata();
      md.set('authorization', 'Bearer t0ken');
      cb(null, md);
    });
    const r = await new Promise<{ server?: string }>((resolve, reject) => client.Unary({ text: 'c' }, new grpc.Metadata(), { credentials: creds }, (e, res) => (e ? reject(e) : resolve(res as { server: string }))));
    assert.equal(r.server, 'v2');
    assert.equal(b.seen.at(-1)?.metadata.authorization, 'Bearer t0ken');
    assert.equal((await unary(client, { text: 'plain' })).reply?.server, 'v1');
    assert.equal(a.hits, 1);
  });

  it('per-call credentials that fail: the call ends with their error (UNAVAILABLE), nothing sent', async () => {
    const { client, a, b } = await setup();
    const creds = grpc.credentials.createFromMetadataGenerator((_params, cb) => cb(new Error('no token today')));
    const err = await new Promise<grpc.ServiceError>((resolve) => client.Unary({ text: 'c' }, new grpc.Metadata(), { credentials: creds }, (e) => resolve(e as grpc.ServiceError)));
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.match(err.details, /no token today/);
    assert.equal(a.hits + b.hits, 0);
  });

  it('a server call given as parent passes its deadline on (the mesh call gets the sooner one)', async () => {
    const { client, a, b } = await setup();
    const report: GrpcUpstream['behaviour']['Unary'] = (call, cb) => {
      const d = call.getDeadline();
      cb(null, { text: String((d instanceof Date ? d.getTime() : d) - Date.now()), server: 'either', seen: [] });
    };
    a.behaviour.Unary = report;
    b.behaviour.Unary = report;
    const parentDeadline = Date.now() + 3000;
    const parent = { getDeadline: () => parentDeadline } as unknown as grpc.ServerUnaryCall<unknown, unknown>;
    const left = await new Promise<number>((resolve, reject) =>
      client.Unary({ text: 'p' }, new grpc.Metadata(), { parent, deadline: Date.now() + 60_000 }, (e, res) => (e ? reject(e) : resolve(Number((res as { text: string }).text)))),
    );
    assert.ok(left > 0 && left <= 3000, `server deadline ${left} ms from now, want at most 3000`);
  });

  it('a server call given as parent passes its cancellation on: the call it made ends CANCELLED and the upstream sees it cancelled', async () => {
    const { client, a, b } = await setup();
    const upstreamCancelled: string[] = [];
    const hold: GrpcUpstream['behaviour']['Unary'] = (call) => call.on('cancelled', () => upstreamCancelled.push(call.request.text));
    a.behaviour.Unary = hold;
    b.behaviour.Unary = hold;
    // A front server (plain grpc-js) whose handler calls the upstream through the mesh with { parent: call }.
    const children: grpc.ServiceError[] = [];
    const front = new grpc.Server();
    front.addService(EchoClient.service, {
      Unary: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        client.Unary({ text: 'child' }, new grpc.Metadata(), { parent: call } as grpc.CallOptions, (e, r) => {
          if (e !== null) children.push(e);
          cb(e, r);
        }),
    });
    const port = await new Promise<number>((resolve, reject) => front.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const caller = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Echo;
    clients.push(caller);
    try {
      const outer = caller.Unary({ text: 'outer' }, new grpc.Metadata(), {}, () => undefined);
      await until(() => a.hits + b.hits === 1, 'the child call at the upstream');
      outer.cancel();
      await until(() => children.length === 1, 'the child call to end');
      assert.equal(children[0]?.code, grpc.status.CANCELLED);
      assert.equal(children[0]?.details, 'Cancelled by parent call');
      await until(() => upstreamCancelled.length === 1, 'the upstream to see the child call cancelled');
      assert.deepEqual(upstreamCancelled, ['child']);
    } finally {
      front.forceShutdown();
    }
  });

  it('a parent already cancelled: the call ends CANCELLED and is not sent; without Propagate.CANCELLATION it goes on', async () => {
    const { client, a, b } = await setup();
    const parent = Object.assign(new EventEmitter(), { cancelled: true, getDeadline: () => Number.POSITIVE_INFINITY });
    const err = await new Promise<grpc.ServiceError | null>((resolve) => client.Unary({ text: 'p' }, new grpc.Metadata(), { parent } as unknown as grpc.CallOptions, (e) => resolve(e)));
    assert.equal(err?.code, grpc.status.CANCELLED);
    assert.equal(err?.details, 'Cancelled by parent call');
    assert.equal(a.hits + b.hits, 0);
    const ok = await new Promise<grpc.ServiceError | null>((resolve) => client.Unary({ text: 'p' }, new grpc.Metadata(), { parent, propagate_flags: grpc.propagate.DEADLINE } as unknown as grpc.CallOptions, (e) => resolve(e)));
    assert.equal(ok, null);
    // A call that ended leaves no listener on its parent.
    const live = Object.assign(new EventEmitter(), { cancelled: false, getDeadline: () => Number.POSITIVE_INFINITY });
    await new Promise((resolve) => client.Unary({ text: 'p' }, new grpc.Metadata(), { parent: live } as unknown as grpc.CallOptions, resolve));
    assert.equal(live.listenerCount('cancelled'), 0);
  });

  const directRows: [number, string, grpc.status][] = [
    [503, 'down for maintenance', grpc.status.UNAVAILABLE],
    [404, 'nothing here', grpc.status.UNIMPLEMENTED],
    [200, 'not a gRPC answer', grpc.status.UNKNOWN],
  ];
  for (const [code, body, want] of directRows) {
    it(`a direct response ${code} reaches a gRPC caller as ${grpc.status[want]}, its body as the details`, async () => {
      const { client, a, b } = await setup([virtualService('echo', ['echo'], [{ directResponse: { status: code, body: { string: body } } }])]);
      const r = await unary(client, { text: 'd' });
      assert.equal(r.error?.code, want);
      assert.equal(r.error?.details, body);
      assert.equal(a.hits + b.hits, 0);
    });
  }
});
