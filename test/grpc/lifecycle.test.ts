/**
 * The rest of a gRPC call's life through the mesh: the caller cancelling (the server's call is
 * cancelled, nothing is retried), a per-try timeout, mesh-made failures as Envoy's statuses
 * (no healthy upstream, REGISTRY_ONLY), hosts outside the mesh (passthrough), mirroring of
 * unary calls, `errors: 'throw'` (still a status: a grpc-js caller has no other way to get a
 * failure), cluster settings changes (the endpoint connections are made again) and `mesh.close()`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMesh, ManualClock, type MeshOptions, seededRandom } from '../../src/index.ts';
import { destinationRule, virtualService } from '../helpers/upstreams.ts';
import { closedAfter, type Echo, EchoClient, grpc, type GrpcUpstream, grpcServiceEntry, startGrpcUpstream, status, unary } from '../helpers/grpc.ts';

const HOST = 'echo.default.svc.cluster.local';

describe('gRPC call lifecycle through the mesh', () => {
  const { ups, meshes, clients } = closedAfter();

  async function setup(config: (ports: number[]) => object[], o: Partial<MeshOptions> = {}, target = 'echo:9090', names = ['a']) {
    const list: GrpcUpstream[] = [];
    for (const n of names) list.push(await startGrpcUpstream(n));
    ups.push(...list);
    const mesh = await createMesh({ service: 'client', random: seededRandom(2), config: config(list.map((u) => u.port)), ...o });
    meshes.push(mesh);
    const client = mesh.grpc.client(EchoClient, target) as unknown as Echo;
    clients.push(client);
    return { list, up: list[0] as GrpcUpstream, client, mesh };
  }
  const entry = (ports: number[]) => grpcServiceEntry('echo', HOST, 9090, ports.map((port) => ({ port })));

  it('the caller cancels: CANCELLED, the server’s call is cancelled, no retry (even with retryOn cancelled)', async () => {
    const { up, client } = await setup((p) => [entry(p), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 3, retryOn: 'cancelled,unavailable' } }])]);
    let serverCancelled!: Promise<void>;
    let arrived!: () => void;
    const there = new Promise<void>((r) => (arrived = r));
    up.behaviour.Unary = (call) => {
      serverCancelled = new Promise((r) => call.once('cancelled', () => r()));
      arrived();
    };
    const result = new Promise<grpc.ServiceError>((resolve) => {
      const call = client.Unary({ text: 'c' }, new grpc.Metadata(), {}, (err) => resolve(err as grpc.ServiceError));
      void there.then(() => call.cancel());
    });
    const err = await result;
    assert.equal(err.code, grpc.status.CANCELLED);
    await serverCancelled;
    assert.equal(up.hits, 1);
  });

  it('cancel(): the callback and the status come after cancel() returns, never inside it (as grpc-js delivers them)', async () => {
    const { up, client } = await setup((p) => [entry(p)]);
    let arrived!: () => void;
    const there = new Promise<void>((r) => (arrived = r));
    up.behaviour.Unary = () => arrived();
    const order: string[] = [];
    const ended = (name: string, call: grpc.ClientUnaryCall) => new Promise<void>((resolve) => call.on('status', (s) => {
      order.push(`${name} status ${grpc.status[s.code]}`);
      resolve();
    }));
    // Cancelled at once (routed, not answered), and once the server has it.
    const early = client.Unary({ text: 'e' }, new grpc.Metadata(), {}, (e) => order.push(`early callback ${e?.code}`));
    const earlyEnded = ended('early', early);
    early.cancel();
    order.push('early cancel() returned');
    await earlyEnded;
    const late = client.Unary({ text: 'l' }, new grpc.Metadata(), {}, (e) => order.push(`late callback ${e?.code}`));
    const lateEnded = ended('late', late);
    await there;
    late.cancel();
    order.push('late cancel() returned');
    await lateEnded;
    assert.deepEqual(order, ['early cancel() returned', 'early callback 1', 'early status CANCELLED', 'late cancel() returned', 'late callback 1', 'late status CANCELLED']);
  });

  it('per-try timeout (on the mesh clock): the attempt is cut and retried; the second answers', async () => {
    const clock = new ManualClock(5_000);
    const { up, client } = await setup((p) => [entry(p), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 2, perTryTimeout: '1s', retryOn: 'reset' } }])], { clock });
    let first!: () => void;
    const firstArrived = new Promise<void>((r) => (first = r));
    up.behaviour.Unary = (call, cb, hit) => {
      if (hit === 1) first();
      else cb(null, { text: call.request.text, server: 'a', seen: [] });
    };
    const pending = unary(client, { text: 'p' });
    await firstArrived;
    clock.advance(1000);
    // The retry waits its backoff (at most 25 ms, jittered) on the mesh clock.
    await new Promise((r) => setImmediate(r));
    clock.advance(25);
    const r = await pending;
    assert.equal(r.reply?.text, 'p');
    assert.equal(up.hits, 2);
  });

  it('no healthy upstream (the only endpoint ejected): UNAVAILABLE, flag UH, "no healthy upstream"', async () => {
    const { up, client } = await setup((p) => [entry(p), destinationRule('echo', 'echo', { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } } }), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], retries: { attempts: 0 } }])]);
    up.behaviour.Unary = (_c, cb) => cb(status(grpc.status.UNAVAILABLE, 'down'));
    assert.equal((await unary(client, { text: 'x' })).error?.details, 'down');
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(r.error?.details, 'no healthy upstream');
    assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'UH');
    assert.equal(up.hits, 1);
  });

  it('a host outside the mesh (ALLOW_ANY) goes to the address the target names', async () => {
    const other = await startGrpcUpstream('outside');
    ups.push(other);
    const { client } = await setup((p) => [entry(p)], {}, `127.0.0.1:${other.port}`);
    const r = await unary(client, { text: 'out' });
    assert.equal(r.reply?.server, 'outside');
  });

  it('REGISTRY_ONLY: a host outside the mesh is refused with UNAVAILABLE and nothing is sent', async () => {
    const other = await startGrpcUpstream('outside');
    ups.push(other);
    const { client } = await setup((p) => [entry(p)], { outboundTrafficPolicy: 'REGISTRY_ONLY' }, `127.0.0.1:${other.port}`);
    const r = await unary(client, { text: 'out' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(other.hits, 0);
  });

  it('mirroring: a unary call is copied to the mirror, the caller gets the primary’s reply', async () => {
    const { list, client } = await setup(
      (p) => [
        grpcServiceEntry('echo', HOST, 9090, [{ port: p[0] as number, labels: { version: 'v1' } }, { port: p[1] as number, labels: { version: 'v2' } }]),
        destinationRule('echo', 'echo', { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
        virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo', subset: 'v1' } }], mirror: { host: 'echo', subset: 'v2' }, mirrorPercentage: { value: 100 } }]),
      ],
      {},
      'echo:9090',
      ['primary', 'mirror'],
    );
    const [primary, mirror] = list as [GrpcUpstream, GrpcUpstream];
    let mirrored!: (text: string) => void;
    const copy = new Promise<string>((r) => (mirrored = r));
    mirror.behaviour.Unary = (call, cb) => {
      mirrored(call.request.text);
      cb(null, { text: 'from mirror', server: 'mirror', seen: [] });
    };
    const r = await unary(client, { text: 'twice' });
    assert.equal(r.reply?.server, 'primary');
    assert.equal(await copy, 'twice');
    assert.equal(primary.hits, 1);
  });

  it("errors: 'throw' still ends a gRPC call with a status (the fault's)", async () => {
    const { client } = await setup((p) => [entry(p), virtualService('echo', ['echo'], [{ route: [{ destination: { host: 'echo' } }], fault: { abort: { grpcStatus: 'RESOURCE_EXHAUSTED', percentage: { value: 100 } } } }])], { errors: 'throw' });
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(r.error?.metadata.get('x-meshlet-response-flags')[0], 'FI');
  });

  it('a cluster settings change makes the endpoint connections again; calls keep working', async () => {
    const { up, client, mesh } = await setup((p) => [entry(p)]);
    assert.equal((await unary(client, { text: '1' })).reply?.text, '1');
    const name = [...mesh.outbound.clusters.keys()].find((n) => n.endsWith(HOST)) as string;
    const before = mesh.outbound.clusterState(name)?.transports.get('grpc');
    assert.notEqual(before, undefined);
    const { compileSnapshot } = await import('../../src/routing/compile.ts');
    const { loadConfig } = await import('../../src/config/load-config.ts');
    const loaded = await loadConfig([entry([up.port]), destinationRule('echo', 'echo', { trafficPolicy: { connectionPool: { http: { idleTimeout: '7s' } } } })] as never);
    assert.ok(loaded.ok);
    mesh.install(compileSnapshot(loaded.resources, { service: 'client', namespace: 'default', labels: {} }));
    assert.equal(mesh.outbound.clusterState(name)?.transports.get('grpc'), undefined, 'the old connections are closed');
    assert.equal((await unary(client, { text: '2' })).reply?.text, '2');
    assert.match(mesh.outbound.clusterState(name)?.transports.get('grpc')?.key ?? '', /"idleTimeoutMs":7000/);
  });

  it('after mesh.close(), a call ends UNAVAILABLE at once', async () => {
    const { client, mesh, up } = await setup((p) => [entry(p)]);
    await mesh.close();
    const r = await unary(client, { text: 'late' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.equal(up.hits, 0);
  });

  it("a deadline already past: DEADLINE_EXCEEDED (errors: 'throw', where the mesh fails the call at once), nothing sent", async () => {
    const { client, up } = await setup((p) => [entry(p)], { errors: 'throw' });
    const r = await unary(client, { text: 'late' }, { deadline: Date.now() - 1000 });
    assert.equal(r.error?.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(up.hits, 0);
  });

  it('mesh.close() lets a call in flight finish for closeTimeoutMs (mesh clock), then ends it UNAVAILABLE', async () => {
    const clock = new ManualClock(0);
    const { client, mesh, up } = await setup((p) => [entry(p)], { clock, closeTimeoutMs: 1000 });
    let arrived!: () => void;
    const there = new Promise<void>((r) => (arrived = r));
    let serverCancelled!: Promise<void>;
    up.behaviour.Unary = (call) => {
      serverCancelled = new Promise((r) => call.once('cancelled', () => r()));
      arrived();
    };
    const pending = unary(client, { text: 'held' });
    await there;
    const closing = mesh.close();
    await new Promise((r) => setImmediate(r));
    clock.advance(999);
    await new Promise((r) => setImmediate(r));
    let settled = false;
    void pending.then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'still within the grace period');
    clock.advance(1);
    const r = await pending;
    await closing;
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.match(r.error?.details ?? '', /mesh\.close\(\): the call was still running after closeTimeoutMs \(1000 ms\)/);
    await serverCancelled;
  });

  it('a destination without endpoints (resolution NONE) whose DestinationRule says TLS: refused, never sent in plaintext', async () => {
    const other = await startGrpcUpstream('outside');
    ups.push(other);
    const none = { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'ext', namespace: 'default' }, spec: { hosts: ['ext.example.com'], location: 'MESH_EXTERNAL', resolution: 'NONE', addresses: ['127.0.0.1'], ports: [{ number: other.port, name: 'grpc', protocol: 'GRPC' }] } };
    const { client } = await setup(() => [none, destinationRule('ext', 'ext.example.com', { trafficPolicy: { tls: { mode: 'SIMPLE' } } })], { logger: { warn: () => undefined, error: () => undefined } }, `ext.example.com:${other.port}`);
    const r = await unary(client, { text: 'x' });
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    assert.match(r.error?.details ?? '', /do not take DestinationRule TLS yet/);
    assert.equal(other.hits, 0);
  });
});

